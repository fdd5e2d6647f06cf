"""The two forms of the ``delta-mse`` score on each scene's baseline: how alike they rank the Gaussians.

``exact`` (our compositing; the default on every device) and ``first-order`` (-o dL/do from one backward
pass, from gsplat's gradients on CUDA, the default there before 2026-12-06; ``core/prune/render_scores.py``),
both computed here on the CPU through our rasterizer, on the float Gaussians of the baseline, over the
training views ``ns-trim compress`` scores with (at most 24, evenly spaced). Per scene: Spearman's rank
correlation of the two scores, and the share of the Gaussians each form puts among its lowest 20 / 50 / 75 /
90% that the other puts there too (what a round of pruning down to that fraction would remove by both);
seconds per form.

    python benchmarks/bench_delta_mse_methods.py [--scenes demo still-life]

Results: benchmarks/results/delta_mse_methods.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import SCENES  # noqa: E402
from bench_cpu_raster import machine  # noqa: E402

from nerfstudio_trim.core.prune.render_scores import delta_mse_scores  # noqa: E402
from nerfstudio_trim.core.quantize.gaussians import CodecSettings  # noqa: E402
from nerfstudio_trim.core.scene import sh_degree_of  # noqa: E402
from nerfstudio_trim.nerfstudio.compress import read_run_input, training_views  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "delta_mse_methods.json"
LOWEST = (0.2, 0.5, 0.75, 0.9)
VIEWS = 24


def ranks(values: Tensor) -> Tensor:
    """[N] rank of each value (0 = lowest), as floats."""
    order = torch.empty_like(values, dtype=torch.float64)
    order[values.argsort()] = torch.arange(values.numel(), dtype=torch.float64)
    return order


def shared_lowest(a: Tensor, b: Tensor, fraction: float) -> float:
    """Share of the ``fraction`` lowest of ``a`` that are among the ``fraction`` lowest of ``b`` too."""
    count = int(fraction * a.numel())
    lowest_a, lowest_b = set(a.argsort()[:count].tolist()), set(b.argsort()[:count].tolist())
    return len(lowest_a & lowest_b) / max(1, count)


def measure(scene: str) -> Dict[str, Any]:
    data, config = SCENES[scene]
    checkpoint = sorted((config.parent / "nerfstudio_models").glob("step-*.ckpt"))[-1]
    loaded = read_run_input(config, checkpoint, data)
    views = training_views(data, loaded.template(CodecSettings()), torch.device("cpu"), VIEWS)
    degree = sh_degree_of(loaded.params["features_rest"])
    scores: Dict[str, Tensor] = {}
    seconds: Dict[str, float] = {}
    for method in ("exact", "first-order"):
        start = time.perf_counter()
        scores[method] = delta_mse_scores(loaded.params, views, degree, rasterize_mode=loaded.rasterize_mode,  # type: ignore[arg-type]
                                          method=method)  # fmt: skip
        seconds[method] = time.perf_counter() - start
    exact, first = scores["exact"], scores["first-order"]
    spearman = torch.corrcoef(torch.stack([ranks(exact), ranks(first)]))[0, 1].item()
    return {"scene": scene, "gaussians": exact.numel(), "views": len(views), "spearman": spearman,
            "shared_lowest": {f"{f:g}": shared_lowest(exact, first, f) for f in LOWEST}, "seconds": seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=["demo", "still-life"], choices=list(SCENES))
    args = parser.parse_args()
    os.chdir(REPO)  # the baselines' config.yml name their data relative to the repository
    rows: List[Dict[str, Any]] = []
    for scene in args.scenes:
        row = measure(scene)
        rows.append(row)
        shared = ", ".join(f"{float(k):.0%} {v:.2f}" for k, v in row["shared_lowest"].items())
        print(f"{scene}: {row['gaussians']:,} Gaussians, {row['views']} views: Spearman {row['spearman']:.3f}; "
              f"shared lowest {shared}; exact {row['seconds']['exact']:.0f} s, first-order {row['seconds']['first-order']:.0f} s")  # fmt: skip
    RESULTS.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
