"""Positions on a grid whose step follows each Gaussian's own size, wherever the scene sits.

A Gaussian of size sigma (the geometric mean of its three scales) is stored on a grid of step
``base_step * 2^level`` with ``level`` the largest integer for which that step is at most
``precision * sigma`` (never below 0): its error is at most ``precision * sigma / 2`` per axis, whether the
scene is centred on the origin or 420 units away from it (float16 positions err in proportion to their
distance from the origin). The level comes from the stored scale codes alone, in integer arithmetic,
so a decoder needs no floating-point logarithm:

    level = clamp(floor((q0 + q1 + q2 - level_offset) / level_divisor), 0, max_level)

where q are the Gaussian's three log-scale codes. Coordinates are integers on the finest grid (multiples of
2^level): ``position = float32(float64(origin) + float64(coordinate) * float64(base_step))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from nerfstudio_trim.core.quantize.uniform import UniformCodes

MAX_LEVEL = 24
"""Coarsest level: 2^24 finest steps."""
GRID_BITS = 40
"""Coordinates on the finest grid are below 2^GRID_BITS."""
SMALLEST_SIZE_QUANTILE = 0.01
"""The finest step serves the Gaussians at this quantile of sizes; smaller ones share it."""


@dataclass
class ScaleGridPositions:
    """Positions [N, 3] as integer coordinates on per-Gaussian grids (see the module docstring)."""

    coordinates: Tensor  # [N, 3] int64 in [0, 2^GRID_BITS), multiples of 2^levels
    levels: Tensor  # [N] int64 in [0, MAX_LEVEL]
    origin: Tensor  # [3] float32
    base_step: float  # a float32 value
    level_offset: int
    level_divisor: int  # >= 1

    def dequantize(self) -> Tensor:
        """[N, 3] float32 positions."""
        origin = self.origin.to(torch.float64)
        return (origin + self.coordinates.to(torch.float64) * self.base_step).to(torch.float32)

    def reordered(self, order: Tensor) -> "ScaleGridPositions":
        return replace(self, coordinates=self.coordinates[order], levels=self.levels[order])


def levels_of(scale_codes: Tensor, level_offset: int, level_divisor: int) -> Tensor:
    """[N] int64 grid levels of Gaussians from their [N, 3] log-scale codes (integer arithmetic only)."""
    total = scale_codes.sum(dim=-1)
    return torch.div(total - level_offset, level_divisor, rounding_mode="floor").clamp(0, MAX_LEVEL)


def float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (as a Python float)."""
    return float(torch.tensor(value, dtype=torch.float32))


def quantize_positions(means: Tensor, scales: UniformCodes, precision: float) -> ScaleGridPositions:
    """Positions [N, 3] on grids of step at most ``precision`` times each Gaussian's size.

    Args:
        means: [N, 3] positions.
        scales: the stored log scales (one grid for all three axes: ``low`` and ``step`` of shape [1]).
        precision: largest step relative to the Gaussian's size (its error is at most half of that).
    """
    means = means.detach().to(torch.float32)
    count, device = means.shape[0], means.device
    origin = means.amin(dim=0) if count else means.new_zeros(3)
    extent = float((means.amax(dim=0) - origin).max()) if count else 0.0
    log_low, log_step = float(scales.low.reshape(-1)[0]), float(scales.step.reshape(-1)[0])
    sizes = torch.exp(scales.dequantize().mean(dim=-1)) if count else means.new_zeros(0)
    smallest = float(sizes.kthvalue(max(1, math.ceil(SMALLEST_SIZE_QUANTILE * count))).values) if count else 1.0
    # The finest step resolves the smallest Gaussians but never asks for more than 2^(GRID_BITS - 1) steps.
    base_step = float32(max(precision * smallest, extent / 2 ** (GRID_BITS - 1), 1e-30))
    if not log_step > 0:
        raise ValueError("positions need log scales stored with a positive step")
    level_divisor = max(1, round(3 * math.log(2) / log_step))
    level_offset = round(3 * (math.log(base_step / precision) - log_low) / log_step)
    levels = levels_of(scales.codes, level_offset, level_divisor) if count else torch.zeros(0, dtype=torch.int64, device=device)
    steps = torch.pow(2.0, levels.to(torch.float64)) * base_step
    cells = torch.round((means.to(torch.float64) - origin.to(torch.float64)) / steps[:, None]).to(torch.int64)
    coordinates = (cells << levels[:, None]).clamp(0, 2**GRID_BITS - 1)
    return ScaleGridPositions(coordinates, levels, origin, base_step, int(level_offset), int(level_divisor))
