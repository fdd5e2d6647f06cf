"""Importance scores that render the training views: ``delta-mse`` and ``sensitivity``.

- ``delta-mse``: how much the training images' squared error grows when a Gaussian alone is removed,
  for all Gaussians in one pass per view. ``exact`` (the default, our compositing, any device) sums, per
  pixel, |clamp(C + dC) - GT|^2 - |clamp(C) - GT|^2 with the exact colour change dC
  (``raster.per_gaussian.removal_error_change``). ``first-order`` (one backward pass through whatever
  ``raster.backend`` renders with, gsplat on CUDA) is -o_k dL/do_k, L the squared error and o_k the
  opacity: the linear term sum_p 2 (C - GT) . dC with dC replaced by its affine part -a_k dC/da_k. The
  two differ by sum_p |dC|^2, and wherever removal is not affine: alphas clamped at 0.999 (gsplat's
  gradient there is 0), Gaussians behind a pixel's stopping point that removal reveals, and the [0, 1]
  clamp of the image. The quadratic term is what matters when pruning a trained model: where it fits
  the images, C - GT is small and the linear term says little of what a Gaussian's removal costs. On
  the demo scene, trimmed to 25% with fine-tuning, the first-order form ended 8.5 dB below the exact one
  (benchmarks/RESULTS.md), so it is never chosen unless asked for.
- ``sensitivity`` (PUP 3D-GS): log det of each Gaussian's Fisher matrix
  F_k = sum over views and pixels of J^T J, J = d(pixel RGB) / d(mean, log-scale) (3 x 6), colours
  held fixed; J = dC/da (x) da/dtheta is rank one per pixel, so F_k = G^T M G per view with M the
  screen-space sum of ``raster.per_gaussian.footprint_fisher`` and G the projection's Jacobian
  (``raster.projection.screen_jacobian``). Runs through our compositing on any device.

Both return [N] scores, higher = more important (``scores.removal_mask`` removes the lowest). Memory
is bounded by a compositing chunk (``chunk_elements``), plus O(N) per view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Literal, Mapping, Optional

import torch
from torch import Tensor

from nerfstudio_trim.core.raster.backend import rasterize
from nerfstudio_trim.core.raster.cpu_raster import RasterizeMode, ScreenSpace, screen_space
from nerfstudio_trim.core.raster.per_gaussian import footprint_fisher, removal_error_change
from nerfstudio_trim.core.raster.projection import screen_jacobian
from nerfstudio_trim.core.raster.render import (
    SplatInputs,
    over_background,
    splat_inputs,
    viewmats_from_camera_to_worlds,
)

DeltaMethod = Literal["exact", "first-order"]
SCORE_CHUNK_ELEMENTS = 1 << 19  # the score passes hold ~30 floats per tile x Gaussian x pixel element
SENSITIVITY_DAMPING = 1e-6  # added to F's diagonal: a Gaussian no view sees scores 6 log(1e-6) = -82.9


@dataclass(frozen=True)
class ScoringView:
    """One training view, as the scores render it (gsplat's camera conventions)."""

    viewmat: Tensor  # [4, 4] world-to-camera, OpenCV axes (x right, y down, z forward)
    K: Tensor  # [3, 3] pinhole intrinsics in pixels
    width: int  # pixels
    height: int  # pixels
    image: Tensor  # [H, W, 3] ground truth in [0, 1], already over ``background`` if it had alpha
    background: Tensor  # [3] colour behind the Gaussians

    @classmethod
    def from_camera_to_world(
        cls, camera_to_world: Tensor, K: Tensor, width: int, height: int, image: Tensor, background: Tensor
    ) -> "ScoringView":
        """From a nerfstudio camera-to-world [3, 4] (OpenGL axes)."""
        viewmat = viewmats_from_camera_to_worlds(camera_to_world[None, :3])[0]
        return cls(viewmat=viewmat, K=K, width=width, height=height, image=image, background=background)


def _inputs(params: Mapping[str, Tensor], sh_degree: int, active_sh_degree: Optional[int]) -> SplatInputs:
    return splat_inputs({name: value.detach() for name, value in params.items()}, sh_degree, active_sh_degree)


def _screen(inputs: SplatInputs, view: ScoringView, rasterize_mode: RasterizeMode) -> ScreenSpace:
    return screen_space(
        inputs.means, inputs.quats, inputs.scales, inputs.opacities, inputs.colors, view.viewmat[None],
        view.K[None], view.width, view.height, sh_degree=inputs.sh_degree, rasterize_mode=rasterize_mode,
    )  # fmt: skip


@torch.no_grad()
def delta_mse_scores(
    params: Mapping[str, Tensor],
    views: Iterable[ScoringView],
    sh_degree: int,
    active_sh_degree: Optional[int] = None,
    rasterize_mode: RasterizeMode = "classic",
    method: DeltaMethod = "exact",
    chunk_elements: int = SCORE_CHUNK_ELEMENTS,
    on_view: Optional[Callable[[int], None]] = None,
) -> Tensor:
    """Increase of the views' squared error when each Gaussian alone is removed.

    Args:
        params: splatfacto's parameters: means [N, 3], scales [N, 3] (log), quats [N, 4], opacities
            [N, 1] (logits), features_dc [N, 3], features_rest [N, K, 3].
        views: the training views.
        sh_degree, active_sh_degree: the model's SH degree and the one rendered now (default: all).
        rasterize_mode: "classic" or "antialiased", as the model renders.
        method: "exact" or "first-order" (see the module doc).
        chunk_elements: memory bound of the exact pass, in tiles x Gaussians x pixels per chunk.
        on_view: called with each view's index once it is done (progress).

    Returns:
        [N] in the parameters' dtype: sum over views, pixels and RGB channels of the squared error's
        change (colour units squared; divide by 3 H W times the number of views for the MSE's).
    """
    if method == "first-order":
        return first_order_delta_mse_scores(params, views, sh_degree, active_sh_degree, rasterize_mode, on_view)
    inputs = _inputs(params, sh_degree, active_sh_degree)
    scores = inputs.means.new_zeros(inputs.means.shape[0])
    for index, view in enumerate(views):
        screen = _screen(inputs, view, rasterize_mode)
        scores += removal_error_change(screen, view.image[None], view.background[None], chunk_elements)
        if on_view is not None:
            on_view(index)
    return scores


def first_order_delta_mse_scores(
    params: Mapping[str, Tensor],
    views: Iterable[ScoringView],
    sh_degree: int,
    active_sh_degree: Optional[int] = None,
    rasterize_mode: RasterizeMode = "classic",
    on_view: Optional[Callable[[int], None]] = None,
) -> Tensor:
    """-o_k dL/do_k summed over views: the first-order ``delta-mse``, from any backend's gradients.

    L is the view's squared error summed over pixels and RGB channels, of the image clamped to [0, 1]
    over the background; o_k is Gaussian k's opacity (after the sigmoid). Arguments and result as
    ``delta_mse_scores``'s; the views are rendered by ``raster.backend.rasterize`` (gsplat on CUDA).
    """
    inputs = _inputs(params, sh_degree, active_sh_degree)
    opacities = inputs.opacities.clone().requires_grad_(True)
    scores = torch.zeros_like(inputs.opacities)
    for index, view in enumerate(views):
        with torch.enable_grad():
            render, alpha, _ = rasterize(
                means=inputs.means, quats=inputs.quats, scales=inputs.scales, opacities=opacities,
                colors=inputs.colors, viewmats=view.viewmat[None], Ks=view.K[None], width=view.width,
                height=view.height, sh_degree=inputs.sh_degree, rasterize_mode=rasterize_mode,
            )  # fmt: skip
            shown = over_background(render[0, ..., :3], alpha[0], view.background)
            (grad,) = torch.autograd.grad((shown - view.image).square().sum(), opacities)
        scores -= inputs.opacities * grad
        if on_view is not None:
            on_view(index)
    return scores


@torch.no_grad()
def sensitivity_scores(
    params: Mapping[str, Tensor],
    views: Iterable[ScoringView],
    sh_degree: int,
    active_sh_degree: Optional[int] = None,
    rasterize_mode: RasterizeMode = "classic",
    damping: float = SENSITIVITY_DAMPING,
    chunk_elements: int = SCORE_CHUNK_ELEMENTS,
    on_view: Optional[Callable[[int], None]] = None,
) -> Tensor:
    """PUP 3D-GS's sensitivity: log det(F_k + damping I) per Gaussian (see the module doc).

    F_k is the 6 x 6 Fisher matrix of the views' pixel colours (over the background, not clamped)
    with respect to Gaussian k's mean (world units) and log-scale (the parameters splatfacto trains),
    colours held fixed. ``damping`` (in F's units) keeps the score finite for Gaussians seen in
    fewer than 6 independent pixels; one no view sees gets the lowest score, 6 log(damping).
    Other arguments as ``delta_mse_scores``'s.

    Returns:
        [N] in the parameters' dtype (the log det is taken in float64).
    """
    inputs = _inputs(params, sh_degree, active_sh_degree)
    fisher = inputs.means.new_zeros(inputs.means.shape[0], 6, 6, dtype=torch.float64)
    for index, view in enumerate(views):
        screen = _screen(inputs, view, rasterize_mode)
        screen_fisher = footprint_fisher(screen, view.background[None], view.width, view.height, chunk_elements)[0]
        jacobian = screen_jacobian(
            inputs.means, inputs.quats, params["scales"].detach(), view.viewmat[None], view.K[None], view.width,
            view.height, antialiased=rasterize_mode == "antialiased",
        )[0]  # fmt: skip
        fisher += (jacobian.transpose(-1, -2) @ screen_fisher @ jacobian).double()
        if on_view is not None:
            on_view(index)
    damped = fisher + damping * torch.eye(6, dtype=torch.float64, device=fisher.device)
    return torch.linalg.slogdet(damped).logabsdet.to(inputs.means.dtype)
