"""Export and decode speed of the .nstrim codec at 100k and 1M Gaussians, against nerfstudio's
``ns-export gaussian-splat`` PLY writer (``ExportGaussianSplat.write_ply``, one vertex at a time) on the
same parameters, and our vectorised PLY writer.

The parameters are the committed demo baseline's 23,679 Gaussians repeated with small position offsets
(trained-like values, not random noise, so compression ratios are meaningful). Times are wall-clock
seconds of one run each, on this machine's CPU. Results: benchmarks/results/codec.json.

    python benchmarks/bench_codec.py [--counts 100000 1000000] [--skip-nerfstudio-above 1000000]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from nerfstudio_trim.core.codec.nstrim import encode, read_file
from nerfstudio_trim.core.scene import SplatScene
from nerfstudio_trim.core.files import write_atomic
from nerfstudio_trim.core.codec.ply import ply_properties, write_ply
from nerfstudio_trim.core.quantize.gaussians import quantize_gaussians
from nerfstudio_trim.nerfstudio.checkpoints import gaussian_state, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "demo/baseline/splatfacto-trim/nerfstudio_models/step-000003999.ckpt"
RESULTS = Path(__file__).parent / "results" / "codec.json"


def parameters(count: int) -> dict:
    """``count`` Gaussians: the demo baseline's, repeated with offsets of ~1% of the scene."""
    base = {k: v.float() for k, v in gaussian_state(load_checkpoint(BASELINE)["pipeline"]).items()}
    repeats = -(-count // len(base["means"]))
    generator = torch.Generator().manual_seed(0)
    params = {name: value.repeat(repeats, *([1] * (value.dim() - 1)))[:count] for name, value in base.items()}
    params["means"] = params["means"] + 0.03 * torch.randn(count, 3, generator=generator)
    return params


def nerfstudio_ply_seconds(params: dict, path: Path) -> float:
    """nerfstudio 1.1.5's writer, fed as ExportGaussianSplat.main feeds it."""
    from nerfstudio.scripts.exporter import ExportGaussianSplat

    n = len(params["means"])
    columns: "OrderedDict[str, np.ndarray]" = OrderedDict()
    means = params["means"].numpy()
    rest = params["features_rest"].transpose(1, 2).reshape(n, -1).numpy()
    values = np.concatenate([means, np.zeros((n, 3), np.float32), params["features_dc"].numpy(), rest,
                             params["opacities"].numpy(), params["scales"].numpy(), params["quats"].numpy()], 1)  # fmt: skip
    for i, name in enumerate(ply_properties(3)):
        columns[name] = values[:, i]
    started = time.perf_counter()
    ExportGaussianSplat.write_ply(str(path), n, columns)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--skip-nerfstudio-above", type=int, default=1_000_000)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for count in args.counts:
            params = parameters(count)
            started = time.perf_counter()
            data = encode(SplatScene(quantize_gaussians(params), 3))
            write_atomic(Path(folder) / "scene.nstrim", data)
            export_s = time.perf_counter() - started
            started = time.perf_counter()
            decoded = read_file(Path(folder) / "scene.nstrim").gaussians.dequantize()
            decode_s = time.perf_counter() - started
            started = time.perf_counter()
            ply_bytes = write_ply(Path(folder) / "ours.ply", decoded, 3)
            ply_s = time.perf_counter() - started
            nerfstudio_s = None
            if count <= args.skip_nerfstudio_above:
                nerfstudio_s = nerfstudio_ply_seconds(params, Path(folder) / "nerfstudio.ply")
            rows.append({
                "gaussians": count, "file_bytes": len(data), "bytes_per_gaussian": len(data) / count,
                "ply_bytes": ply_bytes, "export_s": export_s, "decode_s": decode_s,
                "export_mgaussians_per_s": count / export_s / 1e6, "decode_mgaussians_per_s": count / decode_s / 1e6,
                "our_ply_write_s": ply_s, "nerfstudio_ply_write_s": nerfstudio_s,
            })  # fmt: skip
            print(rows[-1], flush=True)
            del decoded, data
    machine = {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(), "torch": torch.__version__,
               "threads": torch.get_num_threads()}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print("| Gaussians | file (MB) | bytes/Gaussian | export (s) | decode (s) | our PLY write (s) | nerfstudio PLY write (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        theirs = "-" if r["nerfstudio_ply_write_s"] is None else f"{r['nerfstudio_ply_write_s']:.1f}"
        print(f"| {r['gaussians']:,} | {r['file_bytes'] / 1e6:.2f} | {r['bytes_per_gaussian']:.1f} | {r['export_s']:.2f} "
              f"| {r['decode_s']:.2f} | {r['our_ply_write_s']:.2f} | {theirs} |")  # fmt: skip


if __name__ == "__main__":
    main()
