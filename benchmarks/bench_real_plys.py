"""Our file on real scenes other tools wrote: bytes per Gaussian and what each attribute loses, against SPZ.

Each PLY (any 3DGS trainer's, read by ``core.codec.ply.read_ply``) is encoded as format 2.1 with the default
codec settings, as it is (no views: no pruning, no SH compaction, no quantization-aware training), and
decoded; per attribute: stored bytes per Gaussian and the error of the decoded values (positions relative to
each Gaussian's size, rotation angle, scale ratio, opacity, base colour and higher-band SH in colour units).
For comparison: the PLY gzip'd, and SPZ v4 through gsply (``make bench-tools``), where it runs.

    python benchmarks/bench_real_plys.py FOLDER_OR_PLY ...

The PLYs are not part of the repository (public files of other projects; their sources and licences are
listed in RESULTS.md). Results: benchmarks/results/real_plys.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import tempfile
from datetime import date
from pathlib import Path
from typing import Any, Dict, List

import torch

from nerfstudio_trim.core.codec.nstrim import attribute_rows, encode, read_file_with_header
from nerfstudio_trim.core.codec.morton import morton_order
from nerfstudio_trim.core.codec.ply import PlyError, ply_bytes, read_ply
from nerfstudio_trim.core.quantize.gaussians import quantize_gaussians
from nerfstudio_trim.core.scene import SplatScene

RESULTS = Path(__file__).parent / "results" / "real_plys.json"
GSPLY_PYTHON_DEFAULT = Path.home() / ".cache/nerfstudio-trim/gsply-0.4.6/bin/python"
GSPLY_SPZ = Path(__file__).parent / "tools" / "gsply_spz.py"
SH_C0 = 0.28209479177387814


def errors(original: Dict[str, torch.Tensor], decoded: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """What the decoded attributes lose, each in its own unit (medians and 99th percentiles)."""
    sizes = torch.exp(original["scales"].mean(dim=-1))
    position = ((decoded["means"] - original["means"]).abs().amax(dim=-1) / sizes)
    a = torch.nn.functional.normalize(original["quats"], dim=-1)
    b = torch.nn.functional.normalize(decoded["quats"], dim=-1)
    angle = torch.rad2deg(2 * torch.acos((a * b).sum(-1).abs().clamp(max=1.0)))
    scale = (decoded["scales"] - original["scales"]).abs().amax(dim=-1)  # log ratio
    opacity = (torch.sigmoid(decoded["opacities"]) - torch.sigmoid(original["opacities"])).abs().flatten()
    colour = ((decoded["features_dc"] - original["features_dc"]) * SH_C0).abs().amax(dim=-1)
    difference = (decoded["features_rest"] - original["features_rest"]).abs().flatten(1)
    rest = difference.amax(dim=-1) if difference.shape[1] else difference.new_zeros(0)

    def stats(name: str, values: torch.Tensor) -> Dict[str, float]:
        if values.numel() == 0:
            return {}
        return {f"{name}_median": float(values.median()), f"{name}_p99": float(torch.quantile(values.double(), 0.99))}

    return {**stats("position_over_size", position), **stats("rotation_degrees", angle), **stats("scale_log_ratio", scale),
            **stats("opacity", opacity), **stats("colour", colour), **stats("sh_rest", rest)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", type=Path, nargs="+")
    args = parser.parse_args()
    paths = sorted(p for path in args.inputs for p in ([path] if path.is_file() else path.glob("*.ply")))
    gsply = Path(os.environ.get("GSPLY_PYTHON") or GSPLY_PYTHON_DEFAULT)
    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for path in paths:
            try:
                read = read_ply(path)
            except PlyError as error:
                rows.append({"file": path.name, "refused": str(error).replace(str(path), path.name)})
                print(f"{path.name}: refused ({rows[-1]['refused']})", flush=True)
                continue
            params, count = read.params, read.params["means"].shape[0]
            data = encode(SplatScene(quantize_gaussians(params), read.sh_degree, frame="capture"))
            (work / "scene.nstrim").write_bytes(data)
            header, scene = read_file_with_header(work / "scene.nstrim")
            order = morton_order(quantize_gaussians(params).means.dequantize())
            decoded = scene.gaussians.dequantize()
            original = {name: value[order] for name, value in params.items()}
            ply = ply_bytes(params, read.sh_degree)
            row: Dict[str, Any] = {
                "file": path.name, "gaussians": count, "sh_degree": read.sh_degree, "notes": read.notes,
                "ply_bytes_per_gaussian": len(ply) / count, "gzip_bytes_per_gaussian": len(gzip.compress(ply, 9)) / count,
                "ours_bytes_per_gaussian": len(data) / count,
                "ours_attributes": {name: stored / count for name, _, stored in attribute_rows(header)},
                "errors": errors(original, decoded),
            }  # fmt: skip
            if gsply.is_file():
                (work / "in.ply").write_bytes(ply)
                try:
                    subprocess.run([str(gsply), str(GSPLY_SPZ), "encode", str(work / "in.ply"), str(work / "out.spz"), "4"],
                                   check=True, capture_output=True, text=True, timeout=600)  # fmt: skip
                    row["spz_v4_bytes_per_gaussian"] = (work / "out.spz").stat().st_size / count
                except subprocess.CalledProcessError as error:
                    row["spz_v4_note"] = (error.stderr or "").strip().splitlines()[-1:] or "failed"
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "errors"}), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"date": date.today().isoformat(), "rows": rows}, indent=2) + "\n")
    print("| file | Gaussians | SH | PLY | gzip | SPZ v4 (gsply) | ours 2.1 | position err (p99, x size) | rotation (p99, deg) | colour (p99) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        if "refused" in row:
            print(f"| {row['file']} | refused: {row['refused']} |")
            continue
        spz = row.get("spz_v4_bytes_per_gaussian")
        e = row["errors"]
        print(f"| {row['file']} | {row['gaussians']:,} | {row['sh_degree']} | {row['ply_bytes_per_gaussian']:.1f} "
              f"| {row['gzip_bytes_per_gaussian']:.1f} | {'n/a' if spz is None else f'{spz:.1f}'} | {row['ours_bytes_per_gaussian']:.1f} "
              f"| {e['position_over_size_p99']:.3f} | {e['rotation_degrees_p99']:.2f} | {e['colour_p99']:.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
