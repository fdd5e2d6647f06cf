"""Seeded mutations of valid .nstrim files (both format versions) with their checksums recomputed, so the
reader's deep checks are reached, for the fuzz test and the larger campaign (benchmarks/fuzz_reader.py).

Each mutation is one of: a header field replaced by a hostile value (huge or negative integers, floats for
integers, booleans, strings with markup or escape sequences, long strings, deep nesting, NaN), a field
removed or added, bytes of the payload flipped, a stream's declared size or dtype changed, the file
truncated or extended, or random bytes flipped without recomputing the checksums.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any, Callable, Dict, List, Tuple

from nerfstudio_trim.core.codec import container

RAW = "\x00RAW\x00"
HOSTILE_VALUES: List[Any] = [
    0, -1, 1, 3, 2**31, 2**63, -(2**63), 10**30, 1.5, 3.0, -0.0, 1e38, 1e39, 1e308, True, False, None,
    "", "1.5", "[/bold]x[red]", "\x1b[2J\x1b[31mred", "x" * 5000, [], [1], [[[[1]]]], {}, {"a": 1}, [3.0], [True],
]  # fmt: skip
RAW_VALUES = ["9" * 5000, "9" * 400, "-" + "9" * 30, "NaN", "Infinity", "1e999", "[" * 200 + "]" * 200]


def split(data: bytes) -> Tuple[int, int, Dict[str, Any], bytes]:
    """(major, minor, header, payload) of a file of either version."""
    _, major, minor = container.VERSION.unpack_from(data)
    preamble = container.PREAMBLES[major]
    header_size = preamble.unpack_from(data)[3]
    header = json.loads(data[preamble.size : preamble.size + header_size])
    return major, minor, header, data[preamble.size + header_size :]


def join(major: int, minor: int, header_bytes: bytes, payload: bytes) -> bytes:
    """A file with valid checksums for ``major`` (1: one digest of header and payload; 2: one each)."""
    if major == 1:
        digests = [hashlib.sha256(header_bytes + payload).digest()]
    else:
        digests = [hashlib.sha256(header_bytes).digest(), hashlib.sha256(payload).digest()]
    preamble = container.PREAMBLES[major]
    return preamble.pack(container.MAGIC, major, minor, len(header_bytes), len(payload), *digests) + header_bytes + payload


def _paths(value: Any, prefix: Tuple = ()) -> List[Tuple]:
    """Every path (keys and indices) to a value inside a JSON value."""
    paths = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += _paths(item, prefix + (index,))
    return paths


def _parent(header: Any, path: Tuple) -> Tuple[Any, Any]:
    node = header
    for key in path[:-1]:
        node = node[key]
    return node, path[-1]


def _replace_field(rng: random.Random, major: int, minor: int, header: Dict[str, Any], payload: bytes) -> bytes:
    node, key = _parent(header, rng.choice(_paths(header)))
    raw = None
    if rng.random() < 0.2:
        raw = rng.choice(RAW_VALUES)
        node[key] = RAW
    else:
        node[key] = rng.choice(HOSTILE_VALUES)
    text = json.dumps(header)
    if raw is not None:
        text = text.replace(json.dumps(RAW), raw)
    return join(major, minor, text.encode(), payload)


def _remove_or_add_field(rng: random.Random, major: int, minor: int, header: Dict[str, Any], payload: bytes) -> bytes:
    node, key = _parent(header, rng.choice(_paths(header)))
    if isinstance(node, dict) and rng.random() < 0.5:
        del node[key]
    elif isinstance(node, list):
        node.insert(key, rng.choice(HOSTILE_VALUES))
    else:
        node["unexpected"] = rng.choice(HOSTILE_VALUES)
    return join(major, minor, json.dumps(header).encode(), payload)


def _flip_payload(rng: random.Random, major: int, minor: int, header: Dict[str, Any], payload: bytes) -> bytes:
    changed = bytearray(payload)
    for _ in range(rng.randint(1, 8)):
        if changed:
            changed[rng.randrange(len(changed))] ^= 1 << rng.randrange(8)
    return join(major, minor, json.dumps(header).encode(), bytes(changed))


def _resize(rng: random.Random, major: int, minor: int, header: Dict[str, Any], payload: bytes) -> bytes:
    """Declared counts and sizes changed together with the payload, so the totals still agree."""
    header["count"] = max(0, header.get("count", 0) + rng.choice([-1, 1, 7, -7, 1000, 2**20]))
    return join(major, minor, json.dumps(header).encode(), payload)


def _truncate_or_extend(rng: random.Random, data: bytes) -> bytes:
    if rng.random() < 0.5:
        return data[: rng.randrange(len(data))]
    return data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))


def _flip_anywhere(rng: random.Random, data: bytes) -> bytes:
    changed = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        changed[rng.randrange(len(changed))] ^= 1 << rng.randrange(8)
    return bytes(changed)


_WITH_CHECKSUMS: List[Callable[..., bytes]] = [_replace_field, _replace_field, _replace_field, _remove_or_add_field,
                                               _flip_payload, _resize]  # fmt: skip


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One random mutation of a valid file (see the module docstring)."""
    choice = rng.random()
    if choice < 0.1:
        return _truncate_or_extend(rng, data)
    if choice < 0.2:
        return _flip_anywhere(rng, data)
    major, minor, header, payload = split(data)
    return rng.choice(_WITH_CHECKSUMS)(rng, major, minor, header, payload)
