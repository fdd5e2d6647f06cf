"""ns-trim compress: a run or a PLY (any property order, extra properties, SH degree 0 or 3, in the capture's
frame) to a .nstrim file that meets a count or size target and decodes to what was reported; without a dataset;
bad input refused with one line and nothing written."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from nerfstudio_trim.core.codec.nstrim import read_file
from nerfstudio_trim.core.codec.ply import SH_C0, ply_bytes, ply_properties, read_ply
from nerfstudio_trim.core.raster.sh import sh_bases
from nerfstudio_trim.errors import TrimError
from nerfstudio_trim.nerfstudio.checkpoints import gaussian_state, load_checkpoint
from nerfstudio_trim.core.prune.scene_host import SceneHost, view_fit
from nerfstudio_trim.core.quantize.gaussians import CodecSettings
from nerfstudio_trim.nerfstudio.compress import Compress, read_input, training_views
from tests.conftest import ns
from tests.test_ply import write_table

pytestmark = pytest.mark.slow


def compress(input, out, **options) -> dict:
    """``ns-trim compress`` in this process, in rounds of half the Gaussians unless told otherwise."""
    return Compress(input=input, output_dir=out, device="cpu", **{"prune_fraction": 0.5, **options}).main()


def run_params(trained_run) -> dict:
    state = gaussian_state(load_checkpoint(trained_run.checkpoint)["pipeline"])
    return {name: value.float().clone() for name, value in state.items()}


def run_normalisation(trained_run):
    values = json.loads((trained_run.config.parent / "dataparser_transforms.json").read_text())
    return torch.tensor(values["transform"], dtype=torch.float64), float(values["scale"])


def quaternion_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a [4] times b [N, 4], (w, x, y, z)."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b.unbind(-1)
    return torch.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], -1)  # fmt: skip


def into_capture_frame(params: dict, transform: torch.Tensor, scale: float) -> dict:
    """The run's Gaussians (nerfstudio-normalised: x_n = scale (R x + t)) in the capture's frame, as another
    trainer would have made them: positions, rotations, sizes and the SH colours' directions moved back."""
    rotation, translation = transform[:, :3], transform[:, 3]
    x, y, z, w = Rotation.from_matrix(rotation.T.numpy()).as_quat()
    directions = torch.randn(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    directions = directions / directions.norm(dim=-1, keepdim=True)
    coefficients = torch.cat([params["features_dc"][:, None], params["features_rest"]], dim=1).double()
    # colour towards a capture-frame direction d is the normalised frame's colour towards R d; refit (exact)
    colours = torch.einsum("mk,nkc->nmc", sh_bases(3, directions @ rotation.T), coefficients)
    refit = torch.linalg.pinv(sh_bases(3, directions)) @ colours
    return {
        "means": ((params["means"].double() / scale - translation) @ rotation).float(),
        "scales": params["scales"] - math.log(scale),
        "quats": quaternion_product(torch.tensor([w, x, y, z], dtype=torch.float64), params["quats"].double()).float(),
        "opacities": params["opacities"],
        "features_dc": refit[:, 0].float(),
        "features_rest": refit[:, 1:].float(),
    }


def as_degree_0(params: dict) -> dict:
    """The base colour alone, in splatfacto's degree-0 convention (colour = sigmoid(features_dc))."""
    colour = (0.5 + SH_C0 * params["features_dc"]).clamp(1e-4, 1 - 1e-4)
    return {**params, "features_dc": torch.logit(colour), "features_rest": params["features_rest"][:, :0]}


def write_shuffled_ply(path, params: dict, degree: int) -> None:
    """The PLY of ``params`` with its properties in another order and one more property another tool writes."""
    data = ply_bytes(params, degree)
    names = ply_properties(degree)
    table = np.frombuffer(data[data.index(b"end_header\n") + len(b"end_header\n"):], dtype=[(n, "<f4") for n in names])
    order = np.random.default_rng(1).permutation(len(names))
    columns = {names[i]: table[names[i]] for i in order}
    columns["confidence"] = np.linspace(0, 1, len(table), dtype=np.float32)
    write_table(path, columns)


@pytest.fixture(scope="module")
def compressed_run(trained_run, tiny_scene, tmp_path_factory):
    """The trained run's checkpoint compressed to half its Gaussians on the tiny scene's training views."""
    out = tmp_path_factory.mktemp("compressed") / "out"
    count = run_params(trained_run)["means"].shape[0]
    return compress(trained_run.checkpoint, out, data=tiny_scene, target_count=count // 2, max_psnr_drop=None), out


def test_a_run_meets_a_count_target(trained_run, compressed_run):
    summary, out = compressed_run
    count = run_params(trained_run)["means"].shape[0]
    scene = read_file(out / "scene.nstrim")
    assert summary["gaussians"] == scene.gaussians.count == count // 2 and summary["gaussians_before"] == count
    assert summary["bytes"] == (out / "scene.nstrim").stat().st_size
    assert scene.frame == "nerfstudio-normalized" and scene.source["method"] == "ns-trim compress"
    assert scene.source["input"] == str(trained_run.checkpoint)
    transform, scale = run_normalisation(trained_run)
    assert torch.allclose(torch.tensor(scene.dataparser_transform, dtype=torch.float64), transform)
    assert scene.dataparser_scale == pytest.approx(scale)
    assert summary["views"] == 10 and all(math.isfinite(summary[k]) for k in ("psnr_input", "psnr_after"))
    assert not (out / "scene.ply").exists()


@pytest.mark.parametrize("degree", [3, 0])
def test_a_ply_in_the_capture_frame_meets_a_size_target(trained_run, tiny_scene, tmp_path, capsys, degree):
    params = into_capture_frame(run_params(trained_run), *run_normalisation(trained_run))
    params = params if degree == 3 else as_degree_0(params)
    ply = tmp_path / "scene.ply"
    write_shuffled_ply(ply, params, degree)
    loaded = read_input(ply, None)
    unpruned = SceneHost(loaded.params, loaded.template(CodecSettings()), score_mode="opacity").file_bytes()
    target = 0.6 * unpruned / 1e6
    out = tmp_path / "out"
    summary = compress(ply, out, data=tiny_scene, target_size_mb=target, max_psnr_drop=None, ply=True)
    text = " ".join(capsys.readouterr().out.split())
    assert "ignored per-Gaussian properties: confidence" in text
    scene = read_file(out / "scene.nstrim")
    assert summary["bytes"] == (out / "scene.nstrim").stat().st_size <= target * 1e6
    assert scene.gaussians.count == summary["gaussians"] < summary["gaussians_before"] == params["means"].shape[0]
    assert scene.frame == "capture" and scene.sh_degree == degree
    if degree == 3:  # the same Gaussians as the run's, seen from the same cameras (over a PLY's black background)
        run = dataclasses.replace(read_input(trained_run.config, None), background=(0.0, 0.0, 0.0))
        views = training_views(tiny_scene, run.template(CodecSettings()), torch.device("cpu"), None)
        assert summary["psnr_input"] == pytest.approx(view_fit(run.params, views).psnr, abs=0.02)
    decoded = read_ply(out / "scene.ply")
    assert decoded.sh_degree == degree
    for name, value in scene.gaussians.dequantize().items():
        torch.testing.assert_close(decoded.params[name], value, atol=2e-4, rtol=1e-4, msg=name)


def test_without_data_it_warns_and_still_works(trained_run, tmp_path, capsys):
    count = run_params(trained_run)["means"].shape[0]
    summary = compress(trained_run.config, tmp_path / "out", target_fraction=0.5)
    text = " ".join(capsys.readouterr().out.split())
    assert "warning: no --data" in text and "no quality check" in text
    assert summary["gaussians"] == math.ceil(0.5 * count)
    assert read_file(tmp_path / "out" / "scene.nstrim").gaussians.count == summary["gaussians"]
    assert summary["views"] == 0 and summary["psnr_after"] is None


def test_a_misaligned_dataset_is_refused_with_one_line(trained_run, tiny_scene, tmp_path):
    params = into_capture_frame(run_params(trained_run), *run_normalisation(trained_run))
    params["means"] = params["means"] + torch.tensor([50.0, 0.0, 0.0])
    ply = tmp_path / "moved.ply"
    ply.write_bytes(ply_bytes(params, 3))
    out = tmp_path / "out"
    result = ns("ns-trim", "compress", str(ply), "--data", str(tiny_scene), "--output-dir", str(out),
                "--target-fraction", "0.5", "--device", "cpu", cwd=tmp_path)  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr[-2000:]
    assert "does not line up with the scene" in errors[0] and "frame does not match" in errors[0]
    assert "Traceback" not in result.stdout + result.stderr and not out.exists()


def test_bad_input_is_refused_before_anything_is_written(trained_run, tiny_scene, tmp_path):
    out = tmp_path / "out"
    count = run_params(trained_run)["means"].shape[0]
    playcanvas = tmp_path / "scene.compressed.ply"
    playcanvas.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement chunk 1\nproperty float min_x\n"
                           b"element vertex 1\nproperty uint packed_position\nend_header\n" + bytes(8))  # fmt: skip
    (tmp_path / "a-file").write_text("")
    cases = [
        ((tmp_path / "missing.ply",), {"target_fraction": 0.5}, "does not exist"),
        ((playcanvas,), {"target_fraction": 0.5}, "PlayCanvas compressed PLY"),
        ((trained_run.config,), {"target_count": count}, "already met"),
        ((trained_run.config,), {"target_size_mb": 1e-6}, "below the file of a single Gaussian"),
        ((trained_run.config,), {}, "set a target"),
        ((trained_run.config,), {"target_fraction": 0.5, "score": "delta-mse"}, "give --data"),
        ((trained_run.config,), {"target_fraction": 0.5, "output": tmp_path / "a-file" / "out"}, "is not a folder"),
    ]
    for (input,), options, expected in cases:
        output = options.pop("output", out)
        with pytest.raises(TrimError, match=expected):
            compress(input, output, **options)
        assert not out.exists()
