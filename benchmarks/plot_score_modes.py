"""Plots of the score-mode benchmark (``bench_score_modes.py``) on the demo scene:

- ``rate_distortion.png``: held-out PSNR against the exported file's size (log scale), one curve per
  score mode, and the baseline as a PLY;
- ``psnr_vs_gaussians.png``: held-out PSNR against the number of Gaussians kept.

File sizes are exact: each run's final Gaussians are encoded as ``ns-export trimmed-splat`` would
(``results/score_modes.json`` gets a ``file_bytes`` field per row, computed once).

    python benchmarks/plot_score_modes.py [--runs outputs/bench/score_modes ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nerfstudio_trim.bench import latest_checkpoint  # noqa: E402
from nerfstudio_trim.core.codec.nstrim import encode
from nerfstudio_trim.core.scene import SplatScene, sh_degree_of  # noqa: E402
from nerfstudio_trim.core.codec.ply import ply_size  # noqa: E402
from nerfstudio_trim.core.quantize import quantize_gaussians  # noqa: E402
from nerfstudio_trim.nerfstudio.checkpoints import gaussian_state, load_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"


def file_bytes(checkpoint: Path, sh_quantization: str) -> int:
    """Size of the .nstrim file of a checkpoint's Gaussians."""
    params = gaussian_state(load_checkpoint(checkpoint)["pipeline"])
    degree = sh_degree_of(params["features_rest"])
    return len(encode(SplatScene(quantize_gaussians(params, sh_quantization), degree)))  # type: ignore[arg-type]


def run_dir(runs: List[Path], row: dict) -> Optional[Path]:
    """The run folder of a benchmark row (named with or without its SH quantization)."""
    names = (f"{row['mode']}-{row['target_fraction']:g}-{row['sh_quantization']}", f"{row['mode']}-{row['target_fraction']:g}")
    for root in runs:
        for name in names:
            for layout in (("demo", "splatfacto-trim", "trimmed"), ("bench", "splatfacto-trim", "trimmed")):
                folder = root.joinpath(name, *layout)
                if folder.is_dir():
                    return folder
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", default=[REPO / "outputs/bench/score_modes"])
    args = parser.parse_args()
    rows = json.loads((RESULTS / "score_modes.json").read_text())
    for row in rows:
        if "file_bytes" not in row and (folder := run_dir(args.runs, row)) is not None:
            row["file_bytes"] = file_bytes(latest_checkpoint(folder), row["sh_quantization"])
    (RESULTS / "score_modes.json").write_text(json.dumps(rows, indent=2))
    baseline_eval = json.loads((RESULTS / "score_modes_baseline.json").read_text())
    baseline_count = baseline_eval["gaussians"]

    modes = sorted({r["mode"] for r in rows})
    for name, x_of, x_label, log in (
        ("rate_distortion.png", lambda r: r["file_bytes"] / 1e6, "file size (MB, log scale)", True),
        ("psnr_vs_gaussians.png", lambda r: r["gaussians"], "Gaussians kept", False),
    ):
        figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
        for mode in modes:
            points = sorted((x_of(r), r["psnr"]) for r in rows if r["mode"] == mode and r["sh_quantization"] == "channel" and ("file_bytes" in r or not log))
            if points and not log:  # every mode starts from the baseline (100% kept)
                points = [(baseline_count, baseline_eval["psnr"])] + points
            if points:
                axes.plot(*zip(*points), marker="o", label=mode)
        if log:
            axes.scatter([ply_size(baseline_count, 3) / 1e6], [baseline_eval["psnr"]], marker="*", s=150, color="black", label="baseline (PLY)")
            axes.set_xscale("log")
            axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        else:
            axes.scatter([baseline_count], [baseline_eval["psnr"]], marker="*", s=150, color="black", label="baseline")
        axes.set_xlabel(x_label)
        axes.set_ylabel("held-out PSNR (dB)")
        axes.set_title("demo scene: score modes (CPU schedule, no quality floor)")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(RESULTS / name)
        plt.close(figure)
        print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
