"""``make demo``: the main job on the embedded demo scene.

Evaluates the committed baseline (a splatfacto model trained on CPU from the Blender-rendered demo
scene) with nerfstudio's own ``ns-eval`` on the held-out views, and prints its numbers. The trimming
and export stages extend this script as they land. Results go to outputs/demo/.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nerfstudio_trim.nerfstudio.checkpoints import gaussian_state, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
BASELINE = Path("demo/baseline/splatfacto-trim")
OUTPUT = Path("outputs/demo")
console = Console()


def evaluate(config: Path, output: Path) -> dict:
    """Run ``ns-eval`` on ``config``; return its averaged metrics."""
    ns_eval = Path(sys.executable).parent / "ns-eval"
    with console.status(f"ns-eval {config}"):
        result = subprocess.run(
            [str(ns_eval), "--load-config", str(config), "--output-path", str(output)],
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
    if result.returncode != 0:
        console.print(result.stdout[-4000:], result.stderr[-4000:], markup=False)
        sys.exit(f"error: ns-eval failed on {config}")
    for line in result.stdout.splitlines():
        if "LPIPS is not available" in line:
            console.print(line.strip(), markup=False)
    return json.loads((REPO / output).read_text())["results"]


def main() -> None:
    checkpoint = sorted((REPO / BASELINE / "nerfstudio_models").glob("step-*.ckpt"))[-1]
    n_gaussians = gaussian_state(load_checkpoint(checkpoint)["pipeline"])["means"].shape[0]
    (REPO / OUTPUT).mkdir(parents=True, exist_ok=True)
    metrics = evaluate(BASELINE / "config.yml", OUTPUT / "baseline_eval.json")

    table = Table(title="nerfstudio-trim demo scene (held-out views)")
    for column in ("model", "Gaussians", "PSNR (dB)", "SSIM", "LPIPS", "checkpoint (MB)"):
        table.add_column(column, justify="right")
    lpips = f"{metrics['lpips']:.3f}" if "lpips" in metrics else "n/a (offline)"
    table.add_row(
        "baseline", f"{n_gaussians:,}", f"{metrics['psnr']:.2f}", f"{metrics['ssim']:.4f}", lpips,
        f"{checkpoint.stat().st_size / 2**20:.1f}",
    )  # fmt: skip
    console.print(table)
    console.print(f"results in {OUTPUT}/ (baseline_eval.json)")


if __name__ == "__main__":
    main()
