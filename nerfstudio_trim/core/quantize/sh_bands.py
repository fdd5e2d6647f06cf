"""Higher SH bands: signed codes per band with a step per coefficient and colour, and a degree per Gaussian.

Band l (l = 1..degree) holds coefficients l^2 - 1 .. (l + 1)^2 - 2 of features_rest [N, K, 3]. Each
coefficient and colour has its own step: its largest magnitude over the Gaussians divided by the band's
largest code, 2^(bits - 1) - 1, but never below ``min_step`` (coefficients too small to show, e.g. higher bands
that fine-tuning has only begun to grow, round to zero instead of spreading over every code). A value is
``float32(code) * step``, so 0 is exact. A Gaussian's degree is its highest band with a non-zero code: the
bands above it cost nothing in the file (not stored), which is where SH compaction and a rate penalty pay off.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Sequence, Tuple

import torch
from torch import Tensor


def band_slices(degree: int) -> List[Tuple[int, int]]:
    """[start, end) coefficient ranges of bands 1..degree within features_rest."""
    return [(band * band - 1, (band + 1) * (band + 1) - 1) for band in range(1, degree + 1)]


def largest_code(bits: int) -> int:
    """Largest code magnitude of a band stored on ``bits`` bits (1 bit: the band is zero)."""
    return 2 ** (bits - 1) - 1


@dataclass
class BandCodes:
    """features_rest [N, K, 3] as signed integer codes [N, K, 3] with steps [K, 3] and bits per band."""

    codes: Tensor  # [N, K, 3] int64, |code| <= largest_code(bits of its band)
    steps: Tensor  # [K, 3] float32
    bits: Tuple[int, ...]  # per band 1..degree

    @property
    def degrees(self) -> Tensor:
        """[N] int64 highest band with a non-zero code (0: none)."""
        degrees = torch.zeros(self.codes.shape[0], dtype=torch.int64, device=self.codes.device)
        for band, (start, end) in enumerate(band_slices(len(self.bits)), start=1):
            nonzero = (self.codes[:, start:end] != 0).flatten(1).any(dim=1)
            degrees = torch.where(nonzero, torch.full_like(degrees, band), degrees)
        return degrees

    def dequantize(self) -> Tensor:
        """[N, K, 3] float32: ``float32(code) * step``."""
        return self.codes.to(torch.float32) * self.steps

    def reordered(self, order: Tensor) -> "BandCodes":
        return replace(self, codes=self.codes[order])


def band_steps(features_rest: Tensor, bits: Sequence[int], min_step: float) -> Tensor:
    """[K, 3] float32 step of each coefficient and colour (see the module docstring); 0 for a band of 1 bit
    (always zero) and for no Gaussians."""
    values = features_rest.detach().to(torch.float32)
    steps = values.new_zeros(values.shape[1:])
    for (start, end), band_bits in zip(band_slices_for(values.shape[1]), bits):
        largest = largest_code(band_bits)
        if largest > 0 and values.shape[0] > 0:
            steps[start:end] = torch.clamp(values[:, start:end].abs().amax(dim=0) / largest, min=min_step)
    return steps


def quantize_bands(features_rest: Tensor, bits: Sequence[int], min_step: float = 0.0) -> BandCodes:
    """Quantize features_rest [N, K, 3] (K = (degree + 1)^2 - 1) with ``bits[l - 1]`` bits for band l and
    steps of at least ``min_step``."""
    values = features_rest.detach().to(torch.float32)
    degree = len(band_slices_for(values.shape[1]))
    if len(bits) < degree:
        raise ValueError(f"{degree} SH bands need {degree} bit depths, got {list(bits)}")
    bits = tuple(int(b) for b in bits[:degree])
    steps = band_steps(values, bits, min_step)
    return BandCodes(codes=band_codes(values, steps, bits), steps=steps, bits=bits)


def band_codes(features_rest: Tensor, steps: Tensor, bits: Sequence[int]) -> Tensor:
    """[N, K, 3] int64 codes of features_rest [N, K, 3] on the given steps [K, 3] and bits per band: each
    value over its step, rounded and clamped to the band's largest code (0 in a band of 1 bit)."""
    values = features_rest.detach().to(torch.float32)
    safe = torch.where(steps > 0, steps, torch.ones_like(steps))
    codes = torch.zeros(values.shape, dtype=torch.int64, device=values.device)
    for (start, end), band_bits in zip(band_slices_for(values.shape[1]), bits):
        largest = largest_code(band_bits)
        if largest > 0:
            codes[:, start:end] = torch.round(values[:, start:end] / safe[start:end]).clamp(-largest, largest).to(torch.int64)
    return codes


def band_slices_for(coefficients: int) -> List[Tuple[int, int]]:
    """Band ranges of features_rest with ``coefficients`` per colour (0, 3, 8 or 15)."""
    degree = {0: 0, 3: 1, 8: 2, 15: 3}.get(coefficients)
    if degree is None:
        raise ValueError(f"features_rest with {coefficients} coefficients per colour is not an SH degree")
    return band_slices(degree)
