"""Options of the trimming stage (``--pipeline.model.trim.*``)."""

from __future__ import annotations

from dataclasses import dataclass

from nerfstudio_trim.core.quantize import Granularity, PositionEncoding
from nerfstudio_trim.core.prune.schedule import TrimSchedule
from nerfstudio_trim.core.prune.scores import ScoreMode


@dataclass
class TrimConfig(TrimSchedule):
    """Trimming of a model loaded with --load-checkpoint: score, prune, fine-tune, repeat.

    The schedule's options (targets, quality floor, round lengths) are ``TrimSchedule``'s."""

    enabled: bool = True
    """Trim after --load-checkpoint. False: plain fine-tuning of the loaded model."""
    score_mode: ScoreMode = "grad-norm"
    """Importance score: grad-norm (seed), abs-grad, opacity-grad-quantile (paper), delta-mse (error increase
    on removal), sensitivity (PUP 3D-GS Fisher log det), opacity, random."""
    quantile_gamma_target: float = 0.6
    """opacity-grad-quantile: fraction of Gaussians the rule aims to remove over quantile_rounds."""
    quantile_rounds: int = 10
    """opacity-grad-quantile: rounds over which gamma_target is spread (gamma per round)."""
    quantize: bool = True
    """Quantization-aware fine-tuning: SH as 8-bit integers, other parameters as float16."""
    sh_quantization: Granularity = "channel"
    """8-bit SH ranges: per coefficient channel, or per tensor (the seed method)."""
    position_encoding: PositionEncoding = "float16"
    """Positions in the file: float16, or a 16-bit grid over their bounding box (docs/format.md)."""
    sh_rest_l1: float = 0.0
    """Weight of an L1 penalty on the higher SH bands (the seed method uses 0.05)."""
    seed: int = 0
    """Random seed of the 'random' score mode."""
