"""Peak resident memory of a piece of work, for the memory budgets the docs state.

torch allocates CPU tensors outside Python's tracemalloc, and ``ru_maxrss`` is the peak of the
whole process (data loading included), so a thread samples the resident set size while the
work runs and reports its rise over the level before it started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * 4096


def peak_rss_rise(work: Callable[[], T], interval_s: float = 0.005) -> tuple[T, float]:
    """Run ``work``; return its result and the peak rise of resident memory in MB (Linux)."""
    baseline = _rss_bytes()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = work()
    finally:
        done.set()
        sampler.join()
    peak[0] = max(peak[0], _rss_bytes())
    return result, (peak[0] - baseline) / 2**20
