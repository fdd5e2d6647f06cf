"""Real spherical harmonics up to degree 3, in the convention of 3DGS, gsplat and splatfacto.

Colours are ``sum_k basis_k(dir) * coeff_k``; the caller adds 0.5 and clamps (gsplat does the same).
"""

from __future__ import annotations

import torch
from torch import Tensor

_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)

MAX_SH_DEGREE = 3


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients per colour channel for ``degree``: (degree + 1)^2."""
    return (degree + 1) ** 2


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """Evaluate the real SH basis functions.

    Args:
        degree: 0..3.
        dirs: [..., 3] unit view directions (Gaussian centre minus camera centre, normalised).

    Returns:
        [..., (degree + 1)^2] basis values, ordered by band then by m from -l to l.
    """
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"SH degree must be between 0 and {MAX_SH_DEGREE}, got {degree}")
    x, y, z = dirs.unbind(-1)
    bases = [torch.full_like(x, _C0)]
    if degree >= 1:
        bases += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        bases += [
            _C2[0] * x * y,
            _C2[1] * y * z,
            _C2[2] * (2.0 * zz - xx - yy),
            _C2[3] * x * z,
            _C2[4] * (xx - yy),
        ]
    if degree >= 3:
        bases += [
            _C3[0] * y * (3.0 * xx - yy),
            _C3[1] * x * y * z,
            _C3[2] * y * (4.0 * zz - xx - yy),
            _C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            _C3[4] * x * (4.0 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(bases, dim=-1)


def eval_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Colour of SH coefficients seen along ``dirs``, using the first ``degree`` bands only.

    Args:
        degree: number of bands to use, 0..3; ``coeffs`` may hold more (they are ignored).
        dirs: [..., 3] view directions, not necessarily normalised.
        coeffs: [..., K, 3] SH coefficients with K >= (degree + 1)^2.

    Returns:
        [..., 3] raw colour (before the +0.5 offset and clamp).
    """
    n = num_sh_bases(degree)
    if coeffs.shape[-2] < n:
        raise ValueError(f"SH degree {degree} needs {n} coefficients per channel, got {coeffs.shape[-2]}")
    unit = torch.nn.functional.normalize(dirs, dim=-1)
    return (sh_bases(degree, unit)[..., None] * coeffs[..., :n, :]).sum(dim=-2)
