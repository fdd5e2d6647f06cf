"""Uniform scalar quantization: value = low + code * step, in float32, one (low, step) per channel."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch
from torch import Tensor


@dataclass
class UniformCodes:
    """Values [N, C] as non-negative integer codes on a uniform grid per channel (or one grid for all)."""

    codes: Tensor  # [N, C] int64, >= 0
    low: Tensor  # [C] or [1] float32: the value of code 0
    step: Tensor  # [C] or [1] float32: the value between neighbouring codes (0: a constant channel)
    bits: Optional[int] = None  # codes are below 2^bits (None: unbounded, a fixed step)

    def dequantize(self) -> Tensor:
        """[N, C] float32: ``low + float32(code) * step`` (two float32 operations, in this order)."""
        return self.low + self.codes.to(torch.float32) * self.step

    def reordered(self, order: Tensor) -> "UniformCodes":
        return replace(self, codes=self.codes[order])


def quantize_levels(values: Tensor, bits: int, low: Tensor, high: Tensor) -> UniformCodes:
    """[N, C] values on 2^bits levels from ``low`` to ``high`` ([C] or [1] float32; values clamped to them)."""
    levels = 2**bits - 1
    step = ((high - low) / levels).to(torch.float32)
    return replace(_on_grid(values, low.to(torch.float32), step, levels), bits=bits)


def quantize_step(values: Tensor, step: float, low: Tensor) -> UniformCodes:
    """[N, C] values on a grid of ``step`` from ``low`` upwards ([C] or [1]; values below are clamped)."""
    step_tensor = torch.full_like(low, step, dtype=torch.float32)
    return _on_grid(values, low.to(torch.float32), step_tensor, None)


def _on_grid(values: Tensor, low: Tensor, step: Tensor, levels: int | None) -> UniformCodes:
    values = values.detach().to(torch.float32)
    safe = torch.where(step > 0, step, torch.ones_like(step))
    codes = torch.round((values - low) / safe).clamp(min=0)
    if levels is not None:
        codes = codes.clamp(max=levels)
    return UniformCodes(codes=torch.where(step > 0, codes, torch.zeros_like(codes)).to(torch.int64), low=low, step=step)


def channel_range(values: Tensor, clamp: float | None = None) -> tuple[Tensor, Tensor]:
    """([C], [C]) float32 minimum and maximum of [N, C] values per channel (zeros when N = 0), optionally
    limited to [-clamp, clamp] (e.g. opacity logits of +-inf from other tools)."""
    values = values.detach().to(torch.float32)
    if clamp is not None:
        values = values.clamp(-clamp, clamp)
    if values.shape[0] == 0:
        zeros = values.new_zeros(values.shape[1:])
        return zeros, zeros
    return values.amin(dim=0), values.amax(dim=0)
