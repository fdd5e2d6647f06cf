"""Front-to-back alpha compositing of projected Gaussians over screen tiles, in pure PyTorch.

Per pixel this is gsplat 1.4.0's forward kernel: alpha = min(0.999, opacity * exp(-sigma)); a Gaussian
with alpha < 1/255 is skipped; the pixel stops before the Gaussian that would take its
transmittance to 1e-4 or below. Tiles are processed in chunks of similar Gaussian counts, padded to a
dense [tiles, gaussians, pixels] block; under autograd each chunk is checkpointed (recomputed in the
backward pass) when there is more than one, so memory is bounded by one chunk, not by the image.

sigma = 0.5 (a dx^2 + c dy^2) + b dx dy is a quadratic form in the pixel's tile-local coordinates, so
all of a chunk's sigmas are one matrix product of per-Gaussian coefficients [T, K, 6] with the
per-pixel monomials [6, P].

``plan_chunks`` and ``blend_chunk`` are shared with ``per_gaussian`` (per-Gaussian sums over pixels for
the pruning scores), so rendering and scoring blend identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from nerfstudio_trim.core.raster.tiles import TileIntersections

ALPHA_MAX = 0.999
ALPHA_MIN = 1.0 / 255.0
TRANSMITTANCE_MIN = 1e-4
DEFAULT_CHUNK_ELEMENTS = 1 << 22


def tile_monomials(tile_size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """[6, P] (x^2, y^2, x y, x, y, 1) at the P pixel centres of a tile, in tile-local pixels."""
    local = torch.arange(tile_size * tile_size, device=device)
    x, y = (local % tile_size).to(dtype) + 0.5, (local // tile_size).to(dtype) + 0.5
    return torch.stack([x * x, y * y, x * y, x, y, torch.ones_like(x)])


class _QuadraticForm(torch.autograd.Function):
    """sigma = coefficients @ monomials; the backward can also sum |d loss / d mean2d| per pixel.

    That per-pixel absolute gradient is what gsplat exposes as ``means2d.absgrad`` (AbsGS), read by
    splatfacto's densification. d sigma / d mean = (a (mx - x) + b (my - y), b (mx - x) + c (my - y)).
    """

    @staticmethod
    def forward(ctx, coefficients, monomials, mean, conic, ids, sink):  # type: ignore[override]
        ctx.save_for_backward(monomials, mean, conic, ids)
        ctx.sink = sink
        return coefficients @ monomials

    @staticmethod
    def backward(ctx, grad_sigma):  # type: ignore[override]
        monomials, mean, conic, ids = ctx.saved_tensors
        grad_coefficients = grad_sigma @ monomials.T
        if ctx.sink is not None:
            a, b, c = conic.unbind(-1)
            mx, my = mean.unbind(-1)
            # d sigma / d mx and / d my as linear forms in (x, y, 1): rows of [T, K, 3] @ [3, P].
            linear = monomials[[3, 4, 5]]
            dx = torch.stack([-a, -b, a * mx + b * my], dim=-1) @ linear
            dy = torch.stack([-b, -c, b * mx + c * my], dim=-1) @ linear
            abs_sum = torch.stack([(grad_sigma * dx).abs().sum(-1), (grad_sigma * dy).abs().sum(-1)], dim=-1)
            ctx.sink.index_add_(0, ids.flatten(), abs_sum.reshape(-1, 2).to(ctx.sink.dtype))
        return grad_coefficients, None, None, None, None, None


@dataclass
class TileChunk:
    """A run of tiles composited together, each with its Gaussians padded to the chunk's longest list."""

    tiles: Tensor  # [T] int64 global tile index (camera-major, as ``TileIntersections.tile_ids``)
    ids: Tensor  # [T, K] int64 index into the flattened [C * N] Gaussians, nearest first (padding: any)
    valid: Tensor  # [T, K] bool, False on padding
    origin: Tensor  # [T, 2] pixel coordinates of each tile's top-left corner (float)


@dataclass
class ChunkBlend:
    """Front-to-back blending of one chunk: [T, K, P] per tile, Gaussian slot (nearest first), pixel."""

    alpha: Tensor  # min(0.999, opacity exp(-sigma)); 0 where skipped (< 1/255) or padding
    transmittance_before: Tensor  # prod over nearer slots of (1 - alpha)
    transmittance_after: Tensor  # transmittance_before * (1 - alpha), non-increasing along K
    weights: Tensor  # alpha * transmittance_before, 0 from the slot that ends the pixel on


def blend_chunk(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    ids: Tensor,
    valid: Tensor,
    origin: Tensor,
    monomials: Tensor,
    absgrad_sink: Optional[Tensor] = None,
) -> ChunkBlend:
    """Alphas, transmittances and blending weights of one chunk of tiles.

    Args:
        means2d, conics, opacities: [G, 2], [G, 3], [G] for all G = C * N Gaussians (pixels, pixels^-2).
        ids, valid, origin: a ``TileChunk``'s fields: [T, K], [T, K], [T, 2].
        monomials: [6, P] from ``tile_monomials``.
        absgrad_sink: [G, 2] accumulator for per-pixel absolute gradients of means2d, or None.
    """
    mean = means2d[ids] - origin[:, None, :]  # tile-local
    conic = conics[ids]
    a, b, c = conic.unbind(-1)
    mx, my = mean.unbind(-1)
    coefficients = torch.stack(
        [0.5 * a, 0.5 * c, b, -a * mx - b * my, -c * my - b * mx, 0.5 * (a * mx * mx + c * my * my) + b * mx * my],
        dim=-1,
    )
    sigma = _QuadraticForm.apply(coefficients, monomials, mean, conic, ids, absgrad_sink)  # [T, K, P]
    # The conic is positive definite, so sigma >= 0 up to rounding; gsplat's "skip if sigma < 0" guards
    # the same rounding, which the expanded form makes larger right at a Gaussian's centre: clamp.
    sigma = torch.clamp_min(sigma, 0.0)
    alpha = torch.clamp_max(opacities[ids][..., None] * torch.exp(-sigma), ALPHA_MAX)
    alpha = torch.where(valid[..., None] & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    transmittance_after = torch.cumprod(1.0 - alpha, dim=1)  # [T, K, P]
    transmittance_before = torch.cat([torch.ones_like(alpha[:, :1]), transmittance_after[:, :-1]], dim=1)
    weights = alpha * transmittance_before * (transmittance_after > TRANSMITTANCE_MIN)
    return ChunkBlend(alpha, transmittance_before, transmittance_after, weights)


def _composite_chunk(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    features: Tensor,
    ids: Tensor,
    valid: Tensor,
    origin: Tensor,
    monomials: Tensor,
    absgrad_sink: Optional[Tensor],
) -> Tensor:
    """Composite one chunk of tiles (tensor arguments only, so that it can be checkpointed).

    Args:
        means2d, conics, opacities, features: [G, 2], [G, 3], [G], [G, D] for all G = C * N Gaussians.
        ids, valid, origin: the chunk's ``TileChunk`` fields.
        monomials: [6, P] from ``tile_monomials``.
        absgrad_sink: [G, 2] accumulator for per-pixel absolute gradients of means2d, or None.

    Returns:
        [T, P, D + 1]: composited features and, last, the pixel's accumulated alpha.
    """
    weights = blend_chunk(means2d, conics, opacities, ids, valid, origin, monomials, absgrad_sink).weights
    composited = weights.transpose(1, 2) @ features[ids]  # [T, P, D]
    return torch.cat([composited, weights.sum(dim=1)[..., None]], dim=-1)


def plan_chunks(isects: TileIntersections, chunk_elements: int, dtype: torch.dtype) -> List[TileChunk]:
    """Cut the non-empty tiles into chunks of at most ~``chunk_elements`` tiles x Gaussians x pixels.

    Tiles are sorted by decreasing Gaussian count so that each chunk's padding is small.
    """
    ts = isects.tile_size
    pixels = ts * ts
    starts = isects.isect_offsets.flatten().long()
    ends = torch.cat([starts[1:], starts.new_tensor([isects.flatten_ids.numel()])])
    counts = ends - starts
    active = torch.nonzero(counts > 0).flatten()
    active = active[torch.argsort(counts[active], descending=True, stable=True)]
    chunks = []
    for begin, end in _chunk_ranges(counts[active], pixels, chunk_elements):
        tiles = active[begin:end]
        slots = torch.arange(int(counts[tiles[0]]), device=starts.device)
        valid = slots[None, :] < counts[tiles][:, None]
        ids = isects.flatten_ids[torch.where(valid, starts[tiles][:, None] + slots[None, :], 0)]
        in_camera = tiles % (isects.tile_width * isects.tile_height)
        origin = torch.stack([in_camera % isects.tile_width, in_camera // isects.tile_width], dim=-1) * ts
        chunks.append(TileChunk(tiles=tiles, ids=ids, valid=valid, origin=origin.to(dtype)))
    return chunks


def _chunk_ranges(counts: Tensor, pixels_per_tile: int, chunk_elements: int) -> List[Tuple[int, int]]:
    """Split tiles, sorted by decreasing Gaussian count, into [start, end) runs of bounded size."""
    chunks, start, n = [], 0, counts.numel()
    counts_list = counts.tolist()
    while start < n:
        per_tile = max(1, counts_list[start]) * pixels_per_tile
        end = min(n, start + max(1, chunk_elements // per_tile))
        chunks.append((start, end))
        start = end
    return chunks


def image_to_tiles(image: Tensor, tile_size: int, tile_width: int, tile_height: int) -> Tensor:
    """[C, H, W, D] images to [C * TH * TW, P, D] per tile (P = tile_size^2, row-major), zero-padded
    beyond the image; the inverse of ``tiles_to_image``."""
    n_cameras, height, width, dim = image.shape
    padded = image.new_zeros(n_cameras, tile_height * tile_size, tile_width * tile_size, dim)
    padded[:, :height, :width] = image
    tiles = padded.reshape(n_cameras, tile_height, tile_size, tile_width, tile_size, dim).permute(0, 1, 3, 2, 4, 5)
    return tiles.reshape(n_cameras * tile_height * tile_width, tile_size * tile_size, dim)


def tiles_to_image(tiles: Tensor, n_cameras: int, tile_size: int, tile_width: int, tile_height: int) -> Tensor:
    """[C * TH * TW, P, D] per-tile pixels to [C, TH * tile_size, TW * tile_size, D] images (uncropped)."""
    dim = tiles.shape[-1]
    image = tiles.reshape(n_cameras, tile_height, tile_width, tile_size, tile_size, dim)
    return image.permute(0, 1, 3, 2, 4, 5).reshape(n_cameras, tile_height * tile_size, tile_width * tile_size, dim)


def composite_tiles(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    features: Tensor,
    isects: TileIntersections,
    width: int,
    height: int,
    absgrad_sink: Optional[Tensor] = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> Tuple[Tensor, Tensor]:
    """Render every camera's image by compositing its tiles' sorted Gaussians.

    Args:
        means2d: [C, N, 2] pixel centres; conics: [C, N, 3]; opacities: [C, N] in [0, 1].
        features: [C, N, D] what to composite (colours, depth, ...).
        isects: sorted intersection lists (``intersect_tiles``, optionally ``subdivide_tiles``).
        width, height: image size in pixels.
        absgrad_sink: optional [C, N, 2] tensor that the backward pass fills with per-pixel absolute
            gradients of ``means2d`` (gsplat's ``absgrad``).
        chunk_elements: upper bound on tiles x Gaussians x pixels held at once per chunk.

    Returns:
        ([C, H, W, D] composited features, [C, H, W, 1] accumulated alpha).
    """
    n_cameras, n_gauss, dim = features.shape
    ts = isects.tile_size
    flat_means, flat_conics = means2d.reshape(-1, 2), conics.reshape(-1, 3)
    flat_opac, flat_feat = opacities.reshape(-1), features.reshape(-1, dim)
    sink = absgrad_sink.view(-1, 2) if absgrad_sink is not None else None
    monomials = tile_monomials(ts, means2d.dtype, means2d.device)

    chunks = plan_chunks(isects, chunk_elements, means2d.dtype)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (means2d, conics, opacities, features))
    outputs = []
    for chunk in chunks:
        # The sink is written during backward, so it is bound here rather than saved as an input.
        composite = partial(_composite_chunk, absgrad_sink=sink)
        args = (flat_means, flat_conics, flat_opac, flat_feat, chunk.ids, chunk.valid, chunk.origin, monomials)
        if needs_grad and len(chunks) > 1:
            outputs.append(checkpoint(composite, *args, use_reentrant=False))
        else:
            outputs.append(composite(*args))

    full = features.new_zeros(isects.n_tiles, ts * ts, dim + 1)
    if outputs:
        full = full.index_copy(0, torch.cat([chunk.tiles for chunk in chunks]), torch.cat(outputs))
    elif needs_grad:
        # Nothing is visible: keep the (all-zero) image attached to the graph so a loss on it can
        # still call backward(), as with gsplat.
        full = full + 0.0 * flat_opac.sum()
    image = tiles_to_image(full, n_cameras, ts, isects.tile_width, isects.tile_height)[:, :height, :width]
    return image[..., :dim], image[..., dim:]
