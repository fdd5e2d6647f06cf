"""One entry point for rendering Gaussians: gsplat's CUDA kernels for CUDA tensors, our pure-PyTorch
rasterizer otherwise. Both take gsplat's ``rasterization()`` arguments and return its outputs."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from torch import Tensor

from nerfstudio_trim.core.raster import cpu_raster
from nerfstudio_trim.core.raster.cpu_raster import RasterizeMode, RenderMode


def rasterize(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: Optional[int] = None,
    render_mode: RenderMode = "RGB",
    rasterize_mode: RasterizeMode = "classic",
    absgrad: bool = False,
    backgrounds: Optional[Tensor] = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    tile_size: int = 16,
) -> Tuple[Tensor, Tensor, Dict[str, Any]]:
    """Render with the backend that fits the tensors' device; see ``cpu_raster.rasterization``.

    Returns ([C, H, W, X] features, [C, H, W, 1] alphas, info) exactly as gsplat does, unpacked.
    """
    kwargs: Dict[str, Any] = dict(
        means=means, quats=quats, scales=scales, opacities=opacities, colors=colors,
        viewmats=viewmats, Ks=Ks, width=width, height=height, sh_degree=sh_degree,
        render_mode=render_mode, rasterize_mode=rasterize_mode, absgrad=absgrad,
        backgrounds=backgrounds, near_plane=near_plane, far_plane=far_plane, tile_size=tile_size,
        packed=False, sparse_grad=False,
    )  # fmt: skip
    if means.is_cuda:
        from gsplat.rendering import rasterization as gsplat_rasterization

        return gsplat_rasterization(**kwargs)
    return cpu_raster.rasterization(**kwargs)
