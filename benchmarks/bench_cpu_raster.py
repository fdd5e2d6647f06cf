"""Forward + backward time of the pure-PyTorch rasterizer on this machine.

A 160 x 160 camera looks into a 2 x 2 x 2 volume of N random Gaussians (SH degree 3, opacities
0.1-1, log-normal scales around the mean spacing, so the image is covered several layers deep as in
a trained scene). Each size is timed over ``--repeats`` runs after one warm-up; the median is kept.
Results are printed as a markdown table and written to benchmarks/results/cpu_raster.json with the
machine they ran on.

    python benchmarks/bench_cpu_raster.py [--sizes 10000 50000 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from datetime import date
from pathlib import Path

import torch

from nerfstudio_trim.core.raster.cpu_raster import rasterization

SIZE = 160
RESULTS = Path(__file__).parent / "results" / "cpu_raster.json"


def scene(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g) * 2 - 1
    means[:, 2] += 3.0
    spacing = (8.0 / n) ** (1 / 3)
    scales = spacing * 0.5 * torch.exp(0.5 * torch.randn(n, 3, generator=g))
    quats = torch.randn(n, 4, generator=g)
    opacities = torch.rand(n, generator=g) * 0.9 + 0.1
    sh = torch.randn(n, 16, 3, generator=g) * 0.2
    return [t.requires_grad_(True) for t in (means, quats, scales, opacities, sh)]


def camera():
    viewmats = torch.eye(4)[None]
    Ks = torch.tensor([[[SIZE * 1.2, 0, SIZE / 2], [0, SIZE * 1.2, SIZE / 2], [0, 0, 1]]])
    return viewmats, Ks


def time_one(params, viewmats, Ks):
    start = time.perf_counter()
    colours, alphas, info = rasterization(*params, viewmats, Ks, SIZE, SIZE, sh_degree=3, absgrad=True)
    middle = time.perf_counter()
    (colours.sum() + alphas.sum()).backward()
    end = time.perf_counter()
    for p in params:
        p.grad = None
    return middle - start, end - middle, int(info["tiles_per_gauss"].sum()), float(alphas.mean())


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": date.today().isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    viewmats, Ks = camera()
    rows = []
    for n in args.sizes:
        params = scene(n)
        time_one(params, viewmats, Ks)  # warm-up
        runs = [time_one(params, viewmats, Ks) for _ in range(args.repeats)]
        rows.append({
            "gaussians": n,
            "forward_s": statistics.median(r[0] for r in runs),
            "backward_s": statistics.median(r[1] for r in runs),
            "tile_intersections": runs[0][2],
            "mean_alpha": runs[0][3],
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        })  # fmt: skip
        print(f"{n:>8,} Gaussians: forward {rows[-1]['forward_s']:.3f} s, backward {rows[-1]['backward_s']:.3f} s")
    info = machine()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": info, "image": [SIZE, SIZE], "results": rows}, indent=2))
    print(f"\n{info['cpu']}, {info['cores']} cores, torch {info['torch']} ({info['date']})\n")
    print("| Gaussians | forward (s) | backward (s) | total (s) | tile intersections | peak RSS (GiB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        total = r["forward_s"] + r["backward_s"]
        print(f"| {r['gaussians']:,} | {r['forward_s']:.3f} | {r['backward_s']:.3f} | {total:.3f} "
              f"| {r['tile_intersections']:,} | {r['peak_rss_gib']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
