"""``make demo``: the main job on the embedded demo scene, on CPU.

1. ``ns-eval`` of the committed baseline (a splatfacto model trained on CPU from the Blender-rendered
   demo scene) on the held-out views;
2. ``ns-train splatfacto-trim --load-checkpoint BASELINE`` with a schedule shortened for CPU
   (``TRIM_FLAGS``: 20% per round, 100 fine-tuning steps between rounds, 200 at the end, down to
   half the Gaussians, a 0.3 dB training-view PSNR floor; the GPU defaults are 5%, 1,000, 5,000 and 0.1)
   and the baseline's learning-rate schedule;
3. ``ns-eval`` of the trimmed model;
4. ``ns-export trimmed-splat`` of it to one ``.nstrim`` file and ``ns-trim eval`` of that file (what a
   user ships), and a table of all three.
Everything is written under outputs/demo/; the committed baseline is only read.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nerfstudio_trim.core.ply import ply_size
from nerfstudio_trim.nerfstudio.checkpoints import gaussian_state, load_checkpoint

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
BIN = Path(sys.executable).parent
console = Console()


def run(command: list, what: str, quiet: bool) -> subprocess.CompletedProcess:
    """Run a nerfstudio command from the repository root; stop the demo with one line if it fails."""
    if quiet:
        with console.status(what):
            result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    else:  # stream the trim log lines as they come, keep the rest for an error report
        console.rule(what)
        lines = []
        with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
            for line in process.stdout:
                lines.append(line)
                if line.startswith("trim"):
                    console.print(line.rstrip(), markup=False)
        result = subprocess.CompletedProcess(command, process.returncode, "".join(lines), "")
    if result.returncode != 0:
        console.print((result.stdout or "")[-4000:], (result.stderr or "")[-4000:], markup=False)
        sys.exit(f"error: {what} failed")
    return result


def evaluate(config: Path, output: Path) -> dict:
    """``ns-eval`` of ``config`` into the JSON file ``output``; returns its averaged metrics."""
    result = run([str(BIN / "ns-eval"), "--load-config", str(config), "--output-path", str(output)], f"ns-eval {config}", True)
    if "LPIPS is not available" in result.stdout + result.stderr:
        console.print("LPIPS is not available offline (its AlexNet weights cannot be downloaded): PSNR and SSIM only")
    return json.loads((REPO / output).read_text())["results"]


def trim_baseline(flags: list, output_dir: Path, what: str) -> tuple:
    """``ns-train splatfacto-trim --load-checkpoint BASELINE`` with ``flags``; returns the run folder
    (relative to the repository) and the run's console output."""
    checkpoint = latest_checkpoint(BASELINE).relative_to(REPO)
    result = run(
        [str(BIN / "ns-train"), "splatfacto-trim", "--machine.device-type", "cpu", "--vis", "tensorboard",
         "--load-checkpoint", str(checkpoint), *flags, "--output-dir", str(output_dir),
         "--experiment-name", "demo", "--timestamp", "trimmed", "nerfstudio-data", "--data", str(SCENE)],
        what, False,
    )  # fmt: skip
    return output_dir / "demo" / "splatfacto-trim" / "trimmed", result.stdout


def count_gaussians(run_dir: Path) -> int:
    """Gaussians in the latest checkpoint of a run folder."""
    return gaussians_in(latest_checkpoint(run_dir))


def gaussians_in(checkpoint: Path) -> int:
    return gaussian_state(load_checkpoint(checkpoint)["pipeline"])["means"].shape[0]


def latest_checkpoint(run_dir: Path) -> Path:
    return sorted((REPO / run_dir / "nerfstudio_models").glob("step-*.ckpt"))[-1]


def main() -> None:
    (REPO / OUTPUT).mkdir(parents=True, exist_ok=True)
    rows = {"baseline": (BASELINE, evaluate(BASELINE / "config.yml", OUTPUT / "baseline_eval.json"))}

    trim_root = OUTPUT / "trim"
    shutil.rmtree(REPO / trim_root, ignore_errors=True)
    trimmed = trim_baseline(TRIM_FLAGS, trim_root, "trimming the baseline on CPU (a few minutes)")[0]
    rows["trimmed"] = (trimmed, evaluate(trimmed / "config.yml", OUTPUT / "trimmed_eval.json"))
    export_dir = OUTPUT / "export"
    run([str(BIN / "ns-export"), "trimmed-splat", "--load-config", str(trimmed / "config.yml"), "--output-dir",
         str(export_dir)], "ns-export trimmed-splat", True)  # fmt: skip
    scene_file = export_dir / "scene.nstrim"
    run([str(BIN / "ns-trim"), "eval", str(scene_file), "--data", str(SCENE), "--output-path", str(OUTPUT / "file_eval.json")],
        f"ns-trim eval {scene_file}", True)  # fmt: skip
    file_metrics = json.loads((REPO / OUTPUT / "file_eval.json").read_text())["results"]

    table = Table(title="nerfstudio-trim demo scene: held-out views")
    for column in ("model", "Gaussians", "kept", "PSNR (dB)", "SSIM", "LPIPS", "size (MB)"):
        table.add_column(column, justify="right")
    baseline_count = gaussians_in(latest_checkpoint(BASELINE))
    listed = [(f"{name} (ns-eval)", gaussians_in(latest_checkpoint(run_dir)), metrics, latest_checkpoint(run_dir), "checkpoint")
              for name, (run_dir, metrics) in rows.items()]  # fmt: skip
    listed.append(("trimmed .nstrim file (ns-trim eval)", file_metrics["gaussians"], file_metrics, REPO / scene_file, "file"))
    for name, count, metrics, path, kind in listed:
        table.add_row(
            name, f"{count:,}", f"{count / baseline_count:.0%}", f"{metrics['psnr']:.2f}", f"{metrics['ssim']:.4f}",
            f"{metrics['lpips']:.3f}" if "lpips" in metrics else "n/a", f"{path.stat().st_size / 2**20:.2f} ({kind})",
        )  # fmt: skip
    console.print(table)
    baseline_ply = ply_size(baseline_count, 3)
    console.print(f"the file is {baseline_ply / (REPO / scene_file).stat().st_size:.1f}x smaller than the baseline as a PLY "
                  f"({baseline_ply / 2**20:.2f} MiB, ns-export gaussian-splat)")  # fmt: skip
    console.print(f"results in {OUTPUT}/: baseline_eval.json, trimmed_eval.json, file_eval.json, trim/ (the trimmed run), "
                  "export/scene.nstrim")  # fmt: skip


if __name__ == "__main__":
    main()
