"""Checkpoints of an NN-BCD run: the full iterate and the loop's progress in one file, written atomically.

A run resumed from a checkpoint equals the uninterrupted run bit for bit: the file holds every block of
the iterate (``W``, ``b``, ``U``, ``V``, the compressed copies with their TT cores or pruning masks), the
sweep counter, the history so far and the stopping rule's memory. Nothing else carries state from one
sweep to the next: the schedules (γ, ρ, τ, rank caps, sparsities) are functions of the sweep counter, the
workspace's caches are recomputed from the data, and no random numbers are drawn after the initial
weights (:mod:`nnbcd.bcd.init` is the only user of the generator), so the file holds no RNG state.

Format (:data:`FORMAT_VERSION` 1): one numpy ``.npz`` archive (a zip of ``.npy`` arrays, read with
``allow_pickle=False``; plain types only, no pickle) with the members

* ``meta``: a JSON document as UTF-8 bytes (a uint8 array): ``format``, ``version``, ``sweep``,
  ``layers``, ``bias`` (per layer), ``alias`` (layers whose ``W`` is its compressed copy's array),
  ``Wt`` (per compressed layer: ``n_params``, ``info``, how ``factors`` is stored, whether a
  ``support`` is), ``history`` (the column names in order), ``has_previous``, ``params`` (the
  estimator's parameters as :func:`plain_params` writes them), ``data`` (:func:`fingerprint` of the
  training data) and ``dtype``;
* ``W.i``, ``b.i`` (layers with a bias), ``U.i``, ``V.i`` for each layer ``i``;
* ``Wt.i.dense``, ``Wt.i.support``, ``Wt.i.factors`` (one array) or ``Wt.i.factors.t`` (TT cores);
* ``history.j``: the ``j``-th history column (float64, NaN where not recorded);
* ``progress``: float64 ``[fun, total sweep seconds, previous monitored objective (NaN when none)]``.

The file is replaced atomically (:func:`nnbcd.result.write_atomic`): a crash or Ctrl-C while saving leaves
the previous checkpoint whole. Saving goes through one function of the iterate, :func:`save`, which takes
host arrays (:class:`Iterate`): the single-process solver fills it with :func:`capture`, a distributed
solver gathers the same arrays from its workers.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..backend import Backend
from ..compress.base import Compressed
from ..result import History, write_atomic
from ..schedules import Schedule

__all__ = ["FILENAME", "FORMAT_VERSION", "Checkpoint", "Iterate", "Progress", "capture", "checkpoint_path",
           "differences", "fingerprint", "load", "plain_params", "restore", "save"]

#: The version of the file layout; a file of another version is refused.
FORMAT_VERSION = 1

#: The checkpoint's file name in its directory.
FILENAME = "checkpoint.npz"

_FORMAT = "nnbcd-checkpoint"


@dataclass
class Progress:
    """What the run loop carries from one complete sweep to the next, besides the iterate.

    Attributes
    ----------
    history : History
        One record per complete sweep.
    fun : float
        Φ at the last monitored sweep (NaN before the first).
    total : float
        Wall seconds of the sweeps so far.
    previous : float or None
        The objective the ``tol`` rule compares the next monitored one with (``None``: none yet).
    """

    history: History = field(default_factory=History)
    fun: float = math.nan
    total: float = 0.0
    previous: Optional[float] = None

    @property
    def nit(self) -> int:
        """Complete sweeps so far."""
        return self.history.n_iter


@dataclass
class Iterate:
    """One NN-BCD iterate as host (numpy) arrays.

    Attributes
    ----------
    W : list of ndarray, shape (d_{i+1}, d_i)
    b : list of (ndarray of shape (d_{i+1},) or None)
    U, V : list of ndarray, shape (d_{i+1}, N)
    Wt : dict of int to Compressed
        The compressed copies, their ``dense``, ``support`` and ``factors`` on the host.
    sweep : int
        The complete sweeps this iterate is the result of.
    alias : list of int
        Layers whose ``W`` is the same array as its compressed copy's ``dense`` (exact blocks).
    """

    W: List[np.ndarray]
    b: List[Optional[np.ndarray]]
    U: List[np.ndarray]
    V: List[np.ndarray]
    Wt: Dict[int, Compressed]
    sweep: int
    alias: List[int] = field(default_factory=list)


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes
    ----------
    iterate : Iterate
    progress : Progress
    params : dict
        The estimator's parameters (:func:`plain_params`).
    data : str
        The training data's :func:`fingerprint`.
    dtype : str
    path : Path
    """

    iterate: Iterate
    progress: Progress
    params: Dict[str, Any]
    data: str
    dtype: str
    path: Path


def capture(st: Any, be: Backend) -> Iterate:
    """The iterate of a :class:`~nnbcd.bcd.state.BCDState` as host copies.

    Parameters
    ----------
    st : BCDState
        After a complete sweep.
    be : Backend
        The backend its arrays live on.

    Returns
    -------
    Iterate
    """
    host = be.to_numpy

    def copy(a: Any) -> Optional[np.ndarray]:
        return None if a is None else np.array(host(a), copy=True, order="K")

    def factors(c: Compressed) -> Any:
        if c.factors is None or c.factors is c.dense:
            return c.factors if c.factors is None else "dense"
        if isinstance(c.factors, (list, tuple)):
            return [copy(f) for f in c.factors]
        return copy(c.factors)

    Wt = {}
    for i, c in st.Wt.items():
        f = factors(c)
        dense = copy(c.dense)
        Wt[i] = Compressed(dense=dense, n_params=int(c.n_params), info=json.loads(json.dumps(c.info, default=_scalar)),
                           factors=dense if isinstance(f, str) else f, support=copy(c.support))
    return Iterate(W=[copy(w) for w in st.W], b=[copy(b) for b in st.b], U=[copy(u) for u in st.U],
                   V=[copy(v) for v in st.V], Wt=Wt, sweep=int(st.sweep),
                   alias=[i for i, c in st.Wt.items() if st.W[i] is c.dense])


def restore(it: Iterate, be: Backend) -> Dict[str, Any]:
    """The blocks of an :class:`Iterate` on ``be``, as :class:`~nnbcd.bcd.state.BCDState` takes them.

    Parameters
    ----------
    it : Iterate
    be : Backend

    Returns
    -------
    dict
        ``W``, ``b``, ``U``, ``V`` (lists) and ``Wt`` (dict), each array a new array of ``be`` with the
        saved dtype and memory order; the aliases of :attr:`Iterate.alias` restored.
    """
    def dev(a: Any) -> Any:
        return None if a is None else be.xp.array(a, copy=True, order="K")

    Wt = {}
    for i, c in it.Wt.items():
        dense = dev(c.dense)
        if c.factors is c.dense:
            factors: Any = dense
        elif isinstance(c.factors, list):
            factors = [dev(f) for f in c.factors]
        else:
            factors = dev(c.factors)
        Wt[i] = Compressed(dense=dense, n_params=c.n_params, info=dict(c.info), factors=factors,
                           support=dev(c.support))
    W = [Wt[i].dense if i in it.alias else dev(w) for i, w in enumerate(it.W)]
    return {"W": W, "b": [dev(b) for b in it.b], "U": [dev(u) for u in it.U], "V": [dev(v) for v in it.V],
            "Wt": Wt}


def checkpoint_path(path: "str | Path") -> Path:
    """The checkpoint file of ``path``: ``path/checkpoint.npz`` for a directory, else ``path`` itself."""
    path = Path(path)
    return path / FILENAME if path.is_dir() else path


def save(directory: "str | Path", it: Iterate, progress: Progress, *, params: Mapping[str, Any], data: str,
         dtype: str) -> Path:
    """Write the checkpoint of ``it`` and ``progress`` to ``directory/checkpoint.npz``, atomically.

    Parameters
    ----------
    directory : str or Path
        An existing, writable directory.
    it : Iterate
    progress : Progress
    params : mapping
        The estimator's parameters (:func:`plain_params`).
    data : str
        The training data's :func:`fingerprint`.
    dtype : str
        The computation's dtype.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    OSError
        The file cannot be written (the previous checkpoint is then unchanged).
    """
    arrays: Dict[str, np.ndarray] = {}
    wt_meta: Dict[str, Any] = {}
    for i in range(len(it.W)):
        arrays[f"W.{i}"], arrays[f"U.{i}"], arrays[f"V.{i}"] = it.W[i], it.U[i], it.V[i]
        if it.b[i] is not None:
            arrays[f"b.{i}"] = it.b[i]
    for i, c in it.Wt.items():
        arrays[f"Wt.{i}.dense"] = c.dense
        if c.support is not None:
            arrays[f"Wt.{i}.support"] = c.support
        if c.factors is None or c.factors is c.dense:
            kind, n = ("none" if c.factors is None else "dense"), 0
        elif isinstance(c.factors, list):
            kind, n = "list", len(c.factors)
            arrays.update({f"Wt.{i}.factors.{t}": f for t, f in enumerate(c.factors)})
        else:
            kind, n = "array", 1
            arrays[f"Wt.{i}.factors"] = c.factors
        wt_meta[str(i)] = {"n_params": c.n_params, "info": c.info, "factors": kind, "n_factors": n,
                           "support": c.support is not None}
    keys = list(progress.history)
    arrays.update({f"history.{j}": progress.history[k] for j, k in enumerate(keys)})
    arrays["progress"] = np.array([progress.fun, progress.total,
                                   math.nan if progress.previous is None else progress.previous])
    meta = {"format": _FORMAT, "version": FORMAT_VERSION, "sweep": it.sweep, "layers": len(it.W),
            "bias": [b is not None for b in it.b], "alias": list(it.alias), "Wt": wt_meta, "history": keys,
            "n_iter": progress.nit, "has_previous": progress.previous is not None, "params": dict(params),
            "data": data, "dtype": dtype}
    arrays["meta"] = np.frombuffer(json.dumps(meta, default=_scalar).encode(), dtype=np.uint8)
    path = Path(directory) / FILENAME
    write_atomic(path, lambda fh: np.savez(fh, **arrays))
    return path


def load(path: "str | Path", name: str = "resume") -> Checkpoint:
    """Read a checkpoint written by :func:`save`.

    Parameters
    ----------
    path : str or Path
        The checkpoint file, or the directory holding ``checkpoint.npz``.
    name : str
        The argument ``path`` came from, for the messages.

    Returns
    -------
    Checkpoint

    Raises
    ------
    FileNotFoundError
        No checkpoint at ``path``; the message names ``name``.
    ValueError
        A file that is truncated, corrupt, not a checkpoint, or of another format version; the
        message names ``name``.
    """
    file = checkpoint_path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{name}: no checkpoint at {str(file)!r}")
    try:
        npz = np.load(file, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):  # a lone .npy array
            raise ValueError("one array, not an archive")
        with npz:
            arrays = {k: npz[k] for k in npz.files}  # reading every member checks its CRC
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: {str(file)!r} is not a readable checkpoint (truncated or corrupt: "
                         f"{type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError(f"{name}: {str(file)!r} is not an nnbcd checkpoint")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{name}: {str(file)!r} has checkpoint format version {meta.get('version')!r}; this "
                         f"nnbcd reads version {FORMAT_VERSION}")
    try:
        return _unpack(arrays, meta, file)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{name}: {str(file)!r} is an incomplete checkpoint ({type(exc).__name__}: {exc})") from None


def _unpack(arrays: Dict[str, np.ndarray], meta: Dict[str, Any], file: Path) -> Checkpoint:
    L = int(meta["layers"])
    Wt = {}
    for key, m in meta["Wt"].items():
        i = int(key)
        dense = arrays[f"Wt.{i}.dense"]
        factors: Any = {"none": None, "dense": dense}.get(m["factors"])
        if m["factors"] == "list":
            factors = [arrays[f"Wt.{i}.factors.{t}"] for t in range(int(m["n_factors"]))]
        elif m["factors"] == "array":
            factors = arrays[f"Wt.{i}.factors"]
        elif m["factors"] not in ("none", "dense"):
            raise ValueError(f"unknown factors kind {m['factors']!r}")
        Wt[i] = Compressed(dense=dense, n_params=int(m["n_params"]), info=dict(m["info"]), factors=factors,
                           support=arrays[f"Wt.{i}.support"] if m["support"] else None)
    it = Iterate(W=[arrays[f"W.{i}"] for i in range(L)],
                 b=[arrays[f"b.{i}"] if meta["bias"][i] else None for i in range(L)],
                 U=[arrays[f"U.{i}"] for i in range(L)], V=[arrays[f"V.{i}"] for i in range(L)],
                 Wt=Wt, sweep=int(meta["sweep"]), alias=[int(i) for i in meta["alias"]])
    history = History.from_columns({k: arrays[f"history.{j}"] for j, k in enumerate(meta["history"])})
    if history.n_iter != int(meta["n_iter"]) or it.sweep != history.n_iter:
        raise ValueError(f"the history has {history.n_iter} records for sweep {it.sweep}")
    fun, total, previous = (float(v) for v in arrays["progress"])
    progress = Progress(history=history, fun=fun, total=total, previous=previous if meta["has_previous"] else None)
    return Checkpoint(iterate=it, progress=progress, params=meta["params"], data=str(meta["data"]),
                      dtype=str(meta["dtype"]), path=file)


def fingerprint(*arrays: Any) -> str:
    """A SHA-256 digest of arrays' dtypes, shapes and bytes (``None`` entries count as absent).

    Parameters
    ----------
    *arrays : ndarray or None
        Numeric or fixed-width string arrays (no object arrays).

    Returns
    -------
    str
        64 hex digits; equal for arrays with equal dtypes, shapes and contents, in the same order.
    """
    digest = hashlib.sha256()
    for a in arrays:
        if a is None:
            digest.update(b"none;")
            continue
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape};".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def plain_params(params: Mapping[str, Any]) -> Dict[str, Any]:
    """Estimator parameters as JSON values, for storing and comparing.

    Numbers, strings and ``None`` stay; sequences become lists; schedules their table
    (:meth:`~nnbcd.schedules.Schedule.to_dict`); a backend its name; a numpy random generator its type
    name (the generator is used only for the initial weights, which a checkpoint holds); other objects
    (compression specs, :class:`~nnbcd.bcd.conv.InputConv2d`) ``{"type": name, **attributes}``. A
    ``compress`` mapping also records which layers share one spec object (one group).

    Parameters
    ----------
    params : mapping
        ``estimator.get_params(deep=False)``.

    Returns
    -------
    dict
        JSON-serialisable, keys as in ``params``.
    """
    out = {name: _plain(value) for name, value in params.items()}
    compress = params.get("compress")
    if isinstance(compress, Mapping):
        groups: Dict[int, List[Any]] = {}
        for layer, spec in compress.items():
            groups.setdefault(id(spec), []).append(_plain(layer))
        out["compress"] = {"layers": out["compress"], "groups": sorted(groups.values(), key=str)}
    return out


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return repr(float(value))  # a string: NaN and inf compare and round-trip
    if isinstance(value, Schedule):
        return _plain(value.to_dict())
    if isinstance(value, Backend):
        return value.name
    if isinstance(value, (np.random.Generator, np.random.RandomState)):
        return type(value).__name__
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if hasattr(value, "__dict__"):
        return {"type": type(value).__name__, **_plain(vars(value))}
    return repr(value)


def _scalar(value: Any) -> Any:
    """JSON for numpy scalars and arrays in a compressed copy's ``info``."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON data")


def differences(saved: Mapping[str, Any], current: Mapping[str, Any], ignore: Tuple[str, ...] = ()) -> List[str]:
    """The parameter names whose plain values differ between two :func:`plain_params` records.

    Parameters
    ----------
    saved, current : mapping
    ignore : tuple of str
        Names not compared.

    Returns
    -------
    list of str
        Sorted.
    """
    return sorted(k for k in set(saved) | set(current) if k not in ignore and saved.get(k) != current.get(k))
