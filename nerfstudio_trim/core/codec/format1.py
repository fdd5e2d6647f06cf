"""Format 1.0, read only (specification: docs/format.md, "Format 1.0"): files written before 2.0 still decode.

Each attribute is one stream of float16 (positions also uint16 on a grid, ``grid16``) or of 8-bit SH codes
with a scale and offset per channel or per tensor; dequantization is the same float32 expressions 1.0's
writer rendered through, so a 1.0 file decodes to exactly what it decoded to before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from torch import Tensor

from nerfstudio_trim.core.codec.container import Container, FormatError, Limits, check_finite, check_memory
from nerfstudio_trim.core.codec.header import common_fields
from nerfstudio_trim.core.codec.schema import Array, Float, Int, Matrix, Object, SchemaError, Str, parse_json
from nerfstudio_trim.core.codec.streams import from_column_bytes, inflate
from nerfstudio_trim.core.scene import SplatScene, sh_coefficients

ATTRIBUTES = ("means", "scales", "quats", "opacities", "features_dc", "features_rest")
DTYPES = {
    "means": ("float16", "uint16"), "scales": ("float16",), "quats": ("float16",), "opacities": ("float16",),
    "features_dc": ("uint8",), "features_rest": ("uint8",),
}  # fmt: skip
ENTRY = Object(
    {"name": Str(choices=ATTRIBUTES), "shape": Array(Int(0, 64), max_length=2), "dtype": Str(max_chars=16),
     "compressed_bytes": Int(0, 2**62), "encoding": Str(), "granularity": Str(choices=("channel", "tensor"))},
    optional=("encoding", "granularity"),
    ignore_unknown=True,
)  # fmt: skip
HEADER = Object(
    {**common_fields(frame_names=None), "attributes": Array(Object({}, ignore_unknown=True), length=len(ATTRIBUTES))},
    optional=("source",),
    ignore_unknown=True,
)


@dataclass
class Format1Gaussians:
    """A 1.0 file's arrays (Gaussians in file order) and the side values that dequantize them."""

    arrays: Dict[str, np.ndarray]  # by attribute name, [N, *shape]
    entries: Dict[str, Dict[str, Any]]  # checked attribute table entries

    @property
    def count(self) -> int:
        return int(self.arrays["scales"].shape[0])

    def dequantize(self) -> Dict[str, Tensor]:
        """float32 parameters by splatfacto's names (features_dc [N, 3])."""
        means = self.entries["means"]
        positions = torch.from_numpy(self.arrays["means"])
        if means["dtype"] == "uint16":
            positions = positions.to(torch.int32).to(torch.float32) * _float32(means["step"]) + _float32(means["offset"])
        return {
            "means": positions.to(torch.float32),
            "scales": torch.from_numpy(self.arrays["scales"]).to(torch.float32),
            "quats": torch.from_numpy(self.arrays["quats"]).to(torch.float32),
            "opacities": torch.from_numpy(self.arrays["opacities"]).to(torch.float32),
            "features_dc": self._sh("features_dc")[:, 0, :],
            "features_rest": self._sh("features_rest"),
        }

    def _sh(self, name: str) -> Tensor:
        entry = self.entries[name]
        shape = entry["shape"] if entry["granularity"] == "channel" else (1, 1)
        codes = torch.from_numpy(self.arrays[name]).to(torch.float32)
        return codes * _float32(entry["scale"]).reshape(shape) + _float32(entry["offset"]).reshape(shape)


def _float32(values: Any) -> Tensor:
    return torch.tensor(values, dtype=torch.float64).to(torch.float32)


def _check_entry(raw: Dict[str, Any], index: int, degree: int) -> Dict[str, Any]:
    """Attribute table entry ``index`` with its dtype, shape and quantization parameters checked exactly."""
    path = f"header.attributes[{index}]"
    entry = ENTRY.check(raw, path)
    name = entry["name"]
    shapes = {"means": (3,), "scales": (3,), "quats": (4,), "opacities": (1,), "features_dc": (1, 3),
              "features_rest": (sh_coefficients(degree), 3)}  # fmt: skip
    if entry["dtype"] not in DTYPES[name]:
        raise FormatError(f"header: {name} has dtype {entry['dtype']!r}, expected one of {DTYPES[name]}")
    if entry["shape"] != shapes[name]:
        raise FormatError(f"header: {name} has shape {list(entry['shape'])}, expected {list(shapes[name])}")
    if name == "means" and entry["dtype"] == "uint16":
        grid = Array(Float(), length=3)
        entry.update(Object({"offset": grid, "step": grid}, ignore_unknown=True).check(raw, path))
    if name.startswith("features_"):
        if "granularity" not in entry:
            raise FormatError(f"header: {name}.granularity must be 'channel' or 'tensor'")
        shape = shapes[name] if entry["granularity"] == "channel" else (1, 1)
        entry.update(Object({"scale": Matrix(*shape), "offset": Matrix(*shape)}, ignore_unknown=True).check(raw, path))
    return entry


def check_header(header_bytes: bytes, payload_size: int, limits: Limits) -> Dict[str, Any]:
    """Parse and check a 1.x header exactly; returns it with attribute entries checked.

    Raises:
        FormatError: the header does not match (the message names the field) or exceeds the limits.
    """
    try:
        raw = parse_json(header_bytes)
        header = HEADER.check(raw)
        if header["count"] > limits.max_gaussians:
            raise FormatError(f"header declares {header['count']:,} Gaussians, more than the limit of {limits.max_gaussians:,}")
        names = [entry.get("name") for entry in raw["attributes"]]
        if names != list(ATTRIBUTES):
            raise FormatError(f"header: the attribute table must list {', '.join(ATTRIBUTES)} in this order")
        header["attributes"] = [_check_entry(entry, index, header["sh_degree"]) for index, entry in enumerate(raw["attributes"])]
    except SchemaError as exc:
        raise FormatError(f"header: {exc}") from None
    total = sum(entry["compressed_bytes"] for entry in header["attributes"])
    if total != payload_size:
        raise FormatError(f"header: attribute streams add up to {total:,} bytes, the payload has {payload_size:,}")
    return header


def decode_container(container: Container, limits: Limits) -> Tuple[Dict[str, Any], SplatScene]:
    """The header and scene of a 1.x file whose preamble ``open_container`` has checked. The payload (bounded
    by the file's real size and the memory budget) is read and the checksum verified first, as 1.x has one
    checksum for header and payload.

    Raises:
        FormatError: a checksum mismatch, a header that does not match, a corrupted stream, too little memory.
    """
    check_memory(container.payload_size, limits)
    payload = memoryview(container.read_payload())
    header = check_header(container.header_bytes, container.payload_size, limits)
    count = header["count"]
    raw_sizes = [count * math.prod(e["shape"]) * np.dtype(e["dtype"]).itemsize for e in header["attributes"]]
    check_memory(container.payload_size + 6 * sum(raw_sizes), limits)
    arrays: Dict[str, np.ndarray] = {}
    offset = 0
    for entry, size in zip(header["attributes"], raw_sizes):
        stream = payload[offset : offset + entry["compressed_bytes"]]
        offset += entry["compressed_bytes"]
        arrays[entry["name"]] = from_column_bytes(inflate(stream, size, entry["name"]), entry["dtype"], count, entry["shape"])
    frame, render = header["frame"], header["render"]
    gaussians = Format1Gaussians(arrays, {entry["name"]: entry for entry in header["attributes"]})
    check_finite(gaussians)
    scene = SplatScene(
        gaussians=gaussians,
        sh_degree=header["sh_degree"],
        dataparser_transform=frame["dataparser_transform"],
        dataparser_scale=frame["dataparser_scale"],
        background=render["background"],
        rasterize_mode=render["rasterize_mode"],
        source=header.get("source", {}),
    )
    return header, scene


def attribute_rows(header: Dict[str, Any]) -> List[Tuple[str, str, int]]:
    """(attribute, how it is coded, stored bytes) of a checked 1.x header, for ``ns-trim info``."""
    rows = []
    for entry in header["attributes"]:
        coding = entry["dtype"] + (f", 8-bit codes per {entry['granularity']}" if "granularity" in entry else "")
        rows.append((entry["name"], coding, entry["compressed_bytes"]))
    return rows
