"""Format 2.x's attribute codecs, one table: for each attribute, its header fields (schema), how its codes
become streams, and how streams and header fields become codes again.

Attributes are written and read in table order; a later attribute may use an earlier one's codes (the
positions' grid levels come from the scale codes). Every stream is an array of non-negative integers
(signed codes zig-zag mapped) stored by ``core.codec.streams``; its element count follows from the count
of Gaussians and earlier streams, so a reader knows each stream's size before decompressing it, and every
decoded code is range-checked before use.

An attribute's ``encoding`` field names how its codes are laid out in streams. The writer uses format 2.1's
(for the colour, whichever of two compresses smaller); the reader also reads the ones format 2.0 wrote
(``scale-grid``, ``levels`` for the colour, ``sh-bands``), and a reader that predates an encoding refuses the
file by its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import torch

from nerfstudio_trim.core.codec.container import FormatError
from nerfstudio_trim.core.codec.schema import Array, Float, Int, Schema, Str
from nerfstudio_trim.core.codec.streams import pack_bits, unpack_bits, unzigzag, zigzag
from nerfstudio_trim.core.quantize.gaussians import QuantizedGaussians
from nerfstudio_trim.core.quantize.positions import GRID_BITS, MAX_LEVEL, ScaleGridPositions, levels_of
from nerfstudio_trim.core.quantize.rotations import SmallestThree
from nerfstudio_trim.core.quantize.sh_bands import BandCodes, band_slices, largest_code
from nerfstudio_trim.core.quantize.uniform import UniformCodes
from nerfstudio_trim.core.scene import sh_coefficients

MAX_SCALE_CODE = 2**24 - 1
"""Largest log-scale code a reader accepts (a range of 2^24 steps)."""


class StreamSource:
    """Hands an attribute's ``read`` its streams in order, decoded and checked (see ``core.codec.format2``)."""

    def __init__(self, take: Callable[[str, Tuple[int, ...]], np.ndarray]):
        self._take = take

    def take(self, name: str, shape: Tuple[int, ...], largest: int) -> np.ndarray:
        """The next stream as a [*shape] int64 array; every value must be from 0 to ``largest``."""
        values = self._take(name, shape)
        if values.size and int(values.max()) > largest:
            raise FormatError(f"{name}: a code exceeds {largest:,}")
        return values.astype(np.int64)


@dataclass(frozen=True)
class ReadContext:
    """What an attribute's reader knows: the Gaussian count, SH degree and the codes read so far."""

    count: int
    sh_degree: int
    decoded: Mapping[str, Any]


Layout = Tuple[Dict[str, Any], List[np.ndarray]]
"""An attribute's codes as the file can store them: (header fields, streams)."""


@dataclass(frozen=True)
class AttributeCodec:
    """One attribute of format 2.x (see the module docstring)."""

    name: str
    fields: Mapping[str, Schema]
    """Header fields besides ``name`` and ``streams``."""
    write: Callable[[QuantizedGaussians], List[Layout]]
    """The codes in one or more layouts, each (header fields, streams as non-negative integer arrays [n, ...]);
    the writer keeps the one whose streams compress smallest (the first of equals)."""
    read: Callable[[Dict[str, Any], StreamSource, ReadContext], Any]
    """The codes from checked header fields and the streams."""
    describe: Callable[[Dict[str, Any]], str]
    """A short text for ``ns-trim info``."""


def _tensor(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values))


def _floats(values: torch.Tensor) -> List[float]:
    """float32 values as Python floats (exact: JSON round-trips doubles)."""
    return values.detach().to(torch.float32).cpu().reshape(-1).tolist()


def _float32(values: Sequence[float], shape: Tuple[int, ...]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).to(torch.float32).reshape(shape)


def _numpy(codes: torch.Tensor) -> np.ndarray:
    return codes.detach().cpu().numpy()


# -- opacities: logits on 2^bits levels ------------------------------------------------------------------------

def _write_levels(codes: UniformCodes, encoding: str) -> Tuple[Dict[str, Any], List[np.ndarray]]:
    fields = {"encoding": encoding, "bits": codes.bits, "low": _floats(codes.low), "step": _floats(codes.step)}
    return fields, [_numpy(codes.codes)]


def _read_levels(fields: Dict[str, Any], streams: StreamSource, count: int, channels: int, name: str) -> UniformCodes:
    codes = streams.take(name, (count, channels), 2 ** fields["bits"] - 1)
    return UniformCodes(_tensor(codes), _float32(fields["low"], (channels,)), _float32(fields["step"], (channels,)), fields["bits"])


def _levels_fields(channels: int, *encodings: str) -> Dict[str, Schema]:
    return {"encoding": Str(choices=encodings), "bits": Int(1, 16), "low": Array(Float(), length=channels),
            "step": Array(Float(0.0), length=channels)}  # fmt: skip


# -- scales: log scales on a fixed step ------------------------------------------------------------------------

def _write_scales(g: QuantizedGaussians) -> Tuple[Dict[str, Any], List[np.ndarray]]:
    fields = {"encoding": "log-step", "low": _floats(g.scales.low)[0], "step": _floats(g.scales.step)[0]}
    return fields, [_numpy(g.scales.codes)]


def _read_scales(fields: Dict[str, Any], streams: StreamSource, context: ReadContext) -> UniformCodes:
    codes = streams.take("scales", (context.count, 3), MAX_SCALE_CODE)
    return UniformCodes(_tensor(codes), _float32([fields["low"]], (1,)), _float32([fields["step"]], (1,)))


# -- quats: smallest three --------------------------------------------------------------------------------------

def _write_quats(g: QuantizedGaussians) -> Tuple[Dict[str, Any], List[np.ndarray]]:
    return {"encoding": "smallest-three", "bits": g.quats.bits}, [_numpy(g.quats.largest), _numpy(g.quats.codes)]


def _read_quats(fields: Dict[str, Any], streams: StreamSource, context: ReadContext) -> SmallestThree:
    largest = streams.take("quats.largest", (context.count,), 3)
    codes = streams.take("quats", (context.count, 3), 2 ** fields["bits"] - 1)
    return SmallestThree(_tensor(largest), _tensor(codes), fields["bits"])


# -- means: per-Gaussian grids, coarse part as deltas in file order, fine part in exactly its bits -------------

def _estimated_bits(values: np.ndarray) -> float:
    """Zero-order entropy of ``values`` in bits, times their number."""
    _, counts = np.unique(values, return_counts=True)
    return float(-(counts * np.log2(counts / values.size)).sum()) if values.size else 0.0


def _split_level(coordinates: np.ndarray, levels: np.ndarray) -> int:
    """The level at which coordinates are split into a delta-coded coarse part and a fine remainder: of a few
    levels around the median, the one with the fewest estimated bits (entropy of the deltas plus the
    remainders' bits)."""
    middle = int(np.median(levels)) if levels.size else 0
    candidates = [level for level in range(middle - 1, middle + 3) if 0 <= level <= MAX_LEVEL] or [0]

    def cost(split: int) -> float:
        deltas = np.diff(coordinates >> split, axis=0)
        return _estimated_bits(deltas) + 3.0 * float(np.clip(split - levels, 0, None).sum())

    return min(candidates, key=cost)


def _fine_widths(levels: np.ndarray, split: int) -> np.ndarray:
    """[N, 3] bits of each coordinate's fine part: the levels between the Gaussian's own and the split."""
    return np.repeat(np.maximum(split - levels, 0)[:, None], 3, axis=1)


def _write_means(g: QuantizedGaussians) -> Tuple[Dict[str, Any], List[np.ndarray]]:
    means = g.means
    coordinates, levels = _numpy(means.coordinates), _numpy(means.levels)
    split = _split_level(coordinates, levels)
    coarse = coordinates >> split
    deltas = np.diff(coarse, axis=0, prepend=np.zeros((1, 3), dtype=np.int64))
    fine = (coordinates & ((1 << split) - 1)) >> np.minimum(levels, split)[:, None]
    fields = {"encoding": "scale-grid-bits", "origin": _floats(means.origin), "base_step": means.base_step,
              "level_offset": means.level_offset, "level_divisor": means.level_divisor, "split": split}  # fmt: skip
    return fields, [zigzag(deltas), pack_bits(fine, _fine_widths(levels, split))]


def _read_means(fields: Dict[str, Any], streams: StreamSource, context: ReadContext) -> ScaleGridPositions:
    count, split = context.count, fields["split"]
    scales: UniformCodes = context.decoded["scales"]
    levels = _numpy(levels_of(scales.codes, fields["level_offset"], fields["level_divisor"]))
    deltas = unzigzag(streams.take("means", (count, 3), 2**64 - 1))
    coarse = np.cumsum(deltas, axis=0) if count else deltas
    if count and (int(coarse.min()) < 0 or int(coarse.max()) >= 2 ** (GRID_BITS - split)):
        raise FormatError(f"means: a coordinate lies outside the {GRID_BITS}-bit grid")
    if fields["encoding"] == "scale-grid-bits":
        widths = _fine_widths(levels, split)
        packed = streams.take("means.fine", (-(-int(widths.sum()) // 8),), 255)
        fine = unpack_bits(packed, widths, "means.fine").reshape(count, 3)
    else:  # "scale-grid" (format 2.0): the fine part as integers
        fine = streams.take("means.fine", (count, 3), 2**split - 1)
        if count and bool((fine >> np.maximum(split - levels, 0)[:, None]).any()):
            raise FormatError("means: a fine coordinate has more bits than its Gaussian's level allows")
    coordinates = (coarse << split) | (fine << np.minimum(levels, split)[:, None])
    return ScaleGridPositions(_tensor(coordinates), _tensor(levels), _float32(fields["origin"], (3,)),
                              fields["base_step"], fields["level_offset"], fields["level_divisor"])  # fmt: skip


# -- features_dc: levels per channel, red and blue as differences from green where that codes smaller --------------

def _write_colour(g: QuantizedGaussians) -> List[Layout]:
    """The three channels as they are, or red and blue as differences from green (the channels of a colour
    move together: 0.3 bytes per Gaussian less on trimmed SH-3 scenes; an SH-degree-0 colour is a logit per
    channel, whose differences can cost more)."""
    fields, [codes] = _write_levels(g.features_dc, "levels")
    green = codes[:, 1:2]
    differences = np.concatenate([zigzag(codes[:, :1] - green), green, zigzag(codes[:, 2:] - green)], axis=1)
    return [(fields, [codes]), ({**fields, "encoding": "levels-green-differences"}, [differences])]


def _read_colour(fields: Dict[str, Any], streams: StreamSource, context: ReadContext) -> UniformCodes:
    if fields["encoding"] == "levels":  # format 2.0: the three channels as they are
        return _read_levels(fields, streams, context.count, 3, "features_dc")
    largest = 2 ** fields["bits"] - 1
    stored = streams.take("features_dc", (context.count, 3), 2 * largest)
    green = stored[:, 1:2]
    if int(green.max(initial=0)) > largest:
        raise FormatError(f"features_dc: a code exceeds {largest:,}")
    codes = np.concatenate([green + unzigzag(stored[:, :1]), green, green + unzigzag(stored[:, 2:])], axis=1)
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) > largest):
        raise FormatError(f"features_dc: a channel's code falls outside 0 to {largest:,}")
    return UniformCodes(_tensor(codes), _float32(fields["low"], (3,)), _float32(fields["step"], (3,)), fields["bits"])


# -- features_rest: signed codes per band, a degree per Gaussian, each band coefficient by coefficient --------------

def _write_rest(g: QuantizedGaussians) -> Tuple[Dict[str, Any], List[np.ndarray]]:
    rest = g.features_rest
    codes, degrees = _numpy(rest.codes), _numpy(rest.degrees)
    steps = rest.steps.detach().to(torch.float32).cpu().tolist()
    streams = [degrees] if rest.bits else []
    for band, (start, end) in enumerate(band_slices(len(rest.bits)), start=1):
        streams.append(zigzag(codes[degrees >= band, start:end].transpose(1, 0, 2).reshape(-1)))
    return {"encoding": "sh-bands-by-coefficient", "bits": list(rest.bits), "steps": steps}, streams


def _read_rest(fields: Dict[str, Any], streams: StreamSource, context: ReadContext) -> BandCodes:
    degree, count = context.sh_degree, context.count
    bits = fields["bits"]
    if len(bits) != degree or len(fields["steps"]) != sh_coefficients(degree):
        raise FormatError(f"features_rest: bits and steps must cover SH degree {degree}")
    codes = np.zeros((count, sh_coefficients(degree), 3), dtype=np.int64)
    if degree:
        degrees = streams.take("features_rest.degrees", (count,), degree)
        for band, (start, end) in enumerate(band_slices(degree), start=1):
            selected, name = degrees >= band, f"features_rest.band{band}"
            largest, shape = largest_code(bits[band - 1]), (int(selected.sum()), end - start, 3)
            if fields["encoding"] == "sh-bands-by-coefficient":
                stored = streams.take(name, (shape[0] * shape[1] * 3,), 2 * largest)
                band_codes = stored.reshape(shape[1], shape[0], 3).transpose(1, 0, 2)
            else:  # "sh-bands" (format 2.0): Gaussian by Gaussian, stored column by column
                band_codes = streams.take(name, shape, 2 * largest)
            codes[selected, start:end] = unzigzag(band_codes)
    steps = _float32([value for row in fields["steps"] for value in row], (sh_coefficients(degree), 3))
    return BandCodes(_tensor(codes), steps, tuple(bits))


ATTRIBUTES: Tuple[AttributeCodec, ...] = (
    AttributeCodec(
        "opacities", _levels_fields(1, "logit-levels"),
        write=lambda g: [_write_levels(g.opacities, "logit-levels")],
        read=lambda f, s, c: _read_levels(f, s, c.count, 1, "opacities"),
        describe=lambda f: f"logit, {f['bits']} bits",
    ),
    AttributeCodec(
        "scales", {"encoding": Str(choices=("log-step",)), "low": Float(), "step": Float(1e-6, 16.0)},
        write=lambda g: [_write_scales(g)], read=_read_scales, describe=lambda f: f"log, step {f['step']:.3g}",
    ),
    AttributeCodec(
        "quats", {"encoding": Str(choices=("smallest-three",)), "bits": Int(2, 16)},
        write=lambda g: [_write_quats(g)], read=_read_quats, describe=lambda f: f"smallest three, {f['bits']} bits",
    ),
    AttributeCodec(
        "means",
        {"encoding": Str(choices=("scale-grid-bits", "scale-grid")), "origin": Array(Float(), length=3), "base_step": Float(1e-30),
         "level_offset": Int(-(2**40), 2**40), "level_divisor": Int(1, 2**20), "split": Int(0, MAX_LEVEL)},
        write=lambda g: [_write_means(g)], read=_read_means, describe=lambda f: "grid of each Gaussian's size, coarse part delta-coded"
        + (", fine part in its bits" if f["encoding"] == "scale-grid-bits" else ""),
    ),  # fmt: skip
    AttributeCodec(
        "features_dc", _levels_fields(3, "levels-green-differences", "levels"),
        write=_write_colour, read=_read_colour,
        describe=lambda f: f"{f['bits']} bits per channel" + (", red and blue from green" if f["encoding"] != "levels" else ""),
    ),
    AttributeCodec(
        "features_rest",
        {"encoding": Str(choices=("sh-bands-by-coefficient", "sh-bands")), "bits": Array(Int(1, 8), max_length=3),
         "steps": Array(Array(Float(0.0), length=3), max_length=15)},
        write=lambda g: [_write_rest(g)], read=_read_rest,
        describe=lambda f: "degree per Gaussian, bands of " + "/".join(map(str, f["bits"])) + " bits" if f["bits"] else "none",
    ),  # fmt: skip
)
