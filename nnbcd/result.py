"""Result objects in the style of ``scipy.optimize.OptimizeResult``, and the one table of status codes."""
from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Mapping
from enum import IntEnum
from typing import Any, IO, Callable, Dict, Iterator, List, Sequence

import numpy as np


class Status(IntEnum):
    """Why a run stopped: the one table of status codes and messages (scipy.optimize's meanings).

    A run succeeded when its status is :attr:`CONVERGED` (``status == 0``).

    ====  =========================  ==========================================================================
    code  member                     message
    ====  =========================  ==========================================================================
    0     ``CONVERGED``              Converged: relative objective change below tol.
    1     ``MAX_ITER``               Maximum number of iterations reached.
    2     ``NON_FINITE``             The iterate became non-finite; the last finite iterate is returned.
    3     ``NOT_POSITIVE_DEFINITE``  A linear system lost positive definiteness; the last finite iterate is
                                     returned.
    4     ``INTERRUPTED``            Interrupted (KeyboardInterrupt); the last complete iterate is returned.
    5     ``WORKER_LOST``            A worker holding a shard of the samples was lost (``nnbcd.dask``); the
                                     last complete iterate is returned.
    99    ``CALLBACK``               Stopped by the callback (StopIteration).
    ====  =========================  ==========================================================================
    """

    message: str

    def __new__(cls, code: int, message: str) -> "Status":
        member = int.__new__(cls, code)
        member._value_ = code
        member.message = message
        return member

    CONVERGED = 0, "Converged: relative objective change below tol."
    MAX_ITER = 1, "Maximum number of iterations reached."
    NON_FINITE = 2, "The iterate became non-finite; the last finite iterate is returned."
    NOT_POSITIVE_DEFINITE = 3, "A linear system lost positive definiteness; the last finite iterate is returned."
    INTERRUPTED = 4, "Interrupted (KeyboardInterrupt); the last complete iterate is returned."
    WORKER_LOST = 5, "A worker holding a shard of the samples was lost; the last complete iterate is returned."
    CALLBACK = 99, "Stopped by the callback (StopIteration)."


class History(Mapping):
    """Per-iteration records: a mapping of name -> equal-length float arrays (NaN where not recorded).

    Keys written by :class:`nnbcd.NNBCD` (layers numbered ``0..L-1``; layer ``i`` is the paper's
    :math:`W_{i+1}`):

    * ``objective`` (Φ), its terms ``data``, ``out``, ``relu_i``, ``lin_i``, ``comp_i``, and
      ``objective_ref`` (Φ with the data term weighted γ/2, as the reference prints it);
    * ``step_sq`` (squared change of every block in the sweep), ``step_<kind>`` per block kind,
      ``prox_step_sq`` (the blocks that carry the α-prox term);
    * ``loss``, ``acc``, ``bacc`` of the deployed network on the training data, ``val_*`` on validation
      data when given; ``n_params_i``, ``cr_1``, ``cr_2``, ``cr_honest`` and sparsities with compression;
    * ``time`` (wall seconds of the sweep), ``time_<kind>`` and ``time_monitor``.

    ``objective``, ``step_sq``, ``prox_step_sq`` and ``time`` are there from the start of every fit
    (:data:`nnbcd.bcd.loop.HISTORY_COLUMNS`): empty after a fit that ran no sweep (``max_iter=0``), NaN
    in the record of a sweep that failed. The others appear with the first record that has them.
    """

    def __init__(self) -> None:
        self._cols: Dict[str, List[float]] = {}
        self._n = 0

    def append(self, record: Mapping[str, float]) -> None:
        """Add one iteration.

        Parameters
        ----------
        record : mapping of str to float
            The iteration's values; keys never seen before are back-filled with NaN, keys missing from
            ``record`` get NaN.
        """
        for key in record:
            if key not in self._cols:
                self._cols[key] = [math.nan] * self._n
        for key, col in self._cols.items():
            col.append(float(record.get(key, math.nan)))
        self._n += 1

    @classmethod
    def from_columns(cls, columns: Mapping[str, Sequence[float]]) -> "History":
        """A history holding ``columns`` (as :meth:`to_dict` or ``dict(history)`` give them, NaN or ``None`` for
        not recorded), in their order.

        Raises
        ------
        ValueError
            If the columns have different lengths.
        """
        history = cls()
        lengths = {len(col) for col in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"history columns must have one length, got lengths {sorted(lengths)}")
        history._cols = {str(k): [math.nan if v is None else float(v) for v in col] for k, col in columns.items()}
        history._n = lengths.pop() if lengths else 0
        return history

    def __getitem__(self, key: str) -> np.ndarray:
        return np.asarray(self._cols[key], dtype=float)

    def __iter__(self) -> Iterator[str]:
        return iter(self._cols)

    def __len__(self) -> int:
        return len(self._cols)

    @property
    def n_iter(self) -> int:
        """Number of iterations recorded."""
        return self._n

    def to_dict(self) -> Dict[str, List[float | None]]:
        """JSON-ready copy.

        Returns
        -------
        dict of str to list
            One list per key, NaN written as ``None`` (JSON ``null``).
        """
        return {k: [None if math.isnan(v) else v for v in col] for k, col in self._cols.items()}

    def __repr__(self) -> str:
        return f"History({self._n} iterations, keys={list(self._cols)})"


class SolveResult(dict):
    """Solver result: a dict with attribute access (as ``scipy.optimize.OptimizeResult``).

    The result a callback receives after each iteration (scipy's ``intermediate_result``) has every
    key but ``status``, ``success`` and ``message``; :meth:`finished` adds them from :class:`Status`.

    Attributes
    ----------
    x : dict
        Final iterate: weights ``W`` (list indexed by layer ``0..L-1``; layer ``i`` is the paper's
        :math:`W_{i+1}`), biases ``b`` (list, ``None`` entries without bias), compressed copies ``Wt``
        (dict keyed by layer) and ``W_deployed`` (the weights the deployed network uses).
    success : bool
        ``status == 0``.
    status : int
        A :class:`Status` code.
    message : str
        The status's message.
    nit : int
        Number of sweeps run.
    fun : float
        Objective Φ at the last monitored iteration (NaN if never monitored).
    history : History
    time : float
        Total wall seconds of the sweeps.
    compression : dict
        Per compressed layer (keys ``0..L-1``): realised ranks / sparsity and ``n_params``.
    constant_from : int or None
        The first sweep from which no scheduled value changes and no compressed structure is re-chosen;
        the convergence guarantee and the ``tol`` rule apply from there (``None``: never).
    output_refit : dict or None
        With ``refit_output=True``: the output layer's least-squares refit after the sweeps
        (:func:`nnbcd.bcd.loop.refit_output_layer`: ``refit``, ``loss_before``, ``loss``, ``val_*``); ``None``
        without.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    __setattr__ = dict.__setitem__  # type: ignore[assignment]

    @classmethod
    def finished(cls, status: Status, **fields: Any) -> "SolveResult":
        """The result of a run that stopped with ``status``.

        Parameters
        ----------
        status : Status
        **fields
            The other keys (``x``, ``nit``, ``fun``, ``history``, ...).

        Returns
        -------
        SolveResult
            ``fields`` plus ``status`` (int), ``success`` (``status == 0``) and ``message``.
        """
        status = Status(status)
        return cls(fields, status=int(status), success=status == Status.CONVERGED, message=status.message)

    def __repr__(self) -> str:
        keys = ("success", "status", "message", "nit", "fun", "time")
        return "\n".join(f"{k:>8}: {self[k]!r}" for k in keys if k in self)

    def to_json(self, path: str) -> None:
        """Write status, message, counts, compression info and the history as JSON.

        Parameters
        ----------
        path : str
            File to write (overwritten).
        """
        payload = {k: self[k] for k in ("success", "status", "message", "nit", "fun", "time", "constant_from")
                   if k in self}
        # NaN is not JSON: an objective never computed (no sweep ran) is null, as in the history
        if isinstance(payload.get("fun"), float) and math.isnan(payload["fun"]):
            payload["fun"] = None
        payload["history"] = self["history"].to_dict()
        if self.get("compression"):
            payload["compression"] = {str(k): v for k, v in self["compression"].items()}
        if self.get("output_refit") is not None:  # a diverged run's NaN / Inf losses are null, as in the history
            payload["output_refit"] = {k: None if isinstance(v, float) and not math.isfinite(v) else v
                                       for k, v in self["output_refit"].items()}
        write_json_atomic(path, payload, default=float)


def write_json_atomic(path: "str | os.PathLike[str]", payload: Any, *, default: Callable[[Any], Any] = str) -> None:
    """Write ``payload`` as indented JSON to ``path`` all at once: the file is the old one or the new one.

    Parameters
    ----------
    path : str or path-like
        File to write (replaced when it exists).
    payload : Any
        JSON-serialisable data.
    default : callable
        ``json.dump``'s ``default`` for objects JSON cannot hold (``str``; ``float`` for numpy scalars).

    Raises
    ------
    OSError
        The directory cannot be written to; ``path`` is unchanged.
    TypeError, ValueError
        From serialisation; ``path`` is unchanged.
    """
    write_atomic(path, lambda fh: json.dump(payload, fh, indent=1, default=default), binary=False)


def write_atomic(path: "str | os.PathLike[str]", write: Callable[[IO[Any]], Any], *, binary: bool = True) -> None:
    """Write a file all at once: after any failure ``path`` is the old file (or absent), never a part.

    The bytes go to a temporary file in the same directory, are flushed to disk (``fsync``), and the
    file then replaces ``path`` by ``os.replace`` (atomic on POSIX and Windows within one file system),
    so a full disk, a serialisation error or a Ctrl-C mid-write never leaves a truncated file or
    destroys the previous one.

    Parameters
    ----------
    path : str or path-like
        File to write (replaced when it exists).
    write : callable ``(file) -> Any``
        Writes the content to the open temporary file.
    binary : bool
        Open the file in binary mode (else text, UTF-8).

    Raises
    ------
    OSError
        The directory cannot be written to; ``path`` is unchanged.
    Exception
        Whatever ``write`` raises; ``path`` is unchanged and the temporary file removed.
    """
    path = os.fspath(path)
    # a unique name in the same directory: os.replace is atomic only within one file system
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with (open(tmp, "xb") if binary else open(tmp, "x", encoding="utf-8")) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())  # the new file's bytes are on disk before it takes the old one's name
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
