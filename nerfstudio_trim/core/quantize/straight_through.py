"""Straight-through estimation: the forward pass sees quantized values, the gradient reaches the floats."""

from __future__ import annotations

import torch
from torch import Tensor


class _StraightThrough(torch.autograd.Function):
    """Forward: exactly ``rounded``; backward: the gradient goes to ``values`` unchanged."""

    @staticmethod
    def forward(ctx, values: Tensor, rounded: Tensor) -> Tensor:  # type: ignore[override]
        return rounded.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None


def straight_through(values: Tensor, rounded: Tensor) -> Tensor:
    """``rounded`` (same shape as ``values``) in the forward pass, identity gradient to ``values``."""
    return _StraightThrough.apply(values, rounded.reshape(values.shape).to(values.dtype))
