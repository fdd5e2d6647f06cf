"""A real capture end to end on CPU: instant-ngp's fox (phone frames posed by COLMAP, OPENCV lens with
k1, k2, p1, p2; ``tests/data/fox``, 8 views at 68 x 120): a short training from random points, a trim, the
export, and ``ns-trim eval`` of the file equal to ``ns-eval`` of the run on the same undistorted views."""

import json
import shutil
from pathlib import Path

import pytest

from nerfstudio_trim.core.codec.nstrim import read_file
from nerfstudio_trim.nerfstudio.checkpoints import load_checkpoint
from tests.conftest import REPO, TRAIN_STEPS, ns, trim

FOX = REPO / "tests" / "data" / "fox"
EVAL_VIEWS = (3, 7)  # of the 8, the rest train


@pytest.fixture(scope="module")
def fox_scene(tmp_path_factory) -> Path:
    """The committed capture with an explicit split (nerfstudio's 90% default leaves 8 views no eval view)."""
    root = tmp_path_factory.mktemp("capture") / "fox"
    shutil.copytree(FOX, root)
    meta = json.loads((root / "transforms.json").read_text())
    names = [frame["file_path"] for frame in meta["frames"]]
    evals = [names[i] for i in EVAL_VIEWS]
    meta.update(train_filenames=[n for n in names if n not in evals], val_filenames=evals, test_filenames=evals)
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


@pytest.mark.slow
def test_a_distorted_phone_capture_trains_trims_exports_and_evaluates_as_the_run(fox_scene, tmp_path):
    out = tmp_path / "outputs"
    result = ns(
        "ns-train", "splatfacto-trim", "--machine.device-type", "cpu", "--vis", "tensorboard",
        "--max-num-iterations", str(TRAIN_STEPS), "--steps-per-save", str(TRAIN_STEPS),
        "--pipeline.model.num-random", "3000",  # no point cloud comes with the capture
        "--output-dir", str(out), "--experiment-name", "fox", "--timestamp", "run",
        "nerfstudio-data", "--data", str(fox_scene), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checkpoint = sorted((out / "fox" / "splatfacto-trim" / "run" / "nerfstudio_models").glob("step-*.ckpt"))[-1]

    trained = load_checkpoint(checkpoint)["pipeline"]["_model.gauss_params.means"]
    trimmed = trim(fox_scene, checkpoint, tmp_path / "trim")

    export = tmp_path / "export"
    result = ns("ns-trim", "export", "--load-config", str(trimmed.config), "--output-dir", str(export), cwd=tmp_path,
                cpu_only=True)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    exported = export / "scene.nstrim"
    assert 0 < read_file(exported).gaussians.count < len(trained)  # pruned

    run_json, file_json = tmp_path / "run.json", tmp_path / "file.json"
    result = ns("ns-eval", "--load-config", str(trimmed.config), "--output-path", str(run_json), cwd=tmp_path,
                cpu_only=True)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    result = ns("ns-trim", "eval", str(exported), "--data", str(fox_scene), "--device", "cpu",
                "--output-path", str(file_json), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run, file = json.loads(run_json.read_text())["results"], json.loads(file_json.read_text())["results"]
    assert file["images"] == len(EVAL_VIEWS) and run["gaussians"] == file["gaussians"]
    assert abs(run["psnr"] - file["psnr"]) < 0.01 and abs(run["ssim"] - file["ssim"]) < 1e-4
