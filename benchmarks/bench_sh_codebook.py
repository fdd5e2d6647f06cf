"""A vector-quantized codebook for the higher SH bands (as c3dgs and SOG code them) against format 2.0's
scalar codes, on one trimmed model.

For each codebook size K: k-means (Lloyd, ``--iterations``, seeded) over the Gaussians' higher SH bands
(each Gaussian's features_rest as one vector, the file's decoded values), every Gaussian then takes its
nearest entry. The codebook is stored as SOG stores its codebooks: 8 bits per coefficient over each
coefficient's range. Bytes: the file with the higher SH bands left out (the same file with every SH band
code zero) + the entries' codes + their ranges (float32) + one index per Gaussian (the narrowest unsigned
integer), entries and indices each one stream as the file's streams are (byte-shuffled columns, xz). Quality:
the held-out PSNR of the file's Gaussians with the codebook's bands, rendered by ``ns-trim eval``'s code.

Each size twice: post hoc, and fine-tuned through (as c3dgs trains its codebook): the entries trained by
Adam on the training views with splatfacto's loss (0.8 L1 + 0.2 (1 - SSIM)), each Gaussian keeping its index
and every other attribute its decoded value, the forward seeing the entries as the file stores them
(straight-through). The control: the file's own scalar codes fine-tuned the same way for the same steps
(each Gaussian's band values through the file's steps and bits, its SH degree kept), re-encoded, at each
of ``--scalar-learning-rates``: fine-tuning more is not the codebook's own merit.

    python benchmarks/bench_sh_codebook.py --file outputs/demo/export/scene.nstrim --data demo/scene \\
        [--sizes 64 256 1024 4096] [--steps 300]

Results: benchmarks/results/sh_codebook.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
from datetime import date
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch
from pytorch_msssim import SSIM
from rich.progress import track

from nerfstudio_trim.core.codec.nstrim import encode, read_file
from nerfstudio_trim.core.codec.streams import column_bytes, deflate, smallest_unsigned
from nerfstudio_trim.core.prune.render_scores import ScoringView
from nerfstudio_trim.core.quantize.sh_bands import BandCodes, band_codes
from nerfstudio_trim.core.quantize.sh_compaction import band_mask
from nerfstudio_trim.core.quantize.straight_through import straight_through
from nerfstudio_trim.core.raster.render import over_background, rasterize_parameters
from nerfstudio_trim.core.scene import SplatScene
from nerfstudio_trim.nerfstudio.compress import training_views
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


def quantize_entries(entries: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codebook entries [K, D] on 8 bits per coefficient over each coefficient's range (as SOG stores its
    codebooks): (codes [K, D] uint8, low [D], step [D] float32); a value is ``low + code * step``."""
    low, high = entries.detach().amin(dim=0), entries.detach().amax(dim=0)
    step = torch.where(high > low, (high - low) / 255, torch.ones_like(low))
    codes = torch.round((entries.detach() - low) / step).clamp(0, 255).to(torch.uint8)
    return codes, low, step


def stored_entries(entries: torch.Tensor) -> torch.Tensor:
    """The entries [K, D] as the file would store them (``quantize_entries``), gradients straight through."""
    codes, low, step = quantize_entries(entries)
    return straight_through(entries, low + codes.to(entries.dtype) * step)


def codebook_bytes(entries: torch.Tensor, index: torch.Tensor) -> Tuple[int, int]:
    """(bytes of the 8-bit entries and their ranges, bytes of the indices), each one stream as the file's."""
    codes, _, _ = quantize_entries(entries)
    table = len(deflate(column_bytes(codes.numpy()))) + 2 * 4 * entries.shape[1]
    narrow = index.numpy().astype(smallest_unsigned(index.numpy()))
    return table, len(deflate(column_bytes(narrow)))


def stored_bands(rest: torch.Tensor, bands: BandCodes, mask: torch.Tensor) -> torch.Tensor:
    """features_rest [N, K, 3] coded with the file's steps and bits, zero above each Gaussian's degree
    (``mask`` [N, K, 1]), gradients straight through."""
    return straight_through(rest, band_codes(rest, bands.steps, bands.bits) * bands.steps * mask)


def fine_tune(
    values: torch.Tensor, bands_of: Callable[[torch.Tensor], torch.Tensor], params: Dict[str, torch.Tensor],
    scene: SplatScene, views: Sequence[ScoringView], steps: int, learning_rate: float, what: str, seed: int = 0,
) -> torch.Tensor:
    """``values`` after ``steps`` Adam steps on random training views with splatfacto's loss, the scene's
    higher SH bands rendered as ``bands_of(values)`` [N, K, 3] (what the file stores, straight-through), every
    other parameter fixed at its decoded value."""
    trained = values.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([trained], lr=learning_rate)
    ssim = SSIM(data_range=1.0, size_average=True, channel=3)
    generator = torch.Generator().manual_seed(seed)
    fixed = {name: value.detach() for name, value in params.items() if name != "features_rest"}
    for _ in track(range(steps), description=f"fine-tuning {what}", transient=True):
        view = views[int(torch.randint(len(views), (1,), generator=generator))]
        colours, alpha, _ = rasterize_parameters(
            {**fixed, "features_rest": bands_of(trained)}, view.viewmat[None], view.K[None], view.width, view.height,
            sh_degree=scene.sh_degree, rasterize_mode=scene.rasterize_mode,  # type: ignore[arg-type]
        )  # fmt: skip
        image = over_background(colours[..., :3], alpha, view.background)[0]
        predicted, target = image.permute(2, 0, 1)[None], view.image.permute(2, 0, 1)[None]
        loss = 0.8 * (image - view.image).abs().mean() + 0.2 * (1 - ssim(target, predicted))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return trained.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, required=True, help="a format-2.x .nstrim file of a trimmed model")
    parser.add_argument("--data", type=Path, required=True, help="the scene's dataset (held-out views)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--iterations", type=int, default=25, help="Lloyd iterations per codebook")
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps per codebook (0: post hoc only)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's, for the codebook entries")
    parser.add_argument("--scalar-learning-rates", type=float, nargs="+", default=[1.25e-4, 1e-3],
                        help="Adam's, for the scalar codes' control rows (1.25e-4: splatfacto's for features_rest)")
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
    views = training_views(args.data, scene, device, None) if args.steps > 0 else []
    mask = band_mask(bands.degrees, rest.shape[1])

    def record(coding: str, size: int, decoded_rest: torch.Tensor, **parts: int) -> None:
        metrics = evaluate_scene(scene, args.data, device, gaussians={**params, "features_rest": decoded_rest})
        rows.append({"coding": coding, "bytes": size, "sh_bytes": size - base_bytes, **parts, "psnr": metrics["psnr"],
                     "ssim": metrics["ssim"]})  # fmt: skip
        print(rows[-1], flush=True)

    for rate in args.scalar_learning_rates if args.steps > 0 else []:
        tuned = fine_tune(rest, lambda r: stored_bands(r, bands, mask), params, scene, views, args.steps, rate, "the scalar codes")
        coded = dataclasses.replace(bands, codes=band_codes(tuned, bands.steps, bands.bits) * mask.to(torch.int64))
        retuned = dataclasses.replace(scene, gaussians=dataclasses.replace(scene.gaussians, features_rest=coded))
        record(f"format 2.0 scalar codes, fine-tuned {args.steps} steps (lr {rate:g})", len(encode(retuned)), coded.dequantize())
    for size in args.sizes:
        if size >= count:
            continue
        codebook, index = kmeans(vectors, size, args.iterations)
        trained = [("post hoc", codebook)]
        if args.steps > 0:
            tuned = fine_tune(codebook, lambda e: stored_entries(e)[index].reshape(rest.shape), params, scene, views,
                              args.steps, args.learning_rate, f"{size:,} entries")  # fmt: skip
            trained.append((f"fine-tuned {args.steps} steps (lr {args.learning_rate:g})", tuned))
        for how, entries in trained:
            table, indices = codebook_bytes(entries, index)
            record(f"codebook of {size:,} entries, {how}", base_bytes + table + indices,
                   stored_entries(entries)[index].reshape(rest.shape), codebook_bytes=table, index_bytes=indices)
    metrics = evaluate_scene(scene, args.data, device, gaussians=without_sh)
    rows.append({"coding": "no higher SH bands (degree 0)", "bytes": base_bytes, "sh_bytes": 0, "psnr": metrics["psnr"],
                 "ssim": metrics["ssim"]})  # fmt: skip
    for row in rows:
        row["bytes_per_gaussian"] = row["bytes"] / count
    results = {"file": str(args.file), "data": str(args.data), "gaussians": count, "sh_degree": scene.sh_degree,
               "iterations": args.iterations, "steps": args.steps, "learning_rate": args.learning_rate, "date": date.today().isoformat(),
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "rows": rows}  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print("| SH coding | file bytes | SH bytes | bytes/Gaussian | PSNR (dB) | SSIM |\n|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['coding']} | {row['bytes']:,} | {row['sh_bytes']:,} | {row['bytes_per_gaussian']:.1f} "
              f"| {row['psnr']:.3f} | {row['ssim']:.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
