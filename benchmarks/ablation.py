"""Ablation on three scenes: what each lever of the method buys, at an equal fraction of Gaussians kept.

Scenes (baselines trained on CPU with ``demo/train_baseline.py``):
- ``demo``: the embedded demo scene (a furnished room, orbiting cameras; Blender-rendered, 160 x 120);
- ``still-life``: a still life under a sky dome, chrome and metal, thin pencils and lettering, a
  forward-facing camera sweep (``demo/make_scene.py --layout still-life``, 160 x 120). Rendered and trained
  here when missing (Blender needed; ~5 + ~30 minutes on 2 cores);
- ``fox``: a real capture, instant-ngp's fox (50 phone frames posed by COLMAP, OPENCV lens distortion,
  8x smaller: 135 x 240; no point cloud, so training starts from random points). Made with
  ``demo/prepare_capture.py`` from a clone of https://github.com/NVlabs/instant-ngp (``--capture-source``,
  its ``data/nerf/fox``) and trained here when missing (~50 minutes on 2 cores). Its images are under
  NVIDIA's non-commercial licence and stay outside the repository.

Variants (rows), each trimmed with the demo's CPU schedule down to ``--fraction`` (default 50%) without a
quality floor and without undoing rounds that grow the file (``bench_score_modes.flags``), then measured
with ``ns-trim bench`` on the exported file (what a user ships; so the row without quantization-aware
fine-tuning is measured after quantization):
- ``default``: today's method (grad-norm scores, SH compaction, the rate term, quantization-aware fine-tuning,
  format 2.1);
- ``format-1.0``: the method as of commit 705be26, the last with the format-1.0 writer (float16 positions,
  8-bit SH ranges per channel, no SH compaction), run by that version's own ``ns-trim bench`` in a
  subprocess with ``PYTHONPATH`` set to a checkout of it (``--format1-checkout``, default
  ``../nerfstudio-trim-1.0``; make it with ``git worktree add ../nerfstudio-trim-1.0 705be26``), with the
  same flags minus the options that did not exist then, on the baseline's config.yml with the settings that did
  not exist then replaced by that version's (``format1_baseline``); its bench evaluates the baseline itself and
  has no row for the baseline as our file;
- ``no-sh-compaction``; ``no-rate-term`` (fine-tuning without the rate term, weight 0); ``rate-term``
  (another weight, ``--rate-weight``, default 0.005); ``seed-sh-l1`` (the seed method's L1 on the higher SH
  bands, 0.05, in place of the rate term); ``sh-bits-8-8-8`` and ``sh-bits-4-3-3`` (bits of the SH bands
  of degrees 1, 2, 3; the default is 5 4 4); ``finer`` (a higher-quality operating point: SH bits 6 5 5,
  compaction tolerance 0.5/255, no rate term); ``no-qat`` (no quantization-aware fine-tuning);
- score modes ``abs-grad``, ``opacity-grad-quantile`` (paper), ``delta-mse``, ``sensitivity``, ``opacity``,
  ``random`` (the default is grad-norm); ``delta-mse-first-order``: delta-mse in its first-order form (from
  gsplat's gradients on CUDA, here from the CPU rasterizer's), which a trim on CUDA used by default before 2026-12-06;
- ``near-lossless-<attribute>`` (positions, scales, rotations, opacity, colour, sh-bands): that attribute coded
  near-losslessly through the quantization-aware fine-tuning and in the file (``bench_formats.LEVERS``' codes),
  every other attribute as the default codes it: what that attribute's quantizer costs a trim;
  ``near-lossless-all``: every attribute so, without the rate term and SH compaction (the 2.x trim nearest
  format 1.0's), and ``near-lossless-all-sh-lr-1.25e-4`` with the SH bands at splatfacto's rate as well (as
  format 1.0's trim had them); ``near-lossless-but-sh``: every attribute but the SH bands so (the SH bands as
  the default codes them); ``near-lossless-sh-plain``: the SH bands alone so, without the rate term and SH
  compaction (every other attribute as the default codes it).
Each row: the file's Gaussians, PSNR/SSIM, bytes and bytes per Gaussian, the run's ``ns-eval`` PSNR, the
baseline's ``ns-eval`` and the baseline as our file (bytes, PSNR). The baseline's steps run once per scene.

On the demo scene, rows that ``bench_score_modes.py`` measured with the same trim arguments are taken from
its results.

    python benchmarks/ablation.py [--scenes demo still-life fox] [--fraction 0.5] [--variants default ...]
        [--capture-source instant-ngp/data/nerf/fox] [--rate-weight 0.005] [--format1-checkout ../nerfstudio-trim-1.0]
        [--results ablation]

Results (``--results`` names them): benchmarks/results/ablation.json, ablation.md, a plot per scene and fraction kept
(``ablation_<scene>.png`` at 50%, ``ablation_<scene>_<percent>.png`` otherwise), and ablation_scenes.jpg (four views
of each rendered scene). Finished rows are skipped on a rerun; a row whose trim arguments changed (e.g. another
``--rate-weight``) is measured again and replaced. ``results/ablation_format1.json`` holds the rows of the
format-1.0 variants this script measured before format 2.0 (SH ranges per tensor, 16-bit grid positions).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demo"))
import bench_score_modes  # noqa: E402
from bench_formats import LEVERS  # noqa: E402
from bench_score_modes import bench_sharing_baseline, flags, keep_if_same_args  # noqa: E402
from run_demo import REPO  # noqa: E402

from nerfstudio_trim.bench import BIN  # noqa: E402
from nerfstudio_trim.core.codec.ply import ply_size  # noqa: E402

RESULTS = Path(__file__).parent / "results"
OUTPUT = Path("outputs/ablation")
SCENES = {  # name: (data, baseline config.yml), relative to the repository
    "demo": (Path("demo/scene"), Path("demo/baseline/splatfacto-trim/config.yml")),
    "still-life": (Path("outputs/scenes/still-life"), Path("outputs/scenes/still-life-baseline/splatfacto-trim/config.yml")),
    "fox": (Path("outputs/scenes/fox"), Path("outputs/scenes/fox-baseline/splatfacto-trim/config.yml")),
}
PUBLISHED_SCENES = ("demo", "still-life")
"""Scenes whose images the repository may show (rendered here); the fox's are NVIDIA's, non-commercial."""
TRIM = "--pipeline.model.trim."
FORMAT1_COMMIT = "705be26"
FORMAT1_TRIM_FIELDS = {"codec": ("bytes_per_gaussian: 40.0", "sh_quantization: channel"), "rate_weight": (),
                       "sh_compaction_tolerance": (), "sh_rest_lr": (), "undo_growing_rounds": (), "delta_mse_method": ()}
"""Fields of the trim's settings that did not exist at ``FORMAT1_COMMIT``, each with the lines of a config.yml (that
version's own defaults) that stand in for it there."""
NEWER_THAN_FORMAT1 = tuple(f"{TRIM}{field.replace('_', '-')}" for field in FORMAT1_TRIM_FIELDS)
"""Their options (as prefixes: ``codec`` covers ``codec.sh-bits`` and the rest)."""


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: what it changes against the default."""

    what: str
    """The row's label in the table and plots."""
    score_mode: str = "grad-norm"
    flags: Tuple[str, ...] = ()
    """ns-train options added to the schedule's."""
    format1: bool = False
    """Run by the version at ``FORMAT1_COMMIT`` (``--format1-checkout``) instead of this one."""


def variants(rate_weight: float) -> Dict[str, Variant]:
    """Every variant by name, in the table's order."""
    scores = ("abs-grad", "opacity-grad-quantile", "delta-mse", "sensitivity", "opacity", "random")
    return {
        "default": Variant("default (grad-norm, SH compaction, rate term, QAT, format 2.1)"),
        "format-1.0": Variant(f"format 1.0 (the method at {FORMAT1_COMMIT})", format1=True),
        "no-sh-compaction": Variant("no SH compaction", flags=(f"{TRIM}sh-compaction-tolerance", "None")),
        "no-rate-term": Variant("no rate term", flags=(f"{TRIM}rate-weight", "0")),
        "rate-term": Variant(f"rate term, weight {rate_weight:g}", flags=(f"{TRIM}rate-weight", str(rate_weight))),
        "seed-sh-l1": Variant("seed's L1 on the SH bands, 0.05, no rate term",
                              flags=(f"{TRIM}rate-weight", "0", f"{TRIM}sh-rest-l1", "0.05")),
        "sh-bits-8-8-8": Variant("SH bits 8 8 8", flags=(f"{TRIM}codec.sh-bits", "8", "8", "8")),
        "sh-bits-4-3-3": Variant("SH bits 4 3 3", flags=(f"{TRIM}codec.sh-bits", "4", "3", "3")),
        "finer": Variant("finer: SH bits 6 5 5, compaction 0.5/255, no rate term",
                         flags=(f"{TRIM}codec.sh-bits", "6", "5", "5", f"{TRIM}sh-compaction-tolerance", "0.00196",
                                f"{TRIM}rate-weight", "0")),
        **{f"sh-lr-{lr}": Variant(f"SH bands' learning rate {lr} while trimming", flags=(f"{TRIM}sh-rest-lr", lr))
           for lr in ("1.25e-4", "1e-3", "3e-3")},
        "sh-lr-1e-3-no-rate-term": Variant("SH bands' learning rate 1e-3, no rate term",
                                           flags=(f"{TRIM}sh-rest-lr", "1e-3", f"{TRIM}rate-weight", "0")),
        "no-qat": Variant("no quantization-aware fine-tuning", flags=(f"{TRIM}quantize", "False")),
        **{mode: Variant(f"score: {mode}", score_mode=mode) for mode in scores},
        "delta-mse-first-order": Variant("score: delta-mse, first-order form", score_mode="delta-mse",
                                         flags=(f"{TRIM}delta-mse-method", "first-order")),
        **{f"near-lossless-{attribute.lower().replace(' ', '-')}": Variant(f"{attribute} near-lossless, trained through",
                                                                           flags=codec_flags(fields))
           for attribute, fields in LEVERS.items()},
        "near-lossless-all": Variant("every attribute near-lossless, no rate term, no SH compaction",
                                     flags=(*codec_flags(EVERY_LEVER), *PLAIN)),
        "near-lossless-but-sh": Variant("every attribute but the SH bands near-lossless",
                                        flags=codec_flags({n: v for n, v in EVERY_LEVER.items() if not n.startswith("sh_")})),
        "near-lossless-sh-plain": Variant("SH bands near-lossless, no rate term, no SH compaction",
                                          flags=(*codec_flags(LEVERS["SH bands"]), *PLAIN)),
        "near-lossless-all-sh-lr-1.25e-4": Variant("every attribute near-lossless, no rate term, no SH compaction, "
                                                   "SH bands at splatfacto's 1.25e-4",
                                                   flags=(*codec_flags(EVERY_LEVER), *PLAIN, f"{TRIM}sh-rest-lr", "None")),
    }


EVERY_LEVER = {name: value for fields in LEVERS.values() for name, value in fields.items()}
"""Every attribute coded near-losslessly (``bench_formats.LEVERS`` together)."""
PLAIN = (f"{TRIM}rate-weight", "0", f"{TRIM}sh-compaction-tolerance", "None")
"""No rate term and no SH compaction: the regularizers format 1.0's trim did not have."""


def codec_flags(fields: Dict[str, Any]) -> Tuple[str, ...]:
    """The ns-train options that set these ``CodecSettings`` fields (name: value, a tuple for a list)."""
    flags: List[str] = []
    for name, value in fields.items():
        flags += [f"{TRIM}codec.{name.replace('_', '-')}", *map(str, value if isinstance(value, tuple) else (value,))]
    return tuple(flags)


VARIANT_NAMES = list(variants(0.005))


def without_newer_options(arguments: Sequence[str]) -> List[str]:
    """``arguments`` without the options in ``NEWER_THAN_FORMAT1`` and their values."""
    kept: List[str] = []
    dropping = False
    for argument in arguments:
        if argument.startswith("--"):
            dropping = argument.startswith(NEWER_THAN_FORMAT1)
        if not dropping:
            kept.append(argument)
    return kept


def make_still_life(data: Path, baseline: Path) -> None:
    """Render the second scene and train its baseline, where missing."""
    if not (data / "transforms.json").is_file():
        shutil.rmtree(data, ignore_errors=True)
        subprocess.run(["blender", "-b", "--python", "demo/make_scene.py", "--", "--layout", "still-life",
                        "--views", "80", "--points", "20000", "--out", str(data)], check=True)  # fmt: skip
    train_baseline(data, baseline)


def make_fox(data: Path, baseline: Path, source: Optional[Path]) -> None:
    """Prepare the real capture from instant-ngp's ``data/nerf/fox`` and train its baseline, where missing."""
    if not (data / "transforms.json").is_file():
        if source is None or not (source / "transforms.json").is_file():
            sys.exit(f"error: {data} is missing: pass --capture-source INSTANT_NGP/data/nerf/fox (a clone of "
                     "https://github.com/NVlabs/instant-ngp)")  # fmt: skip
        licence = source.parents[2] / "LICENSE.txt"
        subprocess.run([sys.executable, "demo/prepare_capture.py", "--source", str(source), "--output", str(data),
                        "--downscale", "8", *(["--licence", str(licence)] if licence.is_file() else [])], check=True)  # fmt: skip
    train_baseline(data, baseline)


def train_baseline(data: Path, baseline: Path) -> None:
    """The demo's recipe on ``data``, packaged where ``baseline`` (its config.yml) belongs, where missing."""
    if not baseline.is_file():
        subprocess.run([sys.executable, "demo/train_baseline.py", "--data", str(data),
                        "--packaged", str(baseline.parents[1])], check=True)  # fmt: skip


def from_score_modes(trim_args: str) -> Optional[Dict[str, Any]]:
    """The demo row ``bench_score_modes.py`` measured with these trim arguments, if any."""
    for row in json.loads((REPO / bench_score_modes.RESULTS).read_text()):
        if row["format"] == bench_score_modes.FORMAT and row["trim_args"] == trim_args:
            return {"format": row["format"], "gaussians": row["file_gaussians"], "psnr": row["file_psnr"],
                    "ssim": row["file_ssim"], "lpips": row["file_lpips"], "bytes": row["file_bytes"],
                    "run_psnr": row["psnr"], "source": "bench_score_modes.py",
                    "baseline": {"gaussians": row["baseline_gaussians"], "psnr": row["baseline_psnr"], "ssim": row["baseline_ssim"]},
                    "baseline_file": {"bytes": row["baseline_file_bytes"], "psnr": row["baseline_file_psnr"]}}  # fmt: skip
    return None


def format1_baseline(baseline: Path) -> Path:
    """A config.yml of the baseline ``baseline`` that the code of ``FORMAT1_COMMIT`` reads: ``baseline`` itself
    where it has none of ``FORMAT1_TRIM_FIELDS`` (a baseline trained by that code), else a copy with those fields
    replaced, packaged beside it as experiment ``<name>-format1`` with its checkpoints linked (a baseline trained
    by today's code, as the still-life's since 2026-12-06)."""
    experiment = baseline.parents[1].name
    lines, block, replaced = [], None, False
    for line in baseline.read_text().splitlines(keepends=True):
        indent = len(line) - len(line.lstrip(" "))
        if block is not None and (indent > block or (indent == block and line.lstrip(" ").startswith("- "))):
            continue  # a replaced field's value
        block = None
        name = line.strip().split(":")[0]
        if indent > 0 and name in FORMAT1_TRIM_FIELDS:
            block, replaced = indent, True
            lines += [" " * indent + field + "\n" for field in FORMAT1_TRIM_FIELDS[name]]
        else:
            lines.append(f"experiment_name: {experiment}-format1\n" if line == f"experiment_name: {experiment}\n" else line)
    if not replaced:
        return baseline
    copy = baseline.parents[2] / f"{experiment}-format1" / baseline.parent.name / baseline.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text("".join(lines))
    checkpoints = copy.parent / "nerfstudio_models"
    if not checkpoints.exists():
        checkpoints.symlink_to((baseline.parent / "nerfstudio_models").resolve())
    return copy


def bench_format1(checkout: Path, baseline: Path, data: Path, output_dir: Path, trim_args: List[str]) -> Dict[str, Any]:
    """That version's ``ns-trim bench`` (on CPU, every step its own, the baseline's ns-eval included) into
    ``output_dir``; its results.json (rows: baseline, trimmed run, file)."""
    keep_if_same_args(output_dir, trim_args)
    command = [str(BIN / "ns-trim"), "bench", "--baseline", str(baseline), "--data", str(data), "--output-dir",
               str(output_dir), f"--trim-args={shlex.join(trim_args)}", "--device", "cpu"]  # fmt: skip
    done = subprocess.run(command, env=dict(os.environ, PYTHONPATH=str(checkout.resolve()), CUDA_VISIBLE_DEVICES=""))
    if done.returncode != 0:
        sys.exit(f"error: ns-trim bench of {checkout} failed (exit status {done.returncode}); its output is above")
    return json.loads((output_dir / "results.json").read_text())


def measure(scene: str, name: str, variant: Variant, trim_args: List[str], fraction: float, checkout: Path) -> Dict[str, Any]:
    """Trim, export and evaluate one variant on one scene with ``ns-trim bench`` (resumable)."""
    data, baseline = SCENES[scene]
    out, shared = OUTPUT / scene / f"{name}-{fraction:g}", OUTPUT / scene / "baseline"
    if variant.format1:
        base, run, file = bench_format1(checkout, format1_baseline(baseline), data, out, trim_args)["rows"]
        baseline_file = None
    else:
        base, our_file, run, file = bench_sharing_baseline(baseline, data, out, shared, trim_args)["rows"]
        baseline_file = {"bytes": round(our_file["size_mb"] * 1e6), "psnr": our_file["psnr"]}
    return {"format": "1.0" if variant.format1 else bench_score_modes.FORMAT, "gaussians": file["gaussians"],
            "psnr": file["psnr"], "ssim": file["ssim"], "lpips": file["lpips"], "bytes": round(file["size_mb"] * 1e6),
            "run_psnr": run["psnr"], "source": "ablation.py",
            "baseline": {"gaussians": base["gaussians"], "psnr": base["psnr"], "ssim": base["ssim"]},
            "baseline_file": baseline_file}  # fmt: skip


def markdown(rows: List[Dict[str, Any]]) -> str:
    """The rows as a table (against each scene and fraction's reference: its default row, or its first row
    where it has none), then each scene's baseline."""
    lines = ["| scene | variant | format | Gaussians | file PSNR (dB) | file SSIM | file (bytes) | bytes/Gaussian "
             "| run PSNR (dB) | PSNR vs reference (dB) | size vs reference |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in rows:
        same = [r for r in rows if (r["scene"], r["target_fraction"]) == (row["scene"], row["target_fraction"])]
        reference = next((r for r in same if r["variant"] == "default"), same[0])
        lines.append(f"| {row['scene']} | {row['what']} | {row['format']} | {row['gaussians']:,} | {row['psnr']:.2f} "
                     f"| {row['ssim']:.4f} | {row['bytes']:,} | {row['bytes_per_gaussian']:.1f} | {row['run_psnr']:.2f} "
                     f"| {row['psnr'] - reference['psnr']:+.2f} | {row['bytes'] / reference['bytes']:.2f}x |")  # fmt: skip
    lines.append("")
    for scene in sorted({r["scene"] for r in rows}):
        mine = [r for r in rows if r["scene"] == scene]
        base = next((r["baseline"] for r in mine if r["format"] != "1.0"), mine[0]["baseline"])
        line = (f"{scene} baseline: {base['gaussians']:,} Gaussians, ns-eval PSNR {base['psnr']:.2f} dB, "
                f"PLY {ply_size(base['gaussians'], 3):,} bytes")  # fmt: skip
        as_file = next((r["baseline_file"] for r in mine if r["baseline_file"] is not None), None)
        if as_file is not None:
            line += f"; as our file: {as_file['bytes']:,} bytes, PSNR {as_file['psnr']:.2f} dB"
        lines.append(line + ".  ")
    lines.append("Reference: each scene and fraction's default row, or its first row where it has none.")
    return "\n".join(lines) + "\n"


def plot(rows: List[Dict[str, Any]], scene: str, fraction: float, path: Path) -> None:
    """Rate-distortion of one scene's variants at one fraction kept: file PSNR against file size; the
    baseline's PLY as a star, the baseline as our file as a diamond."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in rows if (r["scene"], r["target_fraction"]) == (scene, fraction)]
    figure, axes = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    colours = plt.get_cmap("tab20").colors
    for row in mine:  # a colour per variant, the same in every scene's plot
        colour = colours[VARIANT_NAMES.index(row["variant"]) % len(colours)]
        axes.scatter(row["bytes"] / 1e6, row["psnr"], color=colour, label=row["what"])
    base = next((r["baseline"] for r in mine if r["format"] != "1.0"), mine[0]["baseline"])
    axes.scatter(ply_size(base["gaussians"], 3) / 1e6, base["psnr"], marker="*", s=150, color="black", label="baseline (PLY, ns-eval)")
    as_file = next((r["baseline_file"] for r in mine if r["baseline_file"] is not None), None)
    if as_file is not None:
        axes.scatter(as_file["bytes"] / 1e6, as_file["psnr"], marker="D", s=60, color="black", label="baseline, our file")
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel("size (MB, log scale)")
    axes.set_ylabel("held-out PSNR of the file (dB)")
    axes.set_title(f"{scene}: ablation at {fraction:.0%} kept (CPU schedule)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_name(scene: str, fraction: float, results: str) -> str:
    """The file of one scene's plot at one fraction kept (at 50%, the name it has always had)."""
    return f"{results}_{scene}.png" if fraction == 0.5 else f"{results}_{scene}_{round(fraction * 100)}.png"


def picture_of_scenes(path: Path, views: int = 4) -> None:
    """One row per published scene of ``views`` evenly spaced views from its images/, side by side (JPEG)."""
    from PIL import Image

    rows = []
    for data, _ in (SCENES[name] for name in PUBLISHED_SCENES):
        frames = sorted((data / "images").glob("*.png"))
        rows.append([Image.open(frames[i * len(frames) // views]).convert("RGB") for i in range(views)])
    width, height = rows[0][0].size
    picture = Image.new("RGB", (views * width, len(rows) * height))
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            picture.paste(image, (c * width, r * height))
    picture.save(path, quality=85)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    parser.add_argument("--variants", nargs="+", default=VARIANT_NAMES, choices=VARIANT_NAMES)
    parser.add_argument("--fraction", type=float, default=0.5, help="fraction of the Gaussians kept")
    parser.add_argument("--rate-weight", type=float, default=0.005, help="weight of the rate-term variant")
    parser.add_argument("--results", default="ablation",
                        help="name of the results (json, md, plots) in benchmarks/results, e.g. for rows on another baseline")
    parser.add_argument("--capture-source", type=Path, help="instant-ngp's data/nerf/fox, for the fox scene")
    parser.add_argument("--format1-checkout", type=Path, default=REPO.parent / "nerfstudio-trim-1.0",
                        help=f"a checkout of commit {FORMAT1_COMMIT} (git worktree add ../nerfstudio-trim-1.0 {FORMAT1_COMMIT})")  # fmt: skip
    args = parser.parse_args()
    checkout = args.format1_checkout.resolve()
    if "format-1.0" in args.variants and not (checkout / "nerfstudio_trim" / "bench.py").is_file():
        parser.error(f"the format-1.0 variant runs a checkout of {FORMAT1_COMMIT}, and {checkout} is not one: "
                     f"git worktree add {checkout} {FORMAT1_COMMIT}, or pass --format1-checkout")  # fmt: skip
    os.chdir(REPO)  # the baselines' config.yml name their data relative to the repository
    path = RESULTS / f"{args.results}.json"
    rows: List[Dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    table = variants(args.rate_weight)
    for scene in args.scenes:
        if scene == "still-life":
            make_still_life(*SCENES[scene])
        elif scene == "fox":
            make_fox(*SCENES[scene], args.capture_source)
        for name in args.variants:
            variant = table[name]
            trim_args = flags(variant.score_mode, args.fraction) + list(variant.flags)
            trim_args = without_newer_options(trim_args) if variant.format1 else trim_args
            key = (scene, name, args.fraction)
            if any((r["scene"], r["variant"], r["target_fraction"], r["trim_args"]) == (*key, shlex.join(trim_args)) for r in rows):
                continue
            print(f"{scene}: {name}, down to {args.fraction:.0%}", flush=True)
            reused = from_score_modes(shlex.join(trim_args)) if scene == "demo" and not variant.format1 else None
            row = reused or measure(scene, name, variant, trim_args, args.fraction, checkout)
            rows = [r for r in rows if (r["scene"], r["variant"], r["target_fraction"]) != key]
            rows.append({"scene": scene, "variant": name, "what": variant.what, "target_fraction": args.fraction,
                         "trim_args": shlex.join(trim_args), **row, "bytes_per_gaussian": row["bytes"] / row["gaussians"]})  # fmt: skip
            path.write_text(json.dumps(rows, indent=2))
    rows.sort(key=lambda r: (r["scene"], r["target_fraction"], VARIANT_NAMES.index(r["variant"])))
    path.write_text(json.dumps(rows, indent=2))
    (RESULTS / f"{args.results}.md").write_text(markdown(rows))
    for scene, fraction in sorted({(r["scene"], r["target_fraction"]) for r in rows}):
        plot(rows, scene, fraction, RESULTS / plot_name(scene, fraction, args.results))
    if all((SCENES[name][0] / "images").is_dir() for name in PUBLISHED_SCENES):
        picture_of_scenes(RESULTS / "ablation_scenes.jpg")
    print(markdown(rows))


if __name__ == "__main__":
    main()
