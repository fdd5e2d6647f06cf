"""The compressed scene file, ``.nstrim`` (specification: docs/format.md): written as format 2.1, read as 2.x or 1.x.

    data = encode(scene)                       # format 2.1 bytes of a SplatScene of quantize_gaussians codes
    header, scene = read_file_with_header(path, Limits(max_memory_bytes=...))

Reading is bounded: preamble and header are read and checked (exact header schema, limits, the memory the
decode needs) before the payload; nothing on load executes code; every refusal is one ``FormatError`` line.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, List, Tuple

from nerfstudio_trim.core.codec import format1, format2
from nerfstudio_trim.core.codec.container import Container, FormatError, Limits, open_container
from nerfstudio_trim.core.scene import SplatScene
from nerfstudio_trim.errors import TrimError

EXTENSION = ".nstrim"
encode = format2.encode

__all__ = ["EXTENSION", "FormatError", "Limits", "decode", "encode", "read_file", "read_file_with_header", "attribute_rows"]


def _decode(container: Container, limits: Limits) -> Tuple[Dict[str, Any], SplatScene]:
    """(checked header with its "version" [major, minor] added, scene) of a checked container."""
    module = format1 if container.major == 1 else format2
    header, scene = module.decode_container(container, limits)
    return {**header, "version": (container.major, container.minor)}, scene


def decode(data: bytes, limits: Limits = Limits()) -> SplatScene:
    """Parse a file's bytes into a ``SplatScene``.

    Raises:
        FormatError: the file is not a valid scene or exceeds ``limits``.
    """
    return _decode(open_container(io.BytesIO(data), len(data), limits), limits)[1]


def read_file(path: Path, limits: Limits = Limits()) -> SplatScene:
    """Read and decode a scene file (see ``read_file_with_header``)."""
    return read_file_with_header(path, limits)[1]


def read_file_with_header(path: Path, limits: Limits = Limits()) -> Tuple[Dict[str, Any], SplatScene]:
    """Read and decode a scene file; returns its checked header too (e.g. the stored bytes per attribute).

    Raises:
        TrimError: the file is missing or unreadable; FormatError: it is not a valid scene (named in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise TrimError(f"{path} does not exist" if not path.exists() else f"{path} is not a regular file")
    try:
        with open(path, "rb") as file:
            container = open_container(file, path.stat().st_size, limits)
            return _decode(container, limits)
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from None
    except OSError as exc:
        raise TrimError(f"cannot read {path}: {exc.strerror or exc}") from None


def attribute_rows(header: Dict[str, Any]) -> List[Tuple[str, str, int]]:
    """(attribute, how it is coded, stored bytes) of a header as ``read_file_with_header`` returns it."""
    return (format1 if header["version"][0] == 1 else format2).attribute_rows(header)
