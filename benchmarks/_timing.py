"""Shared timing helper for the benchmark scripts."""
from __future__ import annotations

import time
from typing import Any, Callable, Tuple

import numpy as np


def median_time(fn: Callable[[], Any], repeats: int, warmup: bool = True) -> Tuple[float, Any]:
    """Median wall seconds of ``repeats`` calls of ``fn`` (after one untimed call) and the last result."""
    out = fn() if warmup else None
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out
