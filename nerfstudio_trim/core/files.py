"""Atomic file writes: an interrupted write never leaves a file that looks valid."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

from nerfstudio_trim.errors import TrimError


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, then a rename, so an
    interrupted write never leaves a file under ``path``.

    Raises:
        TrimError: the folder cannot be written.
    """
    path = Path(path)
    temporary: Optional[str] = None
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes the file private; a written file is not
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        temporary = None
    except OSError as exc:
        raise TrimError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


def check_writable(folder: Path) -> None:
    """``folder`` exists and is writable, or can be created: checked before long work, nothing created.

    Raises:
        TrimError: it (or its nearest existing parent) is not a writable folder.
    """
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise TrimError(f"cannot write to {folder}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TrimError(f"cannot write to {folder}: {existing} is not writable")


def make_dir(folder: Path) -> None:
    """Create ``folder`` and its parents if missing.

    Raises:
        TrimError: it cannot be created.
    """
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrimError(f"cannot create {folder}: {exc.strerror or exc}") from None
