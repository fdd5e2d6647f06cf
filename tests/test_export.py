"""ns-export trimmed-splat / ns-trim: export a trimmed run, decode it exactly, interoperate, refuse bad input."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from plyfile import PlyData

from nerfstudio_trim.core.codec.nstrim import read_file
from nerfstudio_trim.core.codec.morton import morton_order
from nerfstudio_trim.core.codec.ply import ply_properties, ply_size
from tests.conftest import ns
from tests.test_codec import repack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(trim_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "exports"
    result = ns("ns-export", "trimmed-splat", "--load-config", str(trim_run.config), "--output-dir", str(out), cwd=out.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "bytes per Gaussian" in result.stdout and "smaller" in result.stdout
    return out / "scene.nstrim"


def assert_clean_failure(result, expected: str, *must_not_exist: Path) -> None:
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    for path in must_not_exist:
        assert not path.exists(), f"{path} was written"


def test_ns_export_lists_every_subcommand_and_ours():
    result = ns("ns-export", "--help", cwd=Path.cwd())
    assert result.returncode == 0
    for name in ("pointcloud", "tsdf", "poisson", "marching-cubes", "cameras", "gaussian-splat", "trimmed-splat"):
        assert name in result.stdout


def test_file_decodes_to_exactly_what_the_model_renders(trim_run, exported):
    from nerfstudio.utils.eval_utils import eval_setup

    _, pipeline, _, _ = eval_setup(trim_run.config, test_mode="inference")
    model = pipeline.model.eval()
    assert model.trimmer.active  # the trimmed model renders quantized parameters
    # eval_setup puts the model on CUDA where there is one; the file decodes on the CPU
    rendered = {name: value.detach().cpu() for name, value in model.render_parameters().items()}
    decoded = read_file(exported)
    params = decoded.gaussians.dequantize()
    order = morton_order(rendered["means"])
    for name, value in params.items():
        assert torch.equal(value, rendered[name][order].reshape(value.shape)), name
    assert decoded.sh_degree == model.config.sh_degree
    outputs = pipeline.datamanager.train_dataparser_outputs
    assert np.allclose(decoded.dataparser_transform, outputs.dataparser_transform.numpy(), atol=0, rtol=0)
    assert decoded.dataparser_scale == float(outputs.dataparser_scale)


def test_ns_trim_export_writes_the_same_scene(trim_run, exported, tmp_path):
    result = ns("ns-trim", "export", "--load-config", str(trim_run.config), "--output-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    ours, theirs = read_file(tmp_path / "scene.nstrim").gaussians.dequantize(), read_file(exported).gaussians.dequantize()
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)


def test_decode_writes_nerfstudios_ply_layout(trim_run, exported, tmp_path):
    ours = tmp_path / "scene.ply"
    result = ns("ns-trim", "decode", str(exported), "--output", str(ours), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    theirs_dir = tmp_path / "nerfstudio"
    result = ns("ns-export", "gaussian-splat", "--load-config", str(trim_run.config), "--output-dir", str(theirs_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    ply, reference = PlyData.read(str(ours)), PlyData.read(str(theirs_dir / "splat.ply"))
    vertex, reference_vertex = ply["vertex"], reference["vertex"]
    names = [p.name for p in vertex.properties]
    assert names == [p.name for p in reference_vertex.properties] == ply_properties(3)
    assert [p.val_dtype for p in vertex.properties] == [p.val_dtype for p in reference_vertex.properties]
    assert not ply.text and not reference.text and ply.byte_order == reference.byte_order == "<"
    scene = read_file(exported)
    assert vertex.count == scene.gaussians.count and ours.stat().st_size == ply_size(vertex.count, 3)
    params = scene.gaussians.dequantize()
    assert np.array_equal(np.stack([vertex["x"], vertex["y"], vertex["z"]], 1), params["means"].numpy())
    rest = np.stack([vertex[f"f_rest_{i}"] for i in range(45)], 1).reshape(-1, 3, 15).transpose(0, 2, 1)
    assert np.array_equal(rest, params["features_rest"].numpy())
    assert np.array_equal(np.stack([vertex[f"rot_{i}"] for i in range(4)], 1), params["quats"].numpy())
    # nerfstudio's own export of the same model (unquantized, model order) agrees within quantization
    theirs_opacity = np.sort(np.asarray(reference_vertex["opacity"]))
    kept = np.sort(np.asarray(vertex["opacity"]))[-len(theirs_opacity):]  # it drops opacity < 1/255
    half_step = float(scene.gaussians.opacities.step[0]) / 2  # the file's opacity logits are on a grid
    assert np.allclose(kept, theirs_opacity, atol=half_step * 1.001 + 1e-6)


SPLAT_TRANSFORM = os.environ.get("SPLAT_TRANSFORM") or shutil.which("splat-transform")


@pytest.mark.skipif(not SPLAT_TRANSFORM, reason="PlayCanvas splat-transform (npm) is not installed here")
def test_playcanvas_splat_transform_reads_the_ply(exported, tmp_path):
    ply, csv = tmp_path / "scene.ply", tmp_path / "scene.csv"
    assert ns("ns-trim", "decode", str(exported), "--output", str(ply), cwd=tmp_path).returncode == 0
    result = subprocess.run([SPLAT_TRANSFORM, str(ply), str(csv)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = csv.read_text().splitlines()
    assert lines[0].split(",")[:3] == ["x", "y", "z"]
    assert len(lines) - 1 == read_file(exported).gaussians.count


def test_info_prints_header_and_sizes(exported, tmp_path):
    result = ns("ns-trim", "info", str(exported), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    scene = read_file(exported)
    assert f"{scene.gaussians.count:,} Gaussians" in result.stdout
    for name in ("means", "scales", "quats", "opacities", "features_dc", "features_rest", "header + preamble"):
        assert name in result.stdout


def test_eval_of_the_file_equals_ns_eval_of_the_run(trim_run, exported, tiny_scene, tmp_path):
    import json

    # both on the CPU (ns-eval has no device option: the GPUs are hidden from it)
    run_json, file_json = tmp_path / "run.json", tmp_path / "file.json"
    result = ns("ns-eval", "--load-config", str(trim_run.config), "--output-path", str(run_json), cwd=tmp_path, cpu_only=True)
    assert result.returncode == 0, result.stderr[-2000:]
    args = [str(exported), "--data", str(tiny_scene), "--device", "cpu", "--output-path", str(file_json)]
    result = ns("ns-trim", "eval", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run, file = json.loads(run_json.read_text())["results"], json.loads(file_json.read_text())["results"]
    assert abs(run["psnr"] - file["psnr"]) < 0.01 and abs(run["ssim"] - file["ssim"]) < 1e-4
    assert file["gaussians"] == read_file(exported).gaussians.count and file["bytes"] == exported.stat().st_size
    assert file["render_fps"] > 0 and run["render_fps"] > 0 and run["gaussians"] == file["gaussians"]


def test_decoded_ply_evaluates_as_the_file_and_other_parameters_as_themselves(exported, tiny_scene, tmp_path):
    """The format comparison's path: a PLY read back renders in the file's frame exactly as the file does;
    parameters given to evaluate_scene are the ones rendered (blurred ones score lower)."""
    from nerfstudio_trim.core.codec.ply import read_ply
    from nerfstudio_trim.nerfstudio.evaluate import evaluate_scene

    ply = tmp_path / "scene.ply"
    assert ns("ns-trim", "decode", str(exported), "--output", str(ply), cwd=tmp_path).returncode == 0
    scene, cpu = read_file(exported), torch.device("cpu")
    read = read_ply(ply)
    params, degree = read.params, read.sh_degree
    assert degree == scene.sh_degree
    own, from_ply = evaluate_scene(scene, tiny_scene, cpu), evaluate_scene(scene, tiny_scene, cpu, gaussians=params)
    assert from_ply["psnr"] == own["psnr"] and from_ply["ssim"] == own["ssim"]
    blurred = dict(params, scales=params["scales"] + 1.0)  # every Gaussian e (2.7) times larger
    worse = evaluate_scene(scene, tiny_scene, cpu, gaussians=blurred)
    assert worse["psnr"] < own["psnr"] - 1.0 and worse["gaussians"] == own["gaussians"]


def test_export_refuses_another_methods_config(trim_run, tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(trim_run.config.read_text().replace("method_name: splatfacto-trim", "method_name: nerfacto"))
    out = tmp_path / "exports"
    result = ns("ns-export", "trimmed-splat", "--load-config", str(config), "--output-dir", str(out), cwd=tmp_path)
    assert_clean_failure(result, "is a nerfacto run", out)


def test_a_plain_splatfacto_run_exports_its_untrimmed_model(trained_run, tmp_path):
    """The file of a baseline as it is (ns-trim bench's "baseline, our file" row), also for upstream splatfacto."""
    import dataclasses

    import yaml
    from nerfstudio.models.splatfacto import SplatfactoModelConfig

    from nerfstudio_trim.core.quantize.gaussians import quantize_gaussians
    from nerfstudio_trim.nerfstudio.checkpoints import gaussian_state, load_checkpoint
    from nerfstudio_trim.nerfstudio.config_yaml import load_config

    config = load_config(trained_run.config)
    options = {f.name: getattr(config.pipeline.model, f.name) for f in dataclasses.fields(SplatfactoModelConfig) if f.name != "_target"}
    config.pipeline.model, config.method_name = SplatfactoModelConfig(**options), "splatfacto"
    config.output_dir = tmp_path / "runs"
    (config.get_checkpoint_dir()).mkdir(parents=True)
    shutil.copy(trained_run.checkpoint, config.get_checkpoint_dir())
    path = config.get_base_dir() / "config.yml"
    path.write_text(yaml.dump(config))
    out = tmp_path / "exports"
    result = ns("ns-trim", "export", "--load-config", str(path), "--output-dir", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "not fine-tuned with quantization" in result.stdout
    decoded = read_file(out / "scene.nstrim").gaussians.dequantize()
    params = gaussian_state(load_checkpoint(trained_run.checkpoint)["pipeline"])
    expected = quantize_gaussians(params).dequantize()
    order = morton_order(expected["means"])
    assert all(torch.equal(decoded[name], expected[name][order].reshape(decoded[name].shape)) for name in decoded)


def test_export_into_an_unwritable_place_fails_before_loading(trim_run, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = ns("ns-trim", "export", "--load-config", str(trim_run.config), "--output-dir", str(blocker / "exports"), cwd=tmp_path)
    assert_clean_failure(result, "is not a folder", blocker / "exports")


@pytest.mark.parametrize(
    "corrupt, message, command",
    [(lambda d: d[:-10], "truncated", "info"), (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "checksum mismatch", "decode"),
     (lambda d: b"garbage!" + d[8:], "wrong magic", "eval"), (lambda d: repack(d, major=3), "format version 3.1", "info"),
     (lambda d: repack(d, lambda h: h.update(count=10**12)), "declares 1,000,000,000,000 Gaussians", "decode"),
     (lambda d: d + b"trailing", "unexpected bytes after", "info")],
)  # fmt: skip
def test_ns_trim_refuses_corrupted_files(exported, tiny_scene, tmp_path, corrupt, message, command):
    """One error line and nothing written (every corruption of the format is tested in test_codec.py)."""
    bad = tmp_path / "bad.nstrim"
    bad.write_bytes(corrupt(exported.read_bytes()))
    output = tmp_path / "out" / "result"
    args = {"info": [], "decode": ["--output", str(output)], "eval": ["--data", str(tiny_scene), "--device", "cpu", "--output-path", str(output)]}
    assert_clean_failure(ns("ns-trim", command, str(bad), *args[command], cwd=tmp_path), message, output, output.parent)
