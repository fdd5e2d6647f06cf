"""``SplatScene``: one Gaussian-splatting scene as a file carries it, whatever the serializer: its
quantized Gaussians and what is needed to place and render them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

from torch import Tensor

from nerfstudio_trim.core.quantize import QuantizedGaussians

MAX_SH_DEGREE = 3
IDENTITY_TRANSFORM = ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0))


def sh_coefficients(degree: int) -> int:
    """Number of higher-band SH coefficients per colour (K in features_rest [N, K, 3])."""
    return (degree + 1) ** 2 - 1


def sh_degree_of(features_rest: Tensor) -> int:
    """The SH degree of features_rest [N, K, 3] (inverse of ``sh_coefficients``)."""
    return math.isqrt(features_rest.shape[1] + 1) - 1


@dataclass
class SplatScene:
    """A compressed scene: the quantized Gaussians and what is needed to place and render them.

    Positions are in nerfstudio's normalised frame: x_normalised = scale * (R @ x_world + t) with the
    dataparser's ``transform`` = [R | t] (3 x 4) and ``scale``.
    """

    gaussians: QuantizedGaussians
    sh_degree: int
    dataparser_transform: Tuple[Tuple[float, ...], ...] = IDENTITY_TRANSFORM
    dataparser_scale: float = 1.0
    background: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    """RGB in [0, 1] behind the Gaussians when the model was evaluated."""
    rasterize_mode: str = "classic"
    """gsplat's rasterize_mode the model was trained with ("classic" or "antialiased")."""
    source: Dict[str, Any] = field(default_factory=dict)
    """Informational: software, method, checkpoint step; not used to decode."""
