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
  estimator's parameters as :func:`plain_params` writes them), ``data`` (:func:`data_fingerprint` of the
  training data), ``dtype`` and, for a sharded checkpoint, ``shards`` (:class:`ShardSet`);
* ``W.i``, ``b.i`` (layers with a bias), ``U.i``, ``V.i`` for each layer ``i``;
* ``Wt.i.dense``, ``Wt.i.support``, ``Wt.i.factors`` (one array) or ``Wt.i.factors.t`` (TT cores);
* ``history.j``: the ``j``-th history column (float64, NaN where not recorded);
* ``progress``: float64 ``[fun, total sweep seconds, previous monitored objective (NaN when none)]``.

The file is replaced atomically (:func:`nnbcd.result.write_atomic`): a crash or Ctrl-C while saving leaves
the previous checkpoint whole. Saving goes through one function of the iterate, :func:`save`, which takes
host arrays (:class:`Iterate`, filled by :func:`capture`).

**Sharded checkpoints** (a distributed run, ``nnbcd.dask``): the d×N blocks ``U``, ``V`` never meet in one
process. Each shard of samples writes its own columns ``[start, stop)`` with :func:`save_columns` to
``shards-<sweep>-<token>/shard-<start>-<stop>.npz`` (members ``U.i``, ``V.i`` and a ``meta`` naming the
sweep, the range and the token), atomically; then the client writes ``checkpoint.npz`` with
:func:`save` and a :class:`ShardSet` (the folder, the ranges, the token, N) in place of ``U.i``/``V.i``,
atomically, last, and removes the older shard folders. A crash at any point leaves the previous
``checkpoint.npz`` and the folder it names whole, and :func:`load` refuses a set whose shard files do not
match its ``meta`` (missing, another sweep, range or token, ranges that do not tile ``0..N``).
:func:`load_columns` reads any column range from the files that overlap it (or from a single-process
checkpoint), so a run resumes on another number of shards; :func:`load` joins all columns for a
single-process resume. The training data's fingerprint, :func:`data_fingerprint`, is a sum over samples
(:func:`row_digest`) and so the same however the samples are sharded.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import shutil
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..backend import Backend
from ..compress.base import Compressed
from ..result import History, write_atomic
from ..schedules import Schedule

__all__ = ["FILENAME", "FORMAT_VERSION", "Checkpoint", "Iterate", "Progress", "ShardSet", "capture",
           "checkpoint_path", "data_fingerprint", "differences", "fingerprint", "load", "load_columns",
           "plain_params", "restore", "row_digest", "save", "save_columns"]

#: The version of the file layout; a file of another version is refused.
FORMAT_VERSION = 1

#: The checkpoint's file name in its directory.
FILENAME = "checkpoint.npz"

_FORMAT = "nnbcd-checkpoint"
_SHARD_FORMAT = "nnbcd-checkpoint-shard"


#: What numpy's and zipfile's readers raise on a damaged archive (a flipped bit in the zip directory can read
#: as an encrypted member, RuntimeError, or an unknown compression method, NotImplementedError).
_UNREADABLE = (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, UnicodeDecodeError, RuntimeError,
               NotImplementedError)


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
class ShardSet:
    """Where a sharded checkpoint's ``U``, ``V`` columns are.

    Attributes
    ----------
    folder : str
        The shard files' folder, in the checkpoint's directory (:func:`shard_folder`).
    ranges : list of (int, int)
        The column range ``[start, stop)`` of each shard file, in order; they tile ``0..n_samples``.
    token : str
        Written into every shard file of this checkpoint and into its ``meta``: a file of another save
        is refused.
    n_samples : int
        N.
    """

    folder: str
    ranges: List[Tuple[int, int]]
    token: str
    n_samples: int


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
        The training data's :func:`data_fingerprint`.
    dtype : str
    path : Path
    shards : ShardSet, optional
        A sharded checkpoint's shard files (``None``: ``U``, ``V`` are in the file itself).
    """

    iterate: Iterate
    progress: Progress
    params: Dict[str, Any]
    data: str
    dtype: str
    path: Path
    shards: Optional[ShardSet] = None


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

    Wt = {i: _map_arrays(c, copy, info=json.loads(json.dumps(c.info, default=_scalar))) for i, c in st.Wt.items()}
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

    Wt = {i: _map_arrays(c, dev, info=dict(c.info)) for i, c in it.Wt.items()}
    W = [Wt[i].dense if i in it.alias else dev(w) for i, w in enumerate(it.W)]
    return {"W": W, "b": [dev(b) for b in it.b], "U": [dev(u) for u in it.U], "V": [dev(v) for v in it.V],
            "Wt": Wt}


def _map_arrays(c: Compressed, fn: Callable[[Any], Any], info: Dict[str, Any]) -> Compressed:
    """``c`` with ``fn`` applied to each of its arrays (``None`` passed through), ``info`` given; factors
    that are the dense array stay that one array."""
    dense = fn(c.dense)
    if c.factors is None or c.factors is c.dense:
        factors = None if c.factors is None else dense
    elif isinstance(c.factors, (list, tuple)):
        factors = [fn(f) for f in c.factors]
    else:
        factors = fn(c.factors)
    return Compressed(dense=dense, n_params=int(c.n_params), info=info, factors=factors, support=fn(c.support))


def checkpoint_path(path: "str | Path") -> Path:
    """The checkpoint file of ``path``: ``path/checkpoint.npz`` for a directory, else ``path`` itself."""
    path = Path(path)
    return path / FILENAME if path.is_dir() else path


def save(directory: "str | Path", it: Iterate, progress: Progress, *, params: Mapping[str, Any], data: str,
         dtype: str, shards: Optional[ShardSet] = None) -> Path:
    """Write the checkpoint of ``it`` and ``progress`` to ``directory/checkpoint.npz``, atomically, and remove
    the shard folders it does not name (those of older sharded checkpoints).

    Parameters
    ----------
    directory : str or Path
        An existing, writable directory.
    it : Iterate
    progress : Progress
    params : mapping
        The estimator's parameters (:func:`plain_params`).
    data : str
        The training data's :func:`data_fingerprint`.
    dtype : str
        The computation's dtype.
    shards : ShardSet, optional
        A sharded checkpoint: ``it.U``, ``it.V`` are empty and the shard files, already written by
        :func:`save_columns` with ``shards.token``, hold the columns.

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
        arrays[f"W.{i}"] = it.W[i]
        if shards is None:
            arrays[f"U.{i}"], arrays[f"V.{i}"] = it.U[i], it.V[i]
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
    if shards is not None:
        meta["shards"] = {"folder": shards.folder, "ranges": [list(r) for r in shards.ranges],
                          "token": shards.token, "n_samples": shards.n_samples}
    arrays["meta"] = _json_bytes(meta)
    path = Path(directory) / FILENAME
    write_atomic(path, lambda fh: np.savez(fh, **arrays))
    # only now that the new meta is in place are the older shard files no checkpoint's
    for stale in Path(directory).glob("shards-*"):
        if stale.is_dir() and (shards is None or stale.name != shards.folder):
            shutil.rmtree(stale, ignore_errors=True)
    return path


def shard_folder(sweep: int, token: str) -> str:
    """The folder name of a sharded checkpoint's shard files: ``shards-<sweep>-<token>`` (a new folder per
    save, so writing one never touches the files the current checkpoint names)."""
    return f"shards-{sweep:06d}-{token}"


def save_columns(directory: "str | Path", sweep: int, token: str, start: int, stop: int, U: List[np.ndarray],
                 V: List[np.ndarray]) -> Path:
    """Write one shard's columns ``[start, stop)`` of ``U`` and ``V`` for a sharded checkpoint, atomically.

    Parameters
    ----------
    directory : str or Path
        The checkpoint's directory (shared by the processes that write the shards).
    sweep : int
        The complete sweeps of the iterate.
    token : str
        The save's token (:class:`ShardSet`).
    start, stop : int
        The shard's samples, as columns of the whole data.
    U, V : list of ndarray, shape (d_{i+1}, stop - start)
        The shard's blocks, on the host.

    Returns
    -------
    Path
        ``directory/shards-<sweep>-<token>/shard-<start>-<stop>.npz``.

    Raises
    ------
    OSError
        The file cannot be written.
    """
    folder = Path(directory) / shard_folder(sweep, token)
    folder.mkdir(exist_ok=True)
    arrays = {f"U.{i}": u for i, u in enumerate(U)}
    arrays.update({f"V.{i}": v for i, v in enumerate(V)})
    arrays["meta"] = _json_bytes({"format": _SHARD_FORMAT, "version": FORMAT_VERSION, "sweep": sweep,
                                  "token": token, "start": start, "stop": stop, "layers": len(U)})
    path = folder / f"shard-{start}-{stop}.npz"
    write_atomic(path, lambda fh: np.savez(fh, **arrays))
    return path


def load_columns(saved: Checkpoint, start: int, stop: int) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Columns ``[start, stop)`` of a checkpoint's ``U`` and ``V``, from the shard files that overlap them
    (a sharded checkpoint) or from the checkpoint file.

    Parameters
    ----------
    saved : Checkpoint
        As :func:`load` returned it (with or without its columns).
    start, stop : int
        ``0 <= start < stop <= N``.

    Returns
    -------
    tuple of two lists of ndarray, shape (d_{i+1}, stop - start)
        ``U`` and ``V``, new contiguous arrays.

    Raises
    ------
    ValueError
        A shard file that is unreadable or does not match the checkpoint's ``meta``.
    """
    it = saved.iterate
    L = len(it.W)
    if saved.shards is None or it.U:
        if it.U:
            U, V = it.U, it.V
        else:  # a single-process checkpoint whose columns were left out on loading
            with np.load(saved.path, allow_pickle=False) as npz:
                U, V = [npz[f"U.{i}"] for i in range(L)], [npz[f"V.{i}"] for i in range(L)]
        return ([np.ascontiguousarray(u[:, start:stop]) for u in U],
                [np.ascontiguousarray(v[:, start:stop]) for v in V])
    parts: List[Dict[str, np.ndarray]] = []
    for a, b in saved.shards.ranges:
        if a < stop and start < b:
            arrays = _read_shard(saved, a, b)
            lo, hi = max(a, start) - a, min(b, stop) - a
            parts.append({k: v[:, lo:hi] for k, v in arrays.items()})
    U = [np.concatenate([p[f"U.{i}"] for p in parts], axis=1) for i in range(L)]
    V = [np.concatenate([p[f"V.{i}"] for p in parts], axis=1) for i in range(L)]
    return U, V


def _read_shard(saved: Checkpoint, start: int, stop: int, members: bool = True) -> Dict[str, np.ndarray]:
    """The ``U.i``/``V.i`` of one shard file (only its ``meta`` checked with ``members=False``).

    Raises
    ------
    ValueError
        The file is missing, unreadable, or of another format, sweep, token, range or layer count.
    """
    assert saved.shards is not None
    file = saved.path.parent / saved.shards.folder / f"shard-{start}-{stop}.npz"
    expected = {"format": _SHARD_FORMAT, "version": FORMAT_VERSION, "sweep": saved.iterate.sweep,
                "token": saved.shards.token, "start": start, "stop": stop, "layers": len(saved.iterate.W)}
    try:
        with np.load(file, allow_pickle=False) as npz:
            meta = json.loads(npz["meta"].tobytes().decode())
            arrays = {k: npz[k] for k in npz.files if k != "meta"} if members else {}
    except FileNotFoundError:
        raise ValueError(f"the shard file {str(file)!r} that the checkpoint names is missing") from None
    except _UNREADABLE as exc:
        raise ValueError(f"the shard file {str(file)!r} is truncated or corrupt ({type(exc).__name__}: "
                         f"{exc})") from None
    wrong = sorted(k for k in expected if not isinstance(meta, dict) or meta.get(k) != expected[k])
    if wrong:
        raise ValueError(f"the shard file {str(file)!r} does not belong to this checkpoint ({wrong} differ from "
                         "its meta): the shard files and the meta are of different saves")
    return arrays


def _json_bytes(meta: Dict[str, Any]) -> np.ndarray:
    return np.frombuffer(json.dumps(meta, default=_scalar).encode(), dtype=np.uint8)


def load(path: "str | Path", name: str = "resume", *, columns: bool = True) -> Checkpoint:
    """Read a checkpoint written by :func:`save`.

    Parameters
    ----------
    path : str or Path
        The checkpoint file, or the directory holding ``checkpoint.npz``.
    name : str
        The argument ``path`` came from, for the messages.
    columns : bool
        Return ``U`` and ``V`` in the iterate (a sharded checkpoint's joined from its shard files); with
        ``False`` they are left empty, for :func:`load_columns` to read by ranges (a sharded
        checkpoint's shard files are then checked against its meta but not read).

    Returns
    -------
    Checkpoint

    Raises
    ------
    FileNotFoundError
        No checkpoint at ``path``; the message names ``name``.
    ValueError
        A file that is truncated, corrupt, not a checkpoint, or of another format version; a sharded
        checkpoint whose shard files are missing or do not match its meta; the message names ``name``.
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
    except _UNREADABLE as exc:
        raise ValueError(f"{name}: {str(file)!r} is not a readable checkpoint (truncated or corrupt: "
                         f"{type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError(f"{name}: {str(file)!r} is not an nnbcd checkpoint")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{name}: {str(file)!r} has checkpoint format version {meta.get('version')!r}; this "
                         f"nnbcd reads version {FORMAT_VERSION}")
    try:
        saved = _unpack(arrays, meta, file)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{name}: {str(file)!r} is an incomplete checkpoint ({type(exc).__name__}: {exc})") from None
    try:
        if saved.shards is not None:
            for a, b in saved.shards.ranges:
                _read_shard(saved, a, b, members=False)
            if columns:
                U, V = load_columns(saved, 0, saved.shards.n_samples)
                saved.iterate = replace(saved.iterate, U=U, V=V)
        elif not columns:
            saved.iterate = replace(saved.iterate, U=[], V=[])
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return saved


def _unpack(arrays: Dict[str, np.ndarray], meta: Dict[str, Any], file: Path) -> Checkpoint:
    L = int(meta["layers"])
    shards = None
    if "shards" in meta:
        m = meta["shards"]
        shards = ShardSet(folder=str(m["folder"]), ranges=[(int(a), int(b)) for a, b in m["ranges"]],
                          token=str(m["token"]), n_samples=int(m["n_samples"]))
        edges = [0] + [b for _, b in shards.ranges]
        if [a for a, _ in shards.ranges] != edges[:-1] or edges[-1] != shards.n_samples or \
                any(a >= b for a, b in shards.ranges):
            raise ValueError(f"the shard ranges {shards.ranges} do not tile 0..{shards.n_samples}")
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
                 U=[] if shards else [arrays[f"U.{i}"] for i in range(L)],
                 V=[] if shards else [arrays[f"V.{i}"] for i in range(L)],
                 Wt=Wt, sweep=int(meta["sweep"]), alias=[int(i) for i in meta["alias"]])
    history = History.from_columns({k: arrays[f"history.{j}"] for j, k in enumerate(meta["history"])})
    if history.n_iter != int(meta["n_iter"]) or it.sweep != history.n_iter:
        raise ValueError(f"the history has {history.n_iter} records for sweep {it.sweep}")
    fun, total, previous = (float(v) for v in arrays["progress"])
    progress = Progress(history=history, fun=fun, total=total, previous=previous if meta["has_previous"] else None)
    return Checkpoint(iterate=it, progress=progress, params=meta["params"], data=str(meta["data"]),
                      dtype=str(meta["dtype"]), path=file, shards=shards)


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


#: Seeds of :func:`row_digest`'s lanes (two for the features, one for the labels).
_LANES = np.array([0x9E3779B97F4A7C15, 0xD1B54A32D192ED03, 0x8CB92BA72F3D8DD7], dtype=np.uint64)


def _mix(index: np.ndarray, seed: np.uint64) -> np.ndarray:
    """SplitMix64's finaliser of ``index ^ seed``, made odd (so that no change of a multiplied value is
    lost mod 2^64): a fixed pseudo-random weight per position."""
    with np.errstate(over="ignore"):
        z = index ^ seed
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))) | np.uint64(1)


def row_digest(X: Any, labels: Any, start: int = 0) -> np.ndarray:
    r"""A digest of samples that adds over any split of them: the digest of rows ``0..N`` is the sum (mod
    :math:`2^{64}`, per lane) of the digests of any blocks of them, each with its first row's index.

    Lane ``l`` is :math:`\sum_{j,k} \mathrm{bits}(X_{jk})\,m_l(j d + k) \bmod 2^{64}` over the float64 bit
    patterns of the features, with fixed odd pseudo-random weights :math:`m_l` of the global position
    (SplitMix64); the label lane likewise over ``labels + 1``. Any change of one value, and any reordering
    of the rows, changes it; it is a check against resuming on other data, not a cryptographic hash.

    Parameters
    ----------
    X : array-like, shape (n, d)
        Samples as rows (any real dtype: hashed as float64, as the solver reads them).
    labels : int array-like, shape (n,)
        Their class indices.
    start : int
        The global index of the first row.

    Returns
    -------
    ndarray of uint64, shape (3,)
    """
    X = np.asarray(X)
    n, d = X.shape
    rows = np.arange(start, start + n, dtype=np.uint64)
    lab = np.asarray(labels).astype(np.uint64) + np.uint64(1)
    out = np.zeros(3, dtype=np.uint64)
    with np.errstate(over="ignore"):
        out[2] = (lab * _mix(rows, _LANES[2])).sum(dtype=np.uint64)
        step = max(1, 2 ** 20 // max(d, 1))  # blocks of about 2^20 values: the temporaries stay small
        for a in range(0, n, step):
            x = np.ascontiguousarray(X[a:a + step], dtype=np.float64).view(np.uint64).ravel()
            position = (rows[a:a + step, None] * np.uint64(d) + np.arange(d, dtype=np.uint64)).ravel()
            out[0] += (x * _mix(position, _LANES[0])).sum(dtype=np.uint64)
            out[1] += (x * _mix(position, _LANES[1])).sum(dtype=np.uint64)
    return out


def data_fingerprint(rows: np.ndarray, n_samples: int, n_features: int, *arrays: Any) -> str:
    """The training data's fingerprint, as a checkpoint stores it: the samples' :func:`row_digest` (summed
    over shards), their shape, and the :func:`fingerprint` of the small arrays (classes, validation data).

    Parameters
    ----------
    rows : ndarray of uint64, shape (3,)
    n_samples, n_features : int
    *arrays : ndarray or None

    Returns
    -------
    str
        64 hex digits.
    """
    digest = hashlib.sha256(f"rows{n_samples}x{n_features};".encode())
    digest.update(np.asarray(rows, dtype=np.uint64).tobytes())
    digest.update(fingerprint(*arrays).encode())
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
    return sorted(k for k in set(saved) | set(current)
                  if k not in ignore and canonical(saved.get(k)) != canonical(current.get(k)))


def canonical(value: Any) -> Any:
    """A :func:`plain_params` value with one spelling per meaning, for comparing and showing: numbers (ints and
    the stored ``repr`` strings) as floats, so ``alpha=1`` is ``alpha=1.0``; a schedule that never changes
    (a constant table, one piece, a factor of 1) as its value, so ``Constant(1.0)`` is ``1.0``."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "constant" and set(value) == {"type", "value"}:
            return canonical(value["value"])
        if kind == "piecewise" and set(value) == {"type", "pieces"} and len(value["pieces"]) == 1:
            return canonical(value["pieces"][0][1])
        if kind == "geometric" and canonical(value.get("factor")) == 1.0:
            return canonical(value["start"])
        return {k: canonical(v) for k, v in value.items()}
    return value
