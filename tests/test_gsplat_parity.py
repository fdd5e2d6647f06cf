"""Parity with gsplat 1.4.0's CUDA kernels: the CPU rasterizer against ``rasterization()`` (images, radii,
gradients), and the model's render against upstream splatfacto's on the same checkpoint.

Runs only where CUDA is present (gsplat compiles its kernels on first use); skipped elsewhere.

gsplat is built with --use_fast_math and takes exp with ``__expf``, so a value within rounding of one of its
cut-offs can fall the other way than on the CPU: a Gaussian's alpha at 1/255 (skipped or not), a pixel's
transmittance at 1e-4 (stopped or not), a radius (the ceiling of 3 sigma) at an integer (one pixel more or
less, and so one more or less tile ring). Each such flip moves a pixel by at most about 1/50 of a colour.
So at most ``OUTLIER_SHARE`` of the values may lie beyond the tolerance, none of them by more than
``OUTLIER_BOUND`` of the value range, and radii may differ by one for as few Gaussians.
"""

import math
from typing import Dict, List, Optional
from unittest import mock

import pytest
import torch
from torch import Tensor

from nerfstudio_trim.core.raster.cpu_raster import rasterization as cpu_rasterization

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for gsplat's kernels"),
]

ATOL, RTOL = 1e-4, 1e-3  # colours and alphas are in [0, 1]; accumulated depth in scene units (~1-6 here)
OUTLIER_SHARE = 1e-3  # at most 0.1% of the values beyond the tolerance
OUTLIER_BOUND = 0.05  # ... and none by more than 5% of the largest value
GRADIENT_RTOL = 1e-2  # per parameter group, relative to its largest gradient
WIDTH, HEIGHT = 192, 128
INTRINSICS = torch.tensor([[150.0, 0.0, 96.0], [0.0, 150.0, 64.0], [0.0, 0.0, 1.0]])


def assert_mostly_close(actual: Tensor, expected: Tensor, what: str) -> None:
    """All but ``OUTLIER_SHARE`` of the values within (ATOL, RTOL), the rest within ``OUTLIER_BOUND``."""
    beyond = ~torch.isclose(actual, expected, atol=ATOL, rtol=RTOL)
    share = float(beyond.float().mean())
    worst = float((actual - expected).abs().max())
    bound = OUTLIER_BOUND * max(1.0, float(expected.abs().max()))
    assert share <= OUTLIER_SHARE, f"{what}: {share:.3%} of the values beyond tolerance (largest: {worst:.3g})"
    assert worst <= bound, f"{what}: a value differs by {worst:.3g} (bound {bound:.3g})"


def assert_radii_agree(actual: Tensor, expected: Tensor) -> None:
    differ = actual != expected
    assert float(differ.float().mean()) <= OUTLIER_SHARE, f"{int(differ.sum())} radii differ"
    if bool(differ.any()):
        assert int((actual[differ] - expected[differ]).abs().max()) == 1, "a radius differs by more than one"


def gaussians(n: int, seed: int, centre: float = 3.5) -> List[Tensor]:
    """[means, quats, scales, opacities] of a random cloud around (0, 0, ``centre``)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.7, 0.8])
    means[:, 2] += centre
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.randn(n, 3, generator=g) - 3.0)
    opacities = torch.rand(n, generator=g) * 0.9 + 0.05
    return [means, quats, scales, opacities]


def colours(n: int, seed: int, kind: str) -> Tensor:
    """Degree-3 SH coefficients [N, 16, 3] ("sh3"), or plain colours [N, D] ("rgb": D = 3, "heat": D = 1,
    as the score heat map renders)."""
    g = torch.Generator().manual_seed(seed + 1000)
    if kind == "sh3":
        return torch.randn(n, 16, 3, generator=g) * 0.3
    return torch.rand(n, 3 if kind == "rgb" else 1, generator=g)


def axis_aligned_cameras() -> Tensor:
    """[2, 4, 4] world-to-camera: the identity and a sideways shift."""
    viewmats = torch.eye(4)[None].repeat(2, 1, 1)
    viewmats[1, 0, 3] = 0.3
    return viewmats


def look_at(eye: Tensor, target: Tensor, up: Tensor) -> Tensor:
    """[4, 4] world-to-camera (OpenCV axes: x right, y down, z forward) of a camera at ``eye`` facing ``target``."""
    forward = torch.nn.functional.normalize(target - eye, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up), dim=0)
    down = torch.linalg.cross(forward, right)
    rotation = torch.stack([right, down, forward])  # rows: camera axes in world coordinates
    viewmat = torch.eye(4)
    viewmat[:3, :3], viewmat[:3, 3] = rotation, -rotation @ eye
    return viewmat


def orbit_cameras(centre: float = 3.5) -> Tensor:
    """[2, 4, 4] cameras with no axis aligned to the world's, looking at the cloud from 3.5 units away."""
    target = torch.tensor([0.0, 0.0, centre])
    eyes = []
    for yaw, pitch in ((0.6, 0.3), (-0.9, -0.45)):
        offset = torch.tensor([math.sin(yaw) * math.cos(pitch), math.sin(pitch), -math.cos(yaw) * math.cos(pitch)])
        eyes.append(target + 3.5 * offset)
    up = torch.nn.functional.normalize(torch.tensor([0.2, -1.0, 0.1]), dim=0)  # tilted: the cameras roll
    return torch.stack([look_at(eye, target, up) for eye in eyes])


def render_on_both(
    params: List[Tensor], viewmats: Tensor, sh_degree: Optional[int], render_mode: str, rasterize_mode: str
) -> Dict[str, Dict[str, object]]:
    """Render and backpropagate a fixed weighting of the outputs on the CPU (ours) and on CUDA (gsplat)."""
    from gsplat.rendering import rasterization as gsplat_rasterization

    Ks = INTRINSICS[None].repeat(viewmats.shape[0], 1, 1)
    results: Dict[str, Dict[str, object]] = {}
    for device, fn in (("cpu", cpu_rasterization), ("cuda", gsplat_rasterization)):
        inputs = [p.clone().to(device).requires_grad_(True) for p in params]
        rendered, alphas, info = fn(
            *inputs, viewmats.to(device), Ks.to(device), WIDTH, HEIGHT, sh_degree=sh_degree, packed=False,
            absgrad=True, rasterize_mode=rasterize_mode, render_mode=render_mode,
        )  # fmt: skip
        info["means2d"].retain_grad()
        weights = torch.linspace(-1, 1, rendered.numel(), device=device).reshape(rendered.shape)
        ((rendered * weights).sum() + alphas.sum()).backward()
        if render_mode.endswith("ED"):  # expected depth = accumulated depth / alpha: compare the accumulation
            rendered = torch.cat([rendered[..., :-1], rendered[..., -1:] * alphas], dim=-1)
        results[device] = {
            "rendered": rendered.detach().cpu(), "alphas": alphas.detach().cpu(), "radii": info["radii"].cpu(),
            "absgrad": info["means2d"].absgrad.cpu(), "grads": [p.grad.cpu() for p in inputs],
        }  # fmt: skip
    return results


def assert_parity(results: Dict[str, Dict[str, object]]) -> None:
    cpu, cuda = results["cpu"], results["cuda"]
    assert_radii_agree(cpu["radii"], cuda["radii"])
    assert_mostly_close(cpu["rendered"], cuda["rendered"], "rendered features")
    assert_mostly_close(cpu["alphas"], cuda["alphas"], "alphas")
    for name, a, b in zip(("means", "quats", "scales", "opacities", "colours"), cpu["grads"], cuda["grads"]):
        scale = b.abs().max().clamp(min=1e-8)
        assert float((a - b).abs().max() / scale) < GRADIENT_RTOL, f"gradient of {name} differs"
    scale = cuda["absgrad"].abs().max().clamp(min=1e-8)
    assert float((cpu["absgrad"] - cuda["absgrad"]).abs().max() / scale) < GRADIENT_RTOL


@pytest.mark.parametrize("rasterize_mode", ["classic", "antialiased"])
@pytest.mark.parametrize("render_mode", ["RGB", "RGB+ED"])
def test_images_and_gradients_match_gsplat_cuda(rasterize_mode, render_mode):
    params = gaussians(3000, seed=1) + [colours(3000, seed=1, kind="sh3")]
    assert_parity(render_on_both(params, axis_aligned_cameras(), 3, render_mode, rasterize_mode))


@pytest.mark.parametrize("rasterize_mode", ["classic", "antialiased"])
def test_rotated_cameras(rasterize_mode):
    viewmats = orbit_cameras()
    assert not torch.allclose(viewmats[:, :3, :3].abs(), torch.eye(3).expand(2, 3, 3), atol=0.1)
    params = gaussians(3000, seed=2) + [colours(3000, seed=2, kind="sh3")]
    assert_parity(render_on_both(params, viewmats, 3, "RGB+ED", rasterize_mode))


@pytest.mark.parametrize("kind", ["rgb", "heat"])
def test_plain_colours_without_sh(kind):
    params = gaussians(3000, seed=3) + [colours(3000, seed=3, kind=kind)]
    assert_parity(render_on_both(params, orbit_cameras(), None, "RGB", "classic"))


def test_near_plane_culling():
    """Gaussians behind the camera or the near plane (0.01) are culled; ones whose centre is just in front
    of it but whose extent reaches behind it are rendered, large, by both."""
    g = torch.Generator().manual_seed(4)
    scene = gaussians(2000, seed=4)
    behind = gaussians(40, seed=5, centre=0.0)
    behind[0][:, 2] = -2.0 + torch.rand(40, generator=g) * 2.008  # depth in [-2, 0.008]
    straddling = gaussians(40, seed=6, centre=0.0)
    straddling[0][:, :2] *= 0.05
    straddling[0][:, 2] = 0.05 + torch.rand(40, generator=g) * 0.25  # depth in [0.05, 0.3]
    straddling[2] = torch.exp(torch.randn(40, 3, generator=g) * 0.2) * 0.1  # about 0.1: reaching behind 0.01
    straddling[3] = straddling[3] * 0.2  # faint, so the scene behind still shows
    params = [torch.cat(parts) for parts in zip(scene, behind, straddling)] + [colours(2080, seed=4, kind="sh3")]
    viewmats = axis_aligned_cameras()[:1]
    results = render_on_both(params, viewmats, 3, "RGB+ED", "classic")
    for device in ("cpu", "cuda"):
        radii = results[device]["radii"][0]
        assert bool((radii[2000:2040] == 0).all()), f"{device}: a Gaussian behind the near plane was kept"
        assert bool((radii[2040:] > 100).all()), f"{device}: a Gaussian straddling the near plane was culled"
    assert_parity(results)


def test_the_models_render_matches_upstream_splatfacto():
    """SplatfactoTrimModel and nerfstudio's SplatfactoModel, both on CUDA, render the committed demo baseline
    from the demo scene's cameras alike."""
    import torchmetrics.image.lpip
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
    from nerfstudio.data.scene_box import SceneBox
    from nerfstudio.models.splatfacto import SplatfactoModelConfig

    from nerfstudio_trim.nerfstudio.checkpoints import load_checkpoint
    from nerfstudio_trim.nerfstudio.lpips import LazyLPIPS
    from nerfstudio_trim.nerfstudio.model import SplatfactoTrimModelConfig
    from tests.conftest import DEMO_SCENE, REPO

    checkpoint = next((REPO / "demo" / "baseline" / "splatfacto-trim" / "nerfstudio_models").glob("step-*.ckpt"))
    state = {key[len("_model.") :]: value for key, value in load_checkpoint(checkpoint)["pipeline"].items()}
    cameras = NerfstudioDataParserConfig(data=DEMO_SCENE).setup().get_dataparser_outputs(split="test").cameras
    scene_box = SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    outputs, radii = {}, {}
    for name, config in (("ours", SplatfactoTrimModelConfig()), ("upstream", SplatfactoModelConfig())):
        # upstream builds LPIPS, which downloads its weights, with the model: not here
        with mock.patch.object(torchmetrics.image.lpip, "LearnedPerceptualImagePatchSimilarity", LazyLPIPS):
            model = config.setup(scene_box=scene_box, num_train_data=len(cameras))
        model.load_state_dict(dict(state))
        model = model.to("cuda").eval()
        model.step = 30000  # all SH bands (upstream's loader sets this; ours resumes the checkpoint's step)
        outputs[name], radii[name] = [], []
        with torch.no_grad(), torch._dynamo.config.patch(disable=True):  # splatfacto's get_viewmat, uncompiled
            for index in range(min(3, len(cameras))):
                rendered = model.get_outputs(cameras[index : index + 1].to("cuda"))
                outputs[name].append({key: rendered[key].cpu() for key in ("rgb", "depth", "accumulation")})
                radii[name].append(model.info["radii"].cpu())
    assert outputs["ours"] and float(outputs["ours"][0]["accumulation"].mean()) > 0.5  # the scene is in view
    for view, (ours, upstream) in enumerate(zip(outputs["ours"], outputs["upstream"])):
        assert_radii_agree(radii["ours"][view], radii["upstream"][view])
        for key in ("rgb", "depth", "accumulation"):
            assert_mostly_close(ours[key], upstream[key], f"view {view}: {key}")
