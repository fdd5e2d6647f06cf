"""Score modes compared on the demo scene: held-out PSNR/SSIM after trimming to a fraction kept.

For each mode and target fraction, trims the committed demo baseline on CPU with the demo's schedule
(``demo/run_demo.py``: 20% per round, 100 steps between rounds, 200 at the end) but without the
quality floor, so every mode reaches the same fraction, then evaluates with ``ns-eval``. Finished
runs are skipped on a rerun. Results: benchmarks/results/score_modes.json and a markdown table.

    python benchmarks/bench_score_modes.py [--fractions 0.5 0.25 0.1] [--modes grad-norm random ...]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demo"))
from run_demo import REPO, TRIM_FLAGS, count_gaussians, evaluate, trim_baseline  # noqa: E402

from nerfstudio_trim.core.scores import SCORE_MODES  # noqa: E402

OUTPUT = Path("outputs/bench/score_modes")
RESULTS = Path(__file__).parent / "results" / "score_modes.json"


def flags(mode: str, fraction: float) -> list:
    """The demo's schedule, this mode and target, no quality floor."""
    base = list(TRIM_FLAGS)
    base[base.index("--pipeline.model.trim.target-fraction") + 1] = str(fraction)
    base[base.index("--pipeline.model.trim.max-psnr-drop") + 1] = "None"
    return base + ["--pipeline.model.trim.score-mode", mode]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.25, 0.1])
    parser.add_argument("--modes", nargs="+", default=list(SCORE_MODES), choices=list(SCORE_MODES))
    args = parser.parse_args()
    rows = json.loads((REPO / RESULTS).read_text()) if (REPO / RESULTS).exists() else []
    done = {(r["mode"], r["target_fraction"]) for r in rows}
    for fraction in args.fractions:
        for mode in args.modes:
            if (mode, fraction) in done:
                continue
            root = OUTPUT / f"{mode}-{fraction:g}"
            shutil.rmtree(REPO / root, ignore_errors=True)  # a run interrupted before it was recorded
            run_dir, log = trim_baseline(flags(mode, fraction), root, f"{mode}, down to {fraction:.0%}")
            metrics = evaluate(run_dir / "config.yml", root / "eval.json")
            score_seconds = [float(s) for s in re.findall(r"scored in ([0-9.]+) s", log)]
            rows.append({
                "mode": mode, "target_fraction": fraction, "gaussians": count_gaussians(run_dir),
                "psnr": metrics["psnr"], "ssim": metrics["ssim"], "lpips": metrics.get("lpips"),
                "median_score_pass_s": statistics.median(score_seconds) if score_seconds else 0.0,
            })  # fmt: skip
            (REPO / RESULTS).parent.mkdir(parents=True, exist_ok=True)
            (REPO / RESULTS).write_text(json.dumps(rows, indent=2))
    print("| mode | target kept | Gaussians | PSNR (dB) | SSIM | score pass (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (-r["target_fraction"], r["mode"])):
        print(f"| {r['mode']} | {r['target_fraction']:.0%} | {r['gaussians']:,} | {r['psnr']:.2f} | {r['ssim']:.4f} "
              f"| {r['median_score_pass_s']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
