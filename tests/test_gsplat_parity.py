"""Parity of the CPU rasterizer with gsplat 1.4.0's CUDA ``rasterization()``: images and gradients.

Runs only where CUDA is present (it compiles gsplat's kernels on first use); skipped elsewhere.
"""

import pytest
import torch

from nerfstudio_trim.core.raster.cpu_raster import rasterization as cpu_rasterization

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for gsplat's kernels"),
]


def scene(n, seed):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.7, 0.8])
    means[:, 2] += 3.5
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.randn(n, 3, generator=g) - 3.0)
    opacities = torch.rand(n, generator=g) * 0.9 + 0.05
    sh = torch.randn(n, 16, 3, generator=g) * 0.3
    viewmats = torch.eye(4)[None].repeat(2, 1, 1)
    viewmats[1, 0, 3] = 0.3
    Ks = torch.tensor([[[150.0, 0, 96], [0, 150.0, 64], [0, 0, 1]]]).repeat(2, 1, 1)
    return [means, quats, scales, opacities, sh], viewmats, Ks


@pytest.mark.parametrize("rasterize_mode", ["classic", "antialiased"])
@pytest.mark.parametrize("render_mode", ["RGB", "RGB+ED"])
def test_images_and_gradients_match_gsplat_cuda(rasterize_mode, render_mode):
    from gsplat.rendering import rasterization as gsplat_rasterization

    params, viewmats, Ks = scene(3000, seed=1)
    results = {}
    for device, fn in (("cpu", cpu_rasterization), ("cuda", gsplat_rasterization)):
        inputs = [p.clone().to(device).requires_grad_(True) for p in params]
        colours, alphas, info = fn(
            *inputs, viewmats.to(device), Ks.to(device), 192, 128, sh_degree=3, packed=False, absgrad=True,
            rasterize_mode=rasterize_mode, render_mode=render_mode,
        )  # fmt: skip
        info["means2d"].retain_grad()
        weights = torch.linspace(-1, 1, colours.numel(), device=device).reshape(colours.shape)
        ((colours * weights).sum() + alphas.sum()).backward()
        results[device] = {
            "colours": colours.detach().cpu(), "alphas": alphas.detach().cpu(),
            "radii": info["radii"].cpu(), "absgrad": info["means2d"].absgrad.cpu(),
            "grads": [p.grad.cpu() for p in inputs],
        }  # fmt: skip
    cpu, cuda = results["cpu"], results["cuda"]
    torch.testing.assert_close(cpu["radii"], cuda["radii"])
    torch.testing.assert_close(cpu["colours"], cuda["colours"], atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(cpu["alphas"], cuda["alphas"], atol=1e-4, rtol=1e-3)
    for name, a, b in zip(("means", "quats", "scales", "opacities", "sh"), cpu["grads"], cuda["grads"]):
        scale = b.abs().max().clamp(min=1e-8)
        assert float((a - b).abs().max() / scale) < 1e-2, f"gradient of {name} differs"
    assert float((cpu["absgrad"] - cuda["absgrad"]).abs().max() / cuda["absgrad"].abs().max()) < 1e-2
