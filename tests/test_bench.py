"""ns-trim bench on a tiny scene: a well-formed results.json and table, and a rerun that skips finished steps."""

import json
import shlex

import pytest
import torch

from nerfstudio_trim.core.codec.morton import morton_order
from nerfstudio_trim.core.codec.nstrim import read_file
from nerfstudio_trim.core.quantize.gaussians import quantize_gaussians
from nerfstudio_trim.nerfstudio.checkpoints import gaussian_state, load_checkpoint

from tests.conftest import FLAGS, ns

pytestmark = pytest.mark.slow


def test_bench_writes_the_results_table_and_resumes(trained_run, tiny_scene, tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--baseline", str(trained_run.config), "--data", str(tiny_scene), "--output-dir", str(out),
            f"--trim-args={shlex.join(FLAGS)}", "--device", "cpu"]  # fmt: skip
    result = ns("ns-trim", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    # the trim's output is streamed line by line, whole: its log and the learning rate it changed
    streamed = result.stdout.splitlines()
    assert any(line.startswith("optimizer settings from this run's config") and line.endswith("features_rest lr 0.000125 -> 0.001")
               for line in streamed), result.stdout[-4000:]  # fmt: skip
    assert any(line.startswith("trim: schedule of at most") and line.endswith("steps") for line in streamed)
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert [r["model"] for r in rows] == ["baseline (ns-eval)", "baseline, our file (ns-trim eval)", "trimmed run (ns-eval)",
                                          "trimmed, our file (ns-trim eval)"]  # fmt: skip
    for row in rows:
        assert set(row) >= {"psnr", "ssim", "lpips", "gaussians", "fps", "size_mb"}
        assert row["fps"] > 0 and row["fps_kind"] == "render only" and 0 < row["ssim"] <= 1 and row["psnr"] > 10
    assert rows[3]["size_mb"] == (out / "export" / "scene.nstrim").stat().st_size / 1e6
    assert rows[0]["gaussians"] == rows[1]["gaussians"] > rows[2]["gaussians"] == rows[3]["gaussians"]
    assert abs(rows[2]["psnr"] - rows[3]["psnr"]) < 0.01  # the file renders what the run rendered
    # the baseline's row is the untrimmed model encoded as the exporter encodes it, evaluated from the file
    baseline_file = out / "baseline_export" / "scene.nstrim"
    assert rows[1]["size_mb"] == baseline_file.stat().st_size / 1e6
    params = gaussian_state(load_checkpoint(trained_run.checkpoint)["pipeline"])
    expected = quantize_gaussians(params).dequantize()
    decoded = read_file(baseline_file).gaussians.dequantize()
    order = morton_order(expected["means"])
    assert all(torch.equal(decoded[name], expected[name][order].reshape(decoded[name].shape)) for name in decoded)
    assert set(results["versions"]) == {"nerfstudio-trim", "nerfstudio", "gsplat", "torch"} and results["machine"]
    table = (out / "results.md").read_text().splitlines()
    for column in ("PSNR", "SSIM", "LPIPS", "NUM GAUSSIANS", "FPS", "SIZE (MB)", "compression vs baseline PLY",
                   "compression vs baseline file", "PSNR change"):
        assert column in table[0]
    assert len(table) == 2 + len(rows)

    checkpoint = next((out / "trim").rglob("step-*.ckpt"))
    modified = checkpoint.stat().st_mtime_ns
    again = ns("ns-trim", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "skipped" in again.stdout and "ns-eval" not in again.stdout.replace("(ns-eval)", "")
    assert checkpoint.stat().st_mtime_ns == modified  # the trim was not run again


def test_bench_refuses_a_missing_baseline(tiny_scene, tmp_path):
    result = ns("ns-trim", "bench", "--baseline", str(tmp_path / "nope.yml"), "--data", str(tiny_scene),
                "--output-dir", str(tmp_path / "bench"), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1 and "error: baseline config" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "bench").exists()
