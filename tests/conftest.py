"""Shared fixtures: a tiny nerfstudio-data scene cut from the demo scene, one short training run and
one short trim of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List

import pytest

from nerfstudio_trim.core.prune.schedule import TrimSchedule

REPO = Path(__file__).resolve().parents[1]
DEMO_SCENE = REPO / "demo" / "scene"
BIN = Path(sys.executable).parent


def ns(command: str, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a nerfstudio console script of this environment; output captured as text."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
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


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory) -> Path:
    return write_tiny_scene(tmp_path_factory.mktemp("scene") / "tiny")


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
