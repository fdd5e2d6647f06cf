"""The compressed scene file (``.nstrim``, format 1.0; specification: docs/format.md).

Layout: a 56-byte preamble (magic, format version, header and payload lengths, SHA-256 of everything
after the preamble), a JSON header (count, SH degree, attribute table with dtypes, shapes and
quantization parameters, the capture's coordinate frame, render settings), then the payload: one xz
stream per attribute, each the attribute's values in Morton order, stored column by column and
byte-shuffled. Nothing on load executes code; every declared size is checked against limits and
against the file before anything is allocated.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import math
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from nerfstudio_trim.core.codec.morton import morton_order
from nerfstudio_trim.core.quantize import QuantizedGaussians, QuantizedPositions, QuantizedSH
from nerfstudio_trim.core.scene import MAX_SH_DEGREE, SplatScene, sh_coefficients
from nerfstudio_trim.errors import TrimError

EXTENSION = ".nstrim"
MAGIC = b"\x89NSTRIM\n"
FORMAT_VERSION = (1, 0)
PREAMBLE = struct.Struct("<8sHHIQ32s")  # magic, major, minor, header bytes, payload bytes, sha256
XZ_PRESET = 9 | lzma.PRESET_EXTREME
# Attribute order in the table and the payload, with the numpy dtype each may have.
ATTRIBUTES = ("means", "scales", "quats", "opacities", "features_dc", "features_rest")
DTYPES = {
    "means": ("float16", "uint16"),
    "scales": ("float16",),
    "quats": ("float16",),
    "opacities": ("float16",),
    "features_dc": ("uint8",),
    "features_rest": ("uint8",),
}


class FormatError(TrimError):
    """A file that is not a valid nerfstudio-trim scene (or exceeds the reader's limits)."""


@dataclass(frozen=True)
class Limits:
    """What a reader accepts before allocating anything."""

    max_gaussians: int = 50_000_000
    """Largest declared number of Gaussians (50M: ~3 GB decoded)."""
    max_header_bytes: int = 1 << 20
    """Largest JSON header."""


def _column_bytes(array: np.ndarray) -> bytes:
    """[N, ...] array stored column by column (component-major), its bytes shuffled by significance."""
    columns = np.ascontiguousarray(array.reshape(array.shape[0], math.prod(array.shape[1:])).T)
    raw = columns.view(np.uint8).reshape(-1, array.dtype.itemsize)
    return np.ascontiguousarray(raw.T).tobytes()


def _from_column_bytes(data: bytes, dtype: str, count: int, shape: Sequence[int]) -> np.ndarray:
    """Inverse of ``_column_bytes``: [count, *shape] array of ``dtype``."""
    itemsize = np.dtype(dtype).itemsize
    components = math.prod(shape)
    raw = np.frombuffer(data, dtype=np.uint8).reshape(itemsize, count * components)
    columns = np.ascontiguousarray(raw.T).view(np.dtype(dtype).newbyteorder("<")).reshape(components, count)
    return np.array(columns.T, order="C").reshape(count, *shape)  # a writable copy


def _floats(values: Tensor) -> List:
    """float32 tensor as nested lists of Python floats (exact: JSON round-trips doubles)."""
    return values.detach().to(torch.float32).cpu().tolist()


def _columns(scene: SplatScene) -> List[Tuple[Dict[str, Any], np.ndarray]]:
    """(attribute table entry, [N, ...] array) for each attribute, in file order."""
    g = scene.gaussians
    if g.means.encoding == "grid16":
        means_entry = {"dtype": "uint16", "encoding": "grid16", "offset": _floats(g.means.offset), "step": _floats(g.means.step)}
        means = g.means.codes.cpu().numpy().astype(np.uint16)
    else:
        means_entry = {"dtype": "float16", "encoding": "float16"}
        means = g.means.codes.cpu().numpy()
    entries = [
        ({"name": "means", "shape": [3], **means_entry}, means),
        ({"name": "scales", "shape": [3], "dtype": "float16", "encoding": "log"}, g.scales.cpu().numpy()),
        ({"name": "quats", "shape": [4], "dtype": "float16", "encoding": "wxyz"}, g.quats.cpu().numpy()),
        ({"name": "opacities", "shape": [1], "dtype": "float16", "encoding": "logit"}, g.opacities.cpu().numpy()),
    ]
    for name in ("features_dc", "features_rest"):
        sh: QuantizedSH = getattr(g, name)
        granularity = "tensor" if tuple(sh.scale.shape) == (1, 1) else "channel"
        entry = {"name": name, "shape": list(sh.codes.shape[1:]), "dtype": "uint8", "encoding": "sh8",
                 "granularity": granularity, "scale": _floats(sh.scale), "offset": _floats(sh.offset)}  # fmt: skip
        entries.append((entry, sh.codes.cpu().numpy()))
    return entries


def encode(scene: SplatScene) -> bytes:
    """The file's bytes for ``scene``; Gaussians are written in Morton order of their positions.

    Raises:
        FormatError: a parameter is not finite once quantized (e.g. beyond float16's range).
    """
    g = scene.gaussians
    if not 0 <= scene.sh_degree <= MAX_SH_DEGREE or g.features_rest.codes.shape[1] != sh_coefficients(scene.sh_degree):
        raise FormatError(f"features_rest {tuple(g.features_rest.codes.shape)} does not match SH degree {scene.sh_degree}")
    decoded = g.dequantize()
    for name, value in decoded.items():
        if not bool(torch.isfinite(value).all()):
            raise FormatError(f"{name} has values that are not finite once quantized (beyond float16's range?)")
    ordered = replace(scene, gaussians=g.reordered(morton_order(decoded["means"])))
    columns = _columns(ordered)
    with ThreadPoolExecutor(max_workers=len(columns)) as pool:  # lzma releases the GIL
        streams = list(pool.map(lambda c: lzma.compress(_column_bytes(c[1]), format=lzma.FORMAT_XZ, preset=XZ_PRESET), columns))
    attributes = [{**entry, "compressed_bytes": len(stream)} for (entry, _), stream in zip(columns, streams)]
    header = {
        "count": g.count,
        "sh_degree": scene.sh_degree,
        "order": "morton",
        "compression": "xz",
        "attributes": attributes,
        "frame": {
            "name": "nerfstudio-normalized",
            "dataparser_transform": [list(map(float, row)) for row in scene.dataparser_transform],
            "dataparser_scale": float(scene.dataparser_scale),
        },
        "render": {"background": [float(c) for c in scene.background], "rasterize_mode": scene.rasterize_mode},
        "source": scene.source,
    }
    header_bytes = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    payload = b"".join(streams)
    digest = hashlib.sha256(header_bytes + payload).digest()
    return PREAMBLE.pack(MAGIC, *FORMAT_VERSION, len(header_bytes), len(payload), digest) + header_bytes + payload


def read_header(data: bytes, limits: Limits = Limits()) -> Tuple[Dict[str, Any], memoryview]:
    """Check the preamble, lengths and checksum of a file's bytes; returns (header, payload).

    Raises:
        FormatError: wrong magic, unknown format version, truncated or trailing bytes, checksum mismatch,
            a header that is not a valid attribute table or exceeds ``limits``.
    """
    if len(data) < len(MAGIC) or bytes(data[: len(MAGIC)]) != MAGIC:
        raise FormatError("not a nerfstudio-trim scene file (wrong magic bytes)")
    if len(data) < PREAMBLE.size:
        raise FormatError("file is truncated (incomplete preamble)")
    _, major, minor, header_size, payload_size, digest = PREAMBLE.unpack_from(data)
    if major != FORMAT_VERSION[0]:
        raise FormatError(
            f"format version {major}.{minor} is not supported: this nerfstudio-trim reads {FORMAT_VERSION[0]}.x"
            + (" (the file is newer: upgrade nerfstudio-trim)" if major > FORMAT_VERSION[0] else "")
        )
    if header_size > limits.max_header_bytes:
        raise FormatError(f"header declares {header_size:,} bytes, more than the limit of {limits.max_header_bytes:,}")
    expected = PREAMBLE.size + header_size + payload_size
    if len(data) < expected:
        raise FormatError(f"file is truncated: {len(data):,} bytes, the preamble declares {expected:,}")
    if len(data) > expected:
        raise FormatError(f"file has {len(data) - expected:,} unexpected bytes after its payload")
    view = memoryview(data)
    if hashlib.sha256(view[PREAMBLE.size :]).digest() != digest:
        raise FormatError("checksum mismatch: the file is corrupted")
    try:
        header = json.loads(bytes(view[PREAMBLE.size : PREAMBLE.size + header_size]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"header is not valid JSON ({exc})") from None
    _validate_header(header, payload_size, limits)
    return header, view[PREAMBLE.size + header_size :]


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FormatError(f"header: {what} must be a finite number")
    return float(value)


def _array(value: Any, shape: Sequence[int], what: str) -> np.ndarray:
    """A nested list of finite numbers of exactly ``shape``, as float64."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise FormatError(f"header: {what} must be an array of numbers") from None
    if array.size == 0 and math.prod(shape) == 0:
        array = array.reshape(shape)
    if array.shape != tuple(shape) or not np.isfinite(array).all():
        raise FormatError(f"header: {what} must be {list(shape)} finite numbers")
    return array


def _float32(value: Any, shape: Sequence[int], what: str) -> Tensor:
    """A quantization parameter (written from float32, so exact) as a float32 tensor."""
    return torch.from_numpy(_array(value, shape, what).astype(np.float32))


def _validate_header(header: Any, payload_size: int, limits: Limits) -> None:
    """Types, shapes and sizes of a header, before anything is decompressed."""
    if not isinstance(header, dict):
        raise FormatError("header must be a JSON object")
    count, degree = header.get("count"), header.get("sh_degree")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise FormatError("header: count must be a non-negative integer")
    if count > limits.max_gaussians:
        raise FormatError(f"header declares {count:,} Gaussians, more than the limit of {limits.max_gaussians:,}")
    if isinstance(degree, bool) or not isinstance(degree, int) or not 0 <= degree <= MAX_SH_DEGREE:
        raise FormatError(f"header: sh_degree must be an integer from 0 to {MAX_SH_DEGREE}")
    if header.get("compression") != "xz":
        raise FormatError(f"header: unsupported compression {header.get('compression')!r}")
    attributes = header.get("attributes")
    if not isinstance(attributes, list) or [a.get("name") if isinstance(a, dict) else None for a in attributes] != list(ATTRIBUTES):
        raise FormatError(f"header: the attribute table must list {', '.join(ATTRIBUTES)} in this order")
    shapes = {"means": [3], "scales": [3], "quats": [4], "opacities": [1], "features_dc": [1, 3],
              "features_rest": [sh_coefficients(degree), 3]}  # fmt: skip
    total = 0
    for entry in attributes:
        name = entry["name"]
        if entry.get("dtype") not in DTYPES[name]:
            raise FormatError(f"header: {name} has dtype {entry.get('dtype')!r}, expected one of {DTYPES[name]}")
        if entry.get("shape") != shapes[name]:
            raise FormatError(f"header: {name} has shape {entry.get('shape')}, expected {shapes[name]}")
        compressed = entry.get("compressed_bytes")
        if isinstance(compressed, bool) or not isinstance(compressed, int) or compressed < 0:
            raise FormatError(f"header: {name}.compressed_bytes must be a non-negative integer")
        total += compressed
    if total != payload_size:
        raise FormatError(f"header: attribute streams add up to {total:,} bytes, the payload has {payload_size:,}")
    frame = header.get("frame")
    if not isinstance(frame, dict):
        raise FormatError("header: frame must be an object")
    _array(frame.get("dataparser_transform"), (3, 4), "frame.dataparser_transform")
    _number(frame.get("dataparser_scale"), "frame.dataparser_scale")
    render = header.get("render")
    if not isinstance(render, dict) or render.get("rasterize_mode") not in ("classic", "antialiased"):
        raise FormatError("header: render.rasterize_mode must be 'classic' or 'antialiased'")
    _array(render.get("background"), (3,), "render.background")


def _inflate(stream: memoryview, size: int, name: str) -> bytes:
    """Decompress one xz stream that must hold exactly ``size`` bytes (never more is allocated)."""
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        data = decompressor.decompress(bytes(stream), max_length=size + 1)
    except lzma.LZMAError as exc:
        raise FormatError(f"{name}: compressed data is corrupted ({exc})") from None
    if len(data) != size or not decompressor.eof or decompressor.unused_data:
        raise FormatError(f"{name}: decompressed size does not match the header")
    return data


def _sh_block(entry: Dict[str, Any], codes: np.ndarray) -> QuantizedSH:
    name = entry["name"]
    if entry.get("granularity") not in ("channel", "tensor"):
        raise FormatError(f"header: {name}.granularity must be 'channel' or 'tensor'")
    shape = entry["shape"] if entry["granularity"] == "channel" else (1, 1)
    scale = _float32(entry.get("scale"), shape, f"{name}.scale")
    offset = _float32(entry.get("offset"), shape, f"{name}.offset")
    return QuantizedSH(codes=torch.from_numpy(codes), scale=scale, offset=offset)


def decode(data: bytes, limits: Limits = Limits()) -> SplatScene:
    """Parse a file's bytes (see ``read_header`` for what is checked) into a ``SplatScene``.

    Raises:
        FormatError: the file is not a valid scene or exceeds ``limits``.
    """
    return scene_from(*read_header(data, limits))


def scene_from(header: Dict[str, Any], payload: memoryview) -> SplatScene:
    """The ``SplatScene`` of a header and payload that ``read_header`` has checked; every stream is
    decompressed and verified against its declared size.

    Raises:
        FormatError: a stream is corrupted or does not match the header.
    """
    count = header["count"]
    arrays: Dict[str, np.ndarray] = {}
    offset = 0
    for entry in header["attributes"]:
        name, shape, dtype = entry["name"], entry["shape"], entry["dtype"]
        size = count * math.prod(shape) * np.dtype(dtype).itemsize
        stream = payload[offset : offset + entry["compressed_bytes"]]
        offset += entry["compressed_bytes"]
        arrays[name] = _from_column_bytes(_inflate(stream, size, name), dtype, count, shape)
    means_entry = header["attributes"][0]
    if means_entry["dtype"] == "uint16":
        means = QuantizedPositions(
            "grid16", torch.from_numpy(arrays["means"].astype(np.int32)),
            _float32(means_entry.get("offset"), (3,), "means.offset"), _float32(means_entry.get("step"), (3,), "means.step"),
        )  # fmt: skip
    else:
        means = QuantizedPositions("float16", torch.from_numpy(arrays["means"]), torch.zeros(3), torch.zeros(3))
    entries = {entry["name"]: entry for entry in header["attributes"]}
    gaussians = QuantizedGaussians(
        means=means,
        scales=torch.from_numpy(arrays["scales"]),
        quats=torch.from_numpy(arrays["quats"]),
        opacities=torch.from_numpy(arrays["opacities"]),
        features_dc=_sh_block(entries["features_dc"], arrays["features_dc"]),
        features_rest=_sh_block(entries["features_rest"], arrays["features_rest"]),
    )
    frame, render = header["frame"], header["render"]
    return SplatScene(
        gaussians=gaussians,
        sh_degree=header["sh_degree"],
        dataparser_transform=tuple(tuple(row) for row in _array(frame["dataparser_transform"], (3, 4), "frame").tolist()),
        dataparser_scale=float(frame["dataparser_scale"]),
        background=tuple(float(c) for c in render["background"]),  # type: ignore[arg-type]
        rasterize_mode=render["rasterize_mode"],
        source=header.get("source") if isinstance(header.get("source"), dict) else {},
    )


def read_file(path: Path, limits: Limits = Limits()) -> SplatScene:
    """Read and decode a scene file.

    Raises:
        TrimError: the file is missing or unreadable; FormatError: it is not a valid scene.
    """
    return read_file_with_header(path, limits)[1]


def read_file_with_header(path: Path, limits: Limits = Limits()) -> Tuple[Dict[str, Any], SplatScene]:
    """Read and decode a scene file; returns its header too (e.g. the stored bytes per attribute).

    Raises:
        TrimError: the file is missing or unreadable; FormatError: it is not a valid scene (named in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise TrimError(f"{path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrimError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        header, payload = read_header(data, limits)
        return header, scene_from(header, payload)
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from None
