"""A differentiable pure-PyTorch Gaussian rasterizer: the subset of gsplat 1.4.0's
``rasterization()`` that splatfacto uses, for machines without CUDA.

Same arguments, same outputs and the same ``info`` keys that splatfacto and gsplat's
``DefaultStrategy`` read. Gradients come from autograd; ``absgrad=True`` fills
``info["means2d"].absgrad`` during the backward pass as gsplat's CUDA kernels do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional, Tuple

import torch
from torch import Tensor

from nerfstudio_trim.core.raster.composite import DEFAULT_CHUNK_ELEMENTS, composite_tiles
from nerfstudio_trim.core.raster.projection import Projection, project_gaussians
from nerfstudio_trim.core.raster.sh import eval_sh
from nerfstudio_trim.core.raster.tiles import TileIntersections, intersect_tiles, subdivide_tiles

SUBTILE_SIZE = 8  # compositing granularity; the result is that of gsplat's tile_size

RenderMode = Literal["RGB", "D", "ED", "RGB+D", "RGB+ED"]
RasterizeMode = Literal["classic", "antialiased"]


def _colors(
    means: Tensor, colors: Tensor, viewmats: Tensor, sh_degree: Optional[int], n_cameras: int
) -> Tensor:
    """Per-camera colours [C, N, D]: SH evaluated towards each camera, or the given colours."""
    n = means.shape[0]
    if sh_degree is None:
        if colors.dim() == 2 and colors.shape[0] == n:
            return colors.expand(n_cameras, -1, -1)
        if colors.dim() == 3 and colors.shape[:2] == (n_cameras, n):
            return colors
        raise ValueError(f"colors must be [N, D] or [C, N, D] when sh_degree is None, got {tuple(colors.shape)}")
    if not (colors.dim() in (3, 4) and colors.shape[-1] == 3 and colors.shape[-3] == n):
        raise ValueError(f"SH colors must be [N, K, 3] or [C, N, K, 3], got {tuple(colors.shape)}")
    campos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3]
    dirs = means[None, :, :] - campos[:, None, :]  # [C, N, 3]
    coeffs = colors if colors.dim() == 4 else colors[None].expand(n_cameras, -1, -1, -1)
    return torch.clamp_min(eval_sh(sh_degree, dirs, coeffs) + 0.5, 0.0)


@dataclass
class ScreenSpace:
    """The Gaussians as the compositing sees them, for C cameras."""

    projection: Projection  # [C, N] screen-space centres, conics, depths, radii
    opacities: Tensor  # [C, N] opacity per view (times the antialiasing compensation)
    features: Tensor  # [C, N, D] what is composited (colours, depth or both)
    isects: TileIntersections  # Gaussian/tile lists at gsplat's tile size (reported in ``info``)
    work: TileIntersections  # the lists that are composited: ``isects`` split into sub-tiles when possible


def screen_space(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: Optional[int] = None,
    tile_size: int = 16,
    render_mode: RenderMode = "RGB",
    rasterize_mode: RasterizeMode = "classic",
) -> ScreenSpace:
    """Projection, per-view colours and sorted tile lists: everything before the compositing.

    Arguments as ``rasterization``'s (which calls this); ``render_mode`` decides the features.
    """
    n_cameras = viewmats.shape[0]
    proj = project_gaussians(
        means, quats, scales, viewmats, Ks, width, height,
        eps2d=eps2d, near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip,
        antialiased=rasterize_mode == "antialiased",
    )  # fmt: skip
    view_opacities = opacities[None].expand(n_cameras, -1)
    if proj.compensations is not None:
        view_opacities = view_opacities * proj.compensations

    depth = proj.depths[..., None]
    if render_mode in ("D", "ED"):
        features = depth
    else:
        features = _colors(means, colors, viewmats, sh_degree, n_cameras)
        if render_mode in ("RGB+D", "RGB+ED"):
            features = torch.cat([features, depth], dim=-1)

    tile_width, tile_height = math.ceil(width / tile_size), math.ceil(height / tile_size)
    isects = intersect_tiles(proj.means2d, proj.radii, proj.depths, tile_size, tile_width, tile_height)
    work = isects
    if tile_size % SUBTILE_SIZE == 0:
        work = subdivide_tiles(isects, proj.means2d, proj.conics, view_opacities, SUBTILE_SIZE)
    return ScreenSpace(projection=proj, opacities=view_opacities, features=features, isects=isects, work=work)


def rasterization(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: Optional[int] = None,
    packed: bool = False,
    tile_size: int = 16,
    backgrounds: Optional[Tensor] = None,
    render_mode: RenderMode = "RGB",
    sparse_grad: bool = False,
    absgrad: bool = False,
    rasterize_mode: RasterizeMode = "classic",
    channel_chunk: int = 32,
    camera_model: str = "pinhole",
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> Tuple[Tensor, Tensor, Dict[str, Any]]:
    """Render N Gaussians into C pinhole cameras.

    Args:
        means: [N, 3] world positions. quats: [N, 4] (w, x, y, z), unnormalised.
        scales: [N, 3] linear scales. opacities: [N] in [0, 1].
        colors: [N, D] / [C, N, D] colours, or [N, K, 3] / [C, N, K, 3] SH coefficients when
            ``sh_degree`` is set (K >= (sh_degree + 1)^2; degrees 0-3).
        viewmats: [C, 4, 4] world-to-camera (OpenCV axes). Ks: [C, 3, 3] pixel intrinsics.
        width, height: image size in pixels.
        near_plane, far_plane, radius_clip, eps2d: as in gsplat.
        tile_size: tile edge in pixels; it decides which Gaussians each pixel considers, as in gsplat.
        backgrounds: [C, D] colours blended behind the Gaussians, or None (black).
        render_mode: "RGB", "D" (accumulated depth), "ED" (expected depth), "RGB+D" or "RGB+ED".
        absgrad: make ``info["means2d"].absgrad`` hold summed per-pixel |dL/dmeans2d| after backward.
        rasterize_mode: "classic", or "antialiased" (opacity times the blur compensation).
        packed, sparse_grad, camera_model: only gsplat's defaults for splatfacto (False, False,
            "pinhole") are supported. channel_chunk: accepted for compatibility, unused.
        chunk_elements: memory bound of the compositing, in tiles x Gaussians x pixels per chunk.

    Returns:
        ([C, H, W, X] rendered features, [C, H, W, 1] alphas, info): X is D, 1 or D + 1 as in gsplat;
        ``info`` has gsplat's keys "radii", "means2d" (gradient flows; ``retain_grad`` works),
        "depths", "conics", "opacities", "tiles_per_gauss", "flatten_ids", "isect_offsets", "width",
        "height", "tile_size", "tile_width", "tile_height", "n_cameras", "camera_ids" and
        "gaussian_ids" (None: unpacked).
    """
    unsupported = {"packed": packed, "sparse_grad": sparse_grad, "camera_model": camera_model != "pinhole"}
    for name, used in unsupported.items():
        if used:
            raise ValueError(f"the CPU rasterizer does not support {name}={locals()[name]!r}")
    if render_mode not in ("RGB", "D", "ED", "RGB+D", "RGB+ED"):
        raise ValueError(f"unknown render_mode {render_mode!r}")
    if rasterize_mode not in ("classic", "antialiased"):
        raise ValueError(f"unknown rasterize_mode {rasterize_mode!r}")
    screen = screen_space(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d, sh_degree=sh_degree,
        tile_size=tile_size, render_mode=render_mode, rasterize_mode=rasterize_mode,
    )  # fmt: skip
    proj, isects, n_cameras = screen.projection, screen.isects, viewmats.shape[0]
    sink = torch.zeros_like(proj.means2d, requires_grad=False) if absgrad else None
    render, alphas = composite_tiles(
        proj.means2d, proj.conics, screen.opacities, screen.features, screen.work, width, height,
        absgrad_sink=sink, chunk_elements=chunk_elements,
    )  # fmt: skip

    if backgrounds is not None:
        if render_mode in ("RGB+D", "RGB+ED"):
            backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(n_cameras, 1)], dim=-1)
        elif render_mode in ("D", "ED"):
            backgrounds = backgrounds.new_zeros(n_cameras, 1)
        render = render + (1.0 - alphas) * backgrounds[:, None, None, :]
    if render_mode in ("ED", "RGB+ED"):
        render = torch.cat([render[..., :-1], render[..., -1:] / alphas.clamp(min=1e-10)], dim=-1)

    means2d = proj.means2d
    if sink is not None:
        means2d.absgrad = sink  # type: ignore[attr-defined]
    info: Dict[str, Any] = {
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": proj.radii,
        "means2d": means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": screen.opacities,
        "tile_width": isects.tile_width,
        "tile_height": isects.tile_height,
        "tiles_per_gauss": isects.tiles_per_gauss,
        "flatten_ids": isects.flatten_ids,
        "isect_offsets": isects.isect_offsets,
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_cameras": n_cameras,
    }
    return render, alphas, info
