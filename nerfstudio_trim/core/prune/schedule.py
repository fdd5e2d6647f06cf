"""When to prune, how many Gaussians, and when to stop: the trimming schedule as pure logic.

A trim run alternates pruning rounds and fine-tuning: at each round boundary the schedule looks at
the model (its Gaussian count and, after a round, its PSNR on training views) and answers one of

- PRUNE: remove Gaussians down to ``keep`` (a fraction of the current count per round), then
  fine-tune ``steps_per_round`` iterations;
- ROLLBACK: the last round crossed the quality floor: put back the Gaussians it removed, then do the
  final fine-tune;
- FINAL: a target is reached (or the round limit): fine-tune ``final_steps`` iterations;
- STOP: the final fine-tune is over.

Nothing here renders or touches tensors; the caller measures and acts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any, Dict, Literal, Optional, Tuple

from nerfstudio_trim.errors import TrimError


class Action(str, Enum):
    PRUNE = "prune"
    ROLLBACK = "rollback"
    FINAL = "final"
    STOP = "stop"


@dataclass(frozen=True)
class TrimState:
    """Progress of a trim run; saved in checkpoints so a run resumes where it stopped."""

    phase: Literal["prune", "final", "done"] = "prune"
    rounds: int = 0  # pruning rounds done
    initial_count: int = 0  # Gaussians in the model as loaded
    reference_psnr: Optional[float] = None  # training-view PSNR of the model as loaded (dB)
    next_step: int = 0  # training step of the next decision
    last_psnr: Optional[float] = None  # training-view PSNR at the last quality check (dB)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TrimState":
        return cls(**values)


@dataclass
class TrimSchedule:
    """Defaults are the seed method's: 5% per round, 1,000 iterations between rounds, 5,000 at the end.

    Pruning stops when any configured criterion holds: ``target_count`` Gaussians, ``target_fraction``
    of the loaded count, an estimated file of ``target_size_mb`` (``bytes_per_gaussian`` per Gaussian),
    or training-view PSNR more than ``max_psnr_drop`` dB below the model as loaded (that round is then
    undone). ``max_rounds`` bounds the run.
    """

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
    bytes_per_gaussian: float = 48.0
    """File bytes per Gaussian used to estimate the size: .nstrim files with SH degree 3 measured 44-52
    (benchmarks/RESULTS.md); `ns-trim info` shows a file's own figure."""
    max_psnr_drop: Optional[float] = 0.1
    """Stop when training-view PSNR falls this many dB below the loaded model (that round is undone)."""

    def count_target(self, initial_count: int) -> int:
        """Fewest Gaussians any configured count, fraction or size target allows (0 if none is set)."""
        targets = [0]
        if self.target_count is not None:
            targets.append(self.target_count)
        if self.target_fraction is not None:
            targets.append(math.ceil(self.target_fraction * initial_count))
        if self.target_size_mb is not None:
            targets.append(math.floor(self.target_size_mb * 1e6 / self.bytes_per_gaussian))
        return max(targets)

    def count_after_round(self, count: int, target: int) -> int:
        """Gaussians kept by one round: ``prune_fraction`` of ``count`` removed (at least one), never
        fewer than ``target``."""
        removed = max(1, math.floor(count * self.prune_fraction + 0.5))
        return max(target, count - removed)

    def rounds_to_target(self, initial_count: int) -> int:
        """Rounds needed to reach the count target from ``initial_count`` (each removes at least one)."""
        target, count, rounds = self.count_target(initial_count), initial_count, 0
        while count > target:
            count, rounds = self.count_after_round(count, target), rounds + 1
        return rounds

    def max_steps(self, initial_count: int) -> int:
        """Upper bound on the training steps of a whole run."""
        rounds = min(self.max_rounds, self.rounds_to_target(initial_count))
        return rounds * self.steps_per_round + self.final_steps + 1

    def validate(self, initial_count: int) -> None:
        """Refuse schedules that cannot do anything sensible for a model of ``initial_count`` Gaussians."""
        if not 0 < self.prune_fraction < 1:
            raise TrimError(f"prune fraction must be between 0 and 1, got {self.prune_fraction}")
        if self.steps_per_round < 0 or self.final_steps < 0 or self.max_rounds < 1:
            raise TrimError("steps per round and final steps must be >= 0 and max rounds >= 1")
        target = self.count_target(initial_count)
        if target >= initial_count:
            raise TrimError(
                f"the target ({target:,} Gaussians) is already met by the loaded model ({initial_count:,})"
            )
        if target == 0 and self.max_psnr_drop is None:
            raise TrimError("no stopping criterion: set a target (count, fraction or size) or a PSNR floor")
        needed = self.rounds_to_target(initial_count)
        if target > 0 and needed > self.max_rounds:
            raise TrimError(
                f"reaching {target:,} Gaussians from {initial_count:,} at {self.prune_fraction:.0%} per round "
                f"needs {needed} rounds, more than max rounds ({self.max_rounds})"
            )

    def begin(self, step: int, count: int, reference_psnr: Optional[float]) -> TrimState:
        """State for a run starting at ``step`` from a model of ``count`` Gaussians."""
        self.validate(count)
        return TrimState(initial_count=count, reference_psnr=reference_psnr, next_step=step)

    def is_due(self, state: TrimState, step: int) -> bool:
        """Whether a decision is due at ``step``."""
        return state.phase != "done" and step >= state.next_step

    def needs_quality_check(self, state: TrimState) -> bool:
        """Whether the next decision needs the training-view PSNR (after each pruning round)."""
        return state.phase == "prune" and state.rounds > 0 and self.max_psnr_drop is not None

    def decide(self, state: TrimState, step: int, count: int, psnr: Optional[float] = None) -> Tuple[Action, int, TrimState]:
        """The action at a due step: (action, Gaussians to keep, new state).

        ``psnr`` is required when ``needs_quality_check(state)``.
        """
        if state.phase == "final":
            return Action.STOP, count, replace(state, phase="done")
        if self.needs_quality_check(state):
            if psnr is None:
                raise ValueError("this decision needs the training-view PSNR")
            state = replace(state, last_psnr=psnr)
            if state.reference_psnr is not None and psnr < state.reference_psnr - self.max_psnr_drop:
                return Action.ROLLBACK, count, replace(state, phase="final", next_step=step + self.final_steps)
        target = self.count_target(state.initial_count)
        if count <= target or state.rounds >= self.max_rounds:
            return Action.FINAL, count, replace(state, phase="final", next_step=step + self.final_steps)
        keep = self.count_after_round(count, target)
        return Action.PRUNE, keep, replace(state, rounds=state.rounds + 1, next_step=step + self.steps_per_round)
