"""Arrays as compressed streams: column by column, bytes shuffled by significance, one xz stream each.

Both format versions store every array so: the N values of component 0, then of component 1, ...; for a
dtype of B bytes, first the lowest byte of every value, then the second byte of every value, ...; then
LZMA2 in the xz container (preset 9 extreme, CRC64). Decompression never produces more than the size the
header declares.
"""

from __future__ import annotations

import lzma
import math
from typing import Sequence

import numpy as np

from nerfstudio_trim.core.codec.container import FormatError

XZ_PRESET = 9 | lzma.PRESET_EXTREME
UNSIGNED = ("uint8", "uint16", "uint32", "uint64")


def column_bytes(array: np.ndarray) -> bytes:
    """[N, ...] array stored column by column (component-major), its bytes shuffled by significance."""
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    columns = np.ascontiguousarray(little.reshape(array.shape[0], math.prod(array.shape[1:])).T)
    raw = columns.view(np.uint8).reshape(-1, array.dtype.itemsize)
    return np.ascontiguousarray(raw.T).tobytes()


def from_column_bytes(data: bytes, dtype: str, count: int, shape: Sequence[int]) -> np.ndarray:
    """Inverse of ``column_bytes``: a writable [count, *shape] array of ``dtype``."""
    itemsize = np.dtype(dtype).itemsize
    components = math.prod(shape)
    raw = np.frombuffer(data, dtype=np.uint8).reshape(itemsize, count * components)
    columns = np.ascontiguousarray(raw.T).view(np.dtype(dtype).newbyteorder("<")).reshape(components, count)
    return np.array(columns.T, dtype=np.dtype(dtype), order="C").reshape(count, *shape)


def deflate(data: bytes) -> bytes:
    """One xz stream of ``data``."""
    return lzma.compress(data, format=lzma.FORMAT_XZ, preset=XZ_PRESET)


def inflate(stream: bytes | memoryview, size: int, name: str) -> bytes:
    """Decompress one xz stream that must hold exactly ``size`` bytes (never more is allocated).

    Raises:
        FormatError: the stream is corrupted or holds another size.
    """
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        data = decompressor.decompress(bytes(stream), max_length=size + 1)
    except lzma.LZMAError as exc:
        raise FormatError(f"{name}: compressed data is corrupted ({exc})") from None
    if len(data) != size or not decompressor.eof or decompressor.unused_data:
        raise FormatError(f"{name}: decompressed size does not match the header")
    return data


def compressed(array: np.ndarray) -> bytes:
    """``array`` of non-negative integers as the file stores it: in its ``smallest_unsigned`` dtype, column by
    column, byte-shuffled, one xz stream."""
    return deflate(column_bytes(array.astype(smallest_unsigned(array))))


def smallest_unsigned(values: np.ndarray) -> str:
    """The narrowest unsigned dtype that holds every (non-negative integer) value."""
    largest = int(values.max()) if values.size else 0
    for dtype in UNSIGNED:
        if largest <= np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"{largest} does not fit 64 bits")


def zigzag(values: np.ndarray) -> np.ndarray:
    """Signed integers to unsigned ones, small magnitudes first: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ..."""
    values = values.astype(np.int64)
    return np.where(values >= 0, 2 * values, -2 * values - 1).astype(np.uint64)


def unzigzag(values: np.ndarray) -> np.ndarray:
    """Inverse of ``zigzag`` (int64)."""
    values = values.astype(np.uint64)
    half = (values >> np.uint64(1)).astype(np.int64)
    return np.where((values & np.uint64(1)) == 0, half, -half - 1)


def pack_bits(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Non-negative ``values`` [M], each in its ``widths`` [M] bits (0-63), concatenated most significant bit
    first and zero-padded to whole bytes: [ceil(sum(widths) / 8)] uint8."""
    values, widths = values.astype(np.uint64).reshape(-1), widths.astype(np.int64).reshape(-1)
    starts = np.cumsum(widths) - widths
    bits = np.zeros(int(widths.sum()), dtype=np.uint8)
    for k in range(int(widths.max()) if widths.size else 0):
        has = widths > k
        shift = (widths[has] - 1 - k).astype(np.uint64)
        bits[starts[has] + k] = ((values[has] >> shift) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits)


def unpack_bits(data: np.ndarray, widths: np.ndarray, name: str) -> np.ndarray:
    """Inverse of ``pack_bits``: [M] int64 values of ``widths`` [M] bits from ``data`` (uint8 of exactly the
    packed length).

    Raises:
        FormatError: the padding bits after the last value are not zero.
    """
    widths = widths.astype(np.int64).reshape(-1)
    total = int(widths.sum())
    bits = np.unpackbits(data.astype(np.uint8))
    if bits[total:].any():
        raise FormatError(f"{name}: the padding after the last value is not zero")
    starts = np.cumsum(widths) - widths
    values = np.zeros(widths.size, dtype=np.int64)
    for k in range(int(widths.max()) if widths.size else 0):
        has = widths > k
        values[has] |= bits[starts[has] + k].astype(np.int64) << (widths[has] - 1 - k)
    return values
