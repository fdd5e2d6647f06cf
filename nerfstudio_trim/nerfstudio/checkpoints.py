"""Reading splatfacto checkpoints safely under torch >= 2.6 (design.md trap 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from nerfstudio_trim.errors import TrimError

GAUSSIAN_PARAMS = ("means", "scales", "quats", "features_dc", "features_rest", "opacities")


def allow_nerfstudio_checkpoint_globals() -> None:
    """Let ``torch.load(weights_only=True)`` read nerfstudio checkpoints.

    Their scheduler state holds numpy scalars (e.g. the learning rate as ``np.float64``); torch >= 2.6
    refuses them by default. Only those numpy types are allowed, safe loading stays on. Idempotent.
    """
    torch.serialization.add_safe_globals(
        [np.core.multiarray.scalar, np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32))]
    )


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Load a nerfstudio checkpoint onto the CPU with safe (weights-only) unpickling.

    Raises:
        TrimError: the file is missing, or is not a checkpoint torch can read safely.
    """
    if not path.is_file():
        raise TrimError(f"checkpoint {path} does not exist")
    allow_nerfstudio_checkpoint_globals()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise TrimError(f"{path} is not a readable nerfstudio checkpoint ({first_line})") from None
    if not isinstance(state, dict) or not isinstance(state.get("pipeline"), dict):
        raise TrimError(f"{path} is not a nerfstudio checkpoint (no 'pipeline' state)")
    return state


def gaussian_state(pipeline_state: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """The six Gaussian parameter tensors of a splatfacto pipeline state, by short name.

    Accepts both layouts splatfacto has written (``_model.gauss_params.means`` and the older
    ``_model.means``), with or without a DDP ``module.`` prefix.

    Raises:
        TrimError: some Gaussian parameter is missing, i.e. this is not a splatfacto model.
    """
    model_state = {}
    for key, value in pipeline_state.items():
        key = key.removeprefix("module.")
        if key.startswith("_model."):
            model_state[key[len("_model.") :].removeprefix("gauss_params.")] = value
    missing = [name for name in GAUSSIAN_PARAMS if name not in model_state]
    if missing:
        raise TrimError(
            f"not a splatfacto checkpoint: it has no Gaussian parameters ({', '.join(missing)} missing); "
            "splatfacto-trim starts from a trained splatfacto or splatfacto-trim model"
        )
    return {name: model_state[name] for name in GAUSSIAN_PARAMS}
