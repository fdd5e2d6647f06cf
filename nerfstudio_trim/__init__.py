"""nerfstudio-trim: turn a trained splatfacto scene into a small, fast one.

``nerfstudio_trim.core`` is plain PyTorch (gsplat only where CUDA is present) and never imports
nerfstudio; ``nerfstudio_trim.nerfstudio`` is the thin plugin layer (method config, model).
"""

__version__ = "0.1.0"
