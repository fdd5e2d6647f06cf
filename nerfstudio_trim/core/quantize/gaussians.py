"""All six splatfacto parameter groups as format 2.x stores them, and their straight-through twin.

``quantize_gaussians(params, settings)`` is what ``ns-export trimmed-splat`` writes;
``fake_quantize_gaussians(params, settings)`` is ``quantize_gaussians(...).dequantize()`` with gradients
passed straight through to ``params``, which quantization-aware fine-tuning renders. Both run the same
code, so the model renders exactly what the file decodes to.

Examples:
    >>> settings = CodecSettings()
    >>> coded = quantize_gaussians(params, settings)          # what the file holds
    >>> decoded = coded.dequantize()                          # what a decoder gives back
    >>> rendered = fake_quantize_gaussians(params, settings)  # equal to decoded, differentiable
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Tuple

import torch
from torch import Tensor

from nerfstudio_trim.core.quantize.positions import ScaleGridPositions, quantize_positions
from nerfstudio_trim.core.quantize.rotations import SmallestThree, quantize_rotations
from nerfstudio_trim.core.quantize.sh_bands import BandCodes, quantize_bands
from nerfstudio_trim.core.quantize.straight_through import straight_through
from nerfstudio_trim.core.quantize.uniform import UniformCodes, channel_range, quantize_levels, quantize_step
from nerfstudio_trim.errors import TrimError

OPACITY_LOGIT_LIMIT = 12.0
"""Opacity logits are stored within +-12 (opacity 6e-6 to 0.999994); other tools write +-inf for 0 and 1."""


@dataclass(frozen=True)
class CodecSettings:
    """How each attribute is quantized in the file (format 2.x); defaults measured in benchmarks/RESULTS.md."""

    position_precision: float = 0.1
    """Largest position step relative to each Gaussian's size (geometric mean of its scales); the error is
    at most half of it."""
    scale_step: float = 0.05
    """Step of the stored log scales (natural log): each scale within a factor exp(+-step / 2)."""
    rotation_bits: int = 7
    """Bits of each of the three smallest quaternion components."""
    opacity_bits: int = 6
    """Bits of the opacity logit (2^bits levels over the scene's range)."""
    color_bits: int = 8
    """Bits of the base colour (SH degree 0) per channel, over each channel's range."""
    sh_bits: Tuple[int, int, int] = (5, 4, 4)
    """Bits per higher SH band (degrees 1, 2, 3): signed codes, a step per coefficient and colour."""
    sh_min_step: float = 1.0 / 255
    """Smallest step of the higher SH bands' codes (SH units: about a colour step of 1/255): coefficients
    too small to show round to zero instead of spreading over every code."""

    def validate_as_option(self) -> None:
        """``validate`` as a user's option: one line naming ``--pipeline.model.trim.codec``."""
        try:
            self.validate()
        except ValueError as exc:
            raise TrimError(f"--pipeline.model.trim.codec: {exc}") from None

    def validate(self) -> None:
        """Raise ValueError for settings no file can hold."""
        if not 0 < self.position_precision <= 4:
            raise ValueError(f"position precision must be in (0, 4], got {self.position_precision}")
        if not 0 < self.scale_step <= 1:
            raise ValueError(f"scale step must be in (0, 1], got {self.scale_step}")
        for name, bits, low, high in (("rotation", self.rotation_bits, 2, 16), ("opacity", self.opacity_bits, 1, 16),
                                      ("colour", self.color_bits, 1, 16)):  # fmt: skip
            if not low <= bits <= high:
                raise ValueError(f"{name} bits must be from {low} to {high}, got {bits}")
        if len(self.sh_bits) != 3 or not all(1 <= bits <= 8 for bits in self.sh_bits):
            raise ValueError(f"SH bits are three numbers from 1 to 8 (degrees 1, 2, 3), got {list(self.sh_bits)}")
        if not 0 <= self.sh_min_step <= 1:
            raise ValueError(f"the smallest SH step must be in [0, 1], got {self.sh_min_step}")


@dataclass
class QuantizedGaussians:
    """The six parameter groups as integer codes with their float32 side values (format 2.x)."""

    opacities: UniformCodes  # [N, 1] logits
    scales: UniformCodes  # [N, 3] log scales, one grid for all axes
    quats: SmallestThree
    means: ScaleGridPositions
    features_dc: UniformCodes  # [N, 3]
    features_rest: BandCodes  # [N, K, 3]

    @property
    def count(self) -> int:
        return int(self.opacities.codes.shape[0])

    def dequantize(self) -> Dict[str, Tensor]:
        """float32 parameters by splatfacto's names and shapes."""
        return {
            "means": self.means.dequantize(),
            "scales": self.scales.dequantize(),
            "quats": self.quats.dequantize(),
            "opacities": self.opacities.dequantize(),
            "features_dc": self.features_dc.dequantize(),
            "features_rest": self.features_rest.dequantize(),
        }

    def reordered(self, order: Tensor) -> "QuantizedGaussians":
        """The same Gaussians in the order of the index tensor ``order`` [N]."""
        return QuantizedGaussians(
            opacities=self.opacities.reordered(order), scales=self.scales.reordered(order),
            quats=self.quats.reordered(order), means=self.means.reordered(order),
            features_dc=self.features_dc.reordered(order), features_rest=self.features_rest.reordered(order),
        )  # fmt: skip


def quantize_gaussians(params: Mapping[str, Tensor], settings: CodecSettings = CodecSettings()) -> QuantizedGaussians:
    """Quantize splatfacto's parameters (means [N, 3], log scales [N, 3], quats [N, 4], opacity logits [N, 1],
    features_dc [N, 3], features_rest [N, K, 3]) as the file stores them."""
    scale_values = params["scales"].detach().to(torch.float32)
    scale_low = scale_values.amin().reshape(1) if scale_values.shape[0] else scale_values.new_zeros(1)
    scales = quantize_step(scale_values, settings.scale_step, scale_low)
    opacity_low, opacity_high = channel_range(params["opacities"].reshape(-1, 1), clamp=OPACITY_LOGIT_LIMIT)
    colour_low, colour_high = channel_range(params["features_dc"].reshape(-1, 3))
    return QuantizedGaussians(
        opacities=quantize_levels(params["opacities"].reshape(-1, 1), settings.opacity_bits, opacity_low, opacity_high),
        scales=scales,
        quats=quantize_rotations(params["quats"], settings.rotation_bits),
        means=quantize_positions(params["means"], scales, settings.position_precision),
        features_dc=quantize_levels(params["features_dc"].reshape(-1, 3), settings.color_bits, colour_low, colour_high),
        features_rest=quantize_bands(params["features_rest"], settings.sh_bits, settings.sh_min_step),
    )


def fake_quantize_gaussians(params: Mapping[str, Tensor], settings: CodecSettings = CodecSettings()) -> Dict[str, Tensor]:
    """Exactly the parameters the file decodes to, in each parameter's dtype and shape, with gradients passed
    straight through to ``params``.

    The file stores each rotation as the unit quaternion whose largest component is positive, which may be
    the parameter's negative and is of norm 1: the same rotation. A renderer normalises the quaternion, so the
    gradient it gives at that stored quaternion is the gradient at the parameter's direction times its sign;
    the gradient of the parameter itself is that times sign / norm (the normalisation's Jacobian at the
    parameter), which is what reaches ``params``. (Passed unchanged, half the rotations would be trained
    against their gradient.)"""
    decoded = quantize_gaussians(params, settings).dequantize()
    quats = params["quats"].detach()
    stored = decoded["quats"].reshape(quats.shape).to(quats.dtype)
    sign = torch.where((stored * quats).sum(dim=-1, keepdim=True) < 0, -1.0, 1.0).to(quats.dtype)
    factors = {"quats": sign / quats.norm(dim=-1, keepdim=True).clamp(min=1e-12)}
    return {name: straight_through(value, decoded[name], factors.get(name)) for name, value in params.items()}
