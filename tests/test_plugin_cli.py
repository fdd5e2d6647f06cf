"""nerfstudio's own commands with the plugin: discovery, training on CPU, ns-eval, bad input."""

import json
from pathlib import Path

import pytest
import torch

from nerfstudio_trim.nerfstudio.checkpoints import load_checkpoint
from tests.conftest import TRAIN_STEPS, ns

pytestmark = pytest.mark.slow


def test_ns_train_lists_the_method(tmp_path):
    result = ns("ns-train", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "splatfacto-trim" in result.stdout


def test_training_from_scratch_on_cpu_writes_a_checkpoint(trained_run):
    state = load_checkpoint(trained_run.checkpoint)  # safe loading, torch 2.14 (design.md trap 2)
    assert state["step"] == TRAIN_STEPS - 1
    means = state["pipeline"]["_model.gauss_params.means"]
    assert means.ndim == 2 and means.shape[1] == 3 and means.shape[0] > 100
    assert not any(key.startswith("_model.lpips.") for key in state["pipeline"]), "LPIPS weights are no model state"


def test_ns_eval_reports_psnr_and_ssim(trained_run, tmp_path):
    """On nerfstudio's device: CUDA (gsplat's kernels) where there is a GPU, the CPU elsewhere."""
    output = tmp_path / "eval.json"
    result = ns("ns-eval", "--load-config", str(trained_run.config), "--output-path", str(output), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads(output.read_text())["results"]
    assert 5.0 < metrics["psnr"] < 60.0
    assert 0.0 < metrics["ssim"] <= 1.0
    text = result.stdout + result.stderr
    if "lpips" in metrics:  # weights were available on this machine
        assert 0.0 <= metrics["lpips"] <= 1.0
    else:  # offline: one warning, metrics without LPIPS
        assert text.count("LPIPS is not available") == 1


def bad_run(tmp_path: Path, data: Path, *extra: str):
    out = tmp_path / "outputs"
    result = ns(
        "ns-train", "splatfacto-trim", "--machine.device-type", "cpu", "--vis", "tensorboard",
        "--output-dir", str(out), *extra, "nerfstudio-data", "--data", str(data),
        cwd=tmp_path, timeout=300,
    )  # fmt: skip
    return result, out


def assert_clean_failure(result, out: Path, expected: str):
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert not out.exists(), "nothing may be written for bad input"


def test_missing_checkpoint(tiny_scene, tmp_path):
    result, out = bad_run(tmp_path, tiny_scene, "--load-checkpoint", str(tmp_path / "nope.ckpt"))
    assert_clean_failure(result, out, "does not exist")


def test_checkpoint_of_another_method(tiny_scene, tmp_path):
    ckpt = tmp_path / "nerfacto.ckpt"
    torch.save({"step": 9, "pipeline": {"_model.field.mlp.weight": torch.zeros(4, 4)}, "optimizers": {}}, ckpt)
    result, out = bad_run(tmp_path, tiny_scene, "--load-checkpoint", str(ckpt))
    assert_clean_failure(result, out, "not a splatfacto checkpoint")


def test_data_folder_without_images(tiny_scene, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "transforms.json").write_text((tiny_scene / "transforms.json").read_text())
    result, out = bad_run(tmp_path, data)
    assert_clean_failure(result, out, "is missing " + str(data / "images" / "frame_00000.png"))


def test_empty_data_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    result, out = bad_run(tmp_path, tmp_path / "empty")
    assert_clean_failure(result, out, "is missing " + str(tmp_path / "empty" / "transforms.json"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_requested_without_a_gpu(tiny_scene, tmp_path):
    out = tmp_path / "outputs"
    result = ns("ns-train", "splatfacto-trim", "--vis", "tensorboard", "--output-dir", str(out),
                "nerfstudio-data", "--data", str(tiny_scene), cwd=tmp_path, timeout=300)  # fmt: skip
    assert_clean_failure(result, out, "no CUDA GPU is available on this machine; add --machine.device-type cpu")
