"""Output files: checked before long work, written atomically (an interrupted write never leaves a file
that looks valid)."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, Iterator, Optional, Union

from nerfstudio_trim.errors import TrimError

TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""Signals after which ``write_atomic`` removes its temporary file before the signal takes effect."""
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip
_Handler = Union[Callable[[int, Optional[FrameType]], Any], int]


def _refuse_special(path: Path) -> None:
    """Raise TrimError when ``path`` (symbolic links followed) exists and is not a regular file."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise TrimError(f"cannot write {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        kind = next((kind for test, kind in _KINDS if test(mode)), "a special file")
        raise TrimError(f"cannot write {path}: it is {kind}, not a regular file")


def check_output(path: Path, *inputs: Path) -> None:
    """``path`` can be written as an output file: checked before long work, nothing created.

    Its folder exists and is writable or can be created (``check_writable``); ``path`` is not an existing
    folder, FIFO, device or socket (it would be replaced or written into); it is not the same file as any
    of ``inputs`` (symbolic and hard links included: replacing it would destroy the input).

    Raises:
        TrimError: one of these does not hold.
    """
    path = Path(path)
    check_writable(path.absolute().parent)
    _refuse_special(path)
    for source in inputs:
        try:
            same = os.path.samefile(path, source)
        except OSError:  # either does not exist (yet)
            continue
        if same:
            raise TrimError(f"cannot write {path}: it is the input {source}; choose another output")


@contextlib.contextmanager
def _cleaned_up_on_termination(cleanup: Callable[[], None]) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT run ``cleanup`` before taking their normal effect.

    A signal whose previous handler is Python code (e.g. SIGINT's KeyboardInterrupt) goes to that handler:
    the exception it raises leaves the block through the caller's own cleanup. A signal with the default
    action (terminate) runs ``cleanup``, restores the previous handlers and is raised again, so the process
    ends as it would have. Ignored signals stay ignored. The previous handlers are restored on leaving.
    Handlers can only be installed by the main thread: elsewhere nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in TERMINATING_SIGNALS}
    # None: a handler installed outside Python, which could not be restored; SIG_IGN: nothing to do
    handled: Dict[int, _Handler] = {
        number: handler for number, handler in previous.items() if handler not in (None, signal.SIG_IGN)
    }

    def restore() -> None:
        for number, handler in handled.items():
            signal.signal(number, handler)

    def on_signal(number: int, frame: Optional[FrameType]) -> None:
        handler = handled[number]
        if callable(handler):
            handler(number, frame)
            return
        cleanup()
        restore()
        os.kill(os.getpid(), number)  # the default action, now without a partial file

    for number in handled:
        signal.signal(number, on_signal)
    try:
        yield
    finally:
        restore()


def _mode_for(path: Path) -> int:
    """Permission bits for a file written to ``path``: those of the file there, else 0o666 minus the umask."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file ``.NAME.XXXX.partial`` in the same folder,
    then a rename, so an interrupted write never leaves a file under ``path``.

    A file replaced keeps its permission bits (``st_mode & 0o777``; not its owner); a new file gets
    0o666 minus the umask. The temporary file is removed on an exception, on SIGINT and on SIGTERM
    (which then end the process as they would have; see ``_cleaned_up_on_termination``); SIGKILL cannot
    be caught, so a killed process may leave a ``.partial`` file behind (never a file under ``path``).

    Raises:
        TrimError: the folder cannot be written, or ``path`` is a folder or a special file (FIFO, device,
            socket), which is never replaced.
    """
    path = Path(path)
    _refuse_special(path)
    temporary: Optional[str] = None

    def remove_temporary() -> None:
        if temporary is not None:
            with contextlib.suppress(FileNotFoundError):  # e.g. renamed already
                os.unlink(temporary)

    try:
        with _cleaned_up_on_termination(remove_temporary):
            handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
            os.chmod(temporary, _mode_for(path))  # mkstemp makes the file private; a written file is not
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
            temporary = None
    except OSError as exc:
        raise TrimError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        remove_temporary()


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
