"""Progress of long work with an ETA: a rich bar in a terminal, a line every ``LINE_SECONDS`` otherwise (logs,
``ns-trim bench`` reading a command's output), so nothing is silent for minutes and no log is flooded.

Examples:
    >>> with progress("trim: scoring Gaussians", total=len(views)) as advance:
    ...     for view in views:
    ...         score(view)
    ...         advance()
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

LINE_SECONDS = 30.0
"""Seconds between two progress lines when the output is not a terminal."""
_console = Console()


def eta(done: int, total: int, elapsed: float) -> str:
    """Time left as h:mm:ss (or m:ss) from the rate so far; '?' before the first step is done."""
    if done <= 0:
        return "?"
    seconds = int(round(elapsed / done * max(0, total - done)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class LineProgress:
    """Throttled progress lines: ``"DESCRIPTION done/total (ETA m:ss)"`` at most every ``interval`` seconds."""

    def __init__(self, description: str, total: int, interval: float = LINE_SECONDS, print_line: Optional[Callable[[str], None]] = None):
        self.description, self.total, self.interval = description, total, interval
        self.print_line = print_line or (lambda line: _console.print(line, markup=False, highlight=False, soft_wrap=True))
        self.done = 0
        self.started = self.last = time.monotonic()

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        now = time.monotonic()
        if now - self.last >= self.interval and self.done < self.total:
            self.last = now
            self.print_line(f"{self.description} {self.done:,}/{self.total:,} (ETA {eta(self.done, self.total, now - self.started)})")


@contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[], None]]:
    """A function to call once per unit of work done: a rich bar in a terminal, throttled lines elsewhere."""
    if _console.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=_console, transient=True) as bar:  # fmt: skip
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)
    else:
        lines = LineProgress(description, total)
        yield lines.advance
