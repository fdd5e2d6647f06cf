"""SH evaluation and projection against gsplat 1.4.0's pure-PyTorch reference (_torch_impl)."""

import pytest
import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci, _spherical_harmonics

from nerfstudio_trim.core.raster.projection import covariance_3d, project_gaussians
from nerfstudio_trim.core.raster.sh import eval_sh, sh_bases


def random_scene(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=torch.float64) * torch.tensor([1.5, 1.0, 2.0], dtype=torch.float64)
    means[:, 2] += 2.5  # most in front of the camera, some behind it and some off-screen
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    scales = torch.rand(n, 3, generator=g, dtype=torch.float64) * 0.3 + 0.01
    viewmats = torch.eye(4, dtype=torch.float64)[None].repeat(2, 1, 1)
    viewmats[1, :3, 3] = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    angle = torch.tensor(0.3, dtype=torch.float64)
    viewmats[1, 0, 0], viewmats[1, 0, 2] = torch.cos(angle), torch.sin(angle)
    viewmats[1, 2, 0], viewmats[1, 2, 2] = -torch.sin(angle), torch.cos(angle)
    Ks = torch.tensor([[[60.0, 0, 32], [0, 55.0, 24], [0, 0, 1]]], dtype=torch.float64).repeat(2, 1, 1)
    return means, quats, scales, viewmats, Ks


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_matches_gsplat_reference(degree):
    g = torch.Generator().manual_seed(degree)
    dirs = torch.randn(500, 3, generator=g, dtype=torch.float64)
    coeffs = torch.randn(500, 16, 3, generator=g, dtype=torch.float64)
    ours = eval_sh(degree, dirs, coeffs)
    reference = _spherical_harmonics(degree, dirs, coeffs)
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-10)


def test_sh_rejects_bad_degree_and_short_coefficients():
    with pytest.raises(ValueError):
        sh_bases(4, torch.zeros(1, 3))
    with pytest.raises(ValueError):
        eval_sh(2, torch.ones(1, 3), torch.zeros(1, 4, 3))


def test_covariance_matches_gsplat_reference():
    means, quats, scales, *_ = random_scene(300)
    reference, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    torch.testing.assert_close(covariance_3d(quats, scales), reference)


@pytest.mark.parametrize("antialiased", [False, True])
def test_projection_matches_gsplat_reference(antialiased):
    means, quats, scales, viewmats, Ks = random_scene(400)
    width, height = 64, 48
    ours = project_gaussians(means, quats, scales, viewmats, Ks, width, height, antialiased=antialiased)
    radii, means2d, depths, conics, comp = _fully_fused_projection(
        means, covariance_3d(quats, scales), viewmats, Ks, width, height, calc_compensations=antialiased
    )
    assert 0 < int((radii > 0).sum()) < radii.numel(), "the scene must have both kept and culled Gaussians"
    torch.testing.assert_close(ours.radii, radii)
    kept = radii > 0
    torch.testing.assert_close(ours.means2d[kept], means2d[kept])
    torch.testing.assert_close(ours.depths, depths)
    torch.testing.assert_close(ours.conics[kept], conics[kept])
    if antialiased:
        torch.testing.assert_close(ours.compensations[kept], comp[kept])
    else:
        assert ours.compensations is None


def test_projection_gradients_are_finite_with_gaussians_behind_the_camera():
    means, quats, scales, viewmats, Ks = random_scene(200)
    means[0, 2] = 0.0  # exactly on the camera plane
    means[1, 2] = -1.0
    means.requires_grad_(True)
    proj = project_gaussians(means, quats, scales, viewmats, Ks, 64, 48)
    (proj.means2d.sum() + proj.conics.sum()).backward()
    assert torch.isfinite(means.grad).all()
    assert int(proj.radii[:, 0].max()) == 0 and int(proj.radii[:, 1].max()) == 0
