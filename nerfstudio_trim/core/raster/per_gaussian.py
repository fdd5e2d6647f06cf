"""Per-Gaussian sums over pixels, taken inside the compositing (``composite.blend_chunk``, chunk by chunk).

For one pixel and one Gaussian k with alpha a_k (after the 0.999 clamp), the composited colour over
the background bg is, with f_j = c_j - bg the colours relative to the background and W_j = a_j T_j
(T_j the transmittance in front of j):

    C = bg + sum over reached j of W_j f_j

where "reached" is the prefix of Gaussians before the one that takes the transmittance to 1e-4 or
below. Without k, every W_j behind k is divided by (1 - a_k), and so are the transmittances that
decide the stopping point: Gaussian j > k is reached iff T_after_j > 1e-4 (1 - a_k). Both are
suffix sums over the depth-sorted lists, so the colour change of every (pixel, Gaussian) pair of a
chunk comes from one reverse cumulative sum and a ``searchsorted``; no image is rendered per
Gaussian, and memory stays that of a chunk.

- ``removal_error_change``: the exact change of the squared error when each Gaussian is removed
  (stopping point included).
- ``footprint_fisher``: per Gaussian and camera, sum_p |dC_p/da_pk|^2 g g^T with g = d a_pk / d q_k
  for the screen-space quantities q = (mean2d x, y, conic a, b, c, log opacity compensation).
"""

from __future__ import annotations

from typing import Iterator, Tuple

import torch
from torch import Tensor

from nerfstudio_trim.core.raster.composite import (
    ALPHA_MAX,
    TRANSMITTANCE_MIN,
    ChunkBlend,
    TileChunk,
    blend_chunk,
    image_to_tiles,
    plan_chunks,
    tile_monomials,
)
from nerfstudio_trim.core.raster.cpu_raster import ScreenSpace

SCREEN_QUANTITIES = 6  # mean2d x, y; conic a, b, c; log opacity compensation


class _ChunkColours:
    """The colour terms of one chunk, [T, K, P, 3]-shaped unless said otherwise (see the module doc)."""

    def __init__(self, blend: ChunkBlend, relative_colours: Tensor):
        """``relative_colours``: [T, K, 3] colour of each slot's Gaussian minus the tile's background."""
        self.blend = blend
        self.relative = relative_colours[:, :, None, :]  # [T, K, 1, 3]
        # [T, 1, P] length of the prefix of slots that the pixel reaches (transmittance_after is non-increasing)
        self.reached_count = (blend.transmittance_after > TRANSMITTANCE_MIN).sum(dim=1, keepdim=True)
        unterminated = (blend.alpha * blend.transmittance_before)[..., None] * self.relative
        # suffix[:, m] = sum over j >= m of W_j f_j, with a zero slot at m = K.
        suffix = unterminated.flip(1).cumsum(1).flip(1)
        self.suffix = torch.cat([suffix, torch.zeros_like(suffix[:, :1])], dim=1)  # [T, K + 1, P, 3]
        slots = torch.arange(blend.alpha.shape[1], device=blend.alpha.device)
        self.next_slot = (slots + 1)[None, :, None]  # [1, K, 1]

    def behind(self, end: Tensor) -> Tensor:
        """sum over k < j < end of W_j f_j, for every slot k; ``end`` [T, K, P], or [T, 1, P] when the
        same for all slots (a smaller gather)."""
        far = torch.gather(self.suffix, 1, end[..., None].expand(*end.shape, 3))
        return (self.suffix[:, 1:] - far) * (self.next_slot < end)[..., None]

    def behind_as_composited(self) -> Tensor:
        """What each slot's Gaussian covers: the reached Gaussians behind it, attenuated by it."""
        return self.behind(self.reached_count)

    def behind_without(self) -> Tensor:
        """What is seen behind each slot once its Gaussian is removed, stopping point recomputed."""
        alpha = self.blend.alpha
        threshold = TRANSMITTANCE_MIN * (1.0 - alpha)  # T_after_j > 1e-4 (1 - a_k): reached without k
        falling = (-self.blend.transmittance_after).transpose(1, 2).contiguous()  # [T, P, K] non-decreasing
        end = torch.searchsorted(falling, (-threshold).transpose(1, 2).contiguous()).transpose(1, 2)
        return self.behind(end) / (1.0 - alpha)[..., None]

    def rendered(self, backgrounds: Tensor) -> Tensor:
        """[T, P, 3] the pixels' colours over the tiles' ``backgrounds`` [T, 3] (the rasterizer's image)."""
        return backgrounds[:, None, :] + (self.blend.weights[..., None] * self.relative).sum(dim=1)

    def alpha_slope(self) -> Tensor:
        """a_k dC/da_k: the colour's derivative along the alpha of each slot, times that alpha."""
        alpha = self.blend.alpha
        covered = (alpha / (1.0 - alpha))[..., None] * self.behind_as_composited()
        return self.blend.weights[..., None] * self.relative - covered


def _chunks(
    screen: ScreenSpace, backgrounds: Tensor, width: int, height: int, chunk_elements: int
) -> Iterator[Tuple[TileChunk, _ChunkColours, Tensor, Tensor]]:
    """Each chunk with its colour terms, the tiles' backgrounds [T, 3] and in-image pixel mask [T, P]."""
    work = screen.work
    means2d = screen.projection.means2d
    flat_means, flat_conics = means2d.reshape(-1, 2), screen.projection.conics.reshape(-1, 3)
    flat_opacities = screen.opacities.reshape(-1)
    flat_colours = screen.features.reshape(-1, screen.features.shape[-1])
    monomials = tile_monomials(work.tile_size, means2d.dtype, means2d.device)
    n_cameras = screen.opacities.shape[0]
    inside = image_to_tiles(
        means2d.new_ones(n_cameras, height, width, 1), work.tile_size, work.tile_width, work.tile_height
    )[..., 0]
    for chunk in plan_chunks(work, chunk_elements, means2d.dtype):
        blend = blend_chunk(
            flat_means, flat_conics, flat_opacities, chunk.ids, chunk.valid, chunk.origin, monomials
        )
        tile_backgrounds = backgrounds[chunk.tiles // (work.tile_width * work.tile_height)]
        colours = _ChunkColours(blend, flat_colours[chunk.ids] - tile_backgrounds[:, None, :])
        yield chunk, colours, tile_backgrounds, inside[chunk.tiles] > 0


@torch.no_grad()
def removal_error_change(
    screen: ScreenSpace, targets: Tensor, backgrounds: Tensor, chunk_elements: int
) -> Tensor:
    """Exact change of the C cameras' squared error when each Gaussian alone is removed.

    The images compared are the rasterizer's colours over the background, clamped to [0, 1] as
    splatfacto displays and trains them; per pixel the change is
    |clamp(C + dC) - GT|^2 - |clamp(C) - GT|^2 (= 2 (C - GT) . dC + |dC|^2 where C and C + dC stay
    within [0, 1]), summed over RGB channels and pixels. dC is exact, including Gaussians behind the
    old stopping point that removal reveals; only float rounding differs from re-rendering.

    Args:
        screen: ``cpu_raster.screen_space`` of C cameras with RGB features [C, N, 3].
        targets: [C, H, W, 3] ground-truth images in [0, 1].
        backgrounds: [C, 3] colours behind the Gaussians.
        chunk_elements: tiles x Gaussians x pixels per chunk; memory is ~30 floats per element.

    Returns:
        [N] summed squared-error change (colour units squared, summed over the C cameras' pixels and
        channels): positive when removing the Gaussian makes the images worse.
    """
    n_cameras, height, width, _ = targets.shape
    work = screen.work
    target_tiles = image_to_tiles(targets, work.tile_size, work.tile_width, work.tile_height)
    change = targets.new_zeros(screen.opacities.numel())
    for chunk, colours, tile_backgrounds, inside in _chunks(screen, backgrounds, width, height, chunk_elements):
        before = colours.rendered(tile_backgrounds)[:, None]  # [T, 1, P, 3]
        removed = before - colours.blend.weights[..., None] * colours.relative
        removed = removed + colours.behind_without() - colours.behind_as_composited()  # [T, K, P, 3]
        shown, shown_removed = before.clamp(0.0, 1.0), removed.clamp(0.0, 1.0)
        step = shown_removed - shown
        per_pixel = (step * (step + 2.0 * (shown - target_tiles[chunk.tiles][:, None]))).sum(-1)  # [T, K, P]
        change.index_add_(0, chunk.ids.flatten(), (per_pixel * inside[:, None, :]).sum(-1).flatten())
    return change.reshape(n_cameras, -1).sum(0)


@torch.no_grad()
def footprint_fisher(
    screen: ScreenSpace, backgrounds: Tensor, width: int, height: int, chunk_elements: int
) -> Tensor:
    """Per camera and Gaussian, sum over pixels p of |dC_p/da_pk|^2 g_p g_p^T, g_p = d a_pk / d q_k.

    C_p is the pixel's RGB over the background (before any [0, 1] clamp), a_pk the Gaussian's alpha
    there and q_k = (mean2d x, mean2d y, conic a, b, c, log compensation) its screen-space quantities
    (pixels, pixels^-2, -): with sigma = 0.5 (a dx^2 + c dy^2) + b dx dy, d = pixel - mean2d,
    g = a_pk (a dx + b dy, b dx + c dy, -dx^2 / 2, -dx dy, -dy^2 / 2, 1). Where the alpha is clamped to
    0.999, skipped (< 1/255) or past the stopping point, the derivative is 0, as autograd gives.
    The colours are held fixed (their view dependence on the mean is not differentiated).

    Args:
        screen: ``cpu_raster.screen_space`` of C cameras with RGB features [C, N, 3].
        backgrounds: [C, 3] colours behind the Gaussians.
        width, height: image size in pixels (pixels outside it are not summed).
        chunk_elements: tiles x Gaussians x pixels per chunk; memory is ~30 floats per element.

    Returns:
        [C, N, 6, 6] symmetric positive semi-definite matrices (colour units squared per q^2).
    """
    n_cameras, n_gauss = screen.opacities.shape
    fisher = screen.opacities.new_zeros(n_cameras * n_gauss, SCREEN_QUANTITIES, SCREEN_QUANTITIES)
    means2d, conics = screen.projection.means2d.reshape(-1, 2), screen.projection.conics.reshape(-1, 3)
    monomials = tile_monomials(screen.work.tile_size, means2d.dtype, means2d.device)
    for chunk, colours, _, inside in _chunks(screen, backgrounds, width, height, chunk_elements):
        alpha = colours.blend.alpha
        differentiable = (alpha < ALPHA_MAX) & inside[:, None, :]  # clamped alphas have no gradient
        weight = colours.alpha_slope().square().sum(-1) * differentiable  # [T, K, P]
        mean = means2d[chunk.ids] - chunk.origin[:, None, :]  # tile-local
        dx = monomials[3] - mean[..., 0:1]  # [T, K, P]
        dy = monomials[4] - mean[..., 1:2]
        a, b, c = (conics[chunk.ids][..., i : i + 1] for i in range(3))
        ones = torch.ones_like(dx)
        slope = torch.stack([a * dx + b * dy, b * dx + c * dy, -0.5 * dx * dx, -dx * dy, -0.5 * dy * dy, ones], -1)
        # slope: [T, K, P, 6], d a / d q divided by a
        outer = (weight[..., None] * slope).transpose(-1, -2) @ slope  # [T, K, 6, 6]
        fisher.index_add_(0, chunk.ids.flatten(), outer.flatten(0, 1))
    return fisher.reshape(n_cameras, n_gauss, SCREEN_QUANTITIES, SCREEN_QUANTITIES)
