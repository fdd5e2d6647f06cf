"""Options of the trimming stage (``--pipeline.model.trim.*``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional

from nerfstudio_trim.errors import TrimError
from nerfstudio_trim.core.prune.schedule import TrimSchedule
from nerfstudio_trim.core.prune.render_scores import DeltaMethod
from nerfstudio_trim.core.prune.scores import ScoreMode
from nerfstudio_trim.core.quantize.gaussians import CodecSettings


class LoadsOlderConfigs:
    """A config dataclass that unpickles (ns-eval, --load-config) from a config.yml written by another version:
    fields it did not have get their defaults, fields it had and this version dropped are left out."""

    def __setstate__(self, state: Dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}  # type: ignore[arg-type]
        defaults = {name: getattr(type(self)(), name) for name in known if name not in state}
        self.__dict__.update({**defaults, **{k: v for k, v in state.items() if k in known}})


@dataclass
class TrimConfig(LoadsOlderConfigs, TrimSchedule):
    """Trimming of a model loaded with --load-checkpoint: score, prune, fine-tune, repeat.

    The schedule's options (targets, quality floor, round lengths) are ``TrimSchedule``'s."""

    enabled: bool = True
    """Trim after --load-checkpoint. False: plain fine-tuning of the loaded model."""
    score_mode: ScoreMode = "grad-norm"
    """Importance score: grad-norm (seed), abs-grad, opacity-grad-quantile (paper), delta-mse (error increase
    on removal), sensitivity (PUP 3D-GS Fisher log det), opacity, random."""
    delta_mse_method: DeltaMethod = "exact"
    """delta-mse: "exact" (each Gaussian's removal, through our compositing, on any device) or "first-order"
    (-opacity x the error's gradient in it, one backward pass through the model's rasterizer, gsplat on
    CUDA: cheaper, but it misses the error's quadratic term, which dominates in a trained model; on the demo
    scene at 25% kept it ended 8.5 dB below exact, benchmarks/RESULTS.md)."""
    quantile_gamma_target: float = 0.6
    """opacity-grad-quantile: fraction of Gaussians the rule aims to remove over quantile_rounds."""
    quantile_rounds: int = 10
    """opacity-grad-quantile: rounds over which gamma_target is spread (gamma per round)."""
    quantize: bool = True
    """Quantization-aware fine-tuning: render through the quantization the exported file stores (codec)."""
    codec: CodecSettings = field(default_factory=CodecSettings)
    """How the exported file quantizes each attribute (format 2.x), which quantization-aware fine-tuning
    trains through."""
    sh_compaction_tolerance: Optional[float] = 1.0 / 255
    """SH compaction after each pruning round: each Gaussian gets the lowest SH degree that keeps its colours
    towards the training cameras that see it within this tolerance (colour units, 0-1); the bands above it
    are zero in the file and cost almost nothing. None: off."""
    rate_weight: float = 0.0013
    """Weight of the estimated bytes per Gaussian of the higher SH bands (a differentiable estimate of what the
    file pays) in the fine-tuning loss. 0: off. It keeps fine-tuning from giving the bands energy the file pays
    for; the default is the smallest weight whose files stay within 16 bytes per Gaussian at half the Gaussians
    on both benchmark scenes (RESULTS.md, "The issue's goal")."""
    sh_rest_lr: Optional[float] = 1e-3
    """Learning rate of the higher SH bands (features_rest) while trimming. splatfacto's (1.25e-4, the run's
    --optimizers.features-rest.optimizer.lr, which training from scratch uses) leaves them under-fitted in the
    trim's short fine-tuning and keeps the rate term from moving them to cheaper codes (RESULTS.md, "SH bands'
    learning rate"). None: the optimizer's setting."""
    sh_rest_l1: float = 0.0
    """Weight of an L1 penalty on the higher SH bands (the seed method uses 0.05)."""
    seed: int = 0
    """Random seed of the 'random' score mode."""

    def validate(self, initial_count: int, steps: Optional[int] = None) -> None:
        """The schedule's checks (``TrimSchedule.validate``) and the fine-tuning options'."""
        if self.sh_rest_lr is not None and not (math.isfinite(self.sh_rest_lr) and self.sh_rest_lr > 0):
            raise TrimError(f"--pipeline.model.trim.sh-rest-lr must be a positive learning rate or None, got {self.sh_rest_lr}")
        super().validate(initial_count, steps)
