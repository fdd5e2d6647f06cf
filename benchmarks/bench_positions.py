"""Position encodings of the file compared: float16 of nerfstudio's normalised coordinates vs a 16-bit
grid over the bounding box (``core.quantize.quantize_positions``).

Loads a run (default: the committed demo baseline, float32, never quantized), replaces only its positions
by each encoding's decoded values, renders the eval views, and reports PSNR against the images, PSNR
against the float32 render (the loss caused by the encoding alone), the largest position error, and the
compressed size of the positions column. The "+ far Gaussian" rows add one Gaussian 100 units away (a
floater, common in real captures) before encoding: it stretches the grid's bounding box.
Results: benchmarks/results/positions.json.

    python benchmarks/bench_positions.py [--load-config RUN/config.yml]
"""

from __future__ import annotations

import argparse
import json
import lzma
import statistics
from pathlib import Path

import torch

from nerfstudio_trim.core.codec.nstrim import XZ_PRESET, _column_bytes
from nerfstudio_trim.core.codec.morton import morton_order
from nerfstudio_trim.core.quantize import quantize_positions
from nerfstudio_trim.core.raster.render import over_background, rasterize_parameters

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "positions.json"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(torch.mean((a - b) ** 2).clamp(min=1e-12)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load-config", type=Path, default=REPO / "demo/baseline/splatfacto-trim/config.yml")
    args = parser.parse_args()
    from nerfstudio.utils.eval_utils import eval_setup

    _, pipeline, _, _ = eval_setup(args.load_config, test_mode="test")
    model = pipeline.model.eval()
    datamanager = pipeline.datamanager
    params = {name: value.detach() for name, value in model.gauss_params.items()}
    background = model._get_background_color()
    extent = (params["means"].amax(0) - params["means"].amin(0)).tolist()

    def render_all(means: torch.Tensor) -> list:
        images = []
        cameras = datamanager.eval_dataset.cameras
        with torch.no_grad():
            for index in range(len(cameras)):
                camera = cameras[index : index + 1]
                render, alpha, _ = rasterize_parameters(
                    {**params, "means": means}, camera.camera_to_worlds, camera.get_intrinsics_matrices(),
                    int(camera.width), int(camera.height), sh_degree=model.config.sh_degree,
                )  # fmt: skip
                images.append(over_background(render[..., :3], alpha, background)[0])
        return images

    targets = [model.get_gt_img(d["image"])[..., :3] for d in datamanager.cached_eval]
    reference = render_all(params["means"])
    rows = [{"encoding": "float32 (reference)", "psnr": statistics.fmean(map(psnr, reference, targets)),
             "psnr_vs_float32": None, "max_error": 0.0, "bytes": None}]  # fmt: skip
    order = morton_order(params["means"])
    far = params["means"].new_tensor([[100.0, 100.0, 100.0]])
    for encoding, extra in (("float16", ""), ("grid16", ""), ("float16", " + far Gaussian"), ("grid16", " + far Gaussian")):
        means = torch.cat([params["means"], far]) if extra else params["means"]
        quantized = quantize_positions(means, encoding)  # type: ignore[arg-type]
        decoded = quantized.dequantize()[: len(params["means"])]
        images = render_all(decoded)
        codes = quantized.codes[: len(params["means"])][order].numpy()
        codes = codes.astype("uint16") if encoding == "grid16" else codes
        rows.append({
            "encoding": encoding + extra,
            "psnr": statistics.fmean(map(psnr, images, targets)),
            "psnr_vs_float32": statistics.fmean(map(psnr, images, reference)),
            "max_error": float((decoded - params["means"]).abs().max()),
            "bytes": len(lzma.compress(_column_bytes(codes), preset=XZ_PRESET)),
        })  # fmt: skip
    result = {"config": str(args.load_config), "gaussians": len(params["means"]), "extent": extent, "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"{len(params['means']):,} Gaussians, bounding box extent {[round(e, 3) for e in extent]} (normalised units)")
    print("| positions | PSNR vs images (dB) | PSNR vs float32 render (dB) | max error | compressed bytes |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        vs = "-" if r["psnr_vs_float32"] is None else f"{r['psnr_vs_float32']:.2f}"
        size = "-" if r["bytes"] is None else f"{r['bytes']:,}"
        print(f"| {r['encoding']} | {r['psnr']:.3f} | {vs} | {r['max_error']:.2e} | {size} |")


if __name__ == "__main__":
    main()
