"""Format 2.x (specification: docs/format.md): the header schema, and a scene's codes to bytes and back.

The payload holds each attribute's streams (``core.codec.attributes``), in table order, Gaussians in Morton
order of their decoded positions. Reading checks the header against ``HEADER`` and the memory the decode
needs before a byte of the payload is read, and every stream's size before it is decompressed.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Tuple

import numpy as np

from nerfstudio_trim.core.codec.attributes import ATTRIBUTES, ReadContext, StreamSource
from nerfstudio_trim.core.codec.container import Container, FormatError, Limits, check_finite, check_memory, pack
from nerfstudio_trim.core.codec.morton import morton_order
from nerfstudio_trim.core.codec.header import common_fields
from nerfstudio_trim.core.codec.schema import Array, Int, Object, SchemaError, Str, parse_json
from nerfstudio_trim.core.codec.streams import UNSIGNED, compressed, from_column_bytes, inflate, smallest_unsigned
from nerfstudio_trim.core.quantize.gaussians import QuantizedGaussians
from nerfstudio_trim.core.scene import MAX_SH_DEGREE, SplatScene, sh_coefficients

FRAMES = ("nerfstudio-normalized", "capture")
"""Where positions live: nerfstudio's normalised frame (undone by the dataparser transform and scale), or the
capture's own frame (a scene read from another tool's PLY: identity transform)."""
STREAM = Object({"dtype": Str(choices=UNSIGNED), "bytes": Int(0, 2**62)}, ignore_unknown=True)
HEADER = Object(
    {
        **common_fields(frame_names=FRAMES),
        "order": Str(choices=("morton",)),
        "attributes": Array(Object({"name": Str(), "streams": Array(STREAM, max_length=8)}, ignore_unknown=True),
                            length=len(ATTRIBUTES)),
    },
    optional=("source",),
    ignore_unknown=True,
)  # fmt: skip
DECODE_BYTES_PER_VALUE = 24
"""Upper bound of the reader's memory per stored value (raw stream, int64 codes, float32 result)."""


def values_per_gaussian(sh_degree: int) -> int:
    """Values stored per Gaussian: opacity 1, scales 3, rotation 4, position 6, colour 3, degree 1, SH rest."""
    return 18 + 3 * sh_coefficients(sh_degree)


def write_attributes(g: QuantizedGaussians) -> List[Tuple[Dict[str, Any], List[np.ndarray], List[bytes]]]:
    """Each attribute's (header fields, streams, the streams compressed) in table order, Gaussians in Morton
    order: of the layouts an attribute offers, the one whose streams compress smallest (the first of equals)."""
    ordered = g.reordered(morton_order(g.means.dequantize()))
    layouts = [codec.write(ordered) for codec in ATTRIBUTES]
    arrays = [array for offered in layouts for _, streams in offered for array in streams]
    with ThreadPoolExecutor(max_workers=max(1, len(arrays))) as pool:  # lzma releases the GIL
        stored = iter(pool.map(compressed, arrays))
    written = []
    for offered in layouts:
        options = [(fields, streams, [next(stored) for _ in streams]) for fields, streams in offered]
        written.append(min(options, key=lambda option: sum(map(len, option[2]))))
    return written


def encode(scene: SplatScene) -> bytes:
    """The file's bytes for ``scene`` (its ``gaussians`` a format-2.x ``QuantizedGaussians``).

    Raises:
        FormatError: the scene does not fit the format (SH degree, non-finite side values).
    """
    g = scene.gaussians
    if not isinstance(g, QuantizedGaussians):
        raise FormatError("format 2.x writes Gaussians quantized by core.quantize.gaussians")
    if not 0 <= scene.sh_degree <= MAX_SH_DEGREE or g.features_rest.codes.shape[1] != sh_coefficients(scene.sh_degree):
        raise FormatError(f"features_rest {tuple(g.features_rest.codes.shape)} does not match SH degree {scene.sh_degree}")
    written = write_attributes(g)
    attributes = [
        {"name": codec.name, **fields,
         "streams": [{"dtype": smallest_unsigned(a), "bytes": len(data)} for a, data in zip(streams, stored)]}
        for codec, (fields, streams, stored) in zip(ATTRIBUTES, written)
    ]  # fmt: skip
    header = {
        "count": g.count, "sh_degree": scene.sh_degree, "order": "morton", "compression": "xz",
        "attributes": attributes,
        "frame": {"name": scene.frame, "dataparser_transform": [list(map(float, row)) for row in scene.dataparser_transform],
                  "dataparser_scale": float(scene.dataparser_scale)},
        "render": {"background": [float(c) for c in scene.background], "rasterize_mode": scene.rasterize_mode},
        "source": scene.source,
    }  # fmt: skip
    try:
        header_bytes = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except ValueError:
        raise FormatError("the scene has non-finite values (NaN or inf) where the file needs numbers") from None
    payload = b"".join(data for _, _, stored in written for data in stored)
    check_header(header_bytes, len(payload), Limits(max_gaussians=2**62))  # never write what a reader refuses
    return pack(header_bytes, payload)


def check_header(header_bytes: bytes, payload_size: int, limits: Limits) -> Dict[str, Any]:
    """Parse and check a 2.x header against ``HEADER``, each attribute's own fields and the limits; returns it.

    Raises:
        FormatError: the header does not match (the message names the field) or exceeds the limits.
    """
    try:
        header = HEADER.check(parse_json(header_bytes))
        if header["count"] > limits.max_gaussians:
            raise FormatError(f"header declares {header['count']:,} Gaussians, more than the limit of {limits.max_gaussians:,}")
        names = [entry["name"] for entry in header["attributes"]]
        if names != [codec.name for codec in ATTRIBUTES]:
            raise FormatError(f"header: the attribute table must list {', '.join(c.name for c in ATTRIBUTES)} in this order")
        raw = parse_json(header_bytes)["attributes"]
        header["attributes"] = [
            {**Object(codec.fields, ignore_unknown=True).check(raw[index], f"header.attributes[{index}]"), **entry}
            for index, (codec, entry) in enumerate(zip(ATTRIBUTES, header["attributes"]))
        ]
    except SchemaError as exc:
        raise FormatError(f"header: {exc}") from None
    total = sum(stream["bytes"] for entry in header["attributes"] for stream in entry["streams"])
    if total != payload_size:
        raise FormatError(f"header: attribute streams add up to {total:,} bytes, the payload has {payload_size:,}")
    return header


def decode_container(container: Container, limits: Limits) -> Tuple[Dict[str, Any], SplatScene]:
    """The header and scene of a 2.x file whose preamble and header bytes ``open_container`` has checked.

    Raises:
        FormatError: the header, the memory it needs, the checksum or a stream is not as required.
    """
    header = check_header(container.header_bytes, container.payload_size, limits)
    count, degree = header["count"], header["sh_degree"]
    check_memory(container.payload_size + count * DECODE_BYTES_PER_VALUE * values_per_gaussian(degree), limits)
    payload = memoryview(container.read_payload())
    descriptors = [(entry["name"], stream) for entry in header["attributes"] for stream in entry["streams"]]
    position = {"stream": 0, "offset": 0}

    def take(name: str, shape: Tuple[int, ...]) -> np.ndarray:
        index = position["stream"]
        if index >= len(descriptors) or descriptors[index][0] != name.split(".")[0]:
            raise FormatError(f"{name}: the header lists another number of streams for this attribute")
        stream = descriptors[index][1]
        data = payload[position["offset"] : position["offset"] + stream["bytes"]]
        position["stream"], position["offset"] = index + 1, position["offset"] + stream["bytes"]
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(stream["dtype"]).itemsize
        return from_column_bytes(inflate(data, size, name), stream["dtype"], shape[0], shape[1:])

    decoded: Dict[str, Any] = {}
    source = StreamSource(take)
    for codec, entry in zip(ATTRIBUTES, header["attributes"]):
        decoded[codec.name] = codec.read(entry, source, ReadContext(count, degree, decoded))
        if position["stream"] < len(descriptors) and descriptors[position["stream"]][0] == codec.name:
            raise FormatError(f"{codec.name}: the header lists another number of streams for this attribute")
    gaussians = QuantizedGaussians(**decoded)
    check_finite(gaussians)
    frame, render = header["frame"], header["render"]
    scene = SplatScene(
        gaussians=gaussians,
        sh_degree=degree,
        dataparser_transform=frame["dataparser_transform"],
        dataparser_scale=frame["dataparser_scale"],
        background=render["background"],
        rasterize_mode=render["rasterize_mode"],
        source=header.get("source", {}),
        frame=frame["name"],
    )
    return header, scene


def attribute_rows(header: Dict[str, Any]) -> List[Tuple[str, str, int]]:
    """(attribute, how it is coded, stored bytes) of a checked 2.x header, for ``ns-trim info``."""
    return [
        (codec.name, codec.describe(entry), sum(stream["bytes"] for stream in entry["streams"]))
        for codec, entry in zip(ATTRIBUTES, header["attributes"])
    ]
