"""Options of the trimming stage (``--pipeline.model.trim.*``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from nerfstudio_trim.core.quantize import Granularity
from nerfstudio_trim.core.schedule import TrimSchedule
from nerfstudio_trim.core.scores import ScoreMode


@dataclass
class TrimConfig:
    """Trimming of a model loaded with --load-checkpoint: score, prune, fine-tune, repeat."""

    enabled: bool = True
    """Trim after --load-checkpoint. False: plain fine-tuning of the loaded model."""
    score_mode: ScoreMode = "grad-norm"
    """Importance score: grad-norm (seed), abs-grad, opacity-grad-quantile (paper), opacity, random."""
    prune_fraction: float = 0.05
    """Fraction of the current Gaussians removed per round."""
    steps_per_round: int = 1000
    """Fine-tuning iterations after each pruning round."""
    final_steps: int = 5000
    """Fine-tuning iterations after the last round."""
    max_rounds: int = 100
    """Most pruning rounds in a run."""
    target_count: Optional[int] = None
    """Stop pruning at this many Gaussians."""
    target_fraction: Optional[float] = None
    """Stop pruning at this fraction of the loaded model's Gaussians."""
    target_size_mb: Optional[float] = None
    """Stop pruning when the exported file is estimated at this size (MB)."""
    bytes_per_gaussian: float = 40.0
    """File bytes per Gaussian used to estimate the size (the seed method's measured figure)."""
    max_psnr_drop: Optional[float] = 0.1
    """Stop when training-view PSNR falls this many dB below the loaded model (that round is undone)."""
    quantile_gamma_target: float = 0.6
    """opacity-grad-quantile: fraction of Gaussians the rule aims to remove over quantile_rounds."""
    quantile_rounds: int = 10
    """opacity-grad-quantile: rounds over which gamma_target is spread (gamma per round)."""
    quantize: bool = True
    """Quantization-aware fine-tuning: SH as 8-bit integers, other parameters as float16."""
    sh_quantization: Granularity = "channel"
    """8-bit SH ranges: per coefficient channel, or per tensor (the seed method)."""
    sh_rest_l1: float = 0.0
    """Weight of an L1 penalty on the higher SH bands (the seed method uses 0.05)."""
    seed: int = 0
    """Random seed of the 'random' score mode."""

    def schedule(self) -> TrimSchedule:
        """The pure schedule these options describe."""
        return TrimSchedule(
            prune_fraction=self.prune_fraction,
            steps_per_round=self.steps_per_round,
            final_steps=self.final_steps,
            max_rounds=self.max_rounds,
            target_count=self.target_count,
            target_fraction=self.target_fraction,
            target_size_mb=self.target_size_mb,
            bytes_per_gaussian=self.bytes_per_gaussian,
            max_psnr_drop=self.max_psnr_drop,
        )

