"""Rendering splatfacto's parameters: activations (exp scales, sigmoid opacities, SH or sigmoid colours),
rasterization, and the background behind the Gaussians. Shared by the model and by ``ns-trim eval`` of a
decoded file, so both render the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor

from nerfstudio_trim.core.raster.cpu_raster import RasterizeMode, RenderMode
from nerfstudio_trim.core.raster.backend import rasterize


def viewmats_from_camera_to_worlds(camera_to_worlds: Tensor) -> Tensor:
    """nerfstudio camera-to-world [C, 3, 4] (OpenGL axes) to gsplat world-to-camera [C, 4, 4] (OpenCV)."""
    rot = camera_to_worlds[:, :3, :3] * camera_to_worlds.new_tensor([1.0, -1.0, -1.0])
    rot_inv = rot.transpose(1, 2)
    viewmats = torch.eye(4, dtype=rot.dtype, device=rot.device).repeat(rot.shape[0], 1, 1)
    viewmats[:, :3, :3] = rot_inv
    viewmats[:, :3, 3:4] = -rot_inv @ camera_to_worlds[:, :3, 3:4]
    return viewmats


@dataclass
class SplatInputs:
    """splatfacto's parameters after their activations: what the rasterizer takes."""

    means: Tensor  # [N, 3] world positions
    quats: Tensor  # [N, 4] (w, x, y, z), unnormalised
    scales: Tensor  # [N, 3] linear scales (world units)
    opacities: Tensor  # [N] in (0, 1)
    colors: Tensor  # [N, K, 3] SH coefficients when sh_degree is set, else [N, D] colours
    sh_degree: Optional[int]  # SH degree to evaluate, or None for plain colours


def splat_inputs(
    params: Mapping[str, Tensor],
    sh_degree: int,
    active_sh_degree: Optional[int] = None,
    colors: Optional[Tensor] = None,
) -> SplatInputs:
    """Activate splatfacto parameters (means [N, 3], log scales [N, 3], quats [N, 4], opacity logits
    [N, 1], features_dc [N, 3], features_rest [N, K, 3]) as splatfacto does.

    ``sh_degree`` is the model's; ``active_sh_degree`` the degree used now (splatfacto raises it during
    training; default: all of it). With degree 0 the colours are sigmoid(features_dc). ``colors`` [N, D]
    replaces the colours (e.g. a heat map).
    """
    degree: Optional[int] = None
    if colors is None:
        colors = torch.cat([params["features_dc"][:, None, :], params["features_rest"]], dim=1)
        if sh_degree > 0:
            degree = sh_degree if active_sh_degree is None else active_sh_degree
        else:
            colors = torch.sigmoid(colors).squeeze(1)
    return SplatInputs(
        means=params["means"],
        quats=params["quats"],
        scales=torch.exp(params["scales"]),
        opacities=torch.sigmoid(params["opacities"]).squeeze(-1),
        colors=colors,
        sh_degree=degree,
    )


def rasterize_parameters(
    params: Mapping[str, Tensor],
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int,
    active_sh_degree: Optional[int] = None,
    colors: Optional[Tensor] = None,
    render_mode: RenderMode = "RGB",
    rasterize_mode: RasterizeMode = "classic",
    absgrad: bool = False,
) -> Tuple[Tensor, Tensor, Dict[str, Any]]:
    """Render splatfacto parameters (see ``splat_inputs``) from gsplat's world-to-camera matrices [C, 4, 4]
    (OpenCV axes; ``viewmats_from_camera_to_worlds`` makes them from nerfstudio's cameras) with intrinsics
    [C, 3, 3], as splatfacto does. Returns gsplat's ([C, H, W, D], [C, H, W, 1] alphas, info)."""
    inputs = splat_inputs(params, sh_degree, active_sh_degree, colors)
    return rasterize(
        means=inputs.means,
        quats=inputs.quats,
        scales=inputs.scales,
        opacities=inputs.opacities,
        colors=inputs.colors,
        viewmats=viewmats,
        Ks=Ks,
        width=width,
        height=height,
        sh_degree=inputs.sh_degree,
        render_mode=render_mode,
        rasterize_mode=rasterize_mode,
        absgrad=absgrad,
    )


def over_background(rgb: Tensor, alpha: Tensor, background: Tensor) -> Tensor:
    """Colours [..., 3] with alpha [..., 1] over a background [3], clamped to [0, 1] as splatfacto does."""
    return torch.clamp(rgb + (1 - alpha) * background, 0.0, 1.0)
