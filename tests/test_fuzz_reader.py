"""Property-based fuzzing of the reader: seeded mutations of valid files of both versions, checksums recomputed
so the deep checks are reached; every mutated file is refused with one short FormatError line or decodes to
finite parameters of the declared shapes, within bounded time and memory. (The larger campaign:
benchmarks/fuzz_reader.py.)"""

import random
import time
import tracemalloc
from pathlib import Path

import pytest
import torch

from nerfstudio_trim.core.codec.container import FormatError, Limits
from nerfstudio_trim.core.codec.nstrim import decode, encode
from tests.fuzz_files import mutate
from tests.test_codec import scene_of

MUTATIONS = 120
MEMORY = Limits(max_memory_bytes=256 * 2**20)
DATA = Path(__file__).parent / "data"
SEEDS = {
    "2.1-sh3": lambda: encode(scene_of(300, 3)),
    "2.1-sh0": lambda: encode(scene_of(200, 0, seed=4)),
    **{f"2.0-{p.stem}": (lambda p=p: p.read_bytes()) for p in sorted((DATA / "format2").glob("sh[03]-default.nstrim"))},
    **{f"1.0-{p.stem}": (lambda p=p: p.read_bytes()) for p in sorted((DATA / "format1").glob("sh*.nstrim"))},
}


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_mutated_files_are_refused_in_one_line_or_decode_to_finite_parameters(name):
    seed = SEEDS[name]()
    rng = random.Random(f"fuzz-{name}")
    refused = decoded = 0
    for _ in range(MUTATIONS):
        data = mutate(rng, seed)
        tracemalloc.start()
        started = time.perf_counter()
        try:
            scene = decode(data, MEMORY)
        except FormatError as exc:
            message = str(exc)
            assert "\n" not in message and len(message) < 400 and message.isprintable(), message[:400]
            refused += 1
        else:
            params = scene.gaussians.dequantize()
            count = scene.gaussians.count
            assert all(value.shape[0] == count and bool(torch.isfinite(value).all()) for value in params.values())
            decoded += 1
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert time.perf_counter() - started < 5.0
        assert peak < 128 * 2**20
    assert refused > MUTATIONS // 2  # the mutations do reach the checks
