"""``make demo``: the main job on the embedded demo scene, on CPU, through ``ns-trim bench``.

1. ``ns-eval`` of the committed baseline (a splatfacto model trained on CPU from the Blender-rendered
   demo scene) on the held-out views;
2. ``ns-train splatfacto-trim --load-checkpoint BASELINE`` with a schedule shortened for CPU
   (``TRIM_FLAGS``: 20% per round, 100 fine-tuning steps between rounds, 200 at the end, down to
   half the Gaussians, a 0.3 dB training-view PSNR floor; the GPU defaults are 5%, 1,000, 5,000 and 0.1)
   and the baseline's learning-rate schedule;
3. ``ns-eval`` of the trimmed run, ``ns-export trimmed-splat`` of it to one ``.nstrim`` file and
   ``ns-trim eval`` of that file (what a user ships), and the table of all three (results.md).
Everything is written under outputs/demo/ (cleared first); the committed baseline is only read.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from nerfstudio_trim.bench import Bench

REPO = Path(__file__).resolve().parents[1]
SCENE = Path("demo/scene")
BASELINE = Path("demo/baseline/splatfacto-trim")
OUTPUT = Path("outputs/demo")
TRIM_FLAGS = [
    "--pipeline.model.trim.prune-fraction", "0.2", "--pipeline.model.trim.steps-per-round", "100",
    "--pipeline.model.trim.final-steps", "200", "--pipeline.model.trim.target-fraction", "0.5",
    "--pipeline.model.trim.max-psnr-drop", "0.3",
    # the baseline's own learning-rate schedule (demo/train_baseline.py): a 30k-step splatfacto
    # checkpoint needs nothing here, its schedules resume at their final values
    "--optimizers.means.scheduler.max-steps", "4000",
]  # fmt: skip


def main() -> None:
    os.chdir(REPO)  # the baseline's config.yml names its data relative to the repository
    shutil.rmtree(OUTPUT, ignore_errors=True)
    Bench(baseline=BASELINE / "config.yml", data=SCENE, output_dir=OUTPUT, trim_args=shlex.join(TRIM_FLAGS), device="cpu").main()


if __name__ == "__main__":
    main()
