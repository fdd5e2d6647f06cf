"""Quantization of Gaussian parameters: what the compressed file stores, and its fake-quantized
(straight-through) twin that quantization-aware fine-tuning renders.

- SH coefficients (features_dc, features_rest) become 8-bit unsigned integers with a float32 scale and
  offset per coefficient channel (``per="channel"``: one pair per SH coefficient and colour) or per
  tensor (``per="tensor"``: the seed method's single pair);
- every other parameter is rounded to float16.
Dequantization is ``q * scale + offset`` in float32, the same expression in the forward pass and in the
decoder, so the model renders exactly what the file decodes to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Granularity = Literal["channel", "tensor"]
LEVELS = 255


@dataclass
class QuantizedSH:
    """SH coefficients [N, K, 3] as uint8 codes with their dequantization parameters."""

    codes: Tensor  # [N, K, 3] uint8
    scale: Tensor  # [K, 3] or [1, 1] float32
    offset: Tensor  # [K, 3] or [1, 1] float32

    def dequantize(self) -> Tensor:
        """[N, K, 3] float32 values: codes * scale + offset."""
        return dequantize_sh(self.codes, self.scale, self.offset)


def dequantize_sh(codes: Tensor, scale: Tensor, offset: Tensor) -> Tensor:
    """uint8 codes [N, K, 3] to float32 with per-channel (or per-tensor) ``scale`` and ``offset``."""
    return codes.to(torch.float32) * scale + offset


def quantize_sh(values: Tensor, per: Granularity = "channel") -> QuantizedSH:
    """Quantize SH coefficients [N, K, 3] to 8 bits over each channel's (or the tensor's) range.

    A constant channel gets scale 0 and decodes exactly to its value.
    """
    values = values.detach().to(torch.float32)
    if per not in ("channel", "tensor"):
        raise ValueError(f"unknown quantization granularity {per!r}")
    if values.shape[0] == 0:
        low = high = values.new_zeros(values.shape[1:] if per == "channel" else (1, 1))
    elif per == "channel":
        low, high = values.amin(dim=0), values.amax(dim=0)  # [K, 3]
    else:
        low, high = values.min().reshape(1, 1), values.max().reshape(1, 1)
    scale = (high - low) / LEVELS
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = torch.round((values - low) / safe).clamp(0, LEVELS).to(torch.uint8)
    return QuantizedSH(codes=codes, scale=scale, offset=low)


class _StraightThrough(torch.autograd.Function):
    """Forward: exactly ``rounded``; backward: the gradient goes to ``values`` unchanged."""

    @staticmethod
    def forward(ctx, values: Tensor, rounded: Tensor) -> Tensor:  # type: ignore[override]
        return rounded.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None


def fake_quantize_sh(values: Tensor, per: Granularity = "channel") -> Tensor:
    """Exactly the values that decode from 8 bits, with gradients passed straight through."""
    return _StraightThrough.apply(values, quantize_sh(values, per).dequantize().to(values.dtype))


def fake_float16(values: Tensor) -> Tensor:
    """``values`` rounded to float16 (and back, exactly), with gradients passed straight through."""
    return _StraightThrough.apply(values, values.detach().to(torch.float16).to(values.dtype))
