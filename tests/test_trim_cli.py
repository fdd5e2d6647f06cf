"""ns-train splatfacto-trim --load-checkpoint: a whole trim run, resuming mid-trim, bad input."""

from pathlib import Path

import pytest
import torch

from nerfstudio_trim.core.prune.schedule import TrimState
from nerfstudio_trim.nerfstudio.checkpoints import gaussian_state, load_checkpoint
from tests.conftest import SCHEDULE, trim
from tests.test_plugin_cli import assert_clean_failure, bad_run

pytestmark = pytest.mark.slow


def summary(checkpoint: Path):
    pipeline = load_checkpoint(checkpoint)["pipeline"]
    extra = pipeline["_model._extra_state"]
    state = TrimState.from_dict(extra["trim_state"]) if extra["trim_state"] else None
    return gaussian_state(pipeline)["means"].shape[0], state


def expected_count(initial: int) -> int:
    count, target = initial, SCHEDULE.count_target(initial)
    while count > target:
        count = SCHEDULE.count_after_round(count, target)
    return count


def test_trim_run_removes_the_scheduled_fraction_within_the_quality_floor(trained_run, trim_run):
    initial, _ = summary(trained_run.checkpoint)
    count, state = summary(trim_run.checkpoints[-1])
    assert count == expected_count(initial) < initial
    assert state.phase == "done" and state.initial_count == initial
    assert state.rounds == SCHEDULE.rounds_to_target(initial)
    assert state.last_psnr >= state.reference_psnr - 0.1
    assert "prune (round 1)" in trim_run.log and "stop" in trim_run.log
    # the run ended by itself: rounds x steps + final steps after the loaded step, not 30,000 steps
    step = load_checkpoint(trim_run.checkpoints[-1])["step"]
    loaded_step = load_checkpoint(trained_run.checkpoint)["step"]
    assert step - loaded_step <= state.rounds * 4 + 4 + 2


def test_resuming_mid_trim_reaches_the_same_count(tiny_scene, trim_run, tmp_path):
    middle = next(c for c in trim_run.checkpoints if (s := summary(c)[1]) is not None and s.phase == "prune" and s.rounds == 1)
    count_then, state_then = summary(middle)
    resumed = trim(tiny_scene, middle, tmp_path / "outputs")
    count, state = summary(resumed.checkpoints[-1])
    assert count == summary(trim_run.checkpoints[-1])[0]
    assert state.phase == "done" and state.initial_count == state_then.initial_count
    assert state.reference_psnr == state_then.reference_psnr  # not re-measured on the pruned model
    assert "Gaussians loaded" not in resumed.log


def test_target_already_met(tiny_scene, trained_run, tmp_path):
    result, out = bad_run(tmp_path, tiny_scene, "--load-checkpoint", str(trained_run.checkpoint),
                          "--pipeline.model.trim.target-count", "100000000")  # fmt: skip
    assert_clean_failure(result, out, "already met")


def test_unreachable_target(tiny_scene, trained_run, tmp_path):
    result, out = bad_run(tmp_path, tiny_scene, "--load-checkpoint", str(trained_run.checkpoint),
                          "--pipeline.model.trim.target-count", "1", "--pipeline.model.trim.max-rounds", "3")  # fmt: skip
    assert_clean_failure(result, out, "more than max rounds")


@pytest.mark.parametrize("value", ["0", "-1e-3", "nan"])
def test_a_learning_rate_that_is_not_positive_is_refused(tiny_scene, trained_run, tmp_path, value):
    result, out = bad_run(tmp_path, tiny_scene, "--load-checkpoint", str(trained_run.checkpoint),
                          "--pipeline.model.trim.sh-rest-lr", value)  # fmt: skip
    assert_clean_failure(result, out, "sh-rest-lr must be a positive learning rate")


def test_nan_parameters(tiny_scene, trained_run, tmp_path):
    state = load_checkpoint(trained_run.checkpoint)
    before = trained_run.checkpoint.read_bytes()
    state["pipeline"]["_model.gauss_params.opacities"] = state["pipeline"]["_model.gauss_params.opacities"].clone()
    state["pipeline"]["_model.gauss_params.opacities"][3] = float("nan")
    broken = tmp_path / "nan.ckpt"
    torch.save(state, broken)
    result, out = bad_run(tmp_path, tiny_scene, "--load-checkpoint", str(broken))
    assert_clean_failure(result, out, "non-finite values (NaN or inf) in its Gaussians' opacities")
    assert trained_run.checkpoint.read_bytes() == before


def test_a_finished_run_shows_its_gaussians_file_and_heat_map_when_loaded(trim_run):
    """As ns-viewer --load-config loads it: the viewer's trim fields and the heat map come back with the run."""
    from nerfstudio_trim.nerfstudio.export import load_run, read_run_config

    pipeline, _ = load_run(read_run_config(trim_run.config))
    model = pipeline.model
    state = model.trimmer.state
    assert state.phase == "done" and state.last_bytes is not None
    assert model.viewer_gaussians.value == model.num_points
    assert model.viewer_file.value.startswith(f"{state.last_bytes / 1e6:.3f} MB")
    model.viewer_score_heat_map.value = True
    camera = pipeline.datamanager.train_dataset.cameras[0:1]
    assert model.get_outputs_for_camera(camera)["trim_score"].shape[-1] == 1
