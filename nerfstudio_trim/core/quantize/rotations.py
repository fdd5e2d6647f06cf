"""Rotations as the smallest three components of the unit quaternion plus the index of the largest.

A unit quaternion q and -q are the same rotation, so the largest component (by magnitude) can be made
positive and left out: it is sqrt(1 - the others' squares). The other three lie in [-1/sqrt(2), 1/sqrt(2)]
and are stored on 2^bits levels over that interval, in their original order (w, x, y, z without the largest).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

HALF_SQRT2 = 0.7071067811865476  # 1 / sqrt(2); used as float32


@dataclass
class SmallestThree:
    """[N] index of the largest component (0-3, wxyz) and [N, 3] codes of the other three."""

    largest: Tensor  # [N] int64 in 0..3
    codes: Tensor  # [N, 3] int64 in 0..2^bits - 1
    bits: int

    def dequantize(self) -> Tensor:
        """[N, 4] float32 unit quaternions (w, x, y, z), each operation in float32 in the order written:
        v = (float32(code) * (2 / (2^bits - 1)) - 1) * (1 / sqrt 2); largest = sqrt(max(0, 1 - (v0*v0 + v1*v1 + v2*v2))),
        the square root correctly rounded (IEEE 754), as a decoder in any language computes it."""
        levels = 2**self.bits - 1
        v = (self.codes.to(torch.float32) * torch.tensor(2.0 / levels) - 1.0) * torch.tensor(HALF_SQRT2)
        v0, v1, v2 = v.unbind(-1)
        # torch's float32 sqrt on the CPU can be one unit in the last place off; the float64 square root of a
        # float32 value, rounded to float32, is the correctly rounded float32 one.
        squared = torch.clamp(1.0 - ((v0 * v0 + v1 * v1) + v2 * v2), min=0.0)
        largest = torch.sqrt(squared.to(torch.float64)).to(torch.float32)
        count = self.largest.shape[0]
        slots = torch.arange(4, device=v.device)[None, :]
        others = slots - (slots > self.largest[:, None]).to(torch.int64)  # which of the three each slot takes
        picked = v.gather(1, others.clamp(max=2))
        out = torch.where(slots == self.largest[:, None], largest[:, None], picked)
        return out.reshape(count, 4)

    def reordered(self, order: Tensor) -> "SmallestThree":
        return replace(self, largest=self.largest[order], codes=self.codes[order])


def quantize_rotations(quats: Tensor, bits: int) -> SmallestThree:
    """Quaternions [N, 4] (w, x, y, z, any norm) as ``SmallestThree`` with ``bits`` bits per component."""
    unit = torch.nn.functional.normalize(quats.detach().to(torch.float32), dim=-1)
    largest = unit.abs().argmax(dim=-1)
    unit = unit * torch.where(unit.gather(1, largest[:, None]) < 0, -1.0, 1.0)
    keep = torch.arange(4, device=unit.device)[None, :] != largest[:, None]
    three = unit[keep].reshape(-1, 3)
    levels = 2**bits - 1
    codes = torch.round((three / HALF_SQRT2 + 1.0) * (levels / 2.0)).clamp(0, levels).to(torch.int64)
    return SmallestThree(largest=largest, codes=codes, bits=bits)
