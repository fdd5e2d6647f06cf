"""SceneHost: the pruning loop without training over a scene held as tensors (ns-trim compress's host): count and
size targets met, a PSNR floor that rolls back, removal and restoration of parameters and SH degrees, the
view-free rule."""

import math

import pytest
import torch

from nerfstudio_trim.core.codec.nstrim import decode, encode
from nerfstudio_trim.core.prune.render_scores import ScoringView
from nerfstudio_trim.core.prune.run import PruningRun
from nerfstudio_trim.core.prune.scene_host import SceneHost, opacity_volume_scores, view_fit
from nerfstudio_trim.core.prune.schedule import Action, TrimSchedule
from nerfstudio_trim.core.quantize.gaussians import quantize_gaussians
from nerfstudio_trim.core.scene import SplatScene

W, H, FOCAL = 24, 18, 20.0


def scene_params(count: int = 40, degree: int = 1, seed: int = 0) -> dict:
    """``count`` Gaussians of varied size and opacity in front of the cameras, with view-dependent colours."""
    gen = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    return {
        "means": torch.stack([1.6 * rand(count) - 0.8, 1.2 * rand(count) - 0.6, 3 + 2 * rand(count)], -1),
        "scales": torch.log(0.05 + 0.3 * rand(count, 3)),
        "quats": torch.randn(count, 4, generator=gen),
        "opacities": 6 * rand(count, 1) - 3,
        "features_dc": torch.randn(count, 3, generator=gen),
        "features_rest": 0.3 * torch.randn(count, (degree + 1) ** 2 - 1, 3, generator=gen),
    }


def views_of(params: dict) -> list:
    """Three views of the scene itself (their images are its renders), from slightly different places."""
    K = torch.tensor([[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1]])
    background = torch.tensor([0.1, 0.2, 0.3])
    views = []
    for shift, angle in ((0.0, 0.0), (0.3, 0.1), (-0.3, -0.1)):
        viewmat = torch.eye(4)
        c, s = math.cos(angle), math.sin(angle)
        viewmat[:3, :3] = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        viewmat[0, 3] = shift
        views.append(ScoringView(viewmat, K, W, H, image=torch.zeros(H, W, 3), background=background))
    images = [view_image(params, view) for view in views]
    return [ScoringView(v.viewmat, v.K, v.width, v.height, image, v.background) for v, image in zip(views, images)]


def view_image(params: dict, view: ScoringView) -> torch.Tensor:
    from nerfstudio_trim.core.raster.render import over_background, rasterize_parameters

    colours, alpha, _ = rasterize_parameters(params, view.viewmat[None], view.K[None], W, H, 1)
    return over_background(colours[0], alpha[0], view.background)


def template(params: dict) -> SplatScene:
    return SplatScene(quantize_gaussians(params), 1, background=(0.1, 0.2, 0.3), source={"method": "test"})


def compress(schedule: TrimSchedule, host: SceneHost) -> list:
    """Drive the loop as ns-trim compress does; returns the actions."""
    run = PruningRun(schedule, host)
    run.begin(0)
    actions = []
    while not run.done:
        actions.append(run.advance(0).action)
    return actions


def schedule(**targets) -> TrimSchedule:
    return TrimSchedule(prune_fraction=0.25, steps_per_round=0, final_steps=0, **targets)


def test_the_loop_meets_a_count_target():
    params = scene_params()
    reports = []
    host = SceneHost(params, template(params), views_of(params), on_report=reports.append)
    actions = compress(schedule(target_count=20, max_psnr_drop=None), host)
    assert host.count == 20 and actions[-2:] == [Action.FINAL, Action.STOP]
    assert [r.count for r in reports if r.action == Action.PRUNE] == [30, 22, 20]
    decoded = decode(encode(host.scene()))
    assert decoded.gaussians.count == 20 and decoded.source == {"method": "test"}
    assert decoded.background == (0.1, 0.2, 0.3)
    assert host.sh_degrees.shape == (20,)


def test_the_loop_meets_a_size_target_measured_exactly():
    params = scene_params()
    probe = SceneHost(params, template(params), views_of(params))
    full = probe.file_bytes()
    target = (full + probe.file_bytes(torch.arange(40) < 15)) / 2 / 1e6  # between 40 and 15 Gaussians' files
    host = SceneHost(params, template(params), views_of(params))
    compress(schedule(target_size_mb=target, max_psnr_drop=None), host)
    assert host.file_bytes() <= target * 1e6 < full
    assert len(encode(host.scene())) == host.file_bytes()
    assert 15 <= host.count < 40


def test_a_psnr_floor_rolls_the_round_back():
    params = scene_params()
    views = views_of(params)
    reports = []
    host = SceneHost(params, template(params), views, on_report=reports.append, sh_compaction_tolerance=None)
    before = host.training_psnr()
    actions = compress(schedule(target_count=10, max_psnr_drop=0.01), host)
    assert actions == [Action.PRUNE, Action.ROLLBACK, Action.STOP]
    assert reports[1].psnr < before - 0.01  # the round broke the floor
    assert host.count == 40 and host.training_psnr() == pytest.approx(before, abs=0.01)  # rendered in another order
    # the same Gaussians are back (in another order)
    order = lambda values: values[torch.argsort(values[:, 0])]  # noqa: E731
    assert torch.equal(order(host.params["means"]), order(params["means"]))


def test_removal_and_restoration_keep_sh_degrees_with_their_gaussians():
    params = scene_params(count=6, degree=3)
    degrees = torch.tensor([0, 1, 2, 3, 1, 0])
    host = SceneHost(params, template(params), (), score_mode="opacity", sh_degrees=degrees)
    mask = torch.tensor([True, False, False, True, False, False])
    host.remove(mask)
    assert host.count == 4 and host.sh_degrees.tolist() == [1, 2, 1, 0]
    assert torch.equal(host.params["means"], params["means"][~mask])
    # the file stores zeros above each Gaussian's degree
    stored = host.file_parameters()["features_rest"]
    assert torch.equal(stored[3], torch.zeros(15, 3)) and torch.equal(stored[0, 3:], torch.zeros(12, 3))
    host.restore()
    host.forget()
    assert host.count == 6 and host.sh_degrees.tolist() == [1, 2, 1, 0, 0, 3] and host.removed is None


def test_the_view_free_rule_removes_faint_small_gaussians_first():
    params = scene_params(count=4)
    params["opacities"] = torch.tensor([[2.0], [-3.0], [2.0], [-3.0]])
    params["scales"] = torch.log(torch.tensor([[0.3] * 3, [0.3] * 3, [0.01] * 3, [0.01] * 3]))
    scores = opacity_volume_scores(params)
    assert torch.argsort(scores).tolist() == [3, 2, 1, 0]  # the volume outweighs the opacity here
    host = SceneHost(params, template(params), (), score_mode="opacity-volume")
    compress(schedule(target_count=3, max_psnr_drop=None), host)
    assert torch.equal(host.params["means"], params["means"][:3])
    with pytest.raises(ValueError, match="renders the training views"):
        SceneHost(params, template(params), ())  # delta-mse needs views


def test_view_fit_tells_a_scene_in_place_from_one_moved_away():
    params = scene_params()
    views = views_of(params)
    fit = view_fit(params, views)
    assert fit.psnr > 50 and fit.coverage > 0.1 and fit.correlation > 0.99
    moved = {**params, "means": params["means"] + torch.tensor([100.0, 0.0, 0.0])}
    away = view_fit(moved, views)
    assert away.coverage == 0.0 and abs(away.correlation) < 1e-3 and away.psnr < 25


def test_abs_delta_mse_ranks_by_the_size_of_the_error_change_either_way():
    params = scene_params()
    views = views_of(scene_params(seed=1))  # images of another scene: some removals alone lower the error
    signed = SceneHost(params, template(params), views, score_mode="delta-mse").scores().values
    magnitude = SceneHost(params, template(params), views, score_mode="abs-delta-mse").scores().values
    assert bool((signed < 0).any()) and bool((signed > 0).any())
    assert torch.equal(magnitude, signed.abs())
