"""Morton (Z-order) ordering of points: neighbours in space become neighbours in memory, which makes
the columns of the compressed file smoother and LZMA's job easier."""

from __future__ import annotations

import torch
from torch import Tensor

BITS = 10  # per axis: a 1024^3 grid over the bounding box, 30-bit codes


def _spread_bits(values: Tensor) -> Tensor:
    """Insert two zero bits between the low 10 bits of each int64 value (x -> x0 0 x1 0 0 x2 ...)."""
    values = values & 0x3FF
    values = (values | (values << 16)) & 0x030000FF
    values = (values | (values << 8)) & 0x0300F00F
    values = (values | (values << 4)) & 0x030C30C3
    values = (values | (values << 2)) & 0x09249249
    return values


def morton_codes(points: Tensor) -> Tensor:
    """[N] int64 30-bit Morton codes of points [N, 3] on a 2^10 grid over their bounding box.

    Non-finite coordinates fall in cell 0 (the codes only order the points)."""
    points = torch.nan_to_num(points.detach().to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if points.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=points.device)
    low, high = points.amin(dim=0), points.amax(dim=0)
    extent = torch.where(high > low, high - low, torch.ones_like(high))
    cells = ((points - low) / extent * (2**BITS - 1)).round().to(torch.int64).clamp(0, 2**BITS - 1)
    return _spread_bits(cells[:, 0]) | (_spread_bits(cells[:, 1]) << 1) | (_spread_bits(cells[:, 2]) << 2)


def morton_order(points: Tensor) -> Tensor:
    """[N] int64 permutation sorting points [N, 3] along the Morton curve (ties keep their order)."""
    return torch.argsort(morton_codes(points), stable=True)
