"""Shared helpers of the benchmark scripts: median timing and writing the JSON result."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, Tuple, Union

import numpy as np


def median_time(fn: Callable[[], Any], repeats: int, warmup: bool = True,
                sync: Callable[[], Any] = lambda: None) -> Tuple[float, Any]:
    """Median wall seconds of ``repeats`` calls of ``fn`` (after one untimed call) and the last result.
    ``sync`` runs inside each timed call (a GPU backend's ``synchronize``), so queued work is counted."""
    out = fn() if warmup else None
    sync()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def write_result(path: Union[str, Path], payload: Dict[str, Any]) -> None:
    """Write a benchmark's JSON result (creating its folder) and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))
    print(f"wrote {path}")
