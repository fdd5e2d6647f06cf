"""Score modes compared on the demo scene: held-out PSNR/SSIM after trimming to a fraction kept.

For each mode and target fraction, trims the committed demo baseline on CPU with the demo's schedule
(``demo/run_demo.py``: 20% per round, 100 steps between rounds, 200 at the end) but without the
quality floor, so every mode reaches the same fraction, then evaluates with ``ns-eval``. Finished
runs are skipped on a rerun. Results: benchmarks/results/score_modes.json and a markdown table.

The paper's ``opacity-grad-quantile`` rule removes only Gaussians below both quantiles, far fewer than
gamma per round; with its defaults (60% over 10 rounds) it needs 40+ rounds to reach 10% kept. To compare
modes at the same schedule, it runs here with gamma_target 0.9 over 3 rounds (gamma 0.54 per round),
which offers more candidates than the 20% a round removes; among them, the lowest scores go.

``--sh-quantization tensor`` measures the seed's one 8-bit range per SH tensor against our per-channel
ranges (rows keyed by it).

    python benchmarks/bench_score_modes.py [--fractions 0.5 0.25 0.1] [--modes grad-norm random ...]
        [--sh-quantization channel|tensor]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demo"))
from run_demo import BASELINE, REPO, SCENE, TRIM_FLAGS  # noqa: E402

from nerfstudio_trim.bench import count_gaussians, latest_checkpoint, ns_eval, trim_run  # noqa: E402
from nerfstudio_trim.core.prune.scores import SCORE_MODES  # noqa: E402

OUTPUT = Path("outputs/bench/score_modes")
RESULTS = Path(__file__).parent / "results" / "score_modes.json"


QUANTILE_FLAGS = ["--pipeline.model.trim.quantile-gamma-target", "0.9", "--pipeline.model.trim.quantile-rounds", "3"]


def flags(mode: str, fraction: float, sh_quantization: str) -> list:
    """The demo's schedule, this mode, target and SH quantization, no quality floor."""
    base = list(TRIM_FLAGS)
    base[base.index("--pipeline.model.trim.target-fraction") + 1] = str(fraction)
    base[base.index("--pipeline.model.trim.max-psnr-drop") + 1] = "None"
    base += ["--pipeline.model.trim.score-mode", mode, "--pipeline.model.trim.sh-quantization", sh_quantization]
    return base + (QUANTILE_FLAGS if mode == "opacity-grad-quantile" else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.25, 0.1])
    parser.add_argument("--modes", nargs="+", default=list(SCORE_MODES), choices=list(SCORE_MODES))
    parser.add_argument("--sh-quantization", default="channel", choices=["channel", "tensor"])
    args = parser.parse_args()
    os.chdir(REPO)  # the demo baseline's config.yml names its data relative to the repository
    rows = json.loads((REPO / RESULTS).read_text()) if (REPO / RESULTS).exists() else []
    done = {(r["mode"], r["target_fraction"], r["sh_quantization"]) for r in rows}
    for fraction in args.fractions:
        for mode in args.modes:
            if (mode, fraction, args.sh_quantization) in done:
                continue
            root = OUTPUT / f"{mode}-{fraction:g}-{args.sh_quantization}"
            shutil.rmtree(REPO / root, ignore_errors=True)  # a run interrupted before it was recorded
            print(f"{mode}, down to {fraction:.0%}, SH per {args.sh_quantization}", flush=True)
            run_dir, log = trim_run(latest_checkpoint(BASELINE), SCENE, flags(mode, fraction, args.sh_quantization), root, "cpu")
            metrics = ns_eval(run_dir / "config.yml", root / "eval.json", "cpu")
            score_seconds = [float(s) for s in re.findall(r"scored in ([0-9.]+) s", log)]
            rows.append({
                "mode": mode, "target_fraction": fraction, "sh_quantization": args.sh_quantization,
                "gaussians": count_gaussians(latest_checkpoint(run_dir))[0],
                "psnr": metrics["psnr"], "ssim": metrics["ssim"], "lpips": metrics.get("lpips"),
                "median_score_pass_s": statistics.median(score_seconds) if score_seconds else 0.0,
            })  # fmt: skip
            (REPO / RESULTS).parent.mkdir(parents=True, exist_ok=True)
            (REPO / RESULTS).write_text(json.dumps(rows, indent=2))
    print("| mode | SH ranges | target kept | Gaussians | PSNR (dB) | SSIM | score pass (s) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (-r["target_fraction"], r["mode"], r["sh_quantization"])):
        print(f"| {r['mode']} | per {r['sh_quantization']} | {r['target_fraction']:.0%} | {r['gaussians']:,} "
              f"| {r['psnr']:.2f} | {r['ssim']:.4f} "
              f"| {r['median_score_pass_s']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
