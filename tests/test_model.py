"""SplatfactoTrimModel and the plugin's loading: design.md traps 1, 2 and 5, camera convention."""

import math
import urllib.error
from pathlib import Path
from typing import Any, Dict

import pytest
import torch
import yaml
from nerfstudio.engine.callbacks import TrainingCallbackLocation
from nerfstudio.models.splatfacto import SplatfactoModel, get_viewmat

from nerfstudio_trim.errors import TrimError
from nerfstudio_trim.nerfstudio.checkpoints import GAUSSIAN_PARAMS, gaussian_state, load_checkpoint
from nerfstudio_trim.nerfstudio.config_yaml import ConfigLoader, load_config
from nerfstudio_trim.nerfstudio.lpips import LazyLPIPS
from nerfstudio_trim.core.raster.render import viewmats_from_camera_to_worlds
from nerfstudio_trim.nerfstudio.model import SplatfactoTrimModel


def truncated_checkpoint(source: Path, target: Path, keep: float) -> int:
    """Keep the first ``keep`` fraction of the Gaussians (parameters and Adam state), as a pruned
    model would have; returns the new count."""
    state = load_checkpoint(source)
    count = int(state["pipeline"]["_model.gauss_params.means"].shape[0] * keep)
    for name in GAUSSIAN_PARAMS:
        key = f"_model.gauss_params.{name}"
        state["pipeline"][key] = state["pipeline"][key][:count].clone()
        for moment in state["optimizers"][name]["state"].values():
            for k in ("exp_avg", "exp_avg_sq"):
                moment[k] = moment[k][:count].clone()
    torch.save(state, target)
    return count


def trainer_from(run_config: Path, checkpoint: Path, output: Path, trim: bool = False, lrs: Dict[str, float] = {},
                 **trim_options: Any):
    """A set-up Trainer that loads ``checkpoint``; by default plain fine-tuning (no trimming). ``lrs``: learning
    rates configured for the run, by parameter group (as ``--optimizers.<group>.optimizer.lr`` sets them);
    ``trim_options``: ``--pipeline.model.trim.*`` values."""
    config = load_config(run_config)
    config.load_checkpoint, config.output_dir = checkpoint, output
    config.pipeline.model.trim.enabled = trim
    for name, value in trim_options.items():
        setattr(config.pipeline.model.trim, name, value)
    for name, lr in lrs.items():
        config.optimizers[name]["optimizer"].lr = lr
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    return trainer


def one_training_step(trainer) -> None:
    """What Trainer.train does for one iteration: callbacks, forward, backward, optimizer step."""
    step = trainer._start_step
    for location in (TrainingCallbackLocation.BEFORE_TRAIN_ITERATION,):
        for callback in trainer.callbacks:
            callback.run_callback_at_location(step, location=location)
    trainer.train_iteration(step)
    for callback in trainer.callbacks:
        callback.run_callback_at_location(step, location=TrainingCallbackLocation.AFTER_TRAIN_ITERATION)


@pytest.fixture
def pruned_checkpoint(trained_run, tmp_path):
    path = tmp_path / "pruned.ckpt"
    return path, truncated_checkpoint(trained_run.checkpoint, path, keep=0.8)


def test_fine_tuning_a_loaded_checkpoint_steps_the_loaded_parameters(trained_run, pruned_checkpoint, tmp_path):
    path, count = pruned_checkpoint
    trainer = trainer_from(trained_run.config, path, tmp_path)
    model = trainer.pipeline.model
    assert model.num_points == count
    loaded = {name: p.detach().clone() for name, p in model.gauss_params.items()}
    one_training_step(trainer)
    for name, param in model.gauss_params.items():
        optimizer = trainer.optimizers.optimizers[name]
        assert optimizer.param_groups[0]["params"][0] is param, f"{name}: optimizer holds another tensor"
        moments = optimizer.state[param]
        assert moments["exp_avg"].shape == param.shape == moments["exp_avg_sq"].shape
    assert model.num_points == count
    changed = [name for name in ("means", "scales", "opacities", "features_dc") if not torch.equal(loaded[name], model.gauss_params[name])]
    assert changed == ["means", "scales", "opacities", "features_dc"]


def test_the_same_step_with_splatfactos_loader_leaves_parameters_untouched(
    trained_run, pruned_checkpoint, tmp_path, monkeypatch
):
    """Control: with nerfstudio 1.1.5's load_state_dict the bug (trap 1) is there, so the test above
    really detects it."""
    monkeypatch.setattr(SplatfactoTrimModel, "load_state_dict", SplatfactoModel.load_state_dict)
    path, _ = pruned_checkpoint
    trainer = trainer_from(trained_run.config, path, tmp_path)
    means = trainer.pipeline.model.gauss_params["means"].detach().clone()
    one_training_step(trainer)
    assert means.shape == trainer.pipeline.model.gauss_params["means"].shape
    assert torch.equal(means, trainer.pipeline.model.gauss_params["means"])


def test_configured_learning_rates_win_over_the_loaded_checkpoints(trained_run, pruned_checkpoint, tmp_path, capsys):
    """nerfstudio restores each optimizer's learning rate (and each scheduler's base rate) from a loaded
    checkpoint; the run's configured ones are put back, a scheduled group keeping its place in the schedule."""
    path, _ = pruned_checkpoint
    saved = load_checkpoint(path)
    restored = {name: state["param_groups"][0]["lr"] for name, state in saved["optimizers"].items()}
    base = saved["schedulers"]["means"]["base_lrs"][0]
    trainer = trainer_from(trained_run.config, path, tmp_path, lrs={"features_rest": 1e-3, "means": 10 * base})
    groups = {name: optimizer.param_groups[0] for name, optimizer in trainer.optimizers.optimizers.items()}
    assert groups["features_rest"]["lr"] == 1e-3 != restored["features_rest"]
    assert groups["means"]["lr"] == pytest.approx(10 * restored["means"], rel=1e-12)
    assert groups["scales"]["lr"] == restored["scales"]  # configured as trained: untouched
    assert "features_rest lr 0.000125 -> 0.001" in capsys.readouterr().out
    one_training_step(trainer)
    scheduler = trainer.optimizers.schedulers["means"]
    assert scheduler.base_lrs == [10 * base]
    assert groups["means"]["lr"] == pytest.approx(10 * base * scheduler.lr_lambdas[0](scheduler.last_epoch), rel=1e-12)


@pytest.mark.parametrize("sh_rest_lr", [1e-3, None])
def test_a_trim_fine_tunes_the_sh_bands_at_its_own_learning_rate(trained_run, pruned_checkpoint, tmp_path, sh_rest_lr):
    """``trim.sh_rest_lr`` sets the higher SH bands' rate of a trim (None: the optimizer's configured one); plain
    fine-tuning of a loaded checkpoint (trimming off) keeps the configured one."""
    path, _ = pruned_checkpoint
    configured = load_config(trained_run.config).optimizers["features_rest"]["optimizer"].lr
    rates = {}
    for trim in (True, False):
        trainer = trainer_from(trained_run.config, path, tmp_path / str(trim), trim=trim, sh_rest_lr=sh_rest_lr)
        rates[trim] = {name: optimizer.param_groups[0]["lr"] for name, optimizer in trainer.optimizers.optimizers.items()}
    assert rates[True]["features_rest"] == (sh_rest_lr or configured)
    assert rates[False]["features_rest"] == configured
    assert {k: v for k, v in rates[True].items() if k != "features_rest"} == {k: v for k, v in rates[False].items() if k != "features_rest"}


def test_without_the_settings_applied_the_checkpoints_learning_rates_stay(trained_run, pruned_checkpoint, tmp_path, monkeypatch):
    """Control: nerfstudio 1.1.5 alone keeps the checkpoint's rate, so the test above detects the trap."""
    monkeypatch.setattr("nerfstudio_trim.nerfstudio.model.apply_configured_settings", lambda optimizers, learning_rates={}: [])
    path, _ = pruned_checkpoint
    restored = load_checkpoint(path)["optimizers"]["features_rest"]["param_groups"][0]["lr"]
    trainer = trainer_from(trained_run.config, path, tmp_path, lrs={"features_rest": 1e-3})
    assert trainer.optimizers.optimizers["features_rest"].param_groups[0]["lr"] == restored != 1e-3


def test_viewmat_matches_splatfacto_convention():
    g = torch.Generator().manual_seed(0)
    rot, _ = torch.linalg.qr(torch.randn(3, 3, 3, generator=g))
    c2w = torch.cat([rot, torch.randn(3, 3, 1, generator=g)], dim=-1)
    reference = getattr(get_viewmat, "_torchdynamo_orig_callable", get_viewmat)
    torch.testing.assert_close(viewmats_from_camera_to_worlds(c2w), reference(c2w))


def test_lazy_lpips_offline_warns_once_and_returns_nan(capsys):
    calls = []

    def offline(**kwargs):
        calls.append(kwargs)
        raise urllib.error.URLError("Name or service not known")

    lpips = LazyLPIPS(factory=offline, normalize=True)
    images = torch.rand(1, 3, 16, 16)
    first, second = lpips(images, images), lpips(images, images)
    assert torch.isnan(first) and torch.isnan(second)
    assert not lpips.available and calls == [{"normalize": True}]
    assert capsys.readouterr().out.count("LPIPS is not available") == 1


def test_lazy_lpips_builds_on_first_use_and_keeps_weights_out_of_the_state():
    class Distance(torch.nn.Module):
        def __init__(self, normalize):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(1))

        def forward(self, a, b):
            return (a - b).abs().mean() * self.weight

    lpips = LazyLPIPS(factory=Distance, normalize=True)
    assert lpips.available
    value = lpips(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4))
    assert float(value) == pytest.approx(1.0)
    assert lpips.state_dict() == {}


def test_checkpoint_loading_is_safe_and_errors_are_clear(tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(TrimError, match="not a readable nerfstudio checkpoint"):
        load_checkpoint(garbage)

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.ckpt"
    torch.save({"pipeline": {"x": Exploit()}}, evil)
    with pytest.raises(TrimError):
        load_checkpoint(evil)
    assert not marker.exists(), "loading must never run code from the file"

    no_pipeline = tmp_path / "weights.ckpt"
    torch.save({"model": torch.zeros(2)}, no_pipeline)
    with pytest.raises(TrimError, match="no 'pipeline' state"):
        load_checkpoint(no_pipeline)
    with pytest.raises(TrimError, match="not a splatfacto checkpoint"):
        gaussian_state({"_model.field.weight": torch.zeros(1)})


def test_legacy_checkpoint_layout_is_accepted():
    state = {f"_model.{name}": torch.zeros(2) for name in GAUSSIAN_PARAMS}
    assert set(gaussian_state(state)) == set(GAUSSIAN_PARAMS)


def test_quantization_aware_forward_renders_exactly_the_stored_values(trained_run, tmp_path):
    from nerfstudio_trim.core.prune.schedule import TrimState
    from nerfstudio_trim.core.quantize.gaussians import quantize_gaussians

    trainer = trainer_from(trained_run.config, trained_run.checkpoint, tmp_path)
    model = trainer.pipeline.model
    plain = model.render_parameters()
    assert all(plain[k] is model.gauss_params[k] for k in GAUSSIAN_PARAMS)  # no quantization before trimming
    model.trimmer.state = TrimState(initial_count=model.num_points)
    codec = model.config.trim.codec
    rendered = model.render_parameters()
    stored = quantize_gaussians(dict(model.gauss_params), codec).dequantize()
    for name in GAUSSIAN_PARAMS:
        assert torch.equal(rendered[name].detach(), stored[name].reshape(rendered[name].shape)), name
    rendered["features_rest"].sum().backward()  # straight through to the parameter
    assert torch.equal(model.gauss_params["features_rest"].grad, torch.ones_like(stored["features_rest"]))
    with torch.no_grad():  # eval renders reuse the quantized values until a parameter changes
        first = model.render_parameters()
        assert model.render_parameters()["means"] is first["means"]
        model.gauss_params["features_rest"].add_(0.5)  # as an optimizer step does, in place
        changed = model.render_parameters()["features_rest"]
    assert torch.equal(changed, quantize_gaussians(dict(model.gauss_params), codec).dequantize()["features_rest"])


def test_score_heat_map_is_rendered_only_when_the_viewer_asks_for_it(trained_run, tmp_path):
    trainer = trainer_from(trained_run.config, trained_run.checkpoint, tmp_path)
    model = trainer.pipeline.model.eval()
    camera = trainer.pipeline.datamanager.train_dataset.cameras[0:1]
    model.trimmer.scores = torch.rand(model.num_points)
    assert "trim_score" not in model.get_outputs_for_camera(camera)  # ns-eval, the viewer by default
    model.viewer_score_heat_map.value = True  # the viewer's checkbox, ticked
    heat = model.get_outputs_for_camera(camera)["trim_score"]
    assert heat.shape == (int(camera.height), int(camera.width), 1)
    assert 0.0 <= float(heat.min()) and float(heat.max()) <= 1.0 and float(heat.max()) > 0
    assert "trim_score" not in model.get_outputs(camera)  # the score pass and training-view PSNR
    model.trimmer.scores = None
    assert "trim_score" not in model.get_outputs_for_camera(camera)  # asked for, but no round yet


@pytest.mark.parametrize("scores", [10.0 ** torch.linspace(-6.0, 2.0, 101), -torch.linspace(1.0, 0.0, 101) * 80])
def test_score_colours_are_ranks_made_once_per_round(scores):
    """Any score's scale and sign (sensitivity is a log det, negative) gives a full-range heat map."""
    from nerfstudio_trim.nerfstudio.trim_config import TrimConfig
    from nerfstudio_trim.nerfstudio.trimming import Trimmer

    trimmer = Trimmer(TrimConfig())
    assert trimmer.score_colours(101) is None  # no round yet
    trimmer.scores = scores  # increasing
    colours = trimmer.score_colours(101)
    torch.testing.assert_close(colours, torch.linspace(0.0, 1.0, 101)[:, None])
    assert trimmer.score_colours(101) is colours  # not recomputed for every frame
    assert trimmer.score_colours(100) is None  # scores of other Gaussians
    trimmer.scores = scores.flip(0)  # the next round
    torch.testing.assert_close(trimmer.score_colours(101), torch.linspace(1.0, 0.0, 101)[:, None])


def test_config_written_before_a_field_existed_still_loads():
    from nerfstudio_trim.nerfstudio.model import SplatfactoTrimModelConfig

    config = SplatfactoTrimModelConfig(sh_degree=2)
    text = yaml.dump(config)
    old = yaml.load(text, Loader=ConfigLoader)
    del old.__dict__["trim"]  # as if written by a version without trimming
    reloaded = yaml.load(yaml.dump(old), Loader=ConfigLoader)
    assert reloaded.sh_degree == 2 and reloaded.trim.enabled and reloaded.trim.prune_fraction == 0.05
    trim = yaml.load(yaml.dump(config.trim), Loader=yaml.Loader)
    trim.__dict__["sh_quantization"] = "channel"  # a field of an older version
    del trim.__dict__["codec"]  # a field the older version did not have
    reloaded = yaml.load(yaml.dump(trim), Loader=yaml.Loader)
    assert "sh_quantization" not in vars(reloaded) and reloaded.codec == type(config.trim.codec)()


def test_trimming_fine_tunes_at_full_resolution(trained_run, tmp_path):
    from nerfstudio_trim.core.prune.schedule import TrimState

    trainer = trainer_from(trained_run.config, trained_run.checkpoint, tmp_path)
    model = trainer.pipeline.model.train()
    model.step = 0
    assert model._get_downscale_factor() == 4  # splatfacto's coarse-to-fine start (2 downscales)
    model.trimmer.state = TrimState(initial_count=model.num_points)
    assert model._get_downscale_factor() == 1


def test_trimmer_render_scores_use_the_models_training_views(trained_run, tmp_path):
    """delta-mse from the Trimmer equals, for a few Gaussians, the increase of the training views' squared
    error when the model renders them without that Gaussian (eval mode); sensitivity gives a Gaussian
    that no view sees the floor, 6 log(damping), and the most important ones far more."""
    from nerfstudio_trim.core.prune.render_scores import SENSITIVITY_DAMPING
    from nerfstudio_trim.nerfstudio.trimming import ModelHost, TrainingViews

    trainer = trainer_from(trained_run.config, trained_run.checkpoint, tmp_path)
    model = trainer.pipeline.model
    views = TrainingViews(trainer.pipeline.datamanager, model.device)
    opacities = model.gauss_params["opacities"]

    def view_error(index: int) -> torch.Tensor:
        """The squared error of one training view as the model renders it (differentiable)."""
        camera, batch = views[index]
        outputs = model.get_outputs(camera)
        target = model.composite_with_background(model.get_gt_img(batch["image"]), outputs["background"])
        return (outputs["rgb"] - target).double().square().sum()

    def squared_error() -> float:
        with torch.no_grad():
            return sum(float(view_error(index)) for index in range(len(views)))

    model.config.trim.score_mode = "delta-mse"
    host = ModelHost(model, model.trimmer, views, pause=lambda: None)
    scores = host.scores().values
    assert scores.shape == (model.num_points,) and model.training
    model.eval()
    full = squared_error()
    important = torch.argsort(scores, descending=True)[:3].tolist()
    for k in important:
        kept = opacities.data[k].clone()
        opacities.data[k] = -1e4  # alpha 0: skipped by the compositing, as if removed
        assert squared_error() - full == pytest.approx(float(scores[k]), rel=1e-3, abs=1e-3)
        opacities.data[k] = kept
    model.train()

    # the first-order form, when asked for: -opacity x the gradient of the views' squared error in the
    # opacity, here from autograd through the model's own renders (eval mode)
    model.config.trim.delta_mse_method = "first-order"
    first_order = host.scores().values
    model.eval()
    opacities.grad = None
    for index in range(len(views)):
        view_error(index).backward()
    model.train()
    alpha = torch.sigmoid(opacities.detach()).flatten()
    expected = -opacities.grad.flatten() / (1 - alpha)  # dL/d(alpha) = dL/d(logit) / (alpha (1 - alpha))
    opacities.grad = None
    assert torch.allclose(first_order, expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()))
    assert not torch.allclose(first_order, scores, rtol=1e-2)  # not the exact change: the two forms differ
    model.config.trim.delta_mse_method = "exact"

    opacities.data[0] = -1e4
    model.config.trim.score_mode = "sensitivity"
    scores = host.scores().values
    assert bool(torch.isfinite(scores).all())
    assert float(scores[0]) == pytest.approx(6 * math.log(SENSITIVITY_DAMPING), rel=1e-5)
    assert float(scores[0]) == float(scores.min())
    assert float(scores[important].min()) > float(scores[0]) + 10


@pytest.mark.parametrize("rate_weight", [0.0, 0.05])
def test_the_rate_term_keeps_fine_tuning_from_raising_bytes_per_gaussian(trained_run, tmp_path, rate_weight):
    """The loaded model's higher SH bands are zero (a short training before SH degree 1); fine-tuned with all
    bands active they grow, and the file with them. With the rate term they stay where they cost nothing."""
    import io

    from nerfstudio_trim.core.codec import format2
    from nerfstudio_trim.core.codec.container import Limits, open_container
    from nerfstudio_trim.core.codec.nstrim import encode
    from nerfstudio_trim.core.prune.schedule import TrimState
    from nerfstudio_trim.nerfstudio.export import model_scene

    trainer = trainer_from(trained_run.config, trained_run.checkpoint, tmp_path)
    model = trainer.pipeline.model
    model.config.sh_degree_interval = 1  # every band trains
    model.config.trim.rate_weight = rate_weight
    model.config.trim.sh_compaction_tolerance = None
    model.trimmer.state = TrimState(initial_count=model.num_points)  # trimming: quantization-aware, the rate term

    def sizes():
        """(file bytes, bytes of the higher SH bands) of the file the model exports now."""
        data = encode(model_scene(model, trainer.pipeline.datamanager.train_dataparser_outputs, step=None))
        opened = open_container(io.BytesIO(data), len(data), Limits())
        rows = format2.attribute_rows(format2.check_header(opened.header_bytes, opened.payload_size, Limits()))
        return len(data), dict((name, stored) for name, _, stored in rows)["features_rest"]

    (before, rest_before), count = sizes(), model.num_points
    for _ in range(20):
        one_training_step(trainer)
        trainer._start_step += 1
    (after, rest_after) = sizes()
    assert model.num_points == count
    if rate_weight == 0:
        assert after > before * 1.1 and rest_after > 10 * rest_before  # the control: the bands grow and cost
    else:
        assert rest_after <= rest_before * 1.5 + 64  # a few codes at most: the bands cost nothing
        assert after <= before * 1.02  # what is left: this 30-step model's scales still spread when fine-tuned


def test_a_rolled_back_round_keeps_its_scores_and_sh_degrees_and_the_viewer_follows(trained_run, tmp_path):
    """What follows the Gaussians through a round and its rollback: scores (the heat map), SH degrees; and the
    viewer's fields after the report."""
    from nerfstudio_trim.core.prune.run import RoundReport
    from nerfstudio_trim.core.prune.schedule import Action, TrimState
    from nerfstudio_trim.core.prune.scores import removal_mask
    from nerfstudio_trim.nerfstudio.trimming import ModelHost, TrainingViews

    trainer = trainer_from(trained_run.config, trained_run.checkpoint, tmp_path)
    model = trainer.pipeline.model
    model.optimizers = trainer.optimizers.optimizers  # what splatfacto's step callback sets before a trim step
    trimmer, count = model.trimmer, model.num_points
    trimmer.state = TrimState(initial_count=count, last_bytes=123_456, last_bytes_count=count)
    host = ModelHost(model, trimmer, TrainingViews(trainer.pipeline.datamanager, model.device), pause=lambda: None)
    model.config.trim.score_mode = "opacity"
    scores = host.scores().values
    trimmer.sh_degrees = torch.arange(count) % 4
    mask = removal_mask(scores, count // 10)
    host.remove(mask)
    assert model.num_points == trimmer.scores.shape[0] == trimmer.sh_degrees.shape[0] == count - count // 10
    assert torch.equal(trimmer.scores, scores[~mask]) and trimmer.score_colours(model.num_points) is not None
    model.show_trim_progress()  # pruned, not measured since: per Gaussian of the file that was measured
    assert model.viewer_gaussians.value == count - count // 10
    assert model.viewer_file.value == f"0.123 MB ({123_456 / count:.1f} bytes per Gaussian)"
    host.restore()
    assert model.num_points == count and torch.equal(trimmer.scores, torch.cat([scores[~mask], scores[mask]]))
    assert torch.equal(trimmer.sh_degrees, torch.cat([(torch.arange(count) % 4)[~mask], (torch.arange(count) % 4)[mask]]))
    assert trimmer.score_colours(count) is not None  # the heat map is still offered after a rollback
    host.report(RoundReport(10, Action.ROLLBACK, "test", trimmer.state, count, count, None, None, None))
    assert model.viewer_gaussians.value == count
    assert model.viewer_file.value == f"0.123 MB ({123_456 / count:.1f} bytes per Gaussian)"  # decimals, as text


def test_the_quality_floor_is_measured_on_the_values_the_file_stores(trained_run, tmp_path):
    """The run's reference PSNR is that of the quantized model (what the file decodes to), not the float one,
    so the codec's own cost does not count against the allowed drop."""
    from nerfstudio_trim.core.prune.schedule import TrimState
    from nerfstudio_trim.nerfstudio.trimming import ModelHost, TrainingViews

    trainer = trainer_from(trained_run.config, trained_run.checkpoint, tmp_path, trim=True)
    model = trainer.pipeline.model
    trim = model.config.trim
    trim.max_psnr_drop, trim.prune_fraction, trim.steps_per_round, trim.final_steps = 0.3, 0.1, 4, 4
    trainer.config.max_num_iterations = trainer._start_step + 100
    views = TrainingViews(trainer.pipeline.datamanager, model.device)
    host = ModelHost(model, model.trimmer, views, pause=lambda: None)
    as_trained = host.training_psnr()
    model.trimmer.state = TrimState(initial_count=model.num_points)
    as_stored = host.training_psnr()
    model.trimmer.state = None
    assert as_stored != as_trained
    one_training_step(trainer)  # the trim's first step: measures the reference, then prunes
    assert model.trimmer.state.reference_psnr == as_stored
