"""Straight-through estimation: the forward pass sees quantized values, the gradient reaches the floats."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


class _StraightThrough(torch.autograd.Function):
    """Forward: exactly ``rounded``; backward: the gradient goes to ``values``, times ``factor`` if given."""

    @staticmethod
    def forward(ctx, values: Tensor, rounded: Tensor, factor: Optional[Tensor]) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(factor if factor is not None else torch.empty(0))
        ctx.has_factor = factor is not None
        return rounded.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (factor,) = ctx.saved_tensors
        return (grad * factor if ctx.has_factor else grad), None, None


def straight_through(values: Tensor, rounded: Tensor, factor: Optional[Tensor] = None) -> Tensor:
    """``rounded`` (same shape as ``values``) in the forward pass; in the backward pass the gradient goes to
    ``values`` unchanged, or times ``factor`` (broadcast to ``values``) where the stored value is another
    representation of the same thing (e.g. a quaternion's sign and norm)."""
    return _StraightThrough.apply(values, rounded.reshape(values.shape).to(values.dtype), factor)
