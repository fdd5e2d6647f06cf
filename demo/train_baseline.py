"""Retrain the embedded demo scene's baseline from scratch on CPU and package it as demo/baseline.

This is how the committed baseline was made (``make baseline``; ~20-30 minutes on 2 cores). The run
is splatfacto's own training (densification included) through ``splatfacto-trim``, with the schedule
shortened for a 160 x 120 scene on CPU:
- 4,000 iterations instead of 30,000 (means' learning rate decays over those 4,000);
- full resolution from the start (no 4x/2x warm-up: the images are already tiny);
- densification at 1.5x splatfacto's gradient threshold, stopping at 2,500; opacities reset every
  1,000 iterations;
- screen-size splitting off (gsplat's default): at 160 px splatfacto's 5%-of-the-image rule would
  split almost every Gaussian.
The output folder holds config.yml (paths relative to the repository root) and the checkpoint.
The same recipe trains the ablation benchmark's second scene (benchmarks/ablation.py)::

    python demo/train_baseline.py --data outputs/scenes/still-life --packaged outputs/scenes/still-life-baseline
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from nerfstudio_trim.nerfstudio.config_yaml import load_config

REPO = Path(__file__).resolve().parents[1]
SCENE = Path("demo/scene")
PACKAGED = Path("demo/baseline")
ITERATIONS = 4000

TRAIN_ARGS = [
    "splatfacto-trim", "--machine.device-type", "cpu", "--machine.seed", "42", "--vis", "tensorboard",
    "--max-num-iterations", str(ITERATIONS), "--steps-per-save", str(ITERATIONS),
    "--steps-per-eval-all-images", str(ITERATIONS),
    "--pipeline.model.num-downscales", "0", "--pipeline.model.stop-screen-size-at", "0",
    "--pipeline.model.stop-split-at", "2500", "--pipeline.model.reset-alpha-every", "10",
    "--pipeline.model.densify-grad-thresh", "0.0012",
    "--optimizers.means.scheduler.max-steps", str(ITERATIONS),
]  # fmt: skip


def package(run_dir: Path, data: Path, target: Path) -> Path:
    """Copy a finished run's last checkpoint into ``target`` with a config.yml (data ``data``) that ns-eval
    and ``--load-checkpoint`` can use from the repository root. Returns the config path."""
    config = load_config(run_dir / "config.yml")
    config.output_dir, config.experiment_name, config.timestamp = target.parent, target.name, ""
    config.data = config.pipeline.datamanager.data = config.pipeline.datamanager.dataparser.data = data
    config.load_checkpoint = None
    base = config.get_base_dir()
    checkpoint = sorted((run_dir / "nerfstudio_models").glob("step-*.ckpt"))[-1]
    if target.exists():
        shutil.rmtree(target)
    (base / "nerfstudio_models").mkdir(parents=True)
    shutil.copy(checkpoint, base / "nerfstudio_models" / checkpoint.name)
    (base / "config.yml").write_text(yaml.dump(config))
    return base / "config.yml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SCENE, help="the scene (relative to the repository)")
    parser.add_argument("--packaged", type=Path, default=PACKAGED, help="where the packaged baseline goes")
    args = parser.parse_args()
    os.chdir(REPO)  # the packaged config.yml names paths relative to the repository
    out = Path("outputs/baseline-training")
    name = args.data.name
    command = [str(Path(sys.executable).parent / "ns-train"), *TRAIN_ARGS, "--output-dir", str(out),
               "--experiment-name", name, "--timestamp", "baseline", "nerfstudio-data", "--data", str(args.data)]  # fmt: skip
    subprocess.run(command, check=True)
    config = package(out / name / "splatfacto-trim" / "baseline", args.data, args.packaged)
    print(f"baseline packaged: {config}")


if __name__ == "__main__":
    main()
