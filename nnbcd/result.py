"""Result objects in the style of ``scipy.optimize.OptimizeResult``."""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Dict, Iterator, List

import numpy as np


class History(Mapping):
    """Per-iteration records: a mapping of name -> equal-length float arrays (NaN where not recorded).

    Keys include ``objective`` (= ``phi``), each objective term, ``step_sq``, ``prox_step_sq``,
    ``loss``/``acc``/``bacc`` (deployed network on train), ``val_*`` when validation data is given,
    ``time`` (wall seconds of the sweep) and ``time_<block kind>``.
    """

    def __init__(self) -> None:
        self._cols: Dict[str, List[float]] = {}
        self._n = 0

    def append(self, record: Dict[str, float]) -> None:
        """Add one iteration; keys never seen before are back-filled with NaN."""
        for key in record:
            if key not in self._cols:
                self._cols[key] = [math.nan] * self._n
        for key, col in self._cols.items():
            col.append(float(record.get(key, math.nan)))
        self._n += 1

    def __getitem__(self, key: str) -> np.ndarray:
        return np.asarray(self._cols[key], dtype=float)

    def __iter__(self) -> Iterator[str]:
        return iter(self._cols)

    def __len__(self) -> int:
        return len(self._cols)

    @property
    def n_iter(self) -> int:
        return self._n

    def to_dict(self) -> Dict[str, List[float | None]]:
        """JSON-ready dict (NaN written as ``null``)."""
        return {k: [None if math.isnan(v) else v for v in col] for k, col in self._cols.items()}

    def __repr__(self) -> str:
        return f"History({self._n} iterations, keys={list(self._cols)})"


class SolveResult(dict):
    """Solver result: a dict with attribute access (as ``scipy.optimize.OptimizeResult``).

    Attributes
    ----------
    x : dict
        Final weights ``W`` (list, paper's W_1..W_L), biases ``b`` and compressed copies ``Wt``.
    success : bool
    status : int
        See :data:`STATUS_MESSAGES`.
    message : str
    nit : int
        Number of sweeps run.
    fun : float
        Final objective Φ (NaN if never monitored).
    history : History
    time : float
        Total wall seconds of the sweeps.
    compression : dict
        Per compressed layer (paper numbering): realised ranks / sparsity and stored numbers.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    __setattr__ = dict.__setitem__  # type: ignore[assignment]

    def __repr__(self) -> str:
        keys = ("success", "status", "message", "nit", "fun", "time")
        return "\n".join(f"{k:>8}: {self[k]!r}" for k in keys if k in self)

    def to_json(self, path: str) -> None:
        """Write status, message, counts and the history as JSON."""
        payload = {k: self[k] for k in ("success", "status", "message", "nit", "fun", "time") if k in self}
        payload["history"] = self["history"].to_dict()
        if self.get("compression"):
            payload["compression"] = {str(k): v for k, v in self["compression"].items()}
        with open(path, "w") as fh:
            json.dump(payload, fh, indent=1, default=float)


#: status codes shared by all solvers
STATUS_MESSAGES = {
    0: "Maximum number of iterations reached.",
    1: "Relative objective change below tol.",
    2: "The iterate became non-finite; the last finite weights are returned.",
    99: "Stopped by the callback (StopIteration).",
}
