"""The trimming schedule: exact counts, each stop criterion, the quality-floor rollback, bad schedules."""

import pytest

from nerfstudio_trim.core.prune.schedule import Action, TrimSchedule, TrimState
from nerfstudio_trim.errors import TrimError


def run(schedule: TrimSchedule, count: int, psnr_after_round=lambda r: 30.0, reference=30.0):
    """Drive a schedule as the model does; returns the actions, the counts and the final step."""
    state, step, actions, counts = schedule.begin(0, count, reference), 0, [], [count]
    while state.phase != "done":
        assert schedule.is_due(state, state.next_step) and not schedule.is_due(state, state.next_step - 1)
        step = state.next_step
        psnr = psnr_after_round(state.rounds) if schedule.needs_quality_check(state) else None
        action, keep, state = schedule.decide(state, step, count, psnr)
        actions.append(action)
        count = keep
        counts.append(count)
    return actions, counts, step


def test_seed_defaults_remove_five_percent_per_round_exactly():
    schedule = TrimSchedule(target_count=800)
    actions, counts, step = run(schedule, 1000)
    assert counts[:6] == [1000, 950, 902, 857, 814, 800]  # 5% of the current count, rounded; capped
    assert actions == [Action.PRUNE] * 5 + [Action.FINAL, Action.STOP]
    assert step == 5 * 1000 + 5000


def test_fraction_and_size_targets_stop_at_the_first_one_reached():
    assert TrimSchedule(target_fraction=0.5).count_target(1000) == 500
    assert TrimSchedule(target_size_mb=0.02, bytes_per_gaussian=40).count_target(1000) == 500
    both = TrimSchedule(target_fraction=0.5, target_count=700)
    _, counts, _ = run(both, 1000)
    assert counts[-1] == 700


def test_quality_floor_rolls_back_the_failing_round():
    schedule = TrimSchedule(prune_fraction=0.1, max_psnr_drop=0.1, steps_per_round=10, final_steps=20)
    # PSNR falls by 0.04 dB per round: rounds 1 and 2 pass, round 3 (0.12 dB) fails.
    actions, counts, step = run(schedule, 1000, psnr_after_round=lambda r: 30.0 - 0.04 * r)
    assert actions == [Action.PRUNE, Action.PRUNE, Action.PRUNE, Action.ROLLBACK, Action.STOP]
    assert counts[:4] == [1000, 900, 810, 729]
    assert step == 3 * 10 + 20


def test_quality_check_needs_psnr_only_after_a_round():
    schedule = TrimSchedule(target_fraction=0.5)
    state = schedule.begin(100, 1000, 25.0)
    assert not schedule.needs_quality_check(state)
    _, _, state = schedule.decide(state, 100, 1000)
    assert schedule.needs_quality_check(state) and state.next_step == 1100
    with pytest.raises(ValueError):
        schedule.decide(state, 1100, 950)
    no_floor = TrimSchedule(target_fraction=0.5, max_psnr_drop=None)
    assert not no_floor.needs_quality_check(state)


def test_state_round_trips_through_a_checkpoint_dict():
    state = TrimState(phase="final", rounds=7, initial_count=12345, reference_psnr=27.5, next_step=42, last_psnr=27.45)
    assert TrimState.from_dict(state.to_dict()) == state


def test_max_steps_bounds_the_run():
    schedule = TrimSchedule(target_count=800)
    _, _, step = run(schedule, 1000)
    assert step < schedule.max_steps(1000)


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
    ],
)
def test_schedules_that_cannot_work_are_refused(schedule, message):
    with pytest.raises(TrimError, match=message):
        schedule.begin(0, 1000, 30.0)


def test_trim_run_length_bound_covers_rules_that_remove_less_than_the_fraction():
    from nerfstudio_trim.nerfstudio.trim_config import TrimConfig
    from nerfstudio_trim.nerfstudio.trimming import Trimmer

    ranked = Trimmer(TrimConfig(target_fraction=0.5, prune_fraction=0.2, steps_per_round=100, final_steps=200))
    assert ranked.remaining_steps(0, 1000) == (4 + 1) * 100 + 200 + 1  # 4 rounds of 20% reach 50%
    quantile = Trimmer(TrimConfig(target_fraction=0.5, prune_fraction=0.2, steps_per_round=100, final_steps=200,
                                  score_mode="opacity-grad-quantile", max_rounds=30))  # fmt: skip
    assert quantile.remaining_steps(0, 1000) >= 30 * 100 + 200
