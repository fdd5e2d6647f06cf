"""The pure-PyTorch rasterizer: analytic cases, gsplat's compositing rules, gradients."""

import math

import pytest
import torch

from nerfstudio_trim.core.raster.composite import ALPHA_MAX, ALPHA_MIN
from nerfstudio_trim.core.raster.cpu_raster import rasterization

FOCAL, WIDTH, HEIGHT = 50.0, 32, 24


def camera(dtype=torch.float32, n: int = 1):
    viewmats = torch.eye(4, dtype=dtype)[None].repeat(n, 1, 1)
    Ks = torch.tensor([[[FOCAL, 0, WIDTH / 2], [0, FOCAL, HEIGHT / 2], [0, 0, 1]]], dtype=dtype).repeat(n, 1, 1)
    return viewmats, Ks


def gaussians(centres, sizes, opacities, colours, dtype=torch.float32):
    means = torch.tensor(centres, dtype=dtype)
    n = means.shape[0]
    quats = torch.tensor([[1.0, 0, 0, 0]] * n, dtype=dtype)
    scales = torch.tensor(sizes, dtype=dtype)[:, None].repeat(1, 3)
    return means, quats, scales, torch.tensor(opacities, dtype=dtype), torch.tensor(colours, dtype=dtype)


def render(means, quats, scales, opacities, colours, **kwargs):
    viewmats, Ks = camera(means.dtype)
    return rasterization(means, quats, scales, opacities, colours, viewmats, Ks, WIDTH, HEIGHT, **kwargs)


def test_single_isotropic_gaussian_footprint_and_peak():
    # On the optical axis, with the principal point on pixel (16, 12)'s centre, so the projection
    # Jacobian is diag(f / z) and the footprint is exactly isotropic.
    depth, size, opacity = 4.0, 0.2, 0.8
    viewmats, Ks = camera()
    Ks[0, 0, 2], Ks[0, 1, 2] = 16.5, 12.5
    scene = gaussians([[0.0, 0.0, depth]], [size], [opacity], [[1.0, 1.0, 1.0]])
    colours, alphas, info = rasterization(*scene, viewmats, Ks, WIDTH, HEIGHT)
    sigma2 = (FOCAL * size / depth) ** 2 + 0.3  # screen-space variance plus gsplat's eps2d blur
    expected_radius = math.ceil(3 * math.sqrt(sigma2 + math.sqrt(0.01)))
    assert int(info["radii"][0, 0]) == expected_radius
    cols, rows = torch.meshgrid(torch.arange(WIDTH) + 0.5, torch.arange(HEIGHT) + 0.5, indexing="xy")
    d2 = (cols - 16.5) ** 2 + (rows - 12.5) ** 2
    expected = opacity * torch.exp(-0.5 * d2 / sigma2)
    expected = torch.where(expected >= ALPHA_MIN, expected, torch.zeros_like(expected))
    torch.testing.assert_close(alphas[0, ..., 0], expected, rtol=1e-5, atol=1e-6)
    assert alphas[0, 12, 16, 0] == pytest.approx(opacity, rel=1e-6)  # the peak, at the centre pixel
    torch.testing.assert_close(colours[0], alphas[0].expand(-1, -1, 3))  # white, no background
    assert float(alphas[0, d2 > 6 * sigma2].max()) < 0.1


def test_front_to_back_order_and_input_order_independence():
    near, far = [0.0, 0.0, 2.0], [0.0, 0.0, 5.0]
    scene = gaussians([far, near], [0.5, 0.2], [0.9, 0.6], [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    colours, alphas, _ = render(*scene)
    swapped = [t.flip(0) for t in scene]
    colours2, alphas2, _ = render(*swapped)
    torch.testing.assert_close(colours, colours2)
    torch.testing.assert_close(alphas, alphas2)
    centre = colours[0, 11, 15]  # pixel (15, 11) centre is 0.5 px from the projected centres
    a_near = 0.6 * math.exp(-0.5 * 0.5 / ((FOCAL * 0.2 / 2.0) ** 2 + 0.3))
    a_far = 0.9 * math.exp(-0.5 * 0.5 / ((FOCAL * 0.5 / 5.0) ** 2 + 0.3))
    assert float(centre[0]) == pytest.approx(a_near, rel=1e-5)
    assert float(centre[2]) == pytest.approx(a_far * (1 - a_near), rel=1e-5)
    assert float(alphas[0, 11, 15, 0]) == pytest.approx(a_near + a_far * (1 - a_near), rel=1e-5)


def test_alpha_is_clamped_at_gsplats_maximum():
    _, alphas, _ = render(*gaussians([[0.04, 0.04, 4.0]], [0.2], [1.0], [[1.0, 1.0, 1.0]]))
    assert float(alphas.max()) == pytest.approx(ALPHA_MAX, abs=1e-7)
    assert ALPHA_MAX == 0.999  # gsplat 1.4.0's clamp (rasterize_to_pixels_fwd.cu)


@pytest.mark.parametrize("opacity, visible", [(ALPHA_MIN * 0.99, False), (ALPHA_MIN * 1.01, True)])
def test_contributions_below_one_over_255_are_skipped(opacity, visible):
    colours, alphas, _ = render(*gaussians([[0.04, 0.04, 4.0]], [0.2], [opacity], [[1.0, 1.0, 1.0]]))
    assert (float(alphas.max()) > 0) == visible


def test_pixel_stops_before_transmittance_falls_to_1e_minus_4():
    # Two near-opaque Gaussians: after the first T = 1e-3; the second would take it to 1e-6, so it
    # is left out entirely, as in gsplat's kernel.
    # Both centred on pixel (16, 12): image position 16.5 = 16 + FOCAL * x / z.
    centres = [[0.01 * z, 0.01 * z, z] for z in (2.0, 3.0)]
    scene = gaussians(centres, [0.2, 0.2], [1.0, 1.0], [[1.0, 0, 0], [0, 1.0, 0]])
    colours, alphas, _ = render(*scene)
    assert float(alphas[0, 12, 16, 0]) == pytest.approx(ALPHA_MAX, abs=1e-7)
    assert float(colours[0, 12, 16, 1]) == 0.0
    assert float(colours[0, 12, 16, 0]) == pytest.approx(ALPHA_MAX, abs=1e-7)


def test_background_and_expected_depth():
    scene = gaussians([[0.0, 0.0, 3.0]], [0.3], [0.7], [[0.2, 0.4, 0.6]])
    background = torch.tensor([[0.1, 0.5, 0.9]])
    colours, alphas, _ = render(*scene, backgrounds=background, render_mode="RGB+ED")
    assert colours.shape == (1, HEIGHT, WIDTH, 4)
    torch.testing.assert_close(colours[..., :3], torch.tensor([0.2, 0.4, 0.6]) * alphas + (1 - alphas) * background)
    depth = colours[..., 3][alphas[..., 0] > 0]
    torch.testing.assert_close(depth, torch.full_like(depth, 3.0))
    depth_only, _, _ = render(*scene, render_mode="D")
    torch.testing.assert_close(depth_only, 3.0 * alphas)


def test_sh_colours_match_plain_colours_for_degree_zero():
    means, quats, scales, opacities, _ = gaussians([[0.0, 0.0, 3.0], [0.3, 0.1, 4.0]], [0.3, 0.4], [0.7, 0.5], [[0.0] * 3] * 2)
    dc = torch.tensor([[0.5, -0.2, 0.1], [0.0, 0.3, -0.4]])
    sh = torch.cat([dc[:, None], torch.randn(2, 15, 3)], dim=1)  # higher bands ignored at degree 0
    with_sh, _, _ = render(means, quats, scales, opacities, sh, sh_degree=0)
    plain, _, _ = render(means, quats, scales, opacities, torch.clamp_min(dc * 0.28209479177387814 + 0.5, 0))
    torch.testing.assert_close(with_sh, plain)


def random_scene(n, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * torch.tensor([0.8, 0.6, 0.5], dtype=dtype)
    means[:, 2] += 3.0
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = torch.rand(n, 3, generator=g, dtype=dtype) * 0.15 + 0.05
    opacities = torch.rand(n, generator=g, dtype=dtype) * 0.6 + 0.2
    sh = torch.randn(n, 4, 3, generator=g, dtype=dtype) * 0.3
    return means, quats, scales, opacities, sh


def test_chunking_and_multiple_cameras_do_not_change_the_result():
    scene = [t.requires_grad_(True) for t in random_scene(60, dtype=torch.float64)]
    viewmats, Ks = camera(torch.float64, n=2)
    viewmats[1, 0, 3] = 0.2
    reference, ref_alpha, _ = rasterization(*scene, viewmats, Ks, WIDTH, HEIGHT, sh_degree=1)
    reference.sum().backward()
    ref_grads = [t.grad.clone() for t in scene]
    for t in scene:
        t.grad = None
    chunked, chunked_alpha, _ = rasterization(*scene, viewmats, Ks, WIDTH, HEIGHT, sh_degree=1, chunk_elements=300)
    chunked.sum().backward()
    torch.testing.assert_close(chunked, reference)
    for t, g in zip(scene, ref_grads):
        torch.testing.assert_close(t.grad, g)
    second, _, _ = rasterization(*[t.detach() for t in scene], viewmats[1:], Ks[1:], WIDTH, HEIGHT, sh_degree=1)
    torch.testing.assert_close(second[0], reference[1].detach())


def test_gradcheck_float64():
    means, quats, scales, opacities, sh = random_scene(4, dtype=torch.float64, seed=3)
    viewmats, Ks = camera(torch.float64)
    inputs = [t.requires_grad_(True) for t in (means, quats, scales, opacities, sh)]

    def f(means, quats, scales, opacities, sh):
        colours, alphas, _ = rasterization(
            means, quats, scales, opacities, sh, viewmats, Ks, 12, 10, sh_degree=1, render_mode="RGB+ED",
            rasterize_mode="antialiased",
        )  # fmt: skip
        return colours, alphas

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-3)


def test_absgrad_and_means2d_gradient_for_densification():
    scene = [t.requires_grad_(True) for t in random_scene(40)]
    viewmats, Ks = camera()
    colours, _, info = rasterization(*scene, viewmats, Ks, WIDTH, HEIGHT, sh_degree=1, absgrad=True)
    info["means2d"].retain_grad()  # what splatfacto's strategy does before backward
    (colours * torch.linspace(-1, 1, WIDTH)[None, None, :, None]).sum().backward()
    grad, absgrad = info["means2d"].grad, info["means2d"].absgrad
    contributes = grad.norm(dim=-1) > 0  # visible and not fully hidden
    assert int(contributes.sum()) > 20 and (absgrad[contributes].norm(dim=-1) > 0).all()
    assert (absgrad >= grad.abs() - 1e-6).all()
    assert (absgrad[info["radii"] == 0] == 0).all()
    assert set(info) >= {"radii", "means2d", "depths", "width", "height", "n_cameras", "gaussian_ids", "conics"}


def test_nothing_visible_still_backpropagates():
    scene = [t.requires_grad_(True) for t in gaussians([[0.0, 0.0, -3.0]], [0.3], [0.7], [[1.0, 1.0, 1.0]])]
    colours, alphas, _ = render(*scene)
    assert float(alphas.detach().abs().sum()) == 0.0
    (colours.sum() + alphas.sum()).backward()
    assert scene[3].grad is not None


def test_unsupported_options_raise():
    with pytest.raises(ValueError, match="packed"):
        render(*gaussians([[0.0, 0.0, 3.0]], [0.3], [0.7], [[1.0, 1.0, 1.0]]), packed=True)


@pytest.mark.parametrize("seed, n, opacity_floor", [(0, 40, 0.2), (1, 150, 0.6), (2, 300, 0.9)])
def test_matches_per_pixel_reference(seed, n, opacity_floor):
    """The tiled, sub-tile-culled, chunked fast path against the one-Gaussian-at-a-time reference."""
    from tests.reference_raster import reference_rasterization

    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.7, 0.8], dtype=torch.float64)
    means[:, 2] += 3.0
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    scales = torch.exp(torch.randn(n, 3, generator=g, dtype=torch.float64) - 2.5)  # from tiny to very large
    opacities = opacity_floor + (1 - opacity_floor) * torch.rand(n, generator=g, dtype=torch.float64)
    colours = torch.rand(n, 3, generator=g, dtype=torch.float64)
    width, height = 45, 37  # not multiples of the tile size
    viewmats, Ks = camera(torch.float64)
    Ks[0, 0, 2], Ks[0, 1, 2] = width / 2, height / 2
    ours, alphas, _ = rasterization(
        means, quats, scales, opacities, colours, viewmats, Ks, width, height, chunk_elements=5000
    )
    ref, ref_alphas = reference_rasterization(means, quats, scales, opacities, colours, viewmats[0], Ks[0], width, height)
    torch.testing.assert_close(ours[0], ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(alphas[0], ref_alphas, rtol=1e-9, atol=1e-9)
