"""``ns-trim bench``: the seed method's results table for one scene, with one command.

Given a dataset and a trained baseline run (splatfacto or splatfacto-trim), it runs nerfstudio's own
commands: ``ns-eval`` of the baseline, ``ns-export trimmed-splat`` of the baseline as it is (our file of the
untrimmed model) and ``ns-trim eval`` of that file, ``ns-train splatfacto-trim --load-checkpoint`` (trim),
``ns-eval`` of the trimmed run, ``ns-export trimmed-splat`` and ``ns-trim eval`` of its file; then it writes
``results.json`` and ``results.md`` (PSNR, SSIM, LPIPS, NUM GAUSSIANS, FPS, SIZE (MB), the compression ratio
against the baseline as a PLY and as our file, and the PSNR change). Each step's output is kept; a rerun
skips the steps that finished.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

import torch
from rich.console import Console
from rich.text import Text

from nerfstudio_trim.core.scene import sh_degree_of
from nerfstudio_trim.core.files import check_output, make_dir, write_atomic
from nerfstudio_trim.core.codec.ply import ply_size
from nerfstudio_trim.core.text import printable
from nerfstudio_trim.errors import TrimError
from nerfstudio_trim.nerfstudio.checkpoints import gaussian_state, load_checkpoint
from nerfstudio_trim.nerfstudio.config_yaml import load_config

BIN = Path(sys.executable).parent
console = Console()
TRIM_LOG = ("trim", "optimizer settings")
"""The lines of a trim's output shown as they come: its own log and the optimizer settings it changed."""
COLUMNS = ("model", "PSNR", "SSIM", "LPIPS", "NUM GAUSSIANS", "FPS", "SIZE (MB)", "compression vs baseline PLY",
           "compression vs baseline file", "PSNR change (dB)")  # fmt: skip


def run(command: List[str], what: str, device: str, stream_prefixes: Tuple[str, ...] = ()) -> str:
    """Run a command of this environment; its output is returned, or shown with one error line if it fails.

    ``device``: "cpu" hides the GPUs from the command (``ns-eval`` and ``ns-export`` have no device option
    and take CUDA wherever there is one). ``stream_prefixes``: print the output lines starting with one of them
    as they come (e.g. the trim log), each whole (a terminal wraps it)."""
    console.rule(Text(printable(what)))
    lines: List[str] = []
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="") if device == "cpu" else None
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if stream_prefixes and line.startswith(stream_prefixes):
                console.print(line.rstrip(), markup=False, highlight=False, soft_wrap=True)
    output = "".join(lines)
    if process.returncode != 0:
        errors = [line for line in lines if line.startswith("error:")]
        console.print(output[-3000:] if not errors else "", markup=False)
        raise TrimError(f"{what} failed" + (f": {errors[-1][len('error:'):].strip()}" if errors else ""))
    return output


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest step-*.ckpt of a nerfstudio run folder."""
    checkpoints = sorted((run_dir / "nerfstudio_models").glob("step-*.ckpt"))
    if not checkpoints:
        raise TrimError(f"{run_dir} has no checkpoint (nerfstudio_models/step-*.ckpt)")
    return checkpoints[-1]


def count_gaussians(checkpoint: Path) -> Tuple[int, int]:
    """(number of Gaussians, SH degree) of a checkpoint."""
    rest = gaussian_state(load_checkpoint(checkpoint)["pipeline"])["features_rest"]
    return int(rest.shape[0]), sh_degree_of(rest)


def ns_eval(config: Path, output: Path, device: str) -> Dict[str, Any]:
    """``ns-eval`` of a run on ``device`` into ``output`` (skipped when that file holds results); its averaged
    metrics."""
    if not _results(output):
        command = [str(BIN / "ns-eval"), "--load-config", str(config), "--output-path", str(output)]
        run(command, f"ns-eval {config}", device)
    return _results(output) or {}


def _results(path: Path) -> Optional[Dict[str, Any]]:
    """The ``results`` of an ns-eval-style JSON file, or None when missing or incomplete."""
    try:
        return json.loads(path.read_text())["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def trim_run(checkpoint: Path, data: Path, flags: List[str], output_dir: Path, device: str) -> Tuple[Path, str]:
    """``ns-train splatfacto-trim --load-checkpoint CHECKPOINT`` into ``output_dir``; returns the run folder
    and the run's console output ("" when skipped).

    A run whose last checkpoint finished its trim schedule is kept; an unfinished one starts again."""
    run_dir = output_dir / "bench" / "splatfacto-trim" / "trimmed"
    if _trim_finished(run_dir):
        console.rule(Text(f"trim: done in {printable(run_dir)}, skipped"))
        return run_dir, ""
    shutil.rmtree(run_dir, ignore_errors=True)
    log = run(
        [str(BIN / "ns-train"), "splatfacto-trim", "--machine.device-type", device, "--vis", "tensorboard",
         "--load-checkpoint", str(checkpoint), *flags, "--output-dir", str(output_dir), "--experiment-name", "bench",
         "--timestamp", "trimmed", "nerfstudio-data", "--data", str(data)],
        f"trimming {checkpoint}", device, stream_prefixes=TRIM_LOG,
    )  # fmt: skip
    return run_dir, log


def _trim_finished(run_dir: Path) -> bool:
    try:
        extra = load_checkpoint(latest_checkpoint(run_dir))["pipeline"].get("_model._extra_state") or {}
    except TrimError:
        return False
    return (extra.get("trim_state") or {}).get("phase") == "done"


def _row(model: str, metrics: Dict[str, Any], gaussians: int, size_bytes: int, size_kind: str) -> Dict[str, Any]:
    fps = metrics.get("render_fps")
    return {
        "model": model, "psnr": metrics["psnr"], "ssim": metrics["ssim"], "lpips": metrics.get("lpips"),
        "gaussians": gaussians, "fps": fps if fps is not None else metrics.get("fps"),
        "fps_kind": "render only" if fps is not None else "nerfstudio (includes metric time)",
        "size_mb": size_bytes / 1e6, "size_kind": size_kind,
    }  # fmt: skip


def markdown(rows: List[Dict[str, Any]]) -> str:
    """The results table in markdown, with the seed method's columns."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 1)]
    baseline, baseline_file = rows[0], rows[1]
    for row in rows:
        lpips = "n/a" if row["lpips"] is None else f"{row['lpips']:.3f}"
        fps = "n/a" if row["fps"] is None else f"{row['fps']:.1f}"
        vs_ply, vs_file = baseline["size_mb"] / row["size_mb"], baseline_file["size_mb"] / row["size_mb"]
        cells = [f"{row['model']}", f"{row['psnr']:.2f}", f"{row['ssim']:.4f}", lpips, f"{row['gaussians']:,}", fps,
                 f"{row['size_mb']:.3f} ({row['size_kind']})", f"{vs_ply:.1f}x", f"{vs_file:.2f}x",
                 f"{row['psnr'] - baseline['psnr']:+.2f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class Bench:
    """Benchmark one scene: evaluate the baseline, trim, export, evaluate the file; results.json + results.md."""

    baseline: Path
    """The baseline run's config.yml (a trained splatfacto or splatfacto-trim run)."""
    data: Path
    """The scene's dataset (nerfstudio-data), the one the baseline was trained on."""
    output_dir: Path = Path("outputs/bench")
    """Where every step writes (a rerun skips finished steps)."""
    trim_args: str = ""
    """Extra ns-train arguments for the trim in shell syntax, e.g. --trim-args="--pipeline.model.trim.target-fraction 0.2"."""
    device: Literal["cpu", "cuda"] = "cuda" if torch.cuda.is_available() else "cpu"
    """Where to trim and evaluate."""

    def export_and_evaluate(self, config: Path, folder: Path, results: str) -> Dict[str, Any]:
        """``ns-export trimmed-splat`` of a run into ``folder`` and ``ns-trim eval`` of the file (each skipped when
        done); the evaluation's results (with the file's ``bytes``)."""
        scene_file = folder / "scene.nstrim"
        if not scene_file.is_file():
            run([str(BIN / "ns-export"), "trimmed-splat", "--load-config", str(config), "--output-dir", str(folder)],
                f"ns-export trimmed-splat {config}", self.device)  # fmt: skip
        if not _results(self.output_dir / results):
            run([str(BIN / "ns-trim"), "eval", str(scene_file), "--data", str(self.data), "--device", self.device,
                 "--output-path", str(self.output_dir / results)], f"ns-trim eval {scene_file}", self.device)  # fmt: skip
        return _results(self.output_dir / results) or {}

    def main(self) -> Dict[str, Any]:
        if not self.baseline.is_file():
            raise TrimError(f"baseline config {self.baseline} does not exist")
        if not self.data.exists():
            raise TrimError(f"data path {self.data} does not exist")
        load_config(self.baseline)  # refused here if it holds more than a config: ns-eval would run it
        from nerfstudio_trim.nerfstudio.checks import check_device  # imports nerfstudio: not for ns-trim info

        check_device(self.device, cpu_option="--device cpu")
        out = self.output_dir
        for result in (out / "results.json", out / "results.md"):
            check_output(result, self.baseline)
        make_dir(self.output_dir)
        baseline_checkpoint = latest_checkpoint(self.baseline.parent)
        baseline_count, degree = count_gaussians(baseline_checkpoint)
        baseline = ns_eval(self.baseline, out / "baseline_eval.json", self.device)

        baseline_file = self.export_and_evaluate(self.baseline, out / "baseline_export", "baseline_file_eval.json")
        run_dir, _ = trim_run(baseline_checkpoint, self.data, shlex.split(self.trim_args), out / "trim", self.device)
        trimmed = ns_eval(run_dir / "config.yml", out / "trimmed_eval.json", self.device)
        file = self.export_and_evaluate(run_dir / "config.yml", out / "export", "file_eval.json")

        trimmed_count, _ = count_gaussians(latest_checkpoint(run_dir))
        rows = [
            _row("baseline (ns-eval)", baseline, baseline_count, ply_size(baseline_count, degree), "PLY"),
            _row("baseline, our file (ns-trim eval)", baseline_file, baseline_file["gaussians"], baseline_file["bytes"], "file"),
            _row("trimmed run (ns-eval)", trimmed, trimmed_count, ply_size(trimmed_count, degree), "PLY"),
            _row("trimmed, our file (ns-trim eval)", file, file["gaussians"], file["bytes"], "file"),
        ]
        results = {
            "scene": str(self.data), "baseline": str(self.baseline), "trim_args": self.trim_args, "device": self.device,
            "date": datetime.date.today().isoformat(),
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cuda": torch.cuda.get_device_name() if self.device == "cuda" else None,
                        "torch_threads": torch.get_num_threads()},
            "versions": {name: version(name) for name in ("nerfstudio-trim", "nerfstudio", "gsplat", "torch")},
            "rows": rows,
        }  # fmt: skip
        write_atomic(out / "results.json", json.dumps(results, indent=2).encode())
        table = markdown(rows)
        write_atomic(out / "results.md", table.encode())
        console.print(table, markup=False, highlight=False, soft_wrap=True)
        console.print(Text(f"results: {printable(out / 'results.json')}, {printable(out / 'results.md')}"))
        return results
