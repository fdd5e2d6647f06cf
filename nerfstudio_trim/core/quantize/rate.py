"""A differentiable estimate of what the higher SH bands cost in the file, for rate-aware fine-tuning.

The file stores each higher-band coefficient as a signed code of its band's step (``sh_bands``), and LZMA
spends roughly log2(1 + |code|) bits on a code plus a little for its sign, nearly nothing for the zeros
above a Gaussian's degree. ``sh_rest_bytes`` sums log2(1 + |value| / step) over a Gaussian's coefficients
(steps as the file would use them, held constant), divided by 8: a smooth, zero-at-zero estimate of its
bytes that pushes small coefficients to exactly zero, where they cost nothing.

Examples:
    >>> loss = photometric + weight * sh_rest_bytes(features_rest, settings.sh_bits).mean()
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from nerfstudio_trim.core.quantize.sh_bands import band_slices_for, largest_code


def sh_rest_bytes(features_rest: Tensor, bits: Sequence[int]) -> Tensor:
    """[N] estimated bytes of each Gaussian's higher SH bands [N, K, 3] stored with ``bits`` per band;
    differentiable in ``features_rest`` (the steps are not)."""
    total = features_rest.new_zeros(features_rest.shape[0])
    for (start, end), band_bits in zip(band_slices_for(features_rest.shape[1]), bits):
        largest = largest_code(band_bits)
        if largest == 0 or features_rest.shape[0] == 0:
            continue
        band = features_rest[:, start:end]
        step = (band.detach().abs().amax(dim=0) / largest).clamp(min=1e-12)
        total = total + torch.log2(1.0 + band.abs() / step).sum(dim=(1, 2))
    return total / 8.0
