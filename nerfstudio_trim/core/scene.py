"""``SplatScene``: one Gaussian-splatting scene as a file carries it, whatever the serializer: its
quantized Gaussians and what is needed to place and render them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Protocol, Tuple

from torch import Tensor


class CodedGaussians(Protocol):
    """Gaussians as a file version stores them: a count, and float32 parameters when decoded."""

    @property
    def count(self) -> int: ...

    def dequantize(self) -> Dict[str, Tensor]:
        """Parameters by splatfacto's names: means [N, 3], scales [N, 3] (log), quats [N, 4], opacities
        [N, 1] (logit), features_dc [N, 3], features_rest [N, K, 3]."""
        ...

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

    gaussians: CodedGaussians
    sh_degree: int
    dataparser_transform: Tuple[Tuple[float, ...], ...] = IDENTITY_TRANSFORM
    dataparser_scale: float = 1.0
    background: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    """RGB in [0, 1] behind the Gaussians when the model was evaluated."""
    rasterize_mode: str = "classic"
    """gsplat's rasterize_mode the model was trained with ("classic" or "antialiased")."""
    source: Dict[str, Any] = field(default_factory=dict)
    """Informational: software, method, checkpoint step; not used to decode."""
    frame: str = "nerfstudio-normalized"
    """Where the positions live: "nerfstudio-normalized" (the transform and scale above map the capture's
    frame to it) or "capture" (the capture's own frame, e.g. a PLY from another trainer; identity)."""
