"""When to prune, how many Gaussians, and when to stop: the trimming schedule as pure logic.

A trim run alternates pruning rounds and fine-tuning: at each decision the schedule looks at the model's
``Measurement`` (its Gaussian count and, after a round, its training-view PSNR and the exact size of the
file it would export) and answers one of

- PRUNE: remove Gaussians down to ``keep`` (a fraction of the current count per round), then fine-tune
  ``steps_per_round`` iterations;
- ROLLBACK: the last round crossed the quality floor or made the file bigger: put back the Gaussians it
  removed, then do the final fine-tune;
- FINAL: a target is reached (or the round limit, or the step budget): fine-tune ``final_steps`` iterations;
- STOP: the final fine-tune is over.

Nothing here renders or touches tensors; the caller measures and acts (``core.prune.run``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from enum import Enum
from typing import Any, Dict, Literal, Optional

from nerfstudio_trim.errors import TrimError


class Action(str, Enum):
    PRUNE = "prune"
    ROLLBACK = "rollback"
    FINAL = "final"
    STOP = "stop"


@dataclass(frozen=True)
class Measurement:
    """The model at a decision: its Gaussians, and where the schedule asks for them, its quality and size."""

    count: int
    psnr: Optional[float] = None
    """Mean PSNR over the training views (dB)."""
    file_bytes: Optional[int] = None
    """Exact size of the file the model would export now (bytes)."""


@dataclass(frozen=True)
class TrimState:
    """Progress of a trim run; saved in checkpoints so a run resumes where it stopped."""

    phase: Literal["prune", "final", "done"] = "prune"
    rounds: int = 0  # pruning rounds done
    initial_count: int = 0  # Gaussians in the model as loaded
    reference_psnr: Optional[float] = None  # training-view PSNR of the model as loaded (dB)
    next_step: int = 0  # training step of the next decision
    last_psnr: Optional[float] = None  # training-view PSNR at the last quality check (dB)
    reference_bytes: Optional[int] = None  # the file of the model as loaded (bytes)
    last_bytes: Optional[int] = None  # the file at the last check (bytes)
    last_bytes_count: Optional[int] = None  # Gaussians in the file at the last check
    end_step: Optional[int] = None  # the run may use steps below this one (--max-num-iterations)
    stop_reason: str = ""  # why pruning stopped

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TrimState":
        """From ``to_dict``'s output (a checkpoint), also one written before a field existed."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


@dataclass(frozen=True)
class Decision:
    """What to do now, how many Gaussians to keep, why, and the state after it."""

    action: Action
    keep: int
    reason: str
    state: TrimState


@dataclass
class TrimSchedule:
    """Defaults are the seed method's: 5% per round, 1,000 iterations between rounds, 5,000 at the end.

    Pruning stops when any configured criterion holds: ``target_count`` Gaussians, ``target_fraction`` of the
    loaded count, a file of at most ``target_size_mb`` (measured exactly after each round), training-view PSNR
    more than ``max_psnr_drop`` dB below the model as loaded, or a round that made the file bigger (those
    two rounds are undone). ``max_rounds`` and the run's step budget bound it.
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
    """Stop pruning once the exported file is at most this size (MB, exact: encoded after each round)."""
    max_psnr_drop: Optional[float] = 0.1
    """Stop when training-view PSNR falls this many dB below the loaded model as the file would store it
    (that round is undone)."""
    undo_growing_rounds: bool = True
    """Undo a round after which the exported file is bigger than before it (and stop pruning)."""

    def count_target(self, initial_count: int, bytes_per_gaussian: Optional[float] = None) -> int:
        """Fewest Gaussians any configured count, fraction or size target allows (0 if none is set); the size
        target counts with ``bytes_per_gaussian`` (measured; without it the size target is not counted)."""
        targets = [0]
        if self.target_count is not None:
            targets.append(self.target_count)
        if self.target_fraction is not None:
            targets.append(math.ceil(self.target_fraction * initial_count))
        if self.target_size_mb is not None and bytes_per_gaussian:
            targets.append(math.floor(self.target_size_mb * 1e6 / bytes_per_gaussian))
        return max(targets)

    def count_after_round(self, count: int, target: int) -> int:
        """Gaussians kept by one round: ``prune_fraction`` of ``count`` removed (at least one), never
        fewer than ``target``."""
        removed = max(1, math.floor(count * self.prune_fraction + 0.5))
        return max(target, count - removed)

    def rounds_to_target(self, initial_count: int, bytes_per_gaussian: Optional[float] = None) -> int:
        """Rounds needed to reach the count target from ``initial_count`` (each removes at least one)."""
        target, count, rounds = self.count_target(initial_count, bytes_per_gaussian), initial_count, 0
        while count > target:
            count, rounds = self.count_after_round(count, target), rounds + 1
        return rounds

    def planned_rounds(self, initial_count: int, bytes_per_gaussian: Optional[float] = None) -> int:
        """Most pruning rounds the run can make (targets and ``max_rounds``; a rule that may remove less than
        ``prune_fraction`` per round is bounded by ``max_rounds`` alone)."""
        if self.count_target(initial_count, bytes_per_gaussian) == 0:
            return self.max_rounds
        return min(self.max_rounds, self.rounds_to_target(initial_count, bytes_per_gaussian))

    def max_steps(self, rounds: int) -> int:
        """Upper bound on the training steps of a run of ``rounds`` pruning rounds (the last decision included)."""
        return rounds * self.steps_per_round + self.final_steps + 1

    def rounds_within(self, steps: int) -> int:
        """Most pruning rounds whose fine-tuning and the final fine-tune fit in ``steps`` training steps."""
        room = steps - self.final_steps - 1
        return max(0, room // self.steps_per_round) if self.steps_per_round else self.max_rounds

    def validate(self, initial_count: int, steps: Optional[int] = None) -> None:
        """Refuse schedules that cannot do anything sensible for a model of ``initial_count`` Gaussians in
        ``steps`` training steps (None: unbounded)."""
        if not 0 < self.prune_fraction < 1:
            raise TrimError(f"prune fraction must be between 0 and 1, got {self.prune_fraction}")
        if self.steps_per_round < 0 or self.final_steps < 0 or self.max_rounds < 1:
            raise TrimError("steps per round and final steps must be >= 0 and max rounds >= 1")
        if self.target_size_mb is not None and not self.target_size_mb > 0:
            raise TrimError(f"the target size must be positive, got {self.target_size_mb} MB")
        target = self.count_target(initial_count)
        if target >= initial_count:
            raise TrimError(f"the target ({target:,} Gaussians) is already met by the loaded model ({initial_count:,})")
        if target == 0 and self.max_psnr_drop is None and self.target_size_mb is None:
            raise TrimError("no stopping criterion: set a target (count, fraction or size) or a PSNR floor")
        needed = self.rounds_to_target(initial_count)
        if target > 0 and needed > self.max_rounds:
            raise TrimError(
                f"reaching {target:,} Gaussians from {initial_count:,} at {self.prune_fraction:.0%} per round "
                f"needs {needed} rounds, more than max rounds ({self.max_rounds})"
            )
        if steps is not None and steps < self.final_steps + 1:
            raise TrimError(
                f"--max-num-iterations {steps} leaves no room for the final fine-tune ({self.final_steps} steps): "
                f"raise it, or lower --pipeline.model.trim.final-steps"
            )

    def begin(self, step: int, reference: Measurement, steps: Optional[int] = None) -> TrimState:
        """State for a run starting at ``step`` from the model as loaded; ``steps``: its step budget."""
        self.validate(reference.count, steps)
        if self.target_size_mb is not None and reference.file_bytes is not None:
            if reference.file_bytes <= self.target_size_mb * 1e6:
                raise TrimError(f"the target size ({self.target_size_mb} MB) is already met by the loaded model's "
                                f"file ({reference.file_bytes / 1e6:.3f} MB)")  # fmt: skip
        return TrimState(
            initial_count=reference.count, reference_psnr=reference.psnr, next_step=step,
            reference_bytes=reference.file_bytes, last_bytes=reference.file_bytes,
            last_bytes_count=None if reference.file_bytes is None else reference.count,
            end_step=None if steps is None else step + steps,
        )  # fmt: skip

    def is_due(self, state: TrimState, step: int) -> bool:
        """Whether a decision is due at ``step``."""
        return state.phase != "done" and step >= state.next_step

    def needs_quality_check(self, state: TrimState) -> bool:
        """Whether the next decision needs the training-view PSNR (after each pruning round)."""
        return state.phase == "prune" and state.rounds > 0 and self.max_psnr_drop is not None

    def needs_file_size(self, state: TrimState) -> bool:
        """Whether the next decision needs the exact file size (after each pruning round)."""
        return state.phase == "prune" and state.rounds > 0 and (self.undo_growing_rounds or self.target_size_mb is not None)

    def decide(self, state: TrimState, step: int, measured: Measurement) -> Decision:
        """The decision at a due step. ``measured`` must hold what ``needs_quality_check`` and
        ``needs_file_size`` ask for."""
        count = measured.count
        if state.phase == "final":
            return Decision(Action.STOP, count, "final fine-tune done", replace(state, phase="done"))
        if self.needs_quality_check(state) and measured.psnr is None:
            raise ValueError("this decision needs the training-view PSNR")
        if self.needs_file_size(state) and measured.file_bytes is None:
            raise ValueError("this decision needs the file size")
        if state.rounds > 0:
            state = replace(state, last_psnr=measured.psnr if measured.psnr is not None else state.last_psnr)
        final = replace(state, phase="final", next_step=step + self.final_steps)
        if self.needs_quality_check(state) and state.reference_psnr is not None:
            assert measured.psnr is not None and self.max_psnr_drop is not None
            if measured.psnr < state.reference_psnr - self.max_psnr_drop:
                reason = f"training-view PSNR {measured.psnr:.2f} dB is more than {self.max_psnr_drop} dB below the start"
                return Decision(Action.ROLLBACK, count, reason, replace(final, stop_reason=reason))
        if self.needs_file_size(state) and self.undo_growing_rounds and state.last_bytes is not None:
            assert measured.file_bytes is not None
            if measured.file_bytes > state.last_bytes:
                reason = f"the file grew to {measured.file_bytes:,} bytes from {state.last_bytes:,}"
                return Decision(Action.ROLLBACK, count, reason, replace(final, stop_reason=reason))
        if measured.file_bytes is not None:
            state = replace(state, last_bytes=measured.file_bytes, last_bytes_count=count)
            final = replace(final, last_bytes=measured.file_bytes, last_bytes_count=count)
        size_met = self.target_size_mb is not None and (state.last_bytes or math.inf) <= self.target_size_mb * 1e6
        per_gaussian = (state.last_bytes / count) if state.last_bytes and count else None
        target = self.count_target(state.initial_count, per_gaussian)
        reason = ""
        if size_met:
            reason = f"the file is at most {self.target_size_mb} MB"
        elif count <= target:
            reason = f"the target of {target:,} Gaussians is reached"
        elif state.rounds >= self.max_rounds:
            reason = f"max rounds ({self.max_rounds}) reached"
        elif state.end_step is not None and step + self.steps_per_round + self.final_steps >= state.end_step:
            reason = "another round and the final fine-tune would not fit --max-num-iterations"
        if reason:
            return Decision(Action.FINAL, count, reason, replace(final, stop_reason=reason))
        keep = self.count_after_round(count, target)
        pruned = replace(state, rounds=state.rounds + 1, next_step=step + self.steps_per_round)
        return Decision(Action.PRUNE, keep, f"round {pruned.rounds}", pruned)
