"""A differentiable estimate of what the higher SH bands cost in the file, for rate-aware fine-tuning.

The file stores each higher-band coefficient as a signed code of its step (``sh_bands``: the band's range
over its codes, never below a floor), and LZMA spends roughly log2(1 + |code|) bits on a code plus a little
for its sign, nearly nothing for the zeros above a Gaussian's degree. ``sh_rest_bytes`` sums
log2(1 + |value| / step) over a Gaussian's coefficients (steps as the file would use them, held constant),
divided by 8: a smooth, zero-at-zero estimate of its bytes that pushes small coefficients to exactly zero,
where they cost nothing. (Without the floor the steps would follow the values' own range, and no penalty
could tell small coefficients from large ones.)

Examples:
    >>> loss = photometric + weight * sh_rest_bytes(features_rest, settings.sh_bits).mean()
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from nerfstudio_trim.core.quantize.sh_bands import band_steps


def sh_rest_bytes(features_rest: Tensor, bits: Sequence[int], min_step: float) -> Tensor:
    """[N] estimated bytes of each Gaussian's higher SH bands [N, K, 3] stored with ``bits`` per band and
    steps of at least ``min_step``, as ``sh_bands`` stores them; differentiable in ``features_rest`` (the
    steps are not). Bands of 1 bit (always zero) cost nothing."""
    steps = band_steps(features_rest, bits, min_step)
    used = steps > 0
    ratios = features_rest.abs() / torch.where(used, steps, torch.ones_like(steps))
    return (torch.log2(1.0 + ratios) * used).sum(dim=(1, 2)) / 8.0
