"""Wall-clock timing of GPU or CPU work: CUDA is synchronised before and after, so queued kernels are
counted where they run, not where they were launched."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, List

import torch


def synchronise(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def timed(device: torch.device, seconds: List[float]) -> Iterator[None]:
    """Append the duration (s) of the block's work on ``device`` to ``seconds``."""
    synchronise(device)
    started = time.perf_counter()
    yield
    synchronise(device)
    seconds.append(time.perf_counter() - started)
