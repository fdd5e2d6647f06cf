"""Quantization of Gaussian parameters: what the compressed file stores, and its fake-quantized
(straight-through) twin that quantization-aware fine-tuning renders.

- SH coefficients (features_dc, features_rest) become 8-bit unsigned integers with a float32 scale and
  offset per coefficient channel (``per="channel"``: one pair per SH coefficient and colour) or per
  tensor (``per="tensor"``: the seed method's single pair);
- positions are rounded to float16 (``"float16"``) or to a 16-bit grid over their bounding box
  (``"grid16"``: uint16 codes, a float32 offset and step per axis);
- every other parameter (log scales, quaternions, opacity logits) is rounded to float16.
Dequantization is ``q * scale + offset`` in float32, the same expression in the forward pass and in the
decoder, so the model renders exactly what the file decodes to: ``quantize_gaussians`` is what the
codec stores, ``fake_quantize_gaussians`` what quantization-aware fine-tuning renders.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Literal, Mapping

import torch
from torch import Tensor

Granularity = Literal["channel", "tensor"]
PositionEncoding = Literal["float16", "grid16"]
GRID_LEVELS = 65535


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


def quantize_sh(values: Tensor, per: Granularity = "channel", bits: int = 8) -> QuantizedSH:
    """Quantize SH coefficients [N, K, 3] to ``bits`` bits over each channel's (or the tensor's) range.

    ``bits`` < 8 uses 2^bits levels over the same range (codes still uint8: any format-1.0 decoder reads
    them; fewer levels only compress better). A constant channel gets scale 0 and decodes exactly to its value.
    """
    if not 1 <= bits <= 8:
        raise ValueError(f"SH codes have 1 to 8 bits, not {bits}")
    levels = 2**bits - 1
    values = values.detach().to(torch.float32)
    if per not in ("channel", "tensor"):
        raise ValueError(f"unknown quantization granularity {per!r}")
    if values.numel() == 0:
        low = high = values.new_zeros(values.shape[1:] if per == "channel" else (1, 1))
    elif per == "channel":
        low, high = values.amin(dim=0), values.amax(dim=0)  # [K, 3]
    else:
        low, high = values.min().reshape(1, 1), values.max().reshape(1, 1)
    scale = (high - low) / levels
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = torch.round((values - low) / safe).clamp(0, levels).to(torch.uint8)
    return QuantizedSH(codes=codes, scale=scale, offset=low)


@dataclass
class QuantizedPositions:
    """Positions [N, 3] as float16 values, or as uint16 grid codes (held as int32) with their grid."""

    encoding: PositionEncoding
    codes: Tensor  # [N, 3] float16 ("float16") or int32 in [0, 65535] ("grid16")
    offset: Tensor  # [3] float32 grid origin ("grid16"; zeros for "float16")
    step: Tensor  # [3] float32 grid spacing ("grid16"; zeros for "float16")

    def dequantize(self) -> Tensor:
        """[N, 3] float32 positions."""
        if self.encoding == "float16":
            return self.codes.to(torch.float32)
        return self.codes.to(torch.float32) * self.step + self.offset


def quantize_positions(values: Tensor, encoding: PositionEncoding = "float16") -> QuantizedPositions:
    """Round positions [N, 3] to float16, or to 65,536 levels per axis over their bounding box."""
    values = values.detach().to(torch.float32)
    zeros = values.new_zeros(3)
    if encoding == "float16":
        return QuantizedPositions("float16", values.to(torch.float16), zeros, zeros)
    if encoding != "grid16":
        raise ValueError(f"unknown position encoding {encoding!r}")
    low = values.amin(dim=0) if values.shape[0] else zeros
    step = ((values.amax(dim=0) - low) / GRID_LEVELS) if values.shape[0] else zeros
    safe = torch.where(step > 0, step, torch.ones_like(step))
    codes = torch.round((values - low) / safe).clamp(0, GRID_LEVELS).to(torch.int32)
    return QuantizedPositions("grid16", codes, low, step)


@dataclass
class QuantizedGaussians:
    """The six splatfacto parameter groups as the compressed file stores them (N Gaussians).

    ``scales`` (log), ``quats`` (wxyz, unnormalised) and ``opacities`` (logits) are float16;
    ``features_dc`` is an SH code block [N, 1, 3], ``features_rest`` [N, K, 3] (K = (degree + 1)^2 - 1).
    """

    means: QuantizedPositions
    scales: Tensor  # [N, 3] float16
    quats: Tensor  # [N, 4] float16
    opacities: Tensor  # [N, 1] float16
    features_dc: QuantizedSH  # codes [N, 1, 3]
    features_rest: QuantizedSH  # codes [N, K, 3]

    @property
    def count(self) -> int:
        return int(self.scales.shape[0])

    def dequantize(self) -> Dict[str, Tensor]:
        """float32 parameters by splatfacto's names and shapes (features_dc [N, 3])."""
        return {
            "means": self.means.dequantize(),
            "scales": self.scales.to(torch.float32),
            "quats": self.quats.to(torch.float32),
            "opacities": self.opacities.to(torch.float32),
            "features_dc": self.features_dc.dequantize()[:, 0, :],
            "features_rest": self.features_rest.dequantize(),
        }

    def reordered(self, order: Tensor) -> "QuantizedGaussians":
        """The same Gaussians in the order of the index tensor ``order`` [N] (quantization unchanged)."""
        return QuantizedGaussians(
            means=replace(self.means, codes=self.means.codes[order]),
            scales=self.scales[order], quats=self.quats[order], opacities=self.opacities[order],
            features_dc=replace(self.features_dc, codes=self.features_dc.codes[order]),
            features_rest=replace(self.features_rest, codes=self.features_rest.codes[order]),
        )  # fmt: skip


def quantize_gaussians(
    params: Mapping[str, Tensor], sh: Granularity = "channel", positions: PositionEncoding = "float16"
) -> QuantizedGaussians:
    """Quantize splatfacto's parameters (means [N, 3], scales [N, 3], quats [N, 4], opacities [N, 1],
    features_dc [N, 3], features_rest [N, K, 3]) as the file stores them."""
    return QuantizedGaussians(
        means=quantize_positions(params["means"], positions),
        scales=params["scales"].detach().to(torch.float16),
        quats=params["quats"].detach().to(torch.float16),
        opacities=params["opacities"].detach().reshape(-1, 1).to(torch.float16),
        features_dc=quantize_sh(params["features_dc"].detach()[:, None, :], sh),
        features_rest=quantize_sh(params["features_rest"].detach(), sh),
    )


class _StraightThrough(torch.autograd.Function):
    """Forward: exactly ``rounded``; backward: the gradient goes to ``values`` unchanged."""

    @staticmethod
    def forward(ctx, values: Tensor, rounded: Tensor) -> Tensor:  # type: ignore[override]
        return rounded.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None


def fake_quantize_gaussians(
    params: Mapping[str, Tensor], sh: Granularity = "channel", positions: PositionEncoding = "float16"
) -> Dict[str, Tensor]:
    """Exactly the parameters the file decodes to (``quantize_gaussians(...).dequantize()``, in each
    parameter's dtype and shape), with gradients passed straight through to ``params``."""
    decoded = quantize_gaussians(params, sh, positions).dequantize()
    return {
        name: _StraightThrough.apply(value, decoded[name].reshape(value.shape).to(value.dtype))
        for name, value in params.items()
    }
