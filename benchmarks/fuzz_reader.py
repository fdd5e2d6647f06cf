"""The reader under a fuzz campaign: seeded mutations of valid files of both format versions (checksums
recomputed; ``tests/fuzz_files.py``), each one written to disk and run through the library reader and
``ns-trim info`` and ``ns-trim decode`` in process. A run counts clean refusals (one ``error:`` line, i.e. a
``TrimError``), successful decodes, and crashes (any other exception, by type and first line), and records
the slowest file and the largest memory peak.

    python benchmarks/fuzz_reader.py [--mutations 1000] [--seed 0]

Results: benchmarks/results/fuzz_reader.json and a summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from contextlib import redirect_stdout
from datetime import date
from io import StringIO
from pathlib import Path
from typing import Callable, Dict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nerfstudio_trim.cli import Decode, Info  # noqa: E402
from nerfstudio_trim.core.codec.container import Limits  # noqa: E402
from nerfstudio_trim.core.codec.nstrim import encode, read_file  # noqa: E402
from nerfstudio_trim.errors import TrimError  # noqa: E402
from tests.fuzz_files import mutate  # noqa: E402
from tests.test_codec import scene_of  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "fuzz_reader.json"


def seeds() -> Dict[str, bytes]:
    files = {"2.1-sh3": encode(scene_of(300, 3)), "2.1-sh0": encode(scene_of(200, 0, seed=4)), "2.1-empty": encode(scene_of(0, 3))}
    for version in ("2", "1"):
        for path in sorted((REPO / "tests" / "data" / f"format{version}").glob("*.nstrim")):
            files[f"{version}.0-{path.stem}"] = path.read_bytes()
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=1000, help="mutated files per seed file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    limits = Limits(max_memory_bytes=1 << 30)
    targets: Dict[str, Callable[[Path, Path], object]] = {
        "reader": lambda path, out: read_file(path, limits),
        "ns-trim info": lambda path, out: Info(path).main(),
        "ns-trim decode": lambda path, out: Decode(path, out).main(),
    }
    outcomes: Dict[str, Counter] = {name: Counter() for name in targets}
    crashes: Counter = Counter()
    slowest, peak_memory = (0.0, ""), 0
    with tempfile.TemporaryDirectory() as folder:
        path, out = Path(folder) / "mutated.nstrim", Path(folder) / "decoded.ply"
        for name, seed in seeds().items():
            rng = random.Random(f"{args.seed}-{name}")
            for _ in range(args.mutations):
                path.write_bytes(mutate(rng, seed))
                for target, run in targets.items():
                    tracemalloc.start()
                    started = time.perf_counter()
                    try:
                        with redirect_stdout(StringIO()):
                            run(path, out)
                        outcomes[target]["decoded"] += 1
                    except TrimError:
                        outcomes[target]["refused in one line"] += 1
                    except Exception as exc:  # a crash: what the campaign is looking for
                        outcomes[target]["crashed"] += 1
                        crashes[f"{target}: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"] += 1
                    finally:
                        elapsed = time.perf_counter() - started
                        peak_memory = max(peak_memory, tracemalloc.get_traced_memory()[1])
                        tracemalloc.stop()
                    if elapsed > slowest[0]:
                        slowest = (elapsed, f"{target} on a mutation of {name}")
    files = args.mutations * len(seeds())
    result = {
        "date": date.today().isoformat(), "machine": platform.platform(), "python": platform.python_version(),
        "mutated_files": files, "seed_files": list(seeds()), "outcomes": {k: dict(v) for k, v in outcomes.items()},
        "crashes": dict(crashes), "slowest_seconds": round(slowest[0], 3), "slowest": slowest[1],
        "peak_traced_memory_mib": round(peak_memory / 2**20, 1),
    }  # fmt: skip
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{files:,} mutated files x {len(targets)} commands")
    for target, counts in outcomes.items():
        print(f"  {target}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    print(f"crashes: {sum(crashes.values()):,}" + "".join(f"\n  {count:5d} {what}" for what, count in crashes.most_common()))
    print(f"slowest: {slowest[0]:.2f} s ({slowest[1]}); largest traced memory peak {peak_memory / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
