"""Shared fixtures: a tiny nerfstudio-data scene cut from the demo scene (and a copy of it seen through a
distorting lens), one short training run and one short trim of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest

from nerfstudio_trim.core.prune.schedule import TrimSchedule

REPO = Path(__file__).resolve().parents[1]
DEMO_SCENE = REPO / "demo" / "scene"
BIN = Path(sys.executable).parent


def ns(command: str, *args: str, cwd: Path, timeout: float = 600, cpu_only: bool = False) -> subprocess.CompletedProcess:
    """Run a nerfstudio console script of this environment; output captured as text.

    ``cpu_only``: hide the GPUs from it, for commands without a device option that take CUDA wherever there is
    one (``ns-eval``, ``ns-export``, ``ns-trim export``) in tests that mean the CPU."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200", **({"CUDA_VISIBLE_DEVICES": ""} if cpu_only else {}))
    return subprocess.run(
        [str(BIN / command), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def write_tiny_scene(root: Path, n_train: int = 10, n_eval: int = 2) -> Path:
    """A copy of the demo scene with only a few views (same images, cameras and point cloud)."""
    meta = json.loads((DEMO_SCENE / "transforms.json").read_text())
    frames = meta["frames"][: n_train + n_eval]
    (root / "images").mkdir(parents=True)
    for frame in frames:
        shutil.copy(DEMO_SCENE / frame["file_path"], root / frame["file_path"])
    shutil.copy(DEMO_SCENE / meta["ply_file_path"], root / meta["ply_file_path"])
    names = [f["file_path"] for f in frames]
    meta.update(
        frames=frames, train_filenames=names[:n_train], val_filenames=names[n_train:], test_filenames=names[n_train:]
    )
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


LENS = {"k1": 0.08, "k2": 0.02, "p1": 0.002, "p2": -0.0015}
"""OPENCV coefficients of the distorted scene: pincushion, so every pixel of a distorted image sees a point
inside the pinhole image it is made from."""


def write_distorted_scene(root: Path, source: Path, lens: Dict[str, float] = LENS) -> Path:
    """A copy of the pinhole scene ``source`` as a camera with lens distortion ``lens`` (OpenCV's k1, k2, p1,
    p2) would have seen it: each image is resampled so that its pixel (u, v) shows what the pinhole image
    shows where OpenCV's model undistorts (u, v) to; transforms.json names the coefficients. nerfstudio's
    undistortion then gives back the pinhole images, resampled, on a smaller crop."""
    meta = json.loads((source / "transforms.json").read_text())
    width, height = int(meta["w"]), int(meta["h"])
    # OpenCV puts pixel centres at integers, nerfstudio at half-integers
    intrinsics = np.array([[meta["fl_x"], 0, meta["cx"] - 0.5], [0, meta["fl_y"], meta["cy"] - 0.5], [0, 0, 1]])
    coefficients = np.array([lens["k1"], lens["k2"], lens["p1"], lens["p2"]])
    pixels = np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1).reshape(-1, 1, 2).astype(np.float64)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    sources = cv2.undistortPointsIter(pixels, intrinsics, coefficients, None, intrinsics, criteria)
    sources = sources.reshape(height, width, 2).astype(np.float32)
    assert sources.min() >= 0 and sources[..., 0].max() <= width - 1 and sources[..., 1].max() <= height - 1
    shutil.copytree(source, root)
    for frame in meta["frames"]:
        path = str(root / frame["file_path"])
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        cv2.imwrite(path, cv2.remap(image, sources[..., 0], sources[..., 1], cv2.INTER_CUBIC))
    meta.update(camera_model="OPENCV", **lens)
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory) -> Path:
    return write_tiny_scene(tmp_path_factory.mktemp("scene") / "tiny")


@pytest.fixture(scope="session")
def distorted_scene(tiny_scene, tmp_path_factory) -> Path:
    """The tiny scene through a lens with radial and tangential distortion (``LENS``)."""
    return write_distorted_scene(tmp_path_factory.mktemp("scene") / "distorted", tiny_scene)


@dataclass
class TrainedRun:
    config: Path
    checkpoint: Path
    log: str


TRAIN_STEPS = 30


@pytest.fixture(scope="session")
def trained_run(tiny_scene, tmp_path_factory) -> TrainedRun:
    """``ns-train splatfacto-trim`` from scratch on CPU for a few dozen iterations."""
    out = tmp_path_factory.mktemp("outputs")
    result = ns(
        "ns-train", "splatfacto-trim", "--machine.device-type", "cpu", "--vis", "tensorboard",
        "--max-num-iterations", str(TRAIN_STEPS), "--steps-per-save", str(TRAIN_STEPS),
        "--output-dir", str(out), "--experiment-name", "tiny", "--timestamp", "run",
        "nerfstudio-data", "--data", str(tiny_scene),
        cwd=out,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = out / "tiny" / "splatfacto-trim" / "run"
    checkpoints = sorted((run_dir / "nerfstudio_models").glob("step-*.ckpt"))
    assert checkpoints, f"no checkpoint written in {run_dir}"
    return TrainedRun(config=run_dir / "config.yml", checkpoint=checkpoints[-1], log=result.stdout + result.stderr)


SCHEDULE = TrimSchedule(prune_fraction=0.1, steps_per_round=4, final_steps=4, target_fraction=0.8)
FLAGS = [
    "--pipeline.model.trim.prune-fraction", "0.1", "--pipeline.model.trim.steps-per-round", "4",
    "--pipeline.model.trim.final-steps", "4", "--pipeline.model.trim.target-fraction", "0.8",
]  # fmt: skip


@dataclass
class TrimRun:
    config: Path
    checkpoints: List[Path]
    log: str


def trim(scene: Path, checkpoint: Path, out: Path, *extra: str) -> TrimRun:
    result = ns(
        "ns-train", "splatfacto-trim", "--machine.device-type", "cpu", "--vis", "tensorboard",
        "--load-checkpoint", str(checkpoint), *FLAGS, *extra, "--output-dir", str(out),
        "--experiment-name", "trim", "--timestamp", "run", "nerfstudio-data", "--data", str(scene),
        cwd=out.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    run_dir = out / "trim" / "splatfacto-trim" / "run"
    checkpoints = sorted((run_dir / "nerfstudio_models").glob("step-*.ckpt"))
    return TrimRun(config=run_dir / "config.yml", checkpoints=checkpoints, log=result.stdout + result.stderr)


@pytest.fixture(scope="session")
def trim_run(tiny_scene, trained_run, tmp_path_factory) -> TrimRun:
    """The trained run trimmed with a short schedule (QAT on), every checkpoint kept."""
    out = tmp_path_factory.mktemp("trim") / "outputs"
    return trim(tiny_scene, trained_run.checkpoint, out, "--steps-per-save", "4", "--save-only-latest-checkpoint", "False")
