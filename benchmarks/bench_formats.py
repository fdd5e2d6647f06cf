"""One trimmed model, every format a user could ship it in: size, bytes per Gaussian, quality of what
decodes, encode and decode time.

The input is an exported ``.nstrim`` file (default: the one ``make demo`` writes). Every other format
starts from its decoded parameters, written as nerfstudio's gaussian-splat PLY, so all rows hold the
same model:
- ``.nstrim`` (ours): ``core.codec`` encode / decode, in process;
- PLY: the uncompressed INRIA layout (``core.ply``), write / read;
- PLY + gzip (level 9, Python's zlib), compress + write / decompress + read;
- SPZ (Niantic's format) versions 3 and 4 through gsply (PyPI; its own environment, ``GSPLY_PYTHON`` or
  the one ``make bench-tools`` caches; ``tools/gsply_spz.py``, in-process times, Numba's compilation
  excluded), encode PLY -> SPZ, decode SPZ -> PLY;
- SPZ version 4 and PlayCanvas SOG through the npm ``@playcanvas/splat-transform`` CLI (pinned by the
  Makefile; ``SPLAT_TRANSFORM`` or its cached install), encode PLY -> SPZ/SOG and decode SPZ/SOG -> PLY;
  times are the CLI's wall clock, Node.js start-up included (measured and reported).
Each decoded model is rendered over the scene's eval views (``ns-trim eval``'s code, the file's frame,
background and rasterize mode): PSNR, SSIM. A tool that cannot run here gets a row saying so.

    python benchmarks/bench_formats.py [--file outputs/demo/export/scene.nstrim] [--data demo/scene]

Results: benchmarks/results/formats.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from nerfstudio_trim.core.codec.nstrim import decode, encode
from nerfstudio_trim.core.codec.ply import ply_bytes, read_ply
from nerfstudio_trim.nerfstudio.evaluate import evaluate_scene

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "formats.json"
SPLAT_TRANSFORM_DEFAULT = Path.home() / ".cache/nerfstudio-trim/splat-transform-2.7.1/node_modules/.bin/splat-transform"
GSPLY_PYTHON_DEFAULT = Path.home() / ".cache/nerfstudio-trim/gsply-0.4.6/bin/python"
GSPLY_SPZ = Path(__file__).parent / "tools" / "gsply_spz.py"


def shown(path: Path) -> str:
    """A path as recorded in the results: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def timed(action: Callable[[], Any]) -> Tuple[float, Any]:
    """(wall-clock seconds of ``action()``, its result)."""
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def splat_transform(tool: Path, *args: str) -> float:
    """Wall-clock seconds of one splat-transform command; raises CalledProcessError with its output."""
    command = [str(tool), "-w", "-q", *args]
    return timed(lambda: subprocess.run(command, check=True, capture_output=True, text=True, timeout=1800))[0]


def gsply_run(python: Path, *args: Any) -> Dict[str, Any]:
    """One ``tools/gsply_spz.py`` operation; its JSON report."""
    done = subprocess.run([str(python), str(GSPLY_SPZ), *map(str, args)], check=True, capture_output=True, text=True, timeout=1800)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=REPO / "outputs/demo/export/scene.nstrim")
    parser.add_argument("--data", type=Path, default=REPO / "demo/scene")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.file.is_file():
        parser.error(f"{args.file} does not exist: run `make demo` first, or pass --file")
    tool = Path(os.environ.get("SPLAT_TRANSFORM") or SPLAT_TRANSFORM_DEFAULT)
    device = torch.device("cpu")

    data = args.file.read_bytes()
    scene = decode(data)
    params, degree = scene.gaussians.dequantize(), scene.sh_degree
    count = scene.gaussians.count
    rows: List[Dict[str, Any]] = []

    def row(name: str, tool_name: str, size: Optional[int], encode_s: Optional[float], decode_s: Optional[float],
            decoded: Optional[Dict[str, torch.Tensor]], note: str = "") -> None:
        metrics = evaluate_scene(scene, args.data, device, gaussians=decoded) if decoded is not None else {}
        rows.append({"format": name, "tool": tool_name, "bytes": size,
                     "bytes_per_gaussian": size / count if size else None, "psnr": metrics.get("psnr"),
                     "ssim": metrics.get("ssim"), "gaussians": metrics.get("gaussians"),
                     "encode_s": encode_s, "decode_s": decode_s, "note": note})  # fmt: skip
        print(f"{name}: {size} bytes, PSNR {metrics.get('psnr')}", flush=True)

    row(".nstrim (ours)", f"nerfstudio-trim {version('nerfstudio-trim')}", len(data), timed(lambda: encode(scene))[0],
        timed(lambda: decode(data))[0], params)  # fmt: skip
    ply_encode, ply = timed(lambda: ply_bytes(params, degree))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ply_path = work / "scene.ply"
        ply_path.write_bytes(ply)
        ply_decode, (from_ply, _) = timed(lambda: read_ply(ply_path))
        row("PLY (INRIA layout)", "nerfstudio-trim core.ply", len(ply), ply_encode, ply_decode, from_ply)

        gz_path, unzipped = work / "scene.ply.gz", work / "unzipped.ply"

        def gunzip_and_read() -> Tuple[Dict[str, torch.Tensor], int]:
            unzipped.write_bytes(gzip.decompress(gz_path.read_bytes()))
            return read_ply(unzipped)

        gz_encode, _ = timed(lambda: gz_path.write_bytes(gzip.compress(ply, compresslevel=9)))
        gz_decode, (from_gz, _) = timed(gunzip_and_read)
        row("PLY + gzip -9", f"Python {platform.python_version()} gzip", gz_path.stat().st_size, gz_encode, gz_decode, from_gz)

        gsply_python = Path(os.environ.get("GSPLY_PYTHON") or GSPLY_PYTHON_DEFAULT)
        for spz_version in (3, 4):
            name, encoded, back = f"SPZ v{spz_version}", work / f"gsply-v{spz_version}.spz", work / "gsply-decoded.ply"
            if not gsply_python.is_file():
                row(name, "gsply (PyPI)", None, None, None, None, "not run: gsply is not installed (make bench-tools)")
                continue
            try:
                encoding = gsply_run(gsply_python, "encode", ply_path, encoded, str(spz_version))
                decoding = gsply_run(gsply_python, "decode", encoded, back)
            except subprocess.CalledProcessError as error:
                row(name, "gsply (PyPI)", None, None, None, None, f"failed: {(error.stderr or '').strip().splitlines()[-1:]}")
                continue
            row(name, f"gsply {encoding['gsply']}", encoded.stat().st_size, encoding["seconds"], decoding["seconds"],
                read_ply(back)[0], "in-process times")  # fmt: skip

        if not (tool.is_file() and shutil.which("node")):
            for name in ("SPZ", "SOG"):
                row(name, "@playcanvas/splat-transform", None, None, None, None,
                    "not run: splat-transform is not installed (make tools needs npm and the npm registry)")
        else:
            probe = subprocess.run([str(tool), "--version"], capture_output=True, text=True)
            tool_version = (probe.stdout or probe.stderr).strip()
            startup = min(timed(lambda: subprocess.run([str(tool), "--version"], capture_output=True))[0] for _ in range(3))
            for name, suffix, extra in (("SPZ v4", "spz", []), ("SOG", "sog", ["-g", "cpu"])):
                encoded, back = work / f"scene.{suffix}", work / f"{suffix}-decoded.ply"
                try:
                    encode_s = splat_transform(tool, *extra, str(ply_path), str(encoded))
                    decode_s = splat_transform(tool, str(encoded), str(back))
                except subprocess.CalledProcessError as error:
                    row(name, tool_version, None, None, None, None,
                        f"failed: {(error.stderr or error.stdout).strip().splitlines()[-1:]}")
                    continue
                row(name, tool_version, encoded.stat().st_size, encode_s, decode_s,
                    read_ply(back)[0], f"CLI wall time, Node.js start-up {startup:.2f} s included")  # fmt: skip

    results = {
        "file": shown(args.file), "data": shown(args.data), "gaussians": count, "sh_degree": degree,
        "date": date.today().isoformat(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "rows": rows,
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(markdown(results))


def markdown(results: Dict[str, Any]) -> str:
    """The comparison as a markdown table (sizes relative to the uncompressed PLY)."""
    uncompressed = next(r["bytes"] for r in results["rows"] if r["format"].startswith("PLY ("))
    lines = ["| format | tool | size (bytes) | bytes/Gaussian | vs PLY | PSNR (dB) | SSIM | encode (s) | decode (s) | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip

    def fmt(value: Optional[float], spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    for r in results["rows"]:
        ratio = None if not r["bytes"] else f"{uncompressed / r['bytes']:.1f}x"
        lines.append(f"| {r['format']} | {r['tool']} | {fmt(r['bytes'], ',')} | {fmt(r['bytes_per_gaussian'], '.1f')} "
                     f"| {ratio or 'n/a'} | {fmt(r['psnr'], '.3f')} | {fmt(r['ssim'], '.4f')} "
                     f"| {fmt(r['encode_s'], '.2f')} | {fmt(r['decode_s'], '.2f')} | {r['note']} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
