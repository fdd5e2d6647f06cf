"""The trimming schedule and the pruning loop: exact counts, each stop criterion, rollbacks on the quality floor
and on a file that grew, the step budget, bad schedules; the loop driven as ns-train and ns-trim compress do."""

from typing import List, Optional

import pytest
import torch

from nerfstudio_trim.core.prune.run import PruningRun, RoundReport, Scores
from nerfstudio_trim.core.prune.schedule import Action, Measurement, TrimSchedule, TrimState
from nerfstudio_trim.errors import TrimError


class FakeHost:
    """Gaussians as a list of importances; PSNR and file size as functions of the round and the count."""

    def __init__(self, count: int, psnr=lambda rounds, count: 30.0, size=lambda rounds, count: 40 * count):
        self.values = torch.arange(count, dtype=torch.float32)
        self.removed: Optional[torch.Tensor] = None
        self.psnr, self.size, self.rounds = psnr, size, 0
        self.reports: List[RoundReport] = []
        self.settled = 0

    @property
    def count(self) -> int:
        return int(self.values.numel())

    def scores(self) -> Scores:
        return Scores(self.values)

    def remove(self, mask):
        self.removed, self.values = self.values[mask], self.values[~mask]
        self.rounds += 1

    def restore(self):
        self.values, self.removed = torch.cat([self.values, self.removed]), None

    def forget(self):
        self.removed = None

    def settle(self):
        self.settled += 1

    def training_psnr(self) -> float:
        return self.psnr(self.rounds, self.count)

    def file_bytes(self) -> int:
        return self.size(self.rounds, self.count)

    def report(self, report):
        self.reports.append(report)


def drive(schedule: TrimSchedule, host: FakeHost, steps: Optional[int] = None):
    """Drive a run as ns-train does (a decision when due); returns the actions, the counts and the last step."""
    run = PruningRun(schedule, host)
    run.begin(0, steps)
    counts, step = [host.count], 0
    while not run.done:
        assert run.advance(run.state.next_step - 1) is None or run.state.next_step == 0
        step = run.state.next_step
        run.advance(step)
        counts.append(host.count)
    return [r.action for r in host.reports], counts, step


def test_seed_defaults_remove_five_percent_per_round_exactly():
    host = FakeHost(1000)
    actions, counts, step = drive(TrimSchedule(target_count=800), host)
    assert counts[:6] == [1000, 950, 902, 857, 814, 800]  # 5% of the current count, rounded; capped
    assert actions == [Action.PRUNE] * 5 + [Action.FINAL, Action.STOP]
    assert step == 5 * 1000 + 5000
    assert host.values.min() == 200  # the lowest scores went
    assert host.settled == 5 and host.removed is None  # settled after each removal; forgotten at the end


def test_fraction_and_size_targets_stop_at_the_first_one_reached():
    assert TrimSchedule(target_fraction=0.5).count_target(1000) == 500
    assert TrimSchedule(target_size_mb=0.02).count_target(1000, bytes_per_gaussian=40) == 500
    _, counts, _ = drive(TrimSchedule(target_fraction=0.5, target_count=700), FakeHost(1000))
    assert counts[-1] == 700
    host = FakeHost(1000, size=lambda rounds, count: 40 * count)  # a file of 40 kB now; target 30 kB
    actions, counts, _ = drive(TrimSchedule(target_size_mb=0.03, max_psnr_drop=None, prune_fraction=0.1), host)
    assert counts[-1] == 750 and host.reports[-2].reason == "the file is at most 0.03 MB"


def test_quality_floor_rolls_back_the_failing_round():
    schedule = TrimSchedule(prune_fraction=0.1, max_psnr_drop=0.1, steps_per_round=10, final_steps=20)
    host = FakeHost(1000, psnr=lambda rounds, count: 30.0 - 0.04 * rounds)  # rounds 1, 2 pass; round 3 fails
    actions, counts, step = drive(schedule, host)
    assert actions == [Action.PRUNE, Action.PRUNE, Action.PRUNE, Action.ROLLBACK, Action.STOP]
    assert counts == [1000, 900, 810, 729, 810, 810]
    assert step == 3 * 10 + 20 and "PSNR 29.88 dB" in host.reports[3].reason


def test_a_round_that_grows_the_file_is_rolled_back():
    """Fine-tuning may raise bytes per Gaussian: a round after which the file is bigger is undone."""
    sizes = {0: 40_000, 1: 39_000, 2: 39_500}
    host = FakeHost(1000, size=lambda rounds, count: sizes[rounds])
    actions, counts, _ = drive(TrimSchedule(prune_fraction=0.1, target_fraction=0.5, max_psnr_drop=None), host)
    assert actions == [Action.PRUNE, Action.PRUNE, Action.ROLLBACK, Action.STOP] and counts[-1] == 900
    assert host.reports[2].reason == "the file grew to 39,500 bytes from 39,000"
    keeping = FakeHost(1000, size=lambda rounds, count: sizes.get(rounds, 39_500))
    schedule = TrimSchedule(prune_fraction=0.1, target_fraction=0.5, max_psnr_drop=None, undo_growing_rounds=False)
    assert drive(schedule, keeping)[1][-1] == 500


def test_the_step_budget_ends_pruning_in_time_for_the_final_fine_tune():
    schedule = TrimSchedule(target_count=100, steps_per_round=100, final_steps=300)
    actions, counts, step = drive(schedule, FakeHost(1000), steps=1000)
    assert actions[-2:] == [Action.FINAL, Action.STOP] and step < 1000  # the last decision within the budget
    assert actions.count(Action.PRUNE) == schedule.rounds_within(1000) == 6
    with pytest.raises(TrimError, match="leaves no room for the final fine-tune"):
        schedule.validate(1000, steps=300)


def test_training_free_loop_as_compress_drives_it():
    schedule = TrimSchedule(prune_fraction=0.2, steps_per_round=0, final_steps=0, target_fraction=0.3)
    host = FakeHost(1000)
    run = PruningRun(schedule, host)
    run.begin(0)
    step = 0
    while not run.done:
        run.advance(step)
        step += 1
    assert host.count == 300 and [r.action for r in host.reports][-2:] == [Action.FINAL, Action.STOP]


def test_the_finished_file_is_measured_once_at_the_end_whatever_the_schedule_checked():
    """Without a size target or growth check nothing measures the file on the way; the run's last state still
    holds the finished model's file (a finished run's checkpoint shows it), with the count it was measured at."""
    schedule = TrimSchedule(prune_fraction=0.1, target_fraction=0.8, max_psnr_drop=None, undo_growing_rounds=False)
    host = FakeHost(1000, size=lambda rounds, count: 40 * count + rounds)
    drive(schedule, host)
    assert all(r.file_bytes is None for r in host.reports[:-1])
    stop = host.reports[-1]
    assert stop.action == Action.STOP and stop.file_bytes == 40 * 800 + 3 and stop.measured_count == 800
    assert (stop.state.last_bytes, stop.state.last_bytes_count) == (40 * 800 + 3, 800)


def test_decisions_need_what_the_schedule_asks_for():
    schedule = TrimSchedule(target_fraction=0.5)
    state = schedule.begin(100, Measurement(1000, 25.0, 40_000))
    assert not schedule.needs_quality_check(state) and not schedule.needs_file_size(state)
    state = schedule.decide(state, 100, Measurement(1000)).state
    assert schedule.needs_quality_check(state) and schedule.needs_file_size(state) and state.next_step == 1100
    with pytest.raises(ValueError):
        schedule.decide(state, 1100, Measurement(950, file_bytes=38_000))
    no_checks = TrimSchedule(target_fraction=0.5, max_psnr_drop=None, undo_growing_rounds=False)
    assert not no_checks.needs_quality_check(state) and not no_checks.needs_file_size(state)


def test_state_round_trips_through_a_checkpoint_dict_also_from_an_older_version():
    state = TrimState(phase="final", rounds=7, initial_count=12345, reference_psnr=27.5, next_step=42, last_psnr=27.45,
                      reference_bytes=500_000, last_bytes=400_000, end_step=9000, stop_reason="x")  # fmt: skip
    assert TrimState.from_dict(state.to_dict()) == state
    older = {k: v for k, v in state.to_dict().items() if k not in ("reference_bytes", "last_bytes", "end_step", "stop_reason")}
    assert TrimState.from_dict(older).rounds == 7 and TrimState.from_dict(older).last_bytes is None


def test_planned_rounds_bound_the_run():
    schedule = TrimSchedule(target_count=800)
    assert schedule.planned_rounds(1000) == 5 and schedule.max_steps(5) == 5 * 1000 + 5000 + 1
    assert TrimSchedule(max_rounds=30).planned_rounds(1000) == 30  # only a PSNR floor: bounded by max rounds


def rounds_by_hand(count, target, fraction):
    rounds = 0
    while count > target:
        count, rounds = max(target, count - max(1, int(count * fraction + 0.5))), rounds + 1
    return rounds


@pytest.mark.parametrize(
    "schedule, message",
    [
        (TrimSchedule(target_count=2000), "already met"),
        (TrimSchedule(target_fraction=1.0), "already met"),
        (TrimSchedule(target_fraction=0.01, max_rounds=20), f"needs {rounds_by_hand(1000, 10, 0.05)} rounds"),
        (TrimSchedule(max_psnr_drop=None), "no stopping criterion"),
        (TrimSchedule(prune_fraction=0.0, target_count=10), "prune fraction"),
        (TrimSchedule(target_size_mb=0.0), "target size must be positive"),
    ],
)
def test_schedules_that_cannot_work_are_refused(schedule, message):
    with pytest.raises(TrimError, match=message):
        schedule.begin(0, Measurement(1000, 30.0, 40_000))


def test_a_size_target_the_loaded_file_meets_is_refused():
    with pytest.raises(TrimError, match="already met by the loaded model's file"):
        TrimSchedule(target_size_mb=0.05).begin(0, Measurement(1000, 30.0, 40_000))
