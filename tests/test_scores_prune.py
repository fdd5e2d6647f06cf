"""Scores on hand-made scenes, the quantile rule by hand, and pruning that keeps optimizer state aligned."""

import pytest
import torch

from nerfstudio_trim.core.raster.cpu_raster import rasterization
from nerfstudio_trim.core.prune.removal import append_gaussians, remove_gaussians
from nerfstudio_trim.core.prune.scores import (
    accumulate_scores,
    gamma_per_round,
    quantile_candidates,
    removal_mask,
)

W, H = 32, 24


def hidden_and_outside_scene():
    """0: large opaque front Gaussian; 1: small one fully behind it; 2: behind the cameras;
    3-5: visible Gaussians around the front one."""
    means = torch.tensor(
        [[0.0, 0.0, 3.0], [0.0, 0.0, 5.0], [0.0, 0.0, -4.0], [0.9, 0.5, 4.0], [-0.9, -0.4, 4.0], [0.8, -0.5, 3.5]]
    )
    log_scales = torch.log(torch.tensor([0.6, 0.05, 0.3, 0.2, 0.25, 0.2]))[:, None].repeat(1, 3)
    params = {
        "means": means,
        "scales": log_scales,
        "quats": torch.tensor([[1.0, 0, 0, 0]]).repeat(6, 1),
        "opacities": torch.logit(torch.tensor([0.9999, 0.95, 0.9, 0.8, 0.7, 0.9]))[:, None],
        "features_dc": torch.rand(6, 3, generator=torch.Generator().manual_seed(0)),
    }
    return {k: v.clone().requires_grad_(True) for k, v in params.items()}


def views():
    viewmats = torch.eye(4)[None].repeat(2, 1, 1)
    viewmats[1, 0, 3] = 0.05  # a second, slightly shifted camera
    Ks = torch.tensor([[[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]]]).repeat(2, 1, 1)
    return viewmats, Ks


@pytest.mark.parametrize("mode", ["grad-norm", "abs-grad"])
def test_hidden_and_out_of_frustum_gaussians_score_lowest(mode):
    params = hidden_and_outside_scene()
    viewmats, Ks = views()
    targets = torch.rand(2, H, W, 3, generator=torch.Generator().manual_seed(1))

    def view_loss(i):
        colours, _, _ = rasterization(
            params["means"], params["quats"], torch.exp(params["scales"]),
            torch.sigmoid(params["opacities"]).squeeze(-1), torch.sigmoid(params["features_dc"]),
            viewmats[i : i + 1], Ks[i : i + 1], W, H,
        )  # fmt: skip
        return (colours[0] - targets[i]).abs().mean()

    seen = []
    scores = accumulate_scores(params, view_loss, 2, mode=mode, on_view=seen.append)
    assert seen == [0, 1]
    assert float(scores[2]) == 0.0  # outside every frustum
    visible = scores[[0, 3, 4, 5]]
    assert float(scores[1]) < 0.01 * float(visible.min())  # hidden: at most a trace through T = 1e-3
    assert set(torch.argsort(scores)[:2].tolist()) == {1, 2}


def test_grad_norm_sums_before_the_norm_and_abs_grad_does_not():
    x = torch.zeros(3, 2, requires_grad=True)
    signs = [torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]), torch.tensor([[-1.0, -1.0], [1.0, 0.0], [0.0, 0.0]])]
    loss = lambda i: (x * signs[i]).sum()  # noqa: E731
    summed = accumulate_scores({"x": x}, loss, 2, mode="grad-norm")
    per_view = accumulate_scores({"x": x}, loss, 2, mode="abs-grad")
    torch.testing.assert_close(summed, torch.tensor([0.0, 2.0, 0.0]))  # view gradients cancel
    torch.testing.assert_close(per_view, torch.tensor([2 * 2**0.5, 2.0, 0.0]))


def test_quantile_rule_matches_a_hand_computation():
    opacities = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    scores = torch.tensor([5.0, 0.1, 0.2, 9.0, 0.3, 8.0, 0.4, 7.0, 0.5, 6.0])
    gamma = 0.5  # quantiles: opacity 0.55, score 3.25 (linear interpolation)
    expected = torch.tensor([False, True, True, False, True, False, False, False, False, False])
    assert torch.equal(quantile_candidates(scores, opacities, gamma), expected)
    g = gamma_per_round(0.6, 10)
    assert (1 - g) ** 10 == pytest.approx(0.4)


def test_quantile_rule_is_exact_above_two_to_the_24_entries():
    """torch.quantile refused more than 2^24 entries before torch 2.14; a large scene has more Gaussians."""
    count = 2**24 + 1
    scores = torch.arange(count - 1, -1, -1, dtype=torch.float32)  # 2^24 ... 0, every one exact in float32
    candidates = quantile_candidates(scores, scores, 0.25)  # both quantiles: 0.25 * 2^24 = 2^22 exactly
    assert int(candidates.sum()) == 2**22 and bool(candidates[-(2**22) :].all())


def test_removal_mask_takes_the_lowest_scores_among_candidates():
    scores = torch.tensor([3.0, 1.0, 2.0, 0.5, 4.0])
    assert removal_mask(scores, 2).tolist() == [False, True, False, True, False]
    candidates = torch.tensor([True, False, True, False, True])
    assert removal_mask(scores, 2, candidates).tolist() == [True, False, True, False, False]
    assert int(removal_mask(scores, 10, candidates).sum()) == 3


def optimised_params(n=10):
    g = torch.Generator().manual_seed(0)
    params = {"means": torch.nn.Parameter(torch.randn(n, 3, generator=g)),
              "opacities": torch.nn.Parameter(torch.randn(n, 1, generator=g))}  # fmt: skip
    optimizers = {k: torch.optim.Adam([p], lr=0.1) for k, p in params.items()}
    step(params, optimizers)
    return params, optimizers


def step(params, optimizers):
    loss = sum((p * torch.arange(1.0, p.shape[0] + 1).reshape(-1, *[1] * (p.dim() - 1))).pow(2).sum() for p in params.values())
    loss.backward()
    for optimizer in optimizers.values():
        optimizer.step()
        optimizer.zero_grad()


def test_pruning_keeps_optimizer_state_aligned_and_training_works():
    params, optimizers = optimised_params()
    before = {k: p.detach().clone() for k, p in params.items()}
    moments = {k: optimizers[k].state[p]["exp_avg"].clone() for k, p in params.items()}
    strategy = {"grad2d": torch.arange(10.0), "scene_scale": 1.0}
    remove = torch.zeros(10, dtype=torch.bool)
    remove[[1, 4, 7]] = True
    removed = remove_gaussians(params, optimizers, remove, strategy)
    for k, p in params.items():
        assert optimizers[k].param_groups[0]["params"] == [p] and p.shape[0] == 7
        assert torch.equal(p.detach(), before[k][~remove])
        assert torch.equal(optimizers[k].state[p]["exp_avg"], moments[k][~remove])
        assert torch.equal(removed[k], before[k][remove])
    assert torch.equal(strategy["grad2d"], torch.arange(10.0)[~remove]) and strategy["scene_scale"] == 1.0
    kept = {k: p.detach().clone() for k, p in params.items()}
    step(params, optimizers)
    assert all(not torch.equal(kept[k], p.detach()) for k, p in params.items())

    append_gaussians(params, optimizers, removed, strategy)
    for k, p in params.items():
        assert p.shape[0] == 10 and torch.equal(p.detach()[7:], before[k][remove])
        assert torch.equal(optimizers[k].state[p]["exp_avg"][7:], torch.zeros_like(removed[k]))
    assert strategy["grad2d"].shape == (10,)
    step(params, optimizers)
