"""Gaussian/tile intersection lists, sorted front to back, in gsplat's layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor


@dataclass
class TileIntersections:
    """Which Gaussians touch which screen tiles, sorted by (camera, tile, depth).

    ``flatten_ids`` and ``isect_offsets`` follow gsplat's ``isect_tiles`` / ``isect_offset_encode``:
    the Gaussians of tile t of camera c are ``flatten_ids[isect_offsets[c, ty, tx] : next offset]``.
    """

    tile_size: int
    tile_width: int  # tiles per image row
    tile_height: int  # tiles per image column
    tiles_per_gauss: Optional[Tensor]  # [C, N] int32 tiles each Gaussian touches (gsplat's tiles only)
    flatten_ids: Tensor  # [M] int64 index into the flattened [C * N] Gaussians, front to back per tile
    tile_ids: Tensor  # [M] int64 global tile index c * TH * TW + ty * TW + tx of each intersection
    isect_offsets: Tensor  # [C, TH, TW] int32 first intersection of each tile

    @property
    def n_tiles(self) -> int:
        """Tiles over all cameras."""
        return self.isect_offsets.numel()


@torch.no_grad()
def intersect_tiles(
    means2d: Tensor, radii: Tensor, depths: Tensor, tile_size: int, tile_width: int, tile_height: int
) -> TileIntersections:
    """List every (Gaussian, tile) pair whose square footprint of half-size ``radii`` overlaps.

    Args:
        means2d: [C, N, 2] projected centres in pixels.
        radii: [C, N] integer pixel radii; 0 means culled.
        depths: [C, N] camera-space depths used for the front-to-back order.
        tile_size: tile edge in pixels; tile_width x tile_height tiles cover the image.
    """
    n_cameras, n_gauss = radii.shape
    device = means2d.device
    tile_radius = radii.to(means2d.dtype) / tile_size
    centre = means2d / tile_size
    x_min = torch.floor(centre[..., 0] - tile_radius).clamp(0, tile_width).long()
    x_max = torch.ceil(centre[..., 0] + tile_radius).clamp(0, tile_width).long()
    y_min = torch.floor(centre[..., 1] - tile_radius).clamp(0, tile_height).long()
    y_max = torch.ceil(centre[..., 1] + tile_radius).clamp(0, tile_height).long()
    span_x = torch.where(radii > 0, x_max - x_min, 0)
    span_y = torch.where(radii > 0, y_max - y_min, 0)
    tiles_per_gauss = (span_x * span_y).flatten()

    source = torch.repeat_interleave(torch.arange(n_cameras * n_gauss, device=device), tiles_per_gauss)
    first = torch.cumsum(tiles_per_gauss, 0) - tiles_per_gauss
    local = torch.arange(source.numel(), device=device) - first[source]
    width_of = span_x.flatten()[source]
    tx = x_min.flatten()[source] + local % width_of.clamp(min=1)
    ty = y_min.flatten()[source] + local // width_of.clamp(min=1)
    camera = source // n_gauss
    tile = (camera * tile_height + ty) * tile_width + tx

    depth_rank = torch.empty(n_cameras * n_gauss, dtype=torch.long, device=device)
    depth_rank[torch.argsort(depths.flatten(), stable=True)] = torch.arange(depth_rank.numel(), device=device)
    order = torch.argsort(tile * (n_cameras * n_gauss) + depth_rank[source], stable=True)
    tile_ids = tile[order]
    all_tiles = torch.arange(n_cameras * tile_height * tile_width, device=device)
    offsets = torch.searchsorted(tile_ids, all_tiles).to(torch.int32)
    return TileIntersections(
        tile_size=tile_size,
        tile_width=tile_width,
        tile_height=tile_height,
        tiles_per_gauss=tiles_per_gauss.reshape(n_cameras, n_gauss).to(torch.int32),
        flatten_ids=source[order],
        tile_ids=tile_ids,
        isect_offsets=offsets.reshape(n_cameras, tile_height, tile_width),
    )


@torch.no_grad()
def subdivide_tiles(
    isects: TileIntersections, means2d: Tensor, conics: Tensor, opacities: Tensor, subtile_size: int
) -> TileIntersections:
    """Split each tile's list into its sub-tiles' lists, dropping pairs that cannot contribute.

    A Gaussian is dropped from a sub-tile only when a lower bound on its sigma over the sub-tile's
    pixel centres, 0.5 * lambda_min(conic) * distance^2, proves opacity * exp(-sigma) < 1/255 there;
    gsplat skips such contributions, so the image is unchanged. Order (front to back) is kept.

    Args:
        isects: intersections at gsplat's tile size (a multiple of ``subtile_size``).
        means2d: [C, N, 2]; conics: [C, N, 3]; opacities: [C, N] per-view opacities.
        subtile_size: edge of the sub-tiles in pixels.

    Returns:
        Intersections over the sub-tile grid (``tiles_per_gauss`` None: only the compositing reads them).
    """
    ratio = isects.tile_size // subtile_size
    if ratio * subtile_size != isects.tile_size:
        raise ValueError(f"tile size {isects.tile_size} is not a multiple of {subtile_size}")
    n_cameras = opacities.shape[0]
    sub_w, sub_h = isects.tile_width * ratio, isects.tile_height * ratio
    tiles_per_camera = isects.tile_width * isects.tile_height
    device = means2d.device

    pair = torch.arange(isects.flatten_ids.numel(), device=device).repeat_interleave(ratio * ratio)
    part = torch.arange(ratio * ratio, device=device).repeat(isects.flatten_ids.numel())
    gauss, tile = isects.flatten_ids[pair], isects.tile_ids[pair]
    camera, in_camera = tile // tiles_per_camera, tile % tiles_per_camera
    sx = (in_camera % isects.tile_width) * ratio + part % ratio
    sy = (in_camera // isects.tile_width) * ratio + part // ratio

    mean = means2d.reshape(-1, 2)[gauss]
    a, b, c = conics.reshape(-1, 3)[gauss].unbind(-1)
    lambda_min = 0.5 * (a + c) - torch.sqrt((0.5 * (a - c)) ** 2 + b * b)
    lo_x, lo_y = (sx * subtile_size).to(mean.dtype) + 0.5, (sy * subtile_size).to(mean.dtype) + 0.5
    hi_x, hi_y = lo_x + (subtile_size - 1), lo_y + (subtile_size - 1)
    gap_x = torch.clamp(lo_x - mean[:, 0], min=0) + torch.clamp(mean[:, 0] - hi_x, min=0)
    gap_y = torch.clamp(lo_y - mean[:, 1], min=0) + torch.clamp(mean[:, 1] - hi_y, min=0)
    best_alpha = opacities.reshape(-1)[gauss] * torch.exp(-0.5 * lambda_min.clamp(min=0) * (gap_x**2 + gap_y**2))
    keep = best_alpha >= 0.99 / 255.0  # 1% margin for rounding: never drop a contribution

    sub_tile = ((camera * sub_h + sy) * sub_w + sx)[keep]
    order = torch.argsort(sub_tile, stable=True)  # stable: depth order within each tile is kept
    tile_ids = sub_tile[order]
    flatten_ids = gauss[keep][order]
    offsets = torch.searchsorted(tile_ids, torch.arange(n_cameras * sub_h * sub_w, device=device))
    return TileIntersections(
        tile_size=subtile_size,
        tile_width=sub_w,
        tile_height=sub_h,
        tiles_per_gauss=None,
        flatten_ids=flatten_ids,
        tile_ids=tile_ids,
        isect_offsets=offsets.to(torch.int32).reshape(n_cameras, sub_h, sub_w),
    )
