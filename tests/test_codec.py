"""The .nstrim file: exact round trips, Morton order, every corruption refused with one clear error."""

import hashlib
import json
import lzma
import os

import pytest
import torch

from nerfstudio_trim.core.codec import nstrim as codec
from nerfstudio_trim.core.codec.nstrim import FormatError, Limits, decode, encode, read_file
from nerfstudio_trim.core.scene import SplatScene
from nerfstudio_trim.core.files import write_atomic
from nerfstudio_trim.core.codec.morton import morton_codes, morton_order
from nerfstudio_trim.core.quantize import quantize_gaussians
from nerfstudio_trim.errors import TrimError
from tests.test_quantize import random_params


def scene_of(n: int, degree: int = 3, sh: str = "channel", positions: str = "float16", seed: int = 0) -> SplatScene:
    params = random_params(n, k=(degree + 1) ** 2 - 1, seed=seed)
    return SplatScene(quantize_gaussians(params, sh, positions), degree, background=(0.1, 0.2, 0.3))


def assert_decodes_exactly(scene: SplatScene, decoded: SplatScene) -> None:
    expected = scene.gaussians.dequantize()
    order = morton_order(expected["means"])
    got = decoded.gaussians.dequantize()
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].dtype == torch.float32
        assert torch.equal(got[name], value[order]), name
    assert torch.equal(decoded.gaussians.features_rest.codes, scene.gaussians.features_rest.codes[order])
    assert decoded.sh_degree == scene.sh_degree and decoded.background == scene.background


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("n", [0, 1, 257])
def test_round_trip_is_bit_exact(degree, n):
    scene = scene_of(n, degree)
    assert_decodes_exactly(scene, decode(encode(scene)))


@pytest.mark.parametrize("sh, positions", [("tensor", "grid16"), ("channel", "grid16"), ("tensor", "float16")])
def test_round_trip_of_every_quantization(sh, positions):
    scene = scene_of(1000, 3, sh, positions)
    decoded = decode(encode(scene))
    assert decoded.gaussians.means.encoding == positions
    assert tuple(decoded.gaussians.features_rest.scale.shape) == ((1, 1) if sh == "tensor" else (15, 3))
    assert_decodes_exactly(scene, decoded)


def test_large_round_trip_and_frame():
    scene = scene_of(100_000, 3, seed=1)
    scene.dataparser_transform = ((0.0, -1.0, 0.0, 0.25), (1.0, 0.0, 0.0, -1.0 / 3.0), (0.0, 0.0, 1.0, 2.0))
    scene.dataparser_scale = 0.123456789012345
    decoded = decode(encode(scene))
    assert_decodes_exactly(scene, decoded)
    assert decoded.dataparser_transform == scene.dataparser_transform  # float64, exactly
    assert decoded.dataparser_scale == scene.dataparser_scale


def test_morton_codes_interleave_axes_and_order_neighbours():
    corners = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])
    assert morton_codes(corners).tolist() == [0, 0b001001001001001001001001001001, 0b010010010010010010010010010010,
                                              0b100100100100100100100100100100, 2**30 - 1]  # fmt: skip
    # two clusters, shuffled: in Morton order each cluster is contiguous
    points = torch.cat([torch.rand(100, 3) * 0.1, torch.rand(100, 3) * 0.1 + 0.9])
    shuffle = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    cluster = (points[shuffle][morton_order(points[shuffle])][:, 0] > 0.5).int()
    assert int((cluster[1:] != cluster[:-1]).sum()) == 1


def test_ordering_helps_compression():
    points = torch.rand(20000, 3)
    params = random_params(20000, seed=2)
    params["means"] = points
    params["scales"] = points.sum(1, keepdim=True).repeat(1, 3) - 5  # smooth in space
    scene = SplatScene(quantize_gaussians(params), 3)
    scales_as_given = codec._columns(scene)[1][1]
    in_given_order = len(lzma.compress(codec._column_bytes(scales_as_given), preset=codec.XZ_PRESET))
    in_morton_order = json.loads(header_of(encode(scene)))["attributes"][1]["compressed_bytes"]
    assert in_morton_order < 0.8 * in_given_order


def header_of(data: bytes) -> bytes:
    _, _, _, size, _, _ = codec.PREAMBLE.unpack_from(data)
    return data[codec.PREAMBLE.size : codec.PREAMBLE.size + size]


def repack(data: bytes, change_header=None, major: int = 1, payload: bytes = None) -> bytes:
    """The file with its header changed (and a valid checksum again)."""
    _, _, minor, size, payload_size, _ = codec.PREAMBLE.unpack_from(data)
    header = json.loads(header_of(data))
    if change_header is not None:
        change_header(header)
    header_bytes = json.dumps(header).encode()
    payload = data[codec.PREAMBLE.size + size :] if payload is None else payload
    digest = hashlib.sha256(header_bytes + payload).digest()
    return codec.PREAMBLE.pack(codec.MAGIC, major, minor, len(header_bytes), len(payload), digest) + header_bytes + payload


@pytest.fixture(scope="module")
def good() -> bytes:
    return encode(scene_of(500))


def test_repack_of_an_unchanged_file_still_decodes(good):
    assert decode(repack(good)).gaussians.count == 500


def flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x10]) + data[position + 1 :]


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda d: d[: len(d) // 2], "truncated"),
        (lambda d: d[:20], "truncated"),
        (lambda d: flip(d, len(d) - 100), "checksum mismatch"),
        (lambda d: flip(d, codec.PREAMBLE.size + 5), "checksum mismatch"),  # in the header
        (lambda d: b"PK\x03\x04" + d[4:], "wrong magic"),
        (lambda d: b"", "wrong magic"),
        (lambda d: repack(d, major=2), r"format version 2\.0 is not supported.*newer"),
        (lambda d: repack(d, lambda h: h.update(count=10**12)), "declares 1,000,000,000,000 Gaussians"),
        (lambda d: d + b"\x00garbage", "unexpected bytes after"),
        (lambda d: repack(d, lambda h: h.update(count=501)), "decompressed size does not match"),
        (lambda d: repack(d, lambda h: h.update(sh_degree=2)), "features_rest has shape"),
        (lambda d: repack(d, lambda h: h["attributes"].reverse()), "attribute table must list"),
        (lambda d: repack(d, lambda h: h["attributes"][0].update(dtype="float64")), "means has dtype"),
        (lambda d: repack(d, lambda h: h["attributes"][0].update(compressed_bytes=1)), "add up to"),
        (lambda d: repack(d, lambda h: h["attributes"][5].update(scale="x")), "features_rest.scale"),
        (lambda d: repack(d, lambda h: h["frame"].update(dataparser_scale=None)), "dataparser_scale"),
        (lambda d: repack(d, lambda h: h.update(compression="zstd")), "unsupported compression"),
        (lambda d: repack(d, payload=b"\xfd7zXZ" + bytes(100)), "add up to"),
    ],
)
def test_corrupted_files_are_refused(good, corrupt, message):
    with pytest.raises(FormatError, match=message):
        decode(corrupt(good))


def test_a_corrupted_stream_with_a_valid_checksum_is_refused(good):
    header = json.loads(header_of(good))
    payload = bytearray(good[codec.PREAMBLE.size + len(header_of(good)) :])
    payload[header["attributes"][0]["compressed_bytes"] // 2] ^= 0xFF  # inside the first xz stream
    with pytest.raises(FormatError, match="means"):
        decode(repack(good, payload=bytes(payload)))


def test_header_limit_is_checked_before_parsing(good):
    with pytest.raises(FormatError, match="header declares"):
        decode(good, Limits(max_header_bytes=100))
    with pytest.raises(FormatError, match="more than the limit of 400"):
        decode(good, Limits(max_gaussians=400))


def test_non_finite_parameters_are_not_written():
    params = random_params(10)
    params["opacities"][3] = 1e6  # beyond float16
    with pytest.raises(FormatError, match="opacities"):
        encode(SplatScene(quantize_gaussians(params), 3))


def test_read_file_names_the_file(tmp_path, good):
    path = tmp_path / "scene.nstrim"
    path.write_bytes(good[:-1])
    with pytest.raises(FormatError, match=f"{path}: file is truncated"):
        read_file(path)
    with pytest.raises(TrimError, match="does not exist"):
        read_file(tmp_path / "missing.nstrim")


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "scene.nstrim"

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, b"data")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    target.write_bytes(b"old")
    previous = os.umask(0o022)
    try:
        write_atomic(target, b"new")
    finally:
        os.umask(previous)
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["scene.nstrim"]
    assert target.stat().st_mode & 0o777 == 0o644  # as any written file, not private like a temporary


def test_write_into_a_path_that_is_not_a_folder_fails_cleanly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TrimError, match="cannot write"):
        write_atomic(blocker / "scene.nstrim", b"data")
