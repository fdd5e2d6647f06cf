"""A slow, obviously-correct per-pixel rasterizer with gsplat 1.4.0's rules, to test the fast path.

Projection comes from gsplat's own pure-PyTorch reference; compositing walks the Gaussians front to
back one at a time, for all pixels at once, exactly as each CUDA thread does for its pixel: a pixel
considers a Gaussian when the Gaussian's square footprint overlaps the pixel's 16 x 16 tile.
"""

import math

import torch
from gsplat.cuda._torch_impl import _fully_fused_projection

from nerfstudio_trim.core.raster.projection import covariance_3d


def reference_rasterization(means, quats, scales, opacities, colours, viewmat, K, width, height, tile_size=16):
    """Render one camera; ``colours`` are [N, D] plain features. Returns ([H, W, D], [H, W, 1])."""
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        means, covariance_3d(quats, scales), viewmat[None], K[None], width, height
    )
    radii, means2d, depths, conics = radii[0], means2d[0], depths[0], conics[0]
    cols, rows = torch.meshgrid(torch.arange(width), torch.arange(height), indexing="xy")
    px, py = cols.to(means.dtype) + 0.5, rows.to(means.dtype) + 0.5
    tile_x, tile_y = cols // tile_size, rows // tile_size
    image = torch.zeros(height, width, colours.shape[1], dtype=means.dtype)
    transmittance = torch.ones(height, width, dtype=means.dtype)
    done = torch.zeros(height, width, dtype=torch.bool)
    for g in torch.argsort(depths, stable=True).tolist():
        r = int(radii[g])
        if r <= 0:
            continue
        mx, my = float(means2d[g, 0]), float(means2d[g, 1])
        x0, x1 = math.floor((mx - r) / tile_size), math.ceil((mx + r) / tile_size)
        y0, y1 = math.floor((my - r) / tile_size), math.ceil((my + r) / tile_size)
        in_tiles = (tile_x >= x0) & (tile_x < x1) & (tile_y >= y0) & (tile_y < y1)
        a, b, c = conics[g]
        dx, dy = mx - px, my - py
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = torch.clamp_max(opacities[g] * torch.exp(-sigma), 0.999)
        use = in_tiles & ~done & (sigma >= 0) & (alpha >= 1.0 / 255.0)
        after = transmittance * (1 - alpha)
        stop = use & (after <= 1e-4)
        done |= stop
        use &= ~stop
        image += torch.where(use, alpha * transmittance, 0.0)[..., None] * colours[g]
        transmittance = torch.where(use, after, transmittance)
    return image, (1 - transmittance)[..., None]
