"""Training-free compression against PlayCanvas splat-transform's decimation, at equal Gaussians kept.

For each scene (``ablation.SCENES``: the demo, the still-life, the fox capture; each made by ``ablation.py``)
and each fraction kept (default 50, 25, 10%):
- ``ns-trim compress`` of the baseline run with each score (default: ``abs-delta-mse``, ``delta-mse``,
  ``sensitivity``, and the view-free ``opacity`` and ``opacity-volume``, those two without ``--data``), no quality floor, ``--target-fraction``; wall time recorded;
  its file evaluated with ``ns-trim eval`` (held-out views);
- ``splat-transform -g cpu -F N`` (pairwise merging, no views) of the baseline's float Gaussians written as an
  INRIA-layout PLY, to the count our rounds reached, its output PLY read back and rendered by the same evaluator
  (float parameters, no quantization: the comparison favours it by the cost of our codec, ~0.05 dB here).

    make tools && python benchmarks/bench_compress.py [--scenes demo still-life fox] [--fractions 0.5 0.25 0.1]
        [--scores abs-delta-mse delta-mse sensitivity opacity opacity-volume]
        [--compress-args "--prune-fraction 0.1"]

``--compress-args``: more options for ``ns-trim compress`` (e.g. smaller rounds, more views), recorded with
the rows they made, which stand beside the defaults' rows (a scene and fraction share one decimation row).

Results: benchmarks/results/compress.json (a rerun skips recorded rows), a table on stdout and
results/compress_<scene>.png (held-out PSNR against Gaussians kept), both with the fine-tuned trims of the same
scores that ``ablation.py`` recorded (its score variants and its default, grad-norm), for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import SCENES, variants  # noqa: E402

from nerfstudio_trim.bench import BIN  # noqa: E402
from nerfstudio_trim.core.codec.ply import read_ply, write_ply  # noqa: E402
from nerfstudio_trim.core.prune.scene_host import VIEW_FREE_SCORE_MODES as VIEW_FREE  # noqa: E402
from nerfstudio_trim.core.quantize.gaussians import CodecSettings  # noqa: E402
from nerfstudio_trim.core.scene import sh_degree_of  # noqa: E402
from nerfstudio_trim.nerfstudio.compress import read_input  # noqa: E402
from nerfstudio_trim.nerfstudio.evaluate import evaluate_scene  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "compress.json"
OUTPUT = Path("outputs/bench/compress")
SPLAT_TRANSFORM = Path.home() / ".cache/nerfstudio-trim/splat-transform-2.7.1/node_modules/.bin/splat-transform"


def run(command: List[str]) -> float:
    """Run ``command`` on the CPU (its output shown only if it fails); its wall time in seconds."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command[:3])} failed (exit status {done.returncode}):\n"
                 f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return time.perf_counter() - start


def compress_row(scene: str, score: str, fraction: float, options: Optional[str] = None) -> Dict[str, Any]:
    """``ns-trim compress`` of the scene's baseline to ``fraction`` with ``score`` (and ``options``, more of
    its flags), its file evaluated."""
    data, baseline = SCENES[scene]
    suffix = "" if options is None else "-" + "_".join(shlex.split(options))
    out = OUTPUT / scene / f"{score}-{fraction:g}{suffix}"
    command = [str(BIN / "ns-trim"), "compress", str(baseline), "--output-dir", str(out), "--target-fraction",
               str(fraction), "--max-psnr-drop", "None", "--score", score, "--device", "cpu",
               *shlex.split(options or "")]  # fmt: skip
    seconds = run(command + ([] if score in VIEW_FREE else ["--data", str(data)]))
    file = out / "scene.nstrim"
    run([str(BIN / "ns-trim"), "eval", str(file), "--data", str(data), "--device", "cpu",
         "--output-path", str(out / "eval.json")])  # fmt: skip
    results = json.loads((out / "eval.json").read_text())["results"]
    method = f"ns-trim compress --score {score}" + ("" if score in VIEW_FREE else " --data")
    method += f" {options}" if options else ""
    return {"method": method,
            "gaussians": results["gaussians"], "psnr": results["psnr"], "ssim": results["ssim"],
            "bytes": file.stat().st_size, "seconds": seconds}  # fmt: skip


def decimate_row(scene: str, count: int) -> Dict[str, Any]:
    """splat-transform's decimation of the scene's baseline to ``count`` Gaussians, rendered by our evaluator."""
    data, baseline = SCENES[scene]
    loaded = read_input(baseline, data)
    template = loaded.template(CodecSettings())
    out = OUTPUT / scene / f"splat-transform-{count}"
    out.mkdir(parents=True, exist_ok=True)
    source, decimated = out / "baseline.ply", out / "decimated.ply"
    write_ply(source, loaded.params, sh_degree_of(loaded.params["features_rest"]))
    decimated.unlink(missing_ok=True)
    # -g cpu: its merging otherwise asks for a WebGPU device, and fails where there is none
    seconds = run([str(SPLAT_TRANSFORM), "-g", "cpu", str(source), "-F", str(count), str(decimated)])
    params = read_ply(decimated).params
    results = evaluate_scene(template, data, torch.device("cpu"), gaussians=params)
    return {"method": "splat-transform -F (decimate)", "gaussians": int(params["means"].shape[0]),
            "psnr": results["psnr"], "ssim": results["ssim"], "bytes": decimated.stat().st_size, "seconds": seconds}  # fmt: skip


def fine_tuned_rows() -> List[Dict[str, Any]]:
    """The ablation's rows that differ from the default only in the score (``ablation.py``, format 2.0): the
    same scores with fine-tuning, as this script's rows."""
    path = RESULTS.parent / "ablation.json"
    by_score = {name: v.score_mode for name, v in variants(0.005).items() if not v.flags and not v.format1}
    return [{"scene": r["scene"], "fraction": r["target_fraction"], "score": by_score[r["variant"]],
             "method": f"ns-train splatfacto-trim, score {by_score[r['variant']]} (fine-tuned)",
             "gaussians": r["gaussians"], "psnr": r["psnr"], "ssim": r["ssim"], "bytes": r["bytes"]}
            for r in (json.loads(path.read_text()) if path.exists() else [])
            if r["variant"] in by_score and r["format"] == "2.0"]  # fmt: skip


def plot(rows: List[Dict[str, Any]], scene: str, path: Path) -> None:
    """Held-out PSNR against Gaussians kept, one line per method (fine-tuned ones dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(11, 4.5), dpi=120)
    mine = [r for r in rows if r["scene"] == scene]
    for index, method in enumerate(sorted({r["method"] for r in mine})):
        points = sorted((r["gaussians"], r["psnr"]) for r in mine if r["method"] == method)
        axes.plot(*zip(*points), marker="o", label=method, linestyle="--" if "fine-tuned" in method else "-",
                  color=plt.cm.tab20(index % 20))  # fmt: skip
    axes.set_xscale("log")
    axes.set_xlabel("Gaussians kept (log scale)")
    axes.set_ylabel("held-out PSNR (dB)")
    axes.set_title(f"{scene}: training-free compression and fine-tuned trims (CPU)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.5, 0.25, 0.1])
    parser.add_argument("--scores", nargs="+", default=["abs-delta-mse", "delta-mse", "sensitivity", "opacity", "opacity-volume"])
    parser.add_argument("--compress-args", default=None, help="more ns-trim compress options, one string")
    args = parser.parse_args()
    if not SPLAT_TRANSFORM.is_file():
        parser.error(f"splat-transform is not installed at {SPLAT_TRANSFORM}: run make tools")
    os.chdir(REPO)
    rows: List[Dict[str, Any]] = json.loads(RESULTS.read_text()) if RESULTS.exists() else []

    def record(key: Dict[str, Any], measure) -> Dict[str, Any]:
        found = next((r for r in rows if all(r.get(k) == v for k, v in key.items())), None)
        if found is None:
            print(f"{key}", flush=True)
            found = {**key, **measure(), "date": date.today().isoformat()}
            rows.append(found)
            RESULTS.write_text(json.dumps(rows, indent=2))
        return found

    for scene in args.scenes:
        for fraction in args.fractions:
            reached = None
            for score in args.scores:
                key = {"scene": scene, "fraction": fraction, "score": score, "options": args.compress_args}
                row = record(key, lambda: compress_row(scene, score, fraction, args.compress_args))
                reached = reached or row["gaussians"]
            key = {"scene": scene, "fraction": fraction, "score": "splat-transform"}
            record(key, lambda: decimate_row(scene, reached))
    shown = rows + fine_tuned_rows()
    print("| scene | kept | method | Gaussians | PSNR (dB) | SSIM | size (bytes) | wall time (s) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in sorted(shown, key=lambda r: (r["scene"], -r["fraction"], -r["psnr"])):
        seconds = f"{r['seconds']:.0f}" if "seconds" in r else ""
        print(f"| {r['scene']} | {r['fraction']:.0%} | {r['method']} | {r['gaussians']:,} | {r['psnr']:.2f} | {r['ssim']:.4f} "
              f"| {r['bytes']:,} | {seconds} |")  # fmt: skip
    for scene in sorted({r["scene"] for r in rows}):
        plot(shown, scene, RESULTS.parent / f"compress_{scene}.png")


if __name__ == "__main__":
    main()
