"""The .nstrim file: exact round trips of format 2.1, 2.0 and 1.0 files decoded unchanged, every corruption
refused with one clear error, before anything is allocated or read that the checks have not bounded."""

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfstudio_trim.core.codec import container
from nerfstudio_trim.core.codec.streams import pack_bits, unpack_bits, zigzag
from nerfstudio_trim.core.codec.container import FormatError, Limits, open_container
from nerfstudio_trim.core.codec.morton import morton_codes, morton_order
from nerfstudio_trim.core.codec.nstrim import attribute_rows, decode, encode, read_file, read_file_with_header
from nerfstudio_trim.core.files import write_atomic
from nerfstudio_trim.core.quantize.gaussians import CodecSettings, quantize_gaussians
from nerfstudio_trim.core.scene import SplatScene
from nerfstudio_trim.errors import TrimError
from tests.test_quantize import random_params

FORMAT1 = Path(__file__).parent / "data" / "format1"
FORMAT2 = Path(__file__).parent / "data" / "format2"
ENCODINGS_2_0 = {"means": "scale-grid", "features_dc": "levels", "features_rest": "sh-bands"}
ENCODINGS_2_1 = {"means": "scale-grid-bits", "features_rest": "sh-bands-by-coefficient"}  # features_dc: either (see below)


def scene_of(n: int, degree: int = 3, seed: int = 0, settings: CodecSettings = CodecSettings()) -> SplatScene:
    params = random_params(n, k=(degree + 1) ** 2 - 1, seed=seed)
    return SplatScene(quantize_gaussians(params, settings), degree, background=(0.1, 0.2, 0.3), source={"step": 3})


def assert_decodes_exactly(scene: SplatScene, decoded: SplatScene) -> None:
    expected = scene.gaussians.dequantize()
    order = morton_order(expected["means"])
    got = decoded.gaussians.dequantize()
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].dtype == torch.float32
        assert torch.equal(got[name], value[order]), name
    assert decoded.sh_degree == scene.sh_degree and decoded.background == scene.background
    assert decoded.source == scene.source and decoded.frame == scene.frame


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("n", [0, 1, 257])
def test_round_trip_is_bit_exact(degree, n):
    scene = scene_of(n, degree)
    assert_decodes_exactly(scene, decode(encode(scene)))


@pytest.mark.parametrize("settings", [CodecSettings(), CodecSettings(sh_bits=(8, 8, 8), rotation_bits=12, opacity_bits=8,
                                      color_bits=12, position_precision=0.01, scale_step=0.01),
                                      CodecSettings(sh_bits=(1, 1, 1), rotation_bits=4, opacity_bits=3, color_bits=4)])  # fmt: skip
def test_round_trip_of_every_setting(settings):
    scene = scene_of(2000, 3, seed=1, settings=settings)
    assert_decodes_exactly(scene, decode(encode(scene)))


def test_large_round_trip_frame_and_far_scene():
    scene = scene_of(50_000, 3, seed=1)
    params = random_params(50_000, seed=1)
    params["means"] = params["means"] + 420.0  # a scene far from the origin, in a capture's own frame
    scene.gaussians = quantize_gaussians(params)
    scene.frame = "capture"
    scene.dataparser_transform = ((0.0, -1.0, 0.0, 0.25), (1.0, 0.0, 0.0, -1.0 / 3.0), (0.0, 0.0, 1.0, 2.0))
    scene.dataparser_scale = 0.123456789012345
    decoded = decode(encode(scene))
    assert_decodes_exactly(scene, decoded)
    assert decoded.dataparser_transform == scene.dataparser_transform  # float64, exactly
    assert decoded.dataparser_scale == scene.dataparser_scale


def assert_decodes_to(scene: SplatScene, expected_path: Path) -> None:
    """``scene`` dequantizes exactly to the float32 arrays saved in ``expected_path`` (an .npz)."""
    expected = np.load(expected_path, allow_pickle=False)
    decoded = scene.gaussians.dequantize()
    assert set(decoded) == set(expected.files)
    for name in expected.files:
        assert decoded[name].dtype == torch.float32 and np.array_equal(decoded[name].numpy(), expected[name]), name
    assert scene.dataparser_scale == 0.3125 and scene.background == (0.1, 0.2, 0.3)


@pytest.mark.parametrize("path", sorted(FORMAT1.glob("*.nstrim")), ids=lambda p: p.stem)
def test_format_1_files_decode_unchanged(path):
    header, scene = read_file_with_header(path)
    assert header["version"] == (1, 0)
    assert_decodes_to(scene, path.with_suffix(".decoded.npz"))
    assert [row[0] for row in attribute_rows(header)] == ["means", "scales", "quats", "opacities", "features_dc", "features_rest"]


@pytest.mark.parametrize("path", sorted(FORMAT2.glob("*.nstrim")), ids=lambda p: p.stem)
def test_format_2_0_files_decode_unchanged_and_are_written_again_as_2_1(path):
    header, scene = read_file_with_header(path)
    assert header["version"] == (2, 0)
    assert {entry["name"]: entry["encoding"] for entry in header["attributes"] if entry["name"] in ENCODINGS_2_0} == ENCODINGS_2_0
    assert_decodes_to(scene, path.with_suffix(".decoded.npz"))
    data = encode(scene)
    major, minor, new_header, _ = parts(data)
    assert (major, minor) == (2, 1)
    assert {entry["name"]: entry["encoding"] for entry in new_header["attributes"] if entry["name"] in ENCODINGS_2_1} == ENCODINGS_2_1
    assert_decodes_to(decode(data), path.with_suffix(".decoded.npz"))


@pytest.mark.parametrize("correlated", [True, False])
def test_the_colour_is_stored_as_differences_from_green_where_that_is_smaller(correlated):
    from nerfstudio_trim.core.codec.attributes import ATTRIBUTES
    from nerfstudio_trim.core.codec.format2 import write_attributes
    from nerfstudio_trim.core.codec.streams import compressed

    params = random_params(3000, seed=3)
    generator = torch.Generator().manual_seed(3)
    grey = torch.rand(3000, 1, generator=generator) * 3 - 1.5
    noise = torch.randn(3000, 3, generator=generator) * (0.02 if correlated else 1.0)
    params["features_dc"] = grey + noise if correlated else noise
    scene = SplatScene(quantize_gaussians(params), 3)
    ordered = scene.gaussians.reordered(morton_order(scene.gaussians.means.dequantize()))
    codes = ordered.features_dc.codes.numpy()
    fields, [stream], _ = write_attributes(scene.gaussians)[[codec.name for codec in ATTRIBUTES].index("features_dc")]
    assert fields["encoding"] == ("levels-green-differences" if correlated else "levels")
    green = codes[:, 1:2]
    differences = np.concatenate([zigzag(codes[:, :1] - green), green, zigzag(codes[:, 2:] - green)], axis=1)
    sizes = [len(compressed(a)) for a in (differences, codes)]
    assert (sizes[0] < sizes[1]) == correlated and np.array_equal(stream, differences if correlated else codes)
    assert_decodes_exactly(scene, decode(encode(scene)))


def test_bits_are_packed_most_significant_first_and_unpacked_exactly():
    assert pack_bits(np.array([5, 1, 0, 2]), np.array([3, 1, 0, 3])).tolist() == [0b10110100]
    assert pack_bits(np.array([0x1FF]), np.array([9])).tolist() == [0xFF, 0x80]
    rng = np.random.default_rng(0)
    widths = rng.integers(0, 41, 5000)
    values = rng.integers(0, 2**40, 5000) & ((1 << widths) - 1)
    packed = pack_bits(values, widths)
    assert packed.dtype == np.uint8 and packed.size == -(-int(widths.sum()) // 8)
    assert np.array_equal(unpack_bits(packed, widths, "x"), values)
    assert unpack_bits(np.zeros(0, np.uint8), np.zeros(0, np.int64), "x").size == 0
    with pytest.raises(FormatError, match="x: the padding after the last value is not zero"):
        unpack_bits(np.array([0b10110101], np.uint8), np.array([3, 1, 0, 3]), "x")


def test_morton_codes_interleave_axes_and_order_neighbours():
    corners = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])
    assert morton_codes(corners).tolist() == [0, 0b001001001001001001001001001001, 0b010010010010010010010010010010,
                                              0b100100100100100100100100100100, 2**30 - 1]  # fmt: skip
    points = torch.cat([torch.rand(100, 3) * 0.1, torch.rand(100, 3) * 0.1 + 0.9])
    shuffle = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    cluster = (points[shuffle][morton_order(points[shuffle])][:, 0] > 0.5).int()
    assert int((cluster[1:] != cluster[:-1]).sum()) == 1


# -- corrupted and hostile files --------------------------------------------------------------------------------

def parts(data: bytes):
    """(major, minor, header dict, payload) of a 2.0 file."""
    preamble = container.PREAMBLES[2]
    _, major, minor, size, _, _, _ = preamble.unpack_from(data)
    return major, minor, json.loads(data[preamble.size : preamble.size + size]), data[preamble.size + size :]


def repack(data: bytes, change_header=None, major: int = 2, payload: bytes = None, header_text: bytes = None) -> bytes:
    """A 2.0 file with its header changed (or replaced by ``header_text``) and valid checksums again."""
    _, minor, header, old_payload = parts(data)
    if change_header is not None:
        change_header(header)
    header_bytes = header_text if header_text is not None else json.dumps(header).encode()
    payload = old_payload if payload is None else payload
    return container.PREAMBLES[2].pack(container.MAGIC, major, minor, len(header_bytes), len(payload),
                                       hashlib.sha256(header_bytes).digest(), hashlib.sha256(payload).digest()) + header_bytes + payload  # fmt: skip


RAW = "RAW-JSON"


def with_raw(data: bytes, change_header, text: str) -> bytes:
    """The file with the header field that ``change_header`` sets to RAW written as the JSON ``text``."""
    header = parts(data)[2]
    change_header(header)
    return repack(data, header_text=json.dumps(header).replace(f'"{RAW}"', text).encode())


@pytest.fixture(scope="module")
def good() -> bytes:
    return encode(scene_of(500))


def test_repack_of_an_unchanged_file_still_decodes(good):
    assert decode(repack(good)).gaussians.count == 500


def flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x10]) + data[position + 1 :]


def attribute(header, name):
    return next(a for a in header["attributes"] if a["name"] == name)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda d: d[: len(d) // 2], "truncated"),
        (lambda d: d[:20], "truncated"),
        (lambda d: flip(d, len(d) - 100), "checksum mismatch"),
        (lambda d: flip(d, container.PREAMBLES[2].size + 5), "checksum mismatch"),  # in the header
        (lambda d: b"PK\x03\x04" + d[4:], "wrong magic"),
        (lambda d: b"", "wrong magic"),
        (lambda d: repack(d, major=3), r"format version 3\.1 is not supported.*newer"),
        (lambda d: repack(d, lambda h: h.update(count=10**12)), "declares 1,000,000,000,000 Gaussians"),
        (lambda d: d + b"\x00garbage", "unexpected bytes after"),
        (lambda d: repack(d, lambda h: h.update(count=501)), "decompressed size does not match"),
        (lambda d: repack(d, lambda h: h.update(sh_degree=2)), "bits and steps must cover SH degree 2"),
        (lambda d: repack(d, lambda h: h["attributes"].reverse()), "attribute table must list"),
        (lambda d: repack(d, lambda h: attribute(h, "quats").update(bits=3.0)), r"attributes\[2\]\.bits must be an integer"),
        (lambda d: repack(d, lambda h: attribute(h, "quats").update(bits=True)), r"bits must be an integer"),
        (lambda d: repack(d, lambda h: h.update(count="500")), r"header\.count must be an integer"),
        (lambda d: repack(d, lambda h: h.update(count=500.0)), r"header\.count must be an integer"),
        (lambda d: with_raw(d, lambda h: h.update(count=RAW), "9" * 5000), "an integer of 5,000 digits"),
        (lambda d: with_raw(d, lambda h: h["frame"].update(dataparser_scale=RAW), "9" * 400), "an integer of 400 digits"),
        (lambda d: repack(d, lambda h: h["frame"].update(dataparser_scale=0)), "dataparser_scale must be a number"),
        (lambda d: repack(d, lambda h: h["frame"].update(dataparser_scale="1.5")), "dataparser_scale must be a number"),
        (lambda d: repack(d, lambda h: h["frame"].update(dataparser_scale=1e300)), "dataparser_scale must be a number"),
        (lambda d: repack(d, lambda h: attribute(h, "opacities").update(low=[1e39])), r"low\[0\] must be a number"),
        (lambda d: repack(d, header_text=parts(d)[2].__repr__().encode()), "not valid JSON"),
        (lambda d: repack(d, header_text=b'{"count": NaN}'), "NaN is not a number JSON allows"),
        (lambda d: repack(d, header_text=b"[" * 1000 + b"]" * 1000), "nested more than"),
        (lambda d: repack(d, header_text=b'{"count": 1e999}'), "beyond the range of a double"),
        (lambda d: repack(d, lambda h: h["frame"].update(name=None)), r"frame\.name must be a string"),
        (lambda d: repack(d, lambda h: h["frame"].pop("name")), r"frame\.name is missing"),
        (lambda d: repack(d, lambda h: h["render"].update(rasterize_mode="[/bold]")), "rasterize_mode must be one of"),
        (lambda d: repack(d, lambda h: h.update(source={"x": "y" * 100_000})), "at most 256 characters"),
        (lambda d: repack(d, lambda h: attribute(h, "means")["streams"][0].update(bytes=1)), "add up to"),
        (lambda d: repack(d, lambda h: attribute(h, "scales")["streams"].append(attribute(h, "means")["streams"].pop())),
         "another number of streams"),
        (lambda d: repack(d, lambda h: attribute(h, "means")["streams"].append({"dtype": "uint8", "bytes": 0})), "another number of streams"),
        (lambda d: repack(d, lambda h: attribute(h, "scales")["streams"][0].update(dtype="float64")), "dtype must be one of"),
        (lambda d: repack(d, lambda h: h.update(compression="zstd")), "compression must be one of"),
        (lambda d: repack(d, lambda h: attribute(h, "features_dc").update(encoding="levels-blue")), r"attributes\[4\]\.encoding must be one of"),
        (lambda d: repack(d, lambda h: attribute(h, "means").update(encoding="scale-grid")), "means.fine: decompressed size"),
        (lambda d: repack(d, payload=b"\xfd7zXZ" + bytes(100)), "add up to"),
    ],
)
def test_corrupted_and_hostile_files_are_refused(good, corrupt, message):
    with pytest.raises(FormatError, match=message):
        decode(corrupt(good))


def stream_offsets(data: bytes):
    _, _, header, payload = parts(data)
    offsets, position = {}, 0
    for entry in header["attributes"]:
        for index, stream in enumerate(entry["streams"]):
            offsets[(entry["name"], index)] = (position, stream)
            position += stream["bytes"]
    return header, bytearray(payload), offsets


def test_a_corrupted_stream_with_valid_checksums_is_refused(good):
    _, payload, offsets = stream_offsets(good)
    start, stream = offsets[("means", 0)]
    payload[start + stream["bytes"] // 2] ^= 0xFF  # inside the first xz stream of the positions
    with pytest.raises(FormatError, match="means"):
        decode(repack(good, payload=bytes(payload)))


def forge(good: bytes, name: str, index: int, values: np.ndarray, **fields) -> bytes:
    """``good`` with stream ``index`` of attribute ``name`` replaced by ``values`` and the attribute's ``fields``
    set (valid xz, valid checksums)."""
    from nerfstudio_trim.core.codec.streams import column_bytes, deflate, smallest_unsigned

    _, payload, offsets = stream_offsets(good)
    start, stream = offsets[(name, index)]
    dtype = smallest_unsigned(values)
    replacement = deflate(column_bytes(values.astype(dtype)))
    new_payload = bytes(payload[:start]) + replacement + bytes(payload[start + stream["bytes"] :])

    def change(header):
        attribute(header, name).update(fields)
        attribute(header, name)["streams"][index].update(bytes=len(replacement), dtype=dtype)

    return repack(good, change, payload=new_payload)


def test_codes_out_of_range_are_refused(good):
    """Crafted streams (valid xz, valid checksums) whose codes exceed what the header allows."""
    with pytest.raises(FormatError, match="features_rest.degrees: a code exceeds 3"):
        decode(forge(good, "features_rest", 0, np.full(500, 7)))  # the SH degree per Gaussian, at most 3
    colour = np.zeros((500, 3), dtype=np.int64)  # 8 bits: green 0-255, red and blue zig-zag differences from it
    colour[:, 1] = 255
    differences = "levels-green-differences"
    decode(forge(good, "features_dc", 0, colour, encoding=differences))
    for channel, code, message in ((1, 256, "features_dc: a code exceeds 255"), (0, 2, "a channel's code falls outside 0 to 255"),
                                   (2, 511, "features_dc: a code exceeds 510")):  # fmt: skip
        forged = colour.copy()
        forged[7, channel] = code
        with pytest.raises(FormatError, match=message):
            decode(forge(good, "features_dc", 0, forged, encoding=differences))


def test_limits_are_checked_before_parsing_and_allocating(good):
    with pytest.raises(FormatError, match="header declares"):
        decode(good, Limits(max_header_bytes=100))
    with pytest.raises(FormatError, match="more than the limit of 400"):
        decode(good, Limits(max_gaussians=400))
    with pytest.raises(FormatError, match=r"decoding needs about .* GiB of memory, more than the 0\.00 GiB allowed"):
        decode(good, Limits(max_memory_bytes=1000))


class CountingFile(io.BytesIO):
    """A file that records how many bytes were read from it."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        chunk = super().read(size)
        self.read_bytes += len(chunk)
        return chunk


def test_nothing_past_the_header_is_read_when_the_header_or_the_memory_is_refused(good):
    from nerfstudio_trim.core.codec import format2

    size_of_header = container.PREAMBLES[2].size + len(json.dumps(parts(good)[2]).encode())
    for data, limits in ((repack(good, lambda h: h.update(count="x")), Limits()), (repack(good), Limits(max_memory_bytes=1000))):
        file = CountingFile(data)
        with pytest.raises(FormatError):
            format2.decode_container(open_container(file, len(data), limits), limits)
        assert file.read_bytes == size_of_header
    # an 8 GiB file whose preamble declares an over-limit header: only the preamble is read
    preamble = container.PREAMBLES[2].pack(container.MAGIC, 2, 0, 2**21, 8 * 2**30, bytes(32), bytes(32))
    file = CountingFile(preamble)
    with pytest.raises(FormatError, match="header declares 2,097,152 bytes"):
        open_container(file, 88 + 2**21 + 8 * 2**30, Limits())
    assert file.read_bytes == 88


def test_read_file_names_the_file(tmp_path, good):
    path = tmp_path / "scene.nstrim"
    path.write_bytes(good[:-1])
    with pytest.raises(FormatError, match=f"{path}: file is truncated"):
        read_file(path)
    with pytest.raises(TrimError, match="does not exist"):
        read_file(tmp_path / "missing.nstrim")
    with pytest.raises(TrimError, match="is not a regular file"):
        read_file(tmp_path)


def test_non_finite_side_values_are_not_written():
    params = random_params(10)
    params["features_dc"][3, 0] = float("nan")
    with pytest.raises(FormatError, match="non-finite"):
        encode(SplatScene(quantize_gaussians(params), 3))


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
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["scene.nstrim"]


def test_write_into_a_path_that_is_not_a_folder_fails_cleanly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TrimError, match="cannot write"):
        write_atomic(blocker / "scene.nstrim", b"data")


def test_the_cli_refuses_a_decode_over_max_memory_in_one_line(tmp_path, good):
    """ns-trim info / decode --max-memory: refused before allocating, the size named."""
    from nerfstudio_trim.cli import Decode, Info

    path = tmp_path / "scene.nstrim"
    path.write_bytes(good)
    for command in (Info(path, max_memory=1e-6), Decode(path, tmp_path / "out.ply", max_memory=1e-6)):
        with pytest.raises(FormatError, match=r"decoding needs about 0\.\d\d GiB of memory, more than the 0\.00 GiB allowed") as error:
            command.main()
        assert "\n" not in str(error.value)
    assert not (tmp_path / "out.ply").exists()
    Decode(path, tmp_path / "out.ply", max_memory=1.0).main()
    assert (tmp_path / "out.ply").is_file()
