"""Score modes compared on the demo scene: held-out PSNR/SSIM of the run and of its file after trimming to a
fraction kept.

Each (mode, target fraction) is one ``ns-trim bench`` (``nerfstudio_trim.bench.Bench``) of the committed
demo baseline on CPU with the demo's schedule (``demo/run_demo.py``: 20% per round, 100 steps between
rounds, 200 at the end) but without the quality floor and without undoing rounds that grow the file
(``--pipeline.model.trim.undo-growing-rounds False``), so every mode reaches the same fraction: ``ns-eval``
of the trimmed run, ``ns-export trimmed-splat`` of it and ``ns-trim eval`` of the file. The baseline's own
steps (its ``ns-eval``, its export as our file and that file's ``ns-trim eval``) run once and are shared by
every row. A rerun skips recorded rows; an interrupted bench resumes from its finished steps.

Results: benchmarks/results/score_modes.json and a markdown table. Rows of ``"format": "2.0"`` are this
script's; rows of ``"format": "1.0"`` were measured with the format-1.0 writer (before commit 5fde915, with
``--sh-quantization channel|tensor`` and the run's ns-eval only; ``file_bytes`` added by the plot script
of that time) and are kept as they are.

The paper's ``opacity-grad-quantile`` rule removes only Gaussians below both quantiles, far fewer than
gamma per round; with its defaults (60% over 10 rounds) it needs 40+ rounds to reach 10% kept. To compare
modes at the same schedule, it runs here with gamma_target 0.9 over 3 rounds (gamma 0.54 per round),
which offers more candidates than the 20% a round removes; among them, the lowest scores go.

    python benchmarks/bench_score_modes.py [--fractions 0.5 0.25 0.1] [--modes grad-norm random ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demo"))
from run_demo import BASELINE, REPO, SCENE, TRIM_FLAGS  # noqa: E402

from nerfstudio_trim.bench import Bench  # noqa: E402
from nerfstudio_trim.core.prune.scores import SCORE_MODES  # noqa: E402

OUTPUT = Path("outputs/bench/score_modes/format2")
RESULTS = Path(__file__).parent / "results" / "score_modes.json"
FORMAT = "2.1"
"""The .nstrim format this tree writes: the ``format`` of the rows it records."""

QUANTILE_FLAGS = ["--pipeline.model.trim.quantile-gamma-target", "0.9", "--pipeline.model.trim.quantile-rounds", "3"]
SHARED_BASELINE_STEPS = ("baseline_eval.json", "baseline_file_eval.json", "baseline_export/scene.nstrim")
"""What ``Bench`` writes for the baseline (relative to its output folder): the same for every trim of it."""


def flags(mode: str, fraction: float) -> List[str]:
    """The demo's schedule with this score mode and target, no quality floor, no undoing of rounds that grow
    the file (every run reaches the target)."""
    base = list(TRIM_FLAGS)
    base[base.index("--pipeline.model.trim.target-fraction") + 1] = str(fraction)
    base[base.index("--pipeline.model.trim.max-psnr-drop") + 1] = "None"
    base += ["--pipeline.model.trim.undo-growing-rounds", "False", "--pipeline.model.trim.score-mode", mode]
    return base + (QUANTILE_FLAGS if mode == "opacity-grad-quantile" else [])


def keep_if_same_args(output_dir: Path, trim_args: List[str]) -> None:
    """Clear ``output_dir`` unless its steps ran with ``trim_args`` (its trim_args.txt, written here): ``Bench``
    would take a folder's finished steps as they are, whatever the flags (or version of this script) that
    made them."""
    recorded = output_dir / "trim_args.txt"
    if not (recorded.is_file() and recorded.read_text() == shlex.join(trim_args)):
        shutil.rmtree(output_dir, ignore_errors=True)
        output_dir.mkdir(parents=True)
        recorded.write_text(shlex.join(trim_args))


def copy_missing(source: Path, target: Path, names: Sequence[str]) -> None:
    """Copy each of ``names`` (paths relative to both folders) that ``source`` has and ``target`` lacks."""
    for name in names:
        if (source / name).is_file() and not (target / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / name, target / name)


def bench_sharing_baseline(baseline: Path, data: Path, output_dir: Path, shared: Path, trim_args: List[str]) -> Dict[str, Any]:
    """``ns-trim bench`` (on CPU) into ``output_dir`` (``keep_if_same_args``), the baseline's steps
    (``SHARED_BASELINE_STEPS``) taken from ``shared`` when there and left there for the next bench; its
    results.json as a dict."""
    keep_if_same_args(output_dir, trim_args)
    copy_missing(shared, output_dir, SHARED_BASELINE_STEPS)
    results = Bench(baseline=baseline, data=data, output_dir=output_dir, trim_args=shlex.join(trim_args), device="cpu").main()
    copy_missing(output_dir, shared, SHARED_BASELINE_STEPS)
    return results


def score_pass_seconds(trim_folder: Path) -> List[float]:
    """The trim run's score-pass durations (s), from its tensorboard scalar ``Trim/score_pass_seconds``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    seconds: List[float] = []
    for events in sorted(trim_folder.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        if "Trim/score_pass_seconds" in accumulator.Tags()["scalars"]:
            seconds += [event.value for event in accumulator.Scalars("Trim/score_pass_seconds")]
    return seconds


def measure(mode: str, fraction: float) -> Dict[str, Any]:
    """One (mode, fraction) through ``ns-trim bench``: the run's and the file's metrics, the baseline's file."""
    trim_args = flags(mode, fraction)
    out = OUTPUT / f"{mode}-{fraction:g}"
    results = bench_sharing_baseline(BASELINE / "config.yml", SCENE, out, OUTPUT / "baseline", trim_args)
    baseline, baseline_file, run, file = results["rows"]
    seconds = score_pass_seconds(out / "trim")
    return {
        "format": FORMAT, "mode": mode, "target_fraction": fraction, "trim_args": shlex.join(trim_args),
        "gaussians": run["gaussians"], "psnr": run["psnr"], "ssim": run["ssim"], "lpips": run["lpips"],
        "file_gaussians": file["gaussians"], "file_psnr": file["psnr"], "file_ssim": file["ssim"],
        "file_lpips": file["lpips"], "file_bytes": round(file["size_mb"] * 1e6),
        "baseline_gaussians": baseline["gaussians"], "baseline_psnr": baseline["psnr"], "baseline_ssim": baseline["ssim"],
        "baseline_file_bytes": round(baseline_file["size_mb"] * 1e6), "baseline_file_psnr": baseline_file["psnr"],
        "median_score_pass_s": statistics.median(seconds) if seconds else None,
    }  # fmt: skip


def markdown(rows: List[Dict[str, Any]]) -> str:
    """Every row, newest format first: the run's ns-eval and, for format 2.0, the file's ns-trim eval."""

    def fmt(value: Optional[float], spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    lines = ["| mode | format | target kept | Gaussians | run PSNR (dB) | run SSIM | file PSNR (dB) | file (bytes) "
             "| bytes/Gaussian | score pass (s) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in sorted(rows, key=lambda r: (-float(r["format"]), -r["target_fraction"], r["mode"], r.get("sh_quantization", ""))):
        kind = r["format"] + (f", SH per {r['sh_quantization']}" if "sh_quantization" in r else "")
        size = r.get("file_bytes")
        lines.append(f"| {r['mode']} | {kind} | {r['target_fraction']:.0%} | {r['gaussians']:,} | {r['psnr']:.2f} "
                     f"| {r['ssim']:.4f} | {fmt(r.get('file_psnr'), '.2f')} | {fmt(size, ',')} "
                     f"| {fmt(size and size / r['gaussians'], '.1f')} | {fmt(r['median_score_pass_s'], '.1f')} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.25, 0.1])
    parser.add_argument("--modes", nargs="+", default=list(SCORE_MODES), choices=list(SCORE_MODES))
    args = parser.parse_args()
    os.chdir(REPO)  # the demo baseline's config.yml names its data relative to the repository
    results = REPO / RESULTS
    rows = json.loads(results.read_text()) if results.exists() else []
    for fraction in args.fractions:
        for mode in args.modes:
            trim_args = shlex.join(flags(mode, fraction))
            if any(r["format"] == FORMAT and r["trim_args"] == trim_args for r in rows):
                continue
            print(f"{mode}, down to {fraction:.0%}", flush=True)
            rows.append(measure(mode, fraction))
            results.parent.mkdir(parents=True, exist_ok=True)
            results.write_text(json.dumps(rows, indent=2))
    print(markdown(rows))


if __name__ == "__main__":
    main()
