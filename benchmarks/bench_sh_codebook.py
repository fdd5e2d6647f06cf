"""A vector-quantized codebook for the higher SH bands (as c3dgs and SOG code them) against format 2.0's
scalar codes, on one trimmed model.

For each codebook size K: k-means (Lloyd, ``--iterations``, seeded) over the Gaussians' higher SH bands
(each Gaussian's features_rest as one vector, the file's decoded values), every Gaussian then takes its
nearest entry. Bytes: the file with the higher SH bands left out (the same file with every SH band code
zero) + the codebook (K x 3(d+1)^2-3 float16) + one index per Gaussian (uint8 or uint16),
both LZMA-compressed as the file's streams are. Quality: the held-out PSNR of the file's Gaussians with the
codebook's bands, rendered by ``ns-trim eval``'s code. Post hoc (no fine-tuning through the codebook):
fine-tuning would raise the PSNR of a row, not lower its bytes, which the codebook and the indices bound
from below.

    python benchmarks/bench_sh_codebook.py --file outputs/demo/export/scene.nstrim --data demo/scene \\
        [--sizes 64 256 1024 4096]

Results: benchmarks/results/sh_codebook.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import lzma
import os
import platform
from datetime import date
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch

from nerfstudio_trim.core.codec.nstrim import encode, read_file
from nerfstudio_trim.nerfstudio.evaluate import evaluate_scene

RESULTS = Path(__file__).parent / "results" / "sh_codebook.json"


def kmeans(vectors: torch.Tensor, size: int, iterations: int, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """(codebook [size, D], index [N] int64) of Lloyd's k-means on ``vectors`` [N, D] from ``size`` distinct
    random vectors; an entry that loses all its vectors is re-seeded with the worst-fitted one."""
    generator = torch.Generator().manual_seed(seed)
    codebook = vectors[torch.randperm(vectors.shape[0], generator=generator)[:size]].clone()
    for _ in range(iterations):
        distances = torch.cdist(vectors, codebook)
        index = distances.argmin(dim=1)
        sums = torch.zeros_like(codebook).index_add_(0, index, vectors)
        counts = torch.bincount(index, minlength=codebook.shape[0]).to(vectors.dtype)
        empty = counts == 0
        codebook = torch.where(empty[:, None], codebook, sums / counts.clamp(min=1)[:, None])
        if bool(empty.any()):
            worst = distances.gather(1, index[:, None]).squeeze(1).argsort(descending=True)[: int(empty.sum())]
            codebook[empty] = vectors[worst]
    return codebook, torch.cdist(vectors, codebook).argmin(dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, required=True, help="a format-2.0 .nstrim file of a trimmed model")
    parser.add_argument("--data", type=Path, required=True, help="the scene's dataset (held-out views)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--iterations", type=int, default=25, help="Lloyd iterations per codebook")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = torch.device("cpu")
    scene = read_file(args.file)
    params = scene.gaussians.dequantize()
    rest = params["features_rest"]
    count, coefficients = rest.shape[0], rest.shape[1] * rest.shape[2]
    sh_bytes_of_file = args.file.stat().st_size
    without_sh = {**params, "features_rest": torch.zeros_like(rest)}
    bands = scene.gaussians.features_rest  # the file's other attributes stay coded exactly as they are
    no_bands = dataclasses.replace(bands, codes=torch.zeros_like(bands.codes))
    base = dataclasses.replace(scene, gaussians=dataclasses.replace(scene.gaussians, features_rest=no_bands))
    base_bytes = len(encode(base))
    rows: List[Dict[str, Any]] = []
    metrics = evaluate_scene(scene, args.data, device)
    rows.append({"coding": "format 2.0 scalar codes (the file)", "bytes": sh_bytes_of_file, "sh_bytes": sh_bytes_of_file - base_bytes,
                 "psnr": metrics["psnr"], "ssim": metrics["ssim"]})  # fmt: skip
    print(rows[-1], flush=True)
    vectors = rest.reshape(count, coefficients)
    for size in args.sizes:
        if size >= count:
            continue
        codebook, index = kmeans(vectors, size, args.iterations)
        table = lzma.compress(codebook.half().numpy().tobytes(), preset=9 | lzma.PRESET_EXTREME)
        indices = lzma.compress(index.to(torch.uint8 if size <= 256 else torch.int16).numpy().tobytes(),
                                preset=9 | lzma.PRESET_EXTREME)  # fmt: skip
        decoded = {**params, "features_rest": codebook.half().float()[index].reshape(rest.shape)}
        metrics = evaluate_scene(scene, args.data, device, gaussians=decoded)
        rows.append({"coding": f"codebook of {size:,} entries, post hoc", "bytes": base_bytes + len(table) + len(indices),
                     "sh_bytes": len(table) + len(indices), "codebook_bytes": len(table), "index_bytes": len(indices),
                     "psnr": metrics["psnr"], "ssim": metrics["ssim"]})  # fmt: skip
        print(rows[-1], flush=True)
    metrics = evaluate_scene(scene, args.data, device, gaussians=without_sh)
    rows.append({"coding": "no higher SH bands (degree 0)", "bytes": base_bytes, "sh_bytes": 0, "psnr": metrics["psnr"],
                 "ssim": metrics["ssim"]})  # fmt: skip
    for row in rows:
        row["bytes_per_gaussian"] = row["bytes"] / count
    results = {"file": str(args.file), "data": str(args.data), "gaussians": count, "sh_degree": scene.sh_degree,
               "iterations": args.iterations, "date": date.today().isoformat(),
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "rows": rows}  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print("| SH coding | file bytes | SH bytes | bytes/Gaussian | PSNR (dB) | SSIM |\n|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['coding']} | {row['bytes']:,} | {row['sh_bytes']:,} | {row['bytes_per_gaussian']:.1f} "
              f"| {row['psnr']:.3f} | {row['ssim']:.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
