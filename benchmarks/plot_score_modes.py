"""Plots of the score-mode benchmark (``bench_score_modes.py``) on the demo scene, one series per score mode
and file format (2.0 solid, 1.0 dashed and faded: rows measured with the format-1.0 writer, SH ranges per
channel):

- ``rate_distortion.png``: held-out PSNR against the file's size (log scale), with the baseline as a PLY
  and, from the format-2.0 rows, as our file. Format 2.0: the exported file's ``ns-trim eval``; format 1.0:
  the run's ``ns-eval`` (which the 1.0 file matched bit for bit under quantization-aware fine-tuning);
- ``psnr_vs_gaussians.png``: the run's held-out PSNR (``ns-eval``) against the number of Gaussians kept.

    python benchmarks/plot_score_modes.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nerfstudio_trim.core.codec.ply import ply_size  # noqa: E402

RESULTS = Path(__file__).parent / "results"
STYLE = {"2.0": {"linestyle": "-", "alpha": 1.0}, "1.0": {"linestyle": "--", "alpha": 0.45}}
"""Line style per file format."""


def file_psnr(row: Dict[str, Any]) -> Optional[float]:
    """Held-out PSNR of a row's file: its ``ns-trim eval`` (format 2.0), its run's ``ns-eval`` (format 1.0)."""
    return row.get("file_psnr", row["psnr"] if row["format"] == "1.0" else None)


def series(rows: List[Dict[str, Any]]) -> Dict[Tuple[str, str], List[Dict[str, Any]]]:
    """The rows by (score mode, format), newest format first; format-1.0 rows with per-tensor SH ranges
    (a variant of that format) left out."""
    grouped: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (-float(r["format"]), r["mode"])):
        if row.get("sh_quantization", "channel") == "channel":
            grouped.setdefault((row["mode"], row["format"]), []).append(row)
    return grouped


def plot(
    rows: List[Dict[str, Any]], path: Path, x_of: Callable[[Dict[str, Any]], Optional[float]], x_label: str,
    y_of: Callable[[Dict[str, Any]], Optional[float]], y_label: str, baselines: List[Tuple[float, float, str, str]],
    log_x: bool,
) -> None:  # fmt: skip
    """One line per (mode, format) through the rows' (x, y) where both are known, and the baseline markers
    (x, y, marker, label)."""
    colours = {mode: f"C{i}" for i, mode in enumerate(sorted({r["mode"] for r in rows}))}
    figure, axes = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for (mode, file_format), members in series(rows).items():
        points = sorted((x, y) for x, y in ((x_of(r), y_of(r)) for r in members) if x is not None and y is not None)
        if points:
            axes.plot(*zip(*points), marker="o", color=colours[mode], label=f"{mode} (format {file_format})", **STYLE[file_format])
    for x, y, marker, label in baselines:
        axes.scatter([x], [y], marker=marker, s=150, color="black", label=label, zorder=3)
    if log_x:
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_title("demo scene: score modes (CPU schedule, no quality floor)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of score_modes.json, score_modes_baseline.json and the plots")
    args = parser.parse_args()
    rows = json.loads((args.results / "score_modes.json").read_text())
    baseline = json.loads((args.results / "score_modes_baseline.json").read_text())
    as_ply = [(ply_size(baseline["gaussians"], 3) / 1e6, baseline["psnr"], "*", "baseline (PLY, ns-eval)")]
    newest = next((r for r in rows if "baseline_file_bytes" in r), None)
    as_file = [] if newest is None else [(newest["baseline_file_bytes"] / 1e6, newest["baseline_file_psnr"], "D", "baseline, our file (format 2.0)")]  # fmt: skip
    plot(rows, args.results / "rate_distortion.png", lambda r: r.get("file_bytes") and r["file_bytes"] / 1e6,
         "file size (MB, log scale)", file_psnr, "held-out PSNR of the file (dB)", as_ply + as_file, log_x=True)  # fmt: skip
    plot(rows, args.results / "psnr_vs_gaussians.png", lambda r: r["gaussians"], "Gaussians kept",
         lambda r: r["psnr"], "held-out PSNR of the run, ns-eval (dB)",
         [(baseline["gaussians"], baseline["psnr"], "*", "baseline")], log_x=False)  # fmt: skip


if __name__ == "__main__":
    main()
