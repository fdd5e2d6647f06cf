"""How many bits the higher SH bands need: an exported file's features_rest re-quantized post hoc to fewer
levels per channel (no fine-tuning), re-encoded and rendered over the scene's held-out views.

The codes stay uint8 with a scale and offset per channel, so a decoder of format 1.0 reads every row
unchanged; fewer levels only make the codes compress better. Everything else in the file is kept.

    python benchmarks/bench_sh_bits.py [--file outputs/demo/export/scene.nstrim] [--data demo/scene] [--bits 8 6 5 4]

Results: benchmarks/results/sh_bits.json and a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from nerfstudio_trim.core.codec.nstrim import encode, read_file
from nerfstudio_trim.core.quantize import quantize_sh
from nerfstudio_trim.nerfstudio.evaluate import evaluate_scene

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_formats import REPO, shown  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=REPO / "outputs/demo/export/scene.nstrim")
    parser.add_argument("--data", type=Path, default=REPO / "demo/scene")
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 6, 5, 4])
    args = parser.parse_args()
    if not args.file.is_file():
        parser.error(f"{args.file} does not exist: run `make demo` first, or pass --file")
    scene = read_file(args.file)
    rest = scene.gaussians.features_rest.dequantize()
    rows = []
    for bits in args.bits:
        gaussians = dataclasses.replace(scene.gaussians, features_rest=quantize_sh(rest, bits=bits))
        variant = dataclasses.replace(scene, gaussians=gaussians)
        metrics = evaluate_scene(variant, args.data, torch.device("cpu"))
        size = len(encode(variant))
        rows.append({"bits": bits, "bytes": size, "bytes_per_gaussian": size / gaussians.count,
                     "psnr": metrics["psnr"], "ssim": metrics["ssim"]})  # fmt: skip
    results = {"file": shown(args.file), "gaussians": scene.gaussians.count, "rows": rows}
    (Path(__file__).parent / "results" / "sh_bits.json").write_text(json.dumps(results, indent=2))
    print("| features_rest bits | file (bytes) | bytes/Gaussian | PSNR (dB) | SSIM |\n|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['bits']} | {r['bytes']:,} | {r['bytes_per_gaussian']:.1f} | {r['psnr']:.3f} | {r['ssim']:.4f} |")


if __name__ == "__main__":
    main()
