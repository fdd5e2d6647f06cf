"""A real capture as a small nerfstudio dataset: downscaled images, the lens distortion kept.

The source is a folder with a ``transforms.json`` in the instant-ngp / nerfstudio layout (one pinhole
camera with OpenCV's k1, k2, p1, p2 at the top level, one frame per image) and its images, for example
instant-ngp's fox (``data/nerf/fox`` of https://github.com/NVlabs/instant-ngp: 1080 x 1920 phone
frames posed by COLMAP, under the NVIDIA Source Code License, non-commercial). The output keeps the
frames whose images exist, each image shrunk ``--downscale`` times (area filter), the intrinsics scaled
to match and ``camera_model: OPENCV``; the distortion coefficients are unchanged (they act on normalised
coordinates, so they do not depend on the resolution). A licence file given with ``--licence`` is copied
beside the data::

    python demo/prepare_capture.py --source instant-ngp/data/nerf/fox --licence instant-ngp/LICENSE.txt \\
        --output outputs/scenes/fox --downscale 8

The benchmark's real capture (``benchmarks/ablation.py --scenes fox``) is made this way, then trained with
``demo/train_baseline.py --data outputs/scenes/fox --packaged outputs/scenes/fox-baseline``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Dict

import cv2

INTRINSICS = ("fl_x", "fl_y", "cx", "cy")
DISTORTION = ("k1", "k2", "p1", "p2")


def prepare(source: Path, output: Path, downscale: int, views: int = 0) -> Dict[str, Any]:
    """Write ``output`` (transforms.json, images/) from the capture in ``source``, ``views`` evenly spaced
    frames of it (0: all); returns the new transforms. Raises ``ValueError`` for a capture this does not
    handle (no single top-level camera, missing or odd images)."""
    meta = json.loads((source / "transforms.json").read_text())
    missing = [key for key in (*INTRINSICS, "w", "h") if key not in meta]
    if missing:
        raise ValueError(f"{source / 'transforms.json'} has no top-level {', '.join(missing)}: one camera for all frames is expected")
    frames = [frame for frame in meta["frames"] if (source / frame["file_path"]).is_file()]
    if not frames:
        raise ValueError(f"none of the {len(meta['frames'])} frames of {source / 'transforms.json'} has its image")
    if 0 < views < len(frames):
        frames = [frames[round(i * (len(frames) - 1) / max(views - 1, 1))] for i in range(views)]
    (output / "images").mkdir(parents=True, exist_ok=False)
    width, height = round(meta["w"] / downscale), round(meta["h"] / downscale)
    sx, sy = width / meta["w"], height / meta["h"]
    written = []
    for frame in frames:
        image = cv2.imread(str(source / frame["file_path"]), cv2.IMREAD_COLOR)
        if image is None or image.shape[:2] != (int(meta["h"]), int(meta["w"])):
            raise ValueError(f"{source / frame['file_path']} is not a {int(meta['w'])} x {int(meta['h'])} image")
        name = Path("images") / (Path(frame["file_path"]).stem + ".png")
        cv2.imwrite(str(output / name), cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
        written.append({"file_path": str(name), "transform_matrix": frame["transform_matrix"]})
    out = {"camera_model": "OPENCV", "w": width, "h": height, "fl_x": meta["fl_x"] * sx, "fl_y": meta["fl_y"] * sy,
           "cx": meta["cx"] * sx, "cy": meta["cy"] * sy, **{k: meta.get(k, 0.0) for k in DISTORTION}, "frames": written}  # fmt: skip
    (output / "transforms.json").write_text(json.dumps(out, indent=1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="folder with transforms.json and its images")
    parser.add_argument("--output", type=Path, required=True, help="new dataset folder (must not exist)")
    parser.add_argument("--downscale", type=int, default=8, help="shrink each image this many times")
    parser.add_argument("--views", type=int, default=0, help="keep this many evenly spaced views (0: all)")
    parser.add_argument("--licence", type=Path, help="the capture's licence, copied beside the data")
    args = parser.parse_args()
    if args.output.exists():
        sys.exit(f"error: {args.output} exists; remove it or choose another --output")
    try:
        out = prepare(args.source, args.output, args.downscale, args.views)
    except (OSError, ValueError, KeyError) as error:
        shutil.rmtree(args.output, ignore_errors=True)
        sys.exit(f"error: {error}")
    if args.licence:
        shutil.copy(args.licence, args.output / args.licence.name)
    print(f"{args.output}: {len(out['frames'])} views, {out['w']} x {out['h']}, OPENCV k1={out['k1']:g} k2={out['k2']:g}")


if __name__ == "__main__":
    main()
