"""Ablation on two scenes: what each choice of the method buys, at an equal fraction of Gaussians kept.

Scenes (both Blender-rendered, 160 x 120, baselines trained on CPU with ``demo/train_baseline.py``):
- ``demo``: the embedded demo scene (a furnished room, orbiting cameras);
- ``still-life``: a still life under a sky dome, chrome and metal, thin pencils and lettering, a
  forward-facing camera sweep (``demo/make_scene.py --layout still-life``). Rendered and trained here
  when missing (Blender needed; ~5 + ~30 minutes on 2 cores).

Variants (rows), each trimmed with the demo's CPU schedule without a quality floor down to
``--fraction`` (default 50%), exported, and the exported file evaluated on the held-out views (what a
user ships, so the row without quantization-aware fine-tuning is measured after quantization):
score modes grad-norm (the default), abs-grad, opacity-grad-quantile, opacity, random; SH ranges per
tensor (the seed) instead of per channel; no quantization-aware fine-tuning; positions on a 16-bit grid
instead of float16. Each row: PSNR/SSIM of the file, its size, Gaussians.

On the demo scene, rows already measured by ``bench_score_modes.py`` at the same schedule and fraction
(score modes, SH ranges; file sizes from ``plot_score_modes.py``) are taken from its results: under
quantization-aware fine-tuning the run's ns-eval equals the file's (tested bit for bit).

    python benchmarks/ablation.py [--scenes demo still-life] [--fraction 0.5] [--variants grad-norm ...]

Results: benchmarks/results/ablation.json, ablation.md, a plot per scene, and ablation_scenes.jpg (four views
of each scene). Finished variants are skipped on a rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demo"))
from bench_score_modes import flags  # noqa: E402
from run_demo import REPO  # noqa: E402

from nerfstudio_trim.bench import Bench  # noqa: E402
from nerfstudio_trim.core.codec.ply import ply_size  # noqa: E402

RESULTS = Path(__file__).parent / "results"
OUTPUT = Path("outputs/ablation")
SCENES = {  # name: (data, baseline config.yml), relative to the repository
    "demo": (Path("demo/scene"), Path("demo/baseline/splatfacto-trim/config.yml")),
    "still-life": (Path("outputs/scenes/still-life"), Path("outputs/scenes/still-life-baseline/splatfacto-trim/config.yml")),
}
# variant: (what it changes, score mode, SH ranges, extra ns-train flags)
VARIANTS = {
    "grad-norm": ("score: grad-norm (default)", "grad-norm", "channel", []),
    "abs-grad": ("score: abs-grad", "abs-grad", "channel", []),
    "opacity-grad-quantile": ("score: opacity-grad-quantile (paper)", "opacity-grad-quantile", "channel", []),
    "opacity": ("score: opacity", "opacity", "channel", []),
    "random": ("score: random", "random", "channel", []),
    "sh-per-tensor": ("SH 8-bit ranges per tensor (seed)", "grad-norm", "tensor", []),
    "no-qat": ("no quantization-aware fine-tuning", "grad-norm", "channel", ["--pipeline.model.trim.quantize", "False"]),
    "grid16": ("positions: 16-bit grid", "grad-norm", "channel", ["--pipeline.model.trim.position-encoding", "grid16"]),
}  # fmt: skip


def make_still_life(data: Path, baseline: Path) -> None:
    """Render the second scene and train its baseline, where missing."""
    if not (data / "transforms.json").is_file():
        shutil.rmtree(data, ignore_errors=True)
        subprocess.run(["blender", "-b", "--python", "demo/make_scene.py", "--", "--layout", "still-life",
                        "--views", "80", "--points", "20000", "--out", str(data)], check=True)  # fmt: skip
    if not baseline.is_file():
        subprocess.run([sys.executable, "demo/train_baseline.py", "--data", str(data),
                        "--packaged", str(baseline.parents[1])], check=True)  # fmt: skip


def from_score_modes(variant: str, fraction: float) -> Dict[str, Any] | None:
    """The demo row ``bench_score_modes.py`` measured for this variant, if any."""
    _, mode, sh, extra = VARIANTS[variant]
    if extra:
        return None
    base = json.loads((RESULTS / "score_modes_baseline.json").read_text())
    for row in json.loads((RESULTS / "score_modes.json").read_text()):
        if (row["mode"], row["target_fraction"], row["sh_quantization"]) == (mode, fraction, sh) and "file_bytes" in row:
            return {"gaussians": row["gaussians"], "psnr": row["psnr"], "ssim": row["ssim"], "lpips": row["lpips"],
                    "bytes": row["file_bytes"], "run_psnr": row["psnr"], "source": "bench_score_modes.py",
                    "baseline": {"gaussians": base["gaussians"], "psnr": base["psnr"], "ssim": base["ssim"]}}  # fmt: skip
    return None


def measure(scene: str, variant: str, fraction: float) -> Dict[str, Any]:
    """Trim, export and evaluate one variant on one scene with ``ns-trim bench`` (resumable)."""
    data, baseline = SCENES[scene]
    _, mode, sh, extra = VARIANTS[variant]
    out = OUTPUT / scene / f"{variant}-{fraction:g}"
    shared = OUTPUT / scene / "baseline_eval.json"  # the baseline is evaluated once per scene
    out.mkdir(parents=True, exist_ok=True)
    if shared.is_file() and not (out / "baseline_eval.json").is_file():
        shutil.copy(shared, out / "baseline_eval.json")
    results = Bench(baseline=baseline, data=data, output_dir=out, trim_args=shlex.join(flags(mode, fraction, sh) + extra), device="cpu").main()
    if not shared.is_file():
        shutil.copy(out / "baseline_eval.json", shared)
    base, run, file = results["rows"]
    return {"gaussians": file["gaussians"], "psnr": file["psnr"], "ssim": file["ssim"], "lpips": file["lpips"],
            "bytes": round(file["size_mb"] * 1e6), "run_psnr": run["psnr"], "source": "ablation.py",
            "baseline": {"gaussians": base["gaussians"], "psnr": base["psnr"], "ssim": base["ssim"]}}  # fmt: skip


def markdown(rows: List[Dict[str, Any]]) -> str:
    lines = ["| scene | variant | Gaussians | PSNR (dB) | SSIM | size (bytes) | bytes/Gaussian | PSNR vs default (dB) | size vs default |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in rows:
        default = next((r for r in rows if r["scene"] == row["scene"] and r["variant"] == "grad-norm"), row)
        lines.append(f"| {row['scene']} | {VARIANTS[row['variant']][0]} | {row['gaussians']:,} | {row['psnr']:.2f} "
                     f"| {row['ssim']:.4f} | {row['bytes']:,} | {row['bytes'] / row['gaussians']:.1f} "
                     f"| {row['psnr'] - default['psnr']:+.2f} | {row['bytes'] / default['bytes']:.2f}x |")  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(rows: List[Dict[str, Any]], scene: str, path: Path) -> None:
    """Rate-distortion of one scene's variants: file PSNR against file size, the baseline's PLY as a star."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in rows if r["scene"] == scene]
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for row in mine:
        axes.scatter(row["bytes"] / 1e6, row["psnr"], label=VARIANTS[row["variant"]][0])
    base = next((r["baseline"] for r in mine if "baseline" in r), None)
    if base is not None:
        axes.scatter(ply_size(base["gaussians"], 3) / 1e6, base["psnr"], marker="*", s=150, color="black", label="baseline (PLY)")
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel("size (MB, log scale)")
    axes.set_ylabel("held-out PSNR of the file (dB)")
    axes.set_title(f"{scene}: ablation at {mine[0]['target_fraction']:.0%} kept (CPU schedule)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def picture_of_scenes(path: Path, views: int = 4) -> None:
    """One row per scene of ``views`` evenly spaced views from its images/, side by side (JPEG)."""
    from PIL import Image

    rows = []
    for data, _ in SCENES.values():
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
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--fraction", type=float, default=0.5, help="fraction of the Gaussians kept")
    args = parser.parse_args()
    os.chdir(REPO)  # the baselines' config.yml name their data relative to the repository
    path = RESULTS / "ablation.json"
    rows: List[Dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    for scene in args.scenes:
        if scene == "still-life":
            make_still_life(*SCENES[scene])
        for variant in args.variants:
            if any((r["scene"], r["variant"], r["target_fraction"]) == (scene, variant, args.fraction) for r in rows):
                continue
            row = (from_score_modes(variant, args.fraction) if scene == "demo" else None) or measure(scene, variant, args.fraction)
            rows.append({"scene": scene, "variant": variant, "target_fraction": args.fraction, **row})
            path.write_text(json.dumps(rows, indent=2))
    order = {name: i for i, name in enumerate(VARIANTS)}
    rows.sort(key=lambda r: (r["scene"], r["target_fraction"], order[r["variant"]]))
    path.write_text(json.dumps(rows, indent=2))
    (RESULTS / "ablation.md").write_text(markdown(rows))
    for scene in sorted({r["scene"] for r in rows}):
        plot(rows, scene, RESULTS / f"ablation_{scene}.png")
    if all((data / "images").is_dir() for data, _ in SCENES.values()):
        picture_of_scenes(RESULTS / "ablation_scenes.jpg")
    print(markdown(rows))


if __name__ == "__main__":
    main()
