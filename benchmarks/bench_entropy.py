"""Entropy coders on a format-2.1 file's own streams: xz (what the format uses), zstd (19, 22, 22 with long
mode) and an adaptive range coder (constriction, a model per column of each stream), bytes per attribute
and encode/decode time; and, as a bound on what a better entropy model could save, the ideal code length of
one context-modelling adaptive coder per attribute (``tools/context_models.py``: no coder, no timing). The
streams are exactly the integer arrays the file stores (``core.codec.attributes``); the coders other than xz
run in the small environment ``make bench-tools`` makes (``tools/entropy_coders.py``).

    make bench-tools && python benchmarks/bench_entropy.py [--file outputs/demo/export/scene.nstrim]

Results: benchmarks/results/entropy.json (per stream and coder) and a table per attribute on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any, Dict

import numpy as np

from nerfstudio_trim.core.codec.attributes import ATTRIBUTES
from nerfstudio_trim.core.codec.format2 import write_attributes
from nerfstudio_trim.core.codec.nstrim import read_file
from nerfstudio_trim.core.codec.streams import smallest_unsigned

sys.path.insert(0, str(Path(__file__).parent / "tools"))
from context_models import context_code_bits  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "entropy.json"
TOOLS_PYTHON_DEFAULT = Path.home() / ".cache/nerfstudio-trim/entropy-tools/bin/python"
CODERS = Path(__file__).parent / "tools" / "entropy_coders.py"
CONTEXT_MODEL = "context model (ideal length)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=REPO / "outputs/demo/export/scene.nstrim")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.file.is_file():
        parser.error(f"{args.file} does not exist: run `make demo` first, or pass --file")
    python = Path(os.environ.get("ENTROPY_TOOLS_PYTHON") or TOOLS_PYTHON_DEFAULT)
    if not python.is_file():
        parser.error(f"{python} does not exist: run `make bench-tools` first")
    scene = read_file(args.file)
    chosen = write_attributes(scene.gaussians)  # the layouts the file stores
    written = {codec.name: (fields, streams) for codec, (fields, streams, _) in zip(ATTRIBUTES, chosen)}
    with tempfile.TemporaryDirectory() as folder:
        streams = []
        for codec in ATTRIBUTES:
            for index, array in enumerate(written[codec.name][1]):
                name = f"{codec.name}.{index}"
                np.save(Path(folder) / f"{name}.npy", array.astype(smallest_unsigned(array)), allow_pickle=False)
                streams.append({"name": name, "attribute": codec.name})
        (Path(folder) / "manifest.json").write_text(json.dumps({"streams": streams}))
        report = json.loads(subprocess.run([str(python), str(CODERS), folder], check=True, capture_output=True, text=True).stdout)
    bits = context_code_bits(
        {name: arrays for name, (_, arrays) in written.items()}, {name: fields for name, (fields, _) in written.items()}
    )
    for attribute, length in bits.items():
        row = {"stream": attribute, "coder": CONTEXT_MODEL, "bytes": math.ceil(length / 8)}
        report["rows"].append({**row, "encode_s": None, "decode_s": None})
    count = scene.gaussians.count
    by_attribute: Dict[str, Dict[str, float]] = defaultdict(lambda: defaultdict(float))
    totals: Dict[str, Dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in report["rows"]:
        attribute = row["stream"].split(".")[0]
        by_attribute[attribute][row["coder"]] += row["bytes"]
        for key in ("bytes", "encode_s", "decode_s"):
            if row[key] is not None:
                totals[row["coder"]][key] += row[key]
    results: Dict[str, Any] = {
        "file": str(args.file), "gaussians": count, "date": date.today().isoformat(), "machine": platform.platform(),
        "versions": report["versions"], "rows": report["rows"],
        "totals": {coder: dict(values) for coder, values in totals.items()},
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    coders = list(totals)
    print("| attribute | " + " | ".join(coders) + " |")
    print("|---|" + "---:|" * len(coders))
    for attribute, sizes in by_attribute.items():
        print(f"| {attribute} | " + " | ".join(f"{sizes[c] / count:.2f}" for c in coders) + " |")
    print("| **total (bytes/Gaussian)** | " + " | ".join(f"**{totals[c]['bytes'] / count:.2f}**" for c in coders) + " |")
    for key in ("encode", "decode"):
        seconds = [f"{totals[c][key + '_s']:.2f}" if key + "_s" in totals[c] else "n/a" for c in coders]
        print(f"| {key} (s) | " + " | ".join(seconds) + " |")


if __name__ == "__main__":
    main()
