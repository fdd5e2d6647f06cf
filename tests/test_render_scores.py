"""delta-mse and sensitivity scores against brute force on tiny scenes (float64, two views)."""

import math
from dataclasses import replace

import pytest
import torch

from nerfstudio_trim.core.prune.render_scores import (
    ScoringView,
    delta_mse_scores,
    first_order_delta_mse_scores,
    sensitivity_scores,
)
from nerfstudio_trim.core.raster.cpu_raster import rasterization
from nerfstudio_trim.core.raster.render import splat_inputs
from nerfstudio_trim.core.raster.sh import eval_sh

W, H = 21, 14  # not a multiple of the tile size: pixels outside the image must not count
FOCAL = 18.0
DTYPE = torch.float64


def tiny_scene(n, sh_degree, logit_range, colour_spread, seed=0):
    """n overlapping Gaussians in front of the cameras plus one behind them (the last), as splatfacto's
    parameters; opacity logits uniform in ``logit_range``, colour coefficients ~ N(0, colour_spread).
    The first is centred on a pixel of the first view, so that its alpha reaches the 0.999 clamp there
    when its opacity is high enough."""
    gen = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=gen, dtype=DTYPE)  # noqa: E731
    front = torch.stack([1.6 * rand(n) - 0.8, rand(n) - 0.5, 3 + 2 * rand(n)], -1)
    front[0] = torch.tensor([0.0, 0.5 * 4.0 / FOCAL, 4.0])  # projects to pixel centre (10.5, 7.5)
    low, high = logit_range
    return {
        "means": torch.cat([front, torch.tensor([[0.0, 0.0, -3.0]], dtype=DTYPE)]),
        "scales": torch.log(0.2 + 0.5 * rand(n + 1, 3)),
        "quats": torch.randn(n + 1, 4, generator=gen, dtype=DTYPE),
        "opacities": torch.cat([low + (high - low) * rand(n), torch.tensor([2.0], dtype=DTYPE)])[:, None],
        "features_dc": colour_spread * torch.randn(n + 1, 3, generator=gen, dtype=DTYPE),
        "features_rest": colour_spread
        * torch.randn(n + 1, (sh_degree + 1) ** 2 - 1, 3, generator=gen, dtype=DTYPE),
    }


def two_views(seed=1):
    gen = torch.Generator().manual_seed(seed)
    K = torch.tensor([[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1]], dtype=DTYPE)
    views = []
    for shift, angle in ((0.0, 0.0), (0.3, 0.08)):
        viewmat = torch.eye(4, dtype=DTYPE)
        c, s = math.cos(angle), math.sin(angle)
        viewmat[:3, :3] = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=DTYPE)
        viewmat[0, 3] = shift
        image = torch.rand(H, W, 3, generator=gen, dtype=DTYPE)
        background = torch.rand(3, generator=gen, dtype=DTYPE)
        views.append(ScoringView(viewmat=viewmat, K=K, width=W, height=H, image=image, background=background))
    return views


def render(params, view, sh_degree, rasterize_mode, keep=None):
    """The view's image over its background (not clamped), optionally with only the ``keep`` Gaussians."""
    if keep is not None:
        params = {name: value[keep] for name, value in params.items()}
    inputs = splat_inputs(params, sh_degree)
    colours, alphas, _ = rasterization(
        inputs.means, inputs.quats, inputs.scales, inputs.opacities, inputs.colors, view.viewmat[None],
        view.K[None], W, H, sh_degree=inputs.sh_degree, backgrounds=view.background[None],
        rasterize_mode=rasterize_mode,
    )  # fmt: skip
    return colours[0]


def brute_force_removals(params, views, sh_degree, rasterize_mode):
    """Per Gaussian and view: the full image and the image re-rendered without that Gaussian."""
    n = params["means"].shape[0]
    full = [render(params, view, sh_degree, rasterize_mode) for view in views]
    removed = [
        [render(params, view, sh_degree, rasterize_mode, keep=torch.arange(n) != k) for view in views]
        for k in range(n)
    ]
    return full, removed


def squared_error(image, view):
    return float((image.clamp(0, 1) - view.image).square().sum())


@pytest.mark.parametrize("sh_degree, rasterize_mode", [(2, "classic"), (0, "antialiased")])
def test_exact_delta_mse_equals_removing_each_gaussian_and_re_rendering(sh_degree, rasterize_mode):
    # Opaque, overlapping Gaussians: alphas hit the 0.999 clamp and pixels stop early, so removing
    # one reveals Gaussians behind the old stopping point; SH colours leave [0, 1] (the image clamp).
    params = tiny_scene(24, sh_degree, (2.0, 16.0), colour_spread=2.0)
    views = two_views()
    full, removed = brute_force_removals(params, views, sh_degree, rasterize_mode)
    expected = torch.tensor(
        [sum(squared_error(r, v) - squared_error(f, v) for r, f, v in zip(rows, full, views)) for rows in removed],
        dtype=DTYPE,
    )
    seen = []
    scores = delta_mse_scores(
        params, views, sh_degree, rasterize_mode=rasterize_mode, method="exact", chunk_elements=2000,
        on_view=seen.append,
    )  # fmt: skip
    assert seen == [0, 1]
    assert scores.shape == (25,) and scores.dtype == DTYPE
    assert float(scores[-1]) == 0.0  # behind both cameras
    assert float(expected.abs().max()) > 1.0  # the scene is not trivial
    torch.testing.assert_close(scores, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_delta_mse_of_cuda_tensors_is_the_exact_form_by_default():
    """The exact form is the default on every device: the first-order one (gsplat's gradients on CUDA) misses
    the quadratic term that dominates in a trained model."""
    params = tiny_scene(24, 1, (2.0, 16.0), colour_spread=2.0)
    views = two_views()
    expected = delta_mse_scores(params, views, 1, method="exact")
    on_gpu = delta_mse_scores(
        {name: value.cuda() for name, value in params.items()},
        [replace(v, viewmat=v.viewmat.cuda(), K=v.K.cuda(), image=v.image.cuda(), background=v.background.cuda()) for v in views],
        1,
    )  # fmt: skip
    torch.testing.assert_close(on_gpu.cpu(), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("sh_degree, rasterize_mode", [(1, "classic"), (0, "antialiased")])
def test_first_order_delta_mse_is_the_linear_term_of_the_removal(sh_degree, rasterize_mode):
    # Moderate opacities (no clamp, no early stop) and colours in [0, 1] (no image clamp): removal is
    # affine in each alpha, so -o dL/do is exactly sum 2 (C - GT) . dC and the exact score adds |dC|^2.
    params = tiny_scene(16, 0, (-1.5, 1.5), colour_spread=1.5, seed=3)
    if sh_degree:  # degree-1 SH that keep every colour within [0.1, 0.9]
        params["features_rest"] = 0.05 * params["features_rest"].new_ones(17, 3, 3)
        params["features_dc"] = (torch.sigmoid(params["features_dc"]) * 0.6 - 0.3) / 0.28209479177387814
    views = two_views(seed=4)
    full, removed = brute_force_removals(params, views, sh_degree, rasterize_mode)
    assert all(0.0 <= float(image.min()) and float(image.max()) <= 1.0 for image in full)
    changes = [[r - f for r, f in zip(rows, full)] for rows in removed]
    linear = torch.stack(
        [sum((2 * (f - v.image) * d).sum() for d, f, v in zip(ds, full, views)) for ds in changes]
    )
    quadratic = torch.stack([sum(d.square().sum() for d in ds) for ds in changes])

    first_order = first_order_delta_mse_scores(params, views, sh_degree, rasterize_mode=rasterize_mode)
    torch.testing.assert_close(first_order, linear, rtol=1e-9, atol=1e-10)
    dispatched = delta_mse_scores(params, views, sh_degree, rasterize_mode=rasterize_mode, method="first-order")
    torch.testing.assert_close(dispatched, first_order)
    exact = delta_mse_scores(params, views, sh_degree, rasterize_mode=rasterize_mode)  # CPU default: exact
    torch.testing.assert_close(exact - first_order, quadratic, rtol=1e-9, atol=1e-10)
    assert float(quadratic.max()) > 1e-3


def direct_fisher(params, views, sh_degree, rasterize_mode):
    """[N, 6, 6] sum over views and pixels of J^T J, J = d pixel RGB / d (mean, log-scale) by autograd,
    with each view's Gaussian colours computed first and held fixed."""
    inputs = splat_inputs(params, sh_degree)
    fisher = torch.zeros(params["means"].shape[0], 6, 6, dtype=DTYPE)
    for view in views:
        colours = inputs.colors
        if inputs.sh_degree is not None:
            camera = torch.linalg.inv(view.viewmat)[:3, 3]
            colours = (eval_sh(inputs.sh_degree, inputs.means - camera, inputs.colors) + 0.5).clamp_min(0.0)

        def image(means, log_scales):
            rendered, _, _ = rasterization(
                means, inputs.quats, torch.exp(log_scales), inputs.opacities, colours, view.viewmat[None],
                view.K[None], W, H, backgrounds=view.background[None], rasterize_mode=rasterize_mode,
            )  # fmt: skip
            return rendered.flatten()

        d_means, d_log_scales = torch.autograd.functional.jacobian(image, (params["means"], params["scales"]))
        jacobian = torch.cat([d_means, d_log_scales], dim=-1)  # [pixels * 3, N, 6]
        fisher += torch.einsum("rni,rnj->nij", jacobian, jacobian)
    return fisher


@pytest.mark.parametrize("sh_degree, rasterize_mode", [(1, "classic"), (0, "antialiased")])
def test_sensitivity_equals_log_det_of_the_autograd_fisher(sh_degree, rasterize_mode):
    params = tiny_scene(10, sh_degree, (-1.0, 16.0), colour_spread=1.0, seed=5)
    views = two_views(seed=6)
    damping = 1e-6
    fisher = direct_fisher(params, views, sh_degree, rasterize_mode)
    expected = torch.linalg.slogdet(fisher + damping * torch.eye(6, dtype=DTYPE)).logabsdet

    scores = sensitivity_scores(params, views, sh_degree, rasterize_mode=rasterize_mode, damping=damping)
    assert scores.shape == (11,) and scores.dtype == DTYPE
    assert float(scores[-1]) == pytest.approx(6 * math.log(damping))  # seen by no view: lowest
    assert int(torch.argmin(scores)) == 10
    assert float(scores[:-1].min()) > 6 * math.log(damping) + 10  # the others are well conditioned
    torch.testing.assert_close(scores, expected, rtol=1e-9, atol=1e-7)
