"""The ``.nstrim`` container: preamble, header and payload, read in bounded steps.

Every version starts with the 8 magic bytes and a uint16 major and minor version. Then:
- 1.x: header length (uint32), payload length (uint64), SHA-256 of header + payload (56 bytes in all);
- 2.x: header length (uint32), payload length (uint64), SHA-256 of the header, SHA-256 of the payload
  (88 bytes in all), so the header can be verified and checked before any byte of the payload is read.

``open_container`` reads the preamble, checks the declared lengths against the limits and against the
file's real size, and reads (and, for 2.x, verifies) the header; the payload is read only when the caller
asks, once it has checked the header and the memory it needs. A file is never read whole before it is
checked.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Optional, Tuple

import torch

from nerfstudio_trim.core.scene import CodedGaussians
from nerfstudio_trim.errors import TrimError

MAGIC = b"\x89NSTRIM\n"
VERSION = struct.Struct("<8sHH")  # magic, major, minor
PREAMBLES = {
    1: struct.Struct("<8sHHIQ32s"),  # ..., header bytes, payload bytes, sha256(header + payload)
    2: struct.Struct("<8sHHIQ32s32s"),  # ..., header bytes, payload bytes, sha256(header), sha256(payload)
}
LATEST = (2, 1)


class FormatError(TrimError):
    """A file that is not a valid nerfstudio-trim scene (or exceeds the reader's limits)."""


@dataclass(frozen=True)
class Limits:
    """What a reader accepts before allocating anything."""

    max_gaussians: int = 50_000_000
    """Largest declared number of Gaussians."""
    max_header_bytes: int = 1 << 20
    """Largest JSON header."""
    max_memory_bytes: Optional[int] = None
    """Most memory decoding may use (None: the memory this machine has available now)."""

    def memory_budget(self) -> int:
        return self.max_memory_bytes if self.max_memory_bytes is not None else available_memory()

    @classmethod
    def with_memory(cls, gib: Optional[float]) -> "Limits":
        """The default limits with a memory budget of ``gib`` GiB (None: the memory available now)."""
        return cls(max_memory_bytes=None if gib is None else int(gib * 2**30))


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (MemAvailable on Linux; free pages elsewhere)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: no budget


def check_memory(needed: int, limits: Limits) -> None:
    """Refuse, before allocating, a decode that needs more than the memory budget.

    Raises:
        FormatError: ``needed`` bytes exceed the budget (both named in GiB).
    """
    budget = limits.memory_budget()
    if needed > budget:
        raise FormatError(
            f"decoding needs about {needed / 2**30:.2f} GiB of memory, more than the {budget / 2**30:.2f} GiB allowed "
            "(--max-memory, default: the memory available now)"
        )


def check_finite(gaussians: "CodedGaussians") -> None:
    """Refuse a decode whose parameters are not all finite (crafted side values can overflow float32).

    Raises:
        FormatError: naming the first attribute with a NaN or an infinity.
    """
    for name, values in gaussians.dequantize().items():
        if not bool(torch.isfinite(values).all()):
            raise FormatError(f"{name}: the file decodes to values that are not finite")


@dataclass
class Container:
    """A file whose preamble, lengths and header bytes have been checked; the payload is not read yet."""

    major: int
    minor: int
    header_bytes: bytes
    payload_size: int
    _file: BinaryIO
    _digests: Tuple[bytes, ...]

    def read_payload(self) -> bytes:
        """Read the payload and verify the checksum that covers it.

        Raises:
            FormatError: the file changed size meanwhile or its checksum does not match.
        """
        payload = self._file.read(self.payload_size)
        if len(payload) != self.payload_size:
            raise FormatError("file is truncated (it changed while being read)")
        if self.major == 1:
            digest = hashlib.sha256(self.header_bytes)
            digest.update(payload)
            if digest.digest() != self._digests[0]:
                raise FormatError("checksum mismatch: the file is corrupted")
        elif hashlib.sha256(payload).digest() != self._digests[1]:
            raise FormatError("checksum mismatch: the file is corrupted")
        return payload


def open_container(file: BinaryIO, size: int, limits: Limits) -> Container:
    """Read and check the preamble and header of a file of ``size`` bytes, positioned at its start.

    Raises:
        FormatError: wrong magic, an unsupported version, lengths over the limits or different from the file's
            size, a 2.x header whose checksum does not match.
    """
    start = file.read(VERSION.size)
    if len(start) < len(MAGIC) or start[: len(MAGIC)] != MAGIC:
        raise FormatError("not a nerfstudio-trim scene file (wrong magic bytes)")
    if len(start) < VERSION.size:
        raise FormatError("file is truncated (incomplete preamble)")
    _, major, minor = VERSION.unpack(start)
    if major not in PREAMBLES:
        newer = " (the file is newer: upgrade nerfstudio-trim)" if major > LATEST[0] else ""
        raise FormatError(f"format version {major}.{minor} is not supported: this nerfstudio-trim reads 1.x and 2.x{newer}")
    preamble = PREAMBLES[major]
    rest = file.read(preamble.size - VERSION.size)
    if len(rest) < preamble.size - VERSION.size:
        raise FormatError("file is truncated (incomplete preamble)")
    _, _, _, header_size, payload_size, *digests = preamble.unpack(start + rest)
    if header_size > limits.max_header_bytes:
        raise FormatError(f"header declares {header_size:,} bytes, more than the limit of {limits.max_header_bytes:,}")
    expected = preamble.size + header_size + payload_size
    if size < expected:
        raise FormatError(f"file is truncated: {size:,} bytes, the preamble declares {expected:,}")
    if size > expected:
        raise FormatError(f"file has {size - expected:,} unexpected bytes after its payload")
    header_bytes = file.read(header_size)
    if len(header_bytes) != header_size:
        raise FormatError("file is truncated (it changed while being read)")
    if major == 2 and hashlib.sha256(header_bytes).digest() != digests[0]:
        raise FormatError("checksum mismatch: the file is corrupted")
    return Container(major, minor, header_bytes, payload_size, file, tuple(digests))


def pack(header_bytes: bytes, payload: bytes) -> bytes:
    """A file of the latest version holding ``header_bytes`` and ``payload``."""
    return (
        PREAMBLES[LATEST[0]].pack(MAGIC, *LATEST, len(header_bytes), len(payload), hashlib.sha256(header_bytes).digest(),
                                  hashlib.sha256(payload).digest())
        + header_bytes
        + payload
    )  # fmt: skip
