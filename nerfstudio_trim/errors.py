"""User-facing errors: one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Callable, Optional, Type

from nerfstudio_trim.core.text import printable

ERROR_CHARS = 1000
"""Longest ``error:`` line shown (characters after ``error: ``); longer messages are shortened in the middle."""
_ExceptHook = Callable[[Type[BaseException], BaseException, Optional[TracebackType]], object]
_previous_hook: Optional[_ExceptHook] = None


class TrimError(Exception):
    """A problem with the user's input (files, data, options) that they can fix."""


def _excepthook(exc_type: Type[BaseException], exc: BaseException, tb: Optional[TracebackType]) -> None:
    if isinstance(exc, TrimError):
        print(f"error: {printable(exc, ERROR_CHARS)}", file=sys.stderr)
    else:
        (_previous_hook or sys.__excepthook__)(exc_type, exc, tb)


def install_excepthook() -> None:
    """Make an uncaught ``TrimError`` print one line, as plain text (control characters removed, bounded
    length: ``core.text.printable``); the interpreter then exits with status 1.

    Installed when the plugin is imported, so it covers nerfstudio's own ``ns-*`` commands.
    Every other exception goes to the handler that was there before.
    """
    global _previous_hook
    if sys.excepthook is not _excepthook:
        _previous_hook = sys.excepthook
        sys.excepthook = _excepthook
