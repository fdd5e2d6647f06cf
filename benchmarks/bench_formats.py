"""One trimmed model, every format a user could ship it in: size, bytes per Gaussian, quality of what
decodes, encode and decode time, and a rate-distortion plot.

The input is a trim run (``--run RUN/config.yml``, e.g. ``make demo``'s
``outputs/demo/trim/bench/splatfacto-trim/trimmed/config.yml``):
- ``.nstrim`` 2.1 (ours): the run's exported file: ``--file``, else the one ``ns-trim bench`` exported from
  the run (``OUT/export/scene.nstrim`` beside ``OUT/trim/``), else ``ns-trim export`` of the run (into a
  temporary folder). Encode time: the export's quantize + encode of the loaded model, in process; decode:
  parse + verify + decompress + dequantize;
- older ``.nstrim`` files (optional, ``--older-file``, repeatable): a file an older writer wrote, read only (no
  encoder for them in this tree): a 2.0 file of the same run (e.g. ``ns-trim bench``'s own export of it,
  written before 2.1), or a 1.0 file, e.g. the export of the ablation's ``format-1.0`` row
  (``outputs/ablation/demo/format-1.0-0.5/export/scene.nstrim``): another trim of the same scene, its own
  Gaussians;
- the seed method's coding (``tools/seed_coding.py``: SH coefficients on 8 bits over one range per tensor,
  the rest float16, LZMA), from the same float parameters as the formats below;
- every other format starts from the run's float parameters as the model stores them
  (``SplatfactoTrimModel.file_parameters()``: before quantization, the SH bands above each Gaussian's
  compacted degree zeroed), written as nerfstudio's gaussian-splat PLY:
  - PLY: the uncompressed INRIA layout (``core.codec.ply``), write / read;
  - PLY + gzip (level 9, Python's zlib), compress + write / decompress + read;
  - SPZ (Niantic's format) versions 3 and 4 through gsply (PyPI; its own environment, ``GSPLY_PYTHON`` or
    the one ``make bench-tools`` caches; ``tools/gsply_spz.py``, in-process times, Numba's compilation
    excluded), encode PLY -> SPZ, decode SPZ -> PLY;
  - SPZ version 4 and PlayCanvas SOG through the npm ``@playcanvas/splat-transform`` CLI (pinned by the
    Makefile; ``SPLAT_TRANSFORM`` or its cached install), encode PLY -> SPZ/SOG and decode SPZ/SOG -> PLY;
    times are the CLI's wall clock, Node.js start-up included (measured and reported).
- ``.nstrim`` 2.1 without one lever (one row each): the same parameters encoded post hoc with the run's codec
  settings but one attribute coded near-losslessly (positions at 1% of each Gaussian's size, log scales in
  steps of 0.005, 12-bit rotations, opacity and colour, SH bands on 8 bits without the smallest step): what
  that attribute's quantizer saves and what it costs; and one row with every attribute so (our format's
  high-quality operating point on the same parameters). SH compaction and the entropy coder are measured
  elsewhere (``ablation.py``'s no-sh-compaction row, ``bench_entropy.py``).
Without ``--run``, ``--file`` alone: the other formats start from the file's decoded parameters instead.
Each decoded model is rendered on the CPU over the scene's eval views (``ns-trim eval``'s code, in the
2.x file's frame, background and rasterize mode; the 1.0 file in its own): PSNR, SSIM. A tool that cannot
run here gets a row saying so.

    python benchmarks/bench_formats.py --run RUN/config.yml [--file scene.nstrim] [--older-file F.nstrim ...]
        [--data demo/scene]

Results: benchmarks/results/formats.json, formats.png (bytes per Gaussian, log scale, against PSNR: every
format a point) and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))
from seed_coding import decode_seed, encode_seed  # noqa: E402

from nerfstudio_trim.core.codec.nstrim import decode, encode  # noqa: E402
from nerfstudio_trim.core.codec.ply import PlyScene, ply_bytes, read_ply  # noqa: E402
from nerfstudio_trim.core.quantize.gaussians import CodecSettings, QuantizedGaussians, quantize_gaussians  # noqa: E402
from nerfstudio_trim.nerfstudio.evaluate import evaluate_scene  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "formats.json"
SPLAT_TRANSFORM_DEFAULT = Path.home() / ".cache/nerfstudio-trim/splat-transform-2.7.1/node_modules/.bin/splat-transform"
GSPLY_PYTHON_DEFAULT = Path.home() / ".cache/nerfstudio-trim/gsply-0.4.6/bin/python"
GSPLY_SPZ = Path(__file__).parent / "tools" / "gsply_spz.py"
OURS = ".nstrim 2.1 (ours)"
SEED = "seed method's coding (8-bit SH, float16 rest, LZMA)"
LEVERS = {  # attribute: the CodecSettings fields that code it near-losslessly instead of the run's quantizer
    "positions": {"position_precision": 0.01},
    "scales": {"scale_step": 0.005},
    "rotations": {"rotation_bits": 12},
    "opacity": {"opacity_bits": 12},
    "colour": {"color_bits": 12},
    "SH bands": {"sh_bits": (8, 8, 8), "sh_min_step": 0.0},
}
"""Each lever (attribute quantizer) of format 2.x and what a lever-less row codes that attribute with instead."""


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


def bench_export(run: Path) -> Optional[Path]:
    """The file ``ns-trim bench`` exported from a run it trimmed (``OUT/export/scene.nstrim`` for
    ``OUT/trim/bench/splatfacto-trim/trimmed/config.yml``), if there."""
    folder = run.resolve().parent
    if [p.name for p in (folder, *folder.parents[:3])] != ["trimmed", "splatfacto-trim", "bench", "trim"]:
        return None
    exported = folder.parents[3] / "export" / "scene.nstrim"
    return exported if exported.is_file() else None


def ns_trim_export(run: Path, folder: Path) -> Path:
    """``ns-trim export`` of a run into ``folder``; the file."""
    command = [str(Path(sys.executable).parent / "ns-trim"), "export", "--load-config", str(run), "--output-dir", str(folder)]
    if subprocess.run(command).returncode != 0:
        sys.exit(f"error: ns-trim export of {run} failed; its output is above")
    return folder / "scene.nstrim"


def run_parameters(run: Path) -> Tuple[Dict[str, torch.Tensor], int, Callable[[], bytes], CodecSettings]:
    """(float parameters as the run's model stores them, on the CPU; SH degree; the export's quantize +
    encode of them, to time; the run's codec settings)."""
    from nerfstudio_trim.nerfstudio.export import load_run, model_scene, read_run_config

    pipeline, step = load_run(read_run_config(run))
    model = pipeline.model
    with torch.no_grad():
        params = {name: value.detach().float().cpu() for name, value in model.file_parameters().items()}
    outputs = pipeline.datamanager.train_dataparser_outputs
    return params, model.config.sh_degree, lambda: encode(model_scene(model, outputs, step)), model.config.trim.codec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="the trim run's config.yml (required unless --file)")
    parser.add_argument("--file", type=Path, help="the run's exported .nstrim file (default: exported here)")
    parser.add_argument("--older-file", type=Path, action="append", default=[],
                        help="a .nstrim file of an older format version (1.0, 2.0) to compare as well; repeatable")
    parser.add_argument("--data", type=Path, default=REPO / "demo/scene")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON; the plot is written beside it (.png)")
    args = parser.parse_args()
    if args.run is None and args.file is None:
        parser.error("--run RUN/config.yml is required (or --file FILE.nstrim alone)")
    for given in (args.run, args.file, *args.older_file):
        if given is not None and not given.is_file():
            parser.error(f"{given} does not exist")
    tool = Path(os.environ.get("SPLAT_TRANSFORM") or SPLAT_TRANSFORM_DEFAULT)
    device = torch.device("cpu")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        file = args.file or bench_export(args.run) or ns_trim_export(args.run, work / "export")
        file_shown = "ns-trim export of the run, here" if file.is_relative_to(work) else shown(file)
        data = file.read_bytes()
        scene = decode(data)
        if not isinstance(scene.gaussians, QuantizedGaussians):
            parser.error(f"{file} is not a format-2.x file (pass an older file as --older-file)")
        if args.run is not None:
            params, degree, export, codec = run_parameters(args.run)
            if params["means"].shape[0] != scene.gaussians.count:
                parser.error(f"{file} holds {scene.gaussians.count:,} Gaussians, the run {params['means'].shape[0]:,}: not its export")
            parameters = "the run's file_parameters() (float32, before quantization, SH compaction zeros applied)"
        else:
            params, degree, export, codec = scene.gaussians.dequantize(), scene.sh_degree, lambda: encode(scene), CodecSettings()
            parameters = "decoded from the file"
        rows: List[Dict[str, Any]] = []

        def in_frame(decoded: Dict[str, torch.Tensor]) -> Dict[str, Any]:
            """Metrics of float parameters rendered in the 2.x file's frame, background and rasterize mode."""
            return evaluate_scene(scene, args.data, device, gaussians=decoded)

        def row(name: str, tool_name: str, size: Optional[int], encode_s: Optional[float], decode_s: Optional[float],
                metrics: Dict[str, Any], note: str = "") -> None:
            """One format's row (``metrics`` of what it decodes to; empty when it did not run)."""
            count = metrics.get("gaussians")
            rows.append({"format": name, "tool": tool_name, "bytes": size,
                         "bytes_per_gaussian": size / count if size and count else None, "psnr": metrics.get("psnr"),
                         "ssim": metrics.get("ssim"), "gaussians": count,
                         "encode_s": encode_s, "decode_s": decode_s, "note": note})  # fmt: skip
            print(f"{name}: {size} bytes, PSNR {metrics.get('psnr')}", flush=True)

        software = f"nerfstudio-trim {version('nerfstudio-trim')}"
        row(OURS, software, len(data), timed(export)[0], timed(lambda: decode(data))[0], evaluate_scene(scene, args.data, device))
        for older in args.older_file:
            old = older.read_bytes()
            decode_s, old_scene = timed(lambda: decode(old))
            major, minor = struct.unpack_from("<HH", old, 8)  # the version after the 8 magic bytes
            note = "the same Gaussians" if old_scene.gaussians.count == scene.gaussians.count else "another trim of the scene"
            row(f".nstrim {major}.{minor} (ours, older)", software, len(old), None, decode_s,
                evaluate_scene(old_scene, args.data, device), f"{note} (format-{major}.{minor} writer, its own frame); read only")  # fmt: skip
        every_lever = {name: value for finer in LEVERS.values() for name, value in finer.items()}
        for attribute, finer in (*LEVERS.items(), ("every", every_lever)):
            without = dataclasses.replace(scene, gaussians=quantize_gaussians(params, dataclasses.replace(codec, **finer)))
            coded = {name: getattr(codec, name) for name in finer}
            label = "every attribute near-lossless" if finer is every_lever else f"without the {attribute} lever"
            row(f".nstrim 2.1 {label}", software, len(encode(without)), None, None, evaluate_scene(without, args.data, device),
                f"{attribute}: {coded} -> {finer}")  # fmt: skip
        seed_encode, seed = timed(lambda: encode_seed(params))
        seed_decode, from_seed = timed(lambda: decode_seed(seed))
        row(SEED, "benchmarks/tools/seed_coding.py", len(seed), seed_encode, seed_decode, in_frame(from_seed),
            "one range per SH tensor (colour, higher bands); benchmark only")  # fmt: skip
        ply_encode, ply = timed(lambda: ply_bytes(params, degree))
        ply_path = work / "scene.ply"
        ply_path.write_bytes(ply)
        ply_decode, from_ply = timed(lambda: read_ply(ply_path))
        row("PLY (INRIA layout)", "nerfstudio-trim core.codec.ply", len(ply), ply_encode, ply_decode, in_frame(from_ply.params))

        gz_path, unzipped = work / "scene.ply.gz", work / "unzipped.ply"

        def gunzip_and_read() -> PlyScene:
            unzipped.write_bytes(gzip.decompress(gz_path.read_bytes()))
            return read_ply(unzipped)

        gz_encode, _ = timed(lambda: gz_path.write_bytes(gzip.compress(ply, compresslevel=9)))
        gz_decode, from_gz = timed(gunzip_and_read)
        row("PLY + gzip -9", f"Python {platform.python_version()} gzip", gz_path.stat().st_size, gz_encode, gz_decode, in_frame(from_gz.params))

        gsply_python = Path(os.environ.get("GSPLY_PYTHON") or GSPLY_PYTHON_DEFAULT)
        for spz_version in (3, 4):
            name, encoded, back = f"SPZ v{spz_version}", work / f"gsply-v{spz_version}.spz", work / "gsply-decoded.ply"
            if not gsply_python.is_file():
                row(name, "gsply (PyPI)", None, None, None, {}, "not run: gsply is not installed (make bench-tools)")
                continue
            try:
                encoding = gsply_run(gsply_python, "encode", ply_path, encoded, str(spz_version))
                decoding = gsply_run(gsply_python, "decode", encoded, back)
            except subprocess.CalledProcessError as error:
                row(name, "gsply (PyPI)", None, None, None, {}, f"failed: {(error.stderr or '').strip().splitlines()[-1:]}")
                continue
            row(name, f"gsply {encoding['gsply']}", encoded.stat().st_size, encoding["seconds"], decoding["seconds"],
                in_frame(read_ply(back).params), "in-process times")  # fmt: skip

        if not (tool.is_file() and shutil.which("node")):
            for name in ("SPZ", "SOG"):
                row(name, "@playcanvas/splat-transform", None, None, None, {},
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
                    row(name, tool_version, None, None, None, {},
                        f"failed: {(error.stderr or error.stdout).strip().splitlines()[-1:]}")
                    continue
                row(name, tool_version, encoded.stat().st_size, encode_s, decode_s,
                    in_frame(read_ply(back).params), f"CLI wall time, Node.js start-up {startup:.2f} s included")  # fmt: skip

    results = {
        "run": args.run and shown(args.run), "file": file_shown, "older_files": [shown(older) for older in args.older_file],
        "data": shown(args.data), "gaussians": scene.gaussians.count, "sh_degree": degree, "parameters": parameters,
        "date": date.today().isoformat(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "rows": rows,
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    plot(results, args.output.with_suffix(".png"))
    print(markdown(results))


def plot(results: Dict[str, Any], path: Path) -> None:
    """Rate-distortion of the formats: bytes per Gaussian (log scale) against PSNR, a point per format that
    ran, named in the legend; ours as stars."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 4.8), dpi=120)
    measured = [r for r in results["rows"] if r["bytes_per_gaussian"] is not None and r["psnr"] is not None]
    for index, r in enumerate(measured):
        ours, lever = r["format"].startswith(".nstrim"), "lever" in r["format"]
        label = r["format"] + (f" ({r['tool'].split()[0]})" if r["format"].startswith(("SPZ", "SOG")) else "")
        axes.scatter(r["bytes_per_gaussian"], r["psnr"], marker="x" if lever else "*" if ours else "o",
                     s=40 if lever else 180 if ours else 50, color=plt.cm.tab20(index % 20), label=label, zorder=3 if ours else 2,
                     **({"edgecolors": "black"} if ours and not lever else {}))  # fmt: skip
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel("bytes per Gaussian (log scale)")
    axes.set_ylabel("held-out PSNR of what decodes (dB)")
    axes.set_title(f"one trimmed model ({results['gaussians']:,} Gaussians), every format", fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


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
