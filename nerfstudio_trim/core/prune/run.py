"""The pruning loop: score, remove, (fine-tune), check, undo — one routine for every host.

``ns-train splatfacto-trim`` drives it from a training callback, the host being the nerfstudio model (it
fine-tunes between decisions); ``ns-trim compress`` drives it in a plain loop, the host holding a scene read
from a file (no fine-tuning: a round's check follows its removal at once). The loop talks to its host only
through ``PruningHost``; the decisions are ``core.prune.schedule``'s.

Examples:
    >>> run = PruningRun(schedule, host)
    >>> run.begin(step=0, steps=None)           # measures the model as loaded
    >>> while not run.done:
    ...     report = run.advance(step)          # a decision when one is due (None otherwise)
    ...     step = run.state.next_step          # compress; ns-train fine-tunes up to it instead
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Optional, Protocol

from torch import Tensor

from nerfstudio_trim.core.prune.schedule import Action, Measurement, TrimSchedule, TrimState
from nerfstudio_trim.core.prune.scores import removal_mask


@dataclass(frozen=True)
class Scores:
    """One importance per Gaussian (higher is more important) and, for rules that restrict which Gaussians a
    round may remove, the [N] bool candidates."""

    values: Tensor
    candidates: Optional[Tensor] = None


@dataclass(frozen=True)
class RoundReport:
    """What one decision did, for the console, loggers and viewers."""

    step: int
    action: Action
    reason: str
    state: TrimState
    count: int
    """Gaussians after the action."""
    measured_count: int
    """Gaussians when ``psnr`` and ``file_bytes`` were measured (before the action)."""
    psnr: Optional[float]
    file_bytes: Optional[int]
    scoring_seconds: Optional[float]

    def describe(self) -> str:
        """One line: what was measured, the action and why, the Gaussians after it."""
        checked = []
        if self.file_bytes is not None:
            checked.append(f"file {self.file_bytes / 1e6:.3f} MB ({self.file_bytes / max(1, self.measured_count):.1f} "
                           "bytes per Gaussian)")  # fmt: skip
        if self.psnr is not None:
            checked.append(f"training-view PSNR {self.psnr:.2f} dB")
        line = f"{self.measured_count:,} Gaussians: {', '.join(checked)}; " if checked else ""
        line += (f"{self.action.value} ({self.reason}) -> {self.count:,} Gaussians, "
                 f"{self.count / max(1, self.state.initial_count):.1%} kept")  # fmt: skip
        if self.scoring_seconds is not None:
            line += f", scored in {self.scoring_seconds:.1f} s"
        return line


class PruningHost(Protocol):
    """What the pruning loop needs from whoever holds the Gaussians."""

    @property
    def count(self) -> int:
        """Gaussians now."""
        ...

    def scores(self) -> Scores:
        """Importance of every Gaussian now."""
        ...

    def remove(self, mask: Tensor) -> None:
        """Remove the Gaussians marked in the [N] bool ``mask``, keeping them (those of this removal only) so
        ``restore`` can undo it."""
        ...

    def restore(self) -> None:
        """Put back the Gaussians of the last ``remove``."""
        ...

    def forget(self) -> None:
        """Drop the Gaussians kept for ``restore``: no round will be undone any more."""
        ...

    def settle(self) -> None:
        """After each change of the Gaussians: what the host does to those it keeps (e.g. SH compaction)."""
        ...

    def training_psnr(self) -> float:
        """Mean PSNR over the training views (dB)."""
        ...

    def file_bytes(self) -> int:
        """Exact size of the file the host would export now (bytes)."""
        ...

    def report(self, report: RoundReport) -> None:
        """Show or log one decision."""
        ...


class PruningRun:
    """One trim run's state and actions, driven by ``advance`` (see the module docstring)."""

    def __init__(self, schedule: TrimSchedule, host: PruningHost, state: Optional[TrimState] = None):
        self.schedule = schedule
        self.host = host
        self.state = state

    @property
    def started(self) -> bool:
        return self.state is not None

    @property
    def done(self) -> bool:
        return self.state is not None and self.state.phase == "done"

    def begin(self, step: int, steps: Optional[int] = None) -> TrimState:
        """Measure the model as loaded (PSNR when there is a floor, the file when a size matters) and start."""
        psnr = self.host.training_psnr() if self.schedule.max_psnr_drop is not None else None
        needs_bytes = self.schedule.undo_growing_rounds or self.schedule.target_size_mb is not None
        reference = Measurement(self.host.count, psnr, self.host.file_bytes() if needs_bytes else None)
        self.state = self.schedule.begin(step, reference, steps)
        return self.state

    def advance(self, step: int) -> Optional[RoundReport]:
        """Make the decision due at ``step`` and act on it (None when none is due)."""
        assert self.state is not None, "begin() first"
        if not self.schedule.is_due(self.state, step):
            return None
        psnr = self.host.training_psnr() if self.schedule.needs_quality_check(self.state) else None
        file_bytes = self.host.file_bytes() if self.schedule.needs_file_size(self.state) else None
        measured_count = self.host.count
        decision = self.schedule.decide(self.state, step, Measurement(measured_count, psnr, file_bytes))
        self.state = decision.state
        scoring_seconds = None
        if decision.action == Action.PRUNE:
            started = time.perf_counter()
            scores = self.host.scores()
            scoring_seconds = time.perf_counter() - started
            self.host.remove(removal_mask(scores.values, self.host.count - decision.keep, scores.candidates))
            self.host.settle()
        elif decision.action == Action.ROLLBACK:
            self.host.restore()
            self.host.forget()
            self.host.settle()
        elif decision.action == Action.FINAL:
            self.host.forget()
        elif decision.action == Action.STOP:  # the finished model's file, measured once whatever the schedule checked
            file_bytes, measured_count = self.host.file_bytes(), self.host.count
            self.state = replace(self.state, last_bytes=file_bytes, last_bytes_count=measured_count)
        report = RoundReport(step, decision.action, decision.reason, self.state, self.host.count, measured_count, psnr,
                             file_bytes, scoring_seconds)  # fmt: skip
        self.host.report(report)
        return report
