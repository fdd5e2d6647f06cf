"""docs/format.md is enough to write a decoder: one written from that page alone (json, lzma, hashlib and
numpy; nothing of nerfstudio_trim's codec) decodes files of 2.1 and 2.0 to exactly what the reader does."""

import hashlib
import json
import lzma
import struct

import numpy as np
import pytest
import torch

from nerfstudio_trim.core.codec.nstrim import decode, encode
from nerfstudio_trim.core.quantize.gaussians import CodecSettings, quantize_gaussians
from tests.test_codec import FORMAT2, scene_of
from tests.test_quantize import random_params

F32 = np.float32


def spec_decode(data: bytes) -> dict:
    """float32 parameters by name of a format 2.x file, following docs/format.md step by step."""
    magic, major, minor, header_size, payload_size, header_digest, payload_digest = struct.unpack_from("<8sHHIQ32s32s", data)
    assert magic == b"\x89NSTRIM\n" and major == 2 and len(data) == 88 + header_size + payload_size
    header_bytes, payload = data[88 : 88 + header_size], data[88 + header_size :]
    assert hashlib.sha256(header_bytes).digest() == header_digest and hashlib.sha256(payload).digest() == payload_digest
    header = json.loads(header_bytes)
    n, d = header["count"], header["sh_degree"]
    attributes = {entry["name"]: entry for entry in header["attributes"]}
    streams = iter(stream for entry in header["attributes"] for stream in entry["streams"])
    offset = 0

    def stream(count: int, components: int = 1) -> np.ndarray:
        """The next stream as [count, components] int64 (column by column, byte-shuffled, xz)."""
        nonlocal offset
        descriptor = next(streams)
        raw = lzma.decompress(payload[offset : offset + descriptor["bytes"]])
        offset += descriptor["bytes"]
        dtype = np.dtype(descriptor["dtype"]).newbyteorder("<")
        assert len(raw) == count * components * dtype.itemsize
        unshuffled = np.frombuffer(raw, np.uint8).reshape(dtype.itemsize, -1).T.copy().view(dtype).reshape(-1)
        return unshuffled.reshape(components, count).T.astype(np.int64)

    def unzigzag(values: np.ndarray) -> np.ndarray:
        return np.where(values % 2 == 0, values // 2, -(values + 1) // 2)

    out = {}
    a = attributes["opacities"]
    out["opacities"] = F32(a["low"][0]) + stream(n).astype(F32) * F32(a["step"][0])
    a = attributes["scales"]
    scale_codes = stream(n, 3)
    out["scales"] = F32(a["low"]) + scale_codes.astype(F32) * F32(a["step"])
    a = attributes["quats"]
    largest, three = stream(n)[:, 0], stream(n, 3)
    v = (three.astype(F32) * F32(2 / (2 ** a["bits"] - 1)) - F32(1)) * F32(1 / np.sqrt(2))
    w = np.sqrt(np.maximum(F32(0), F32(1) - ((v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1]) + v[:, 2] * v[:, 2])))
    quats = np.zeros((n, 4), F32)
    for i in range(n):
        quats[i] = np.insert(v[i], largest[i], w[i])
    out["quats"] = quats
    a = attributes["means"]
    split = a["split"]
    level = np.clip((scale_codes.sum(1) - a["level_offset"]) // a["level_divisor"], 0, 24)
    coarse = np.cumsum(unzigzag(stream(n, 3)), axis=0)
    widths = np.maximum(0, split - level)
    if a["encoding"] == "scale-grid-bits":
        total = 3 * int(widths.sum())
        bits = np.unpackbits(stream(-(-total // 8))[:, 0].astype(np.uint8))
        assert not bits[total:].any()
        fine, position = np.zeros((n, 3), np.int64), 0
        for i in range(n):
            for axis in range(3):
                for _ in range(widths[i]):
                    fine[i, axis] = fine[i, axis] * 2 + int(bits[position])
                    position += 1
    else:
        fine = stream(n, 3)
    c = (coarse << split) | (fine << np.minimum(level, split)[:, None])
    out["means"] = (np.float64(a["origin"]).astype(F32).astype(np.float64) + c * np.float64(a["base_step"])).astype(F32)
    a = attributes["features_dc"]
    stored = stream(n, 3)
    if a["encoding"] == "levels-green-differences":
        green = stored[:, 1:2]
        stored = np.concatenate([green + unzigzag(stored[:, :1]), green, green + unzigzag(stored[:, 2:])], axis=1)
    out["features_dc"] = F32(a["low"]) + stored.astype(F32) * F32(a["step"])
    a = attributes["features_rest"]
    rest = np.zeros((n, (d + 1) ** 2 - 1, 3), np.int64)
    if d:
        degrees = stream(n)[:, 0]
        for band in range(1, d + 1):
            start, count = band**2 - 1, 2 * band + 1
            chosen = degrees >= band
            if a["encoding"] == "sh-bands-by-coefficient":
                codes = stream(count * 3 * int(chosen.sum()))[:, 0].reshape(count, -1, 3).transpose(1, 0, 2)
            else:
                codes = stream(int(chosen.sum()), count * 3).reshape(-1, count, 3)
            rest[chosen, start : start + count] = unzigzag(codes)
    out["features_rest"] = rest.astype(F32) * F32(np.array(a["steps"], dtype=np.float64).reshape(-1, 3))
    assert offset == len(payload)
    return out


def grey_scene() -> bytes:
    """A 2.1 file whose colours are near grey, so the writer stores red and blue as differences from green."""
    scene = scene_of(300, 3, seed=8)
    params = random_params(300, seed=8)
    params["features_dc"] = params["features_dc"][:, :1] + 0.01 * params["features_dc"]
    scene.gaussians = quantize_gaussians(params)
    data = encode(scene)
    assert b'"encoding":"levels-green-differences"' in data
    return data


SCENES = {
    "2.1-sh3": lambda: encode(scene_of(300, 3, seed=5)),
    "2.1-sh3-grey": grey_scene,
    "2.1-sh1-fine": lambda: encode(scene_of(200, 1, seed=6, settings=CodecSettings(sh_bits=(8,), position_precision=0.01))),
    "2.1-sh0": lambda: encode(scene_of(150, 0, seed=7)),
    **{f"2.0-{path.stem}": (lambda path=path: path.read_bytes()) for path in sorted(FORMAT2.glob("*.nstrim"))},
}


@pytest.mark.parametrize("name", sorted(SCENES))
def test_a_decoder_written_from_the_format_page_decodes_exactly_what_the_reader_does(name):
    data = SCENES[name]()
    expected = decode(data).gaussians.dequantize()
    got = spec_decode(data)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert torch.equal(torch.from_numpy(np.ascontiguousarray(got[key]).reshape(value.shape)), value), key
