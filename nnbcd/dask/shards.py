r"""The worker side of a sample-sharded NN-BCD run: one :class:`Shard` per block of samples (columns).

A shard is an ordinary :class:`~nnbcd.bcd.state.BCDState` holding its samples' columns of ``X``, ``Y``,
``U`` and ``V`` and a copy of the weights, plus its own :class:`~nnbcd.bcd.blocks.Workspace`: the
per-sample blocks of :data:`~nnbcd.bcd.blocks.BLOCK_TABLE` (``V_out``, ``U_out``, ``V``, ``U``) run on it
unchanged, and :func:`~nnbcd.bcd.blocks.weight_statistics` gives the sums the W-blocks need. A shard
lives in one worker's memory for the whole run; the functions here are the tasks the client submits
on it (:func:`shard_round`, :func:`shard_monitor`, :func:`shard_readout`) and the additions of their reports
(:func:`add_reports`, :func:`add_sums`), which run on the workers as a tree. Every task mutates its shard
in place, so each carries the number of rounds the shard has seen: a shard rebuilt by Dask from its
inputs (after its worker died) is at round 0 and refuses the task (:class:`ShardStateLost`) instead
of silently restarting from the initial iterate.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from sklearn.utils import assert_all_finite

from .. import _validation as val
from ..backend import Backend, get_backend
from ..bcd import checkpoint as ckpt
from ..bcd.blocks import BLOCK_TABLE, WeightStatistics, Workspace
from ..bcd.objective import forward, metric_sums, sample_terms
from ..bcd.readout import ReadoutFactor, training_factor
from ..bcd.state import BCDState, Hyper
from ..bcd.sweep import new_record, timed_update

#: block kind -> Block, for the per-sample blocks a round names
_BLOCKS = {block.kind: block for block in BLOCK_TABLE if block.per_sample}

#: (W_i, b_i) of the layers whose weights changed since the shard last heard
Weights = Dict[int, Tuple[np.ndarray, Optional[np.ndarray]]]


class ShardStateLost(RuntimeError):
    """A shard task found its shard at another round than the client expects: the shard was rebuilt
    from its inputs after its worker was lost, and its U, V are not the run's."""


@dataclass
class Shard:
    """One shard's iterate, workspace and class indices, on the worker that holds it.

    Attributes
    ----------
    st : BCDState
        The shard's columns and a copy of the weights (``st.Wt`` unused after the initial state).
    ws : Workspace
    labels : int array, shape (n,)
        Class indices of the shard's samples, on the backend.
    backend : str
        The backend's name (the shard's arrays live on it).
    start, stop : int
        The shard's samples are columns ``start..stop-1`` of the whole data (named in its checkpoint files).
    rounds : int
        Tasks applied so far (checked by every task).
    input_statistics_sent : bool
        Whether layer 0's constant input Grams were reported once already.
    """

    st: BCDState
    ws: Workspace
    labels: Any
    backend: str
    start: int
    stop: int
    rounds: int = 0
    input_statistics_sent: bool = False

    @property
    def be(self) -> Backend:
        """The shard's backend."""
        return get_backend(self.backend)


@dataclass
class Report:
    """What one round returns from one shard or, added, from several.

    Attributes
    ----------
    stats : WeightStatistics
        Host arrays; ``G`` and ``s`` are ``None`` for layer 0 after its first round (they never change).
    record : dict of str to float
        The round's part of the sweep record (:func:`~nnbcd.bcd.sweep.new_record`): ``step_<kind>`` and
        ``prox_step_sq`` are sums over samples (they add), ``time_<kind>`` the largest shard's seconds
        (the shards run at the same time).
    finite : bool
        Whether the shard's output variable :math:`V_L` is finite.
    nbytes : int
        Bytes of the statistics as the shards sent them (summed over shards).
    """

    stats: WeightStatistics
    record: Dict[str, float] = field(default_factory=new_record)
    finite: bool = True
    nbytes: int = 0


def make_shard(estimator: Any, x: Any, y: Any, classes: np.ndarray, widths: Tuple[int, ...],
               compress: Dict[int, Any], tau: Dict[int, float], init: Dict[str, Any], backend: str,
               dtype: Any, v_solve: str, columns: Tuple[int, int], resume: Optional[ckpt.Checkpoint] = None) -> Shard:
    """Build a shard's initial state exactly as :class:`~nnbcd.NNBCD` builds the whole one, or its state
    resumed from a checkpoint.

    Parameters
    ----------
    estimator : NNBCD
        Unfitted; its ``_state`` draws the weights (every shard draws the same ones from a copy
        of one generator) and runs the forward pass on the shard's columns.
    x : array-like, shape (n, d_0)
        The shard's samples as rows.
    y : array-like, shape (n,)
        Their labels (values of ``classes``).
    classes : ndarray
        ``classes_`` of the whole data.
    widths : tuple of int
        The network's widths.
    compress, tau : dict
        As the estimator checked them.
    init : dict
        ``rng`` (a generator, copied), ``init_scale`` and ``bias``.
    backend : str
    dtype : numpy dtype
    v_solve : {"auto", "direct", "woodbury"}
    columns : (int, int)
        The shard's samples' range ``[start, stop)`` in the whole data.
    resume : Checkpoint, optional
        Loaded without its columns (:func:`~nnbcd.bcd.checkpoint.load` with ``columns=False``): the
        shard takes its weights and reads its columns of ``U``, ``V`` from the checkpoint's files
        (:func:`~nnbcd.bcd.checkpoint.load_columns`), whatever the sharding that wrote them.

    Returns
    -------
    Shard

    Raises
    ------
    ValueError
        Naming ``X`` or ``y`` when the shard holds a non-finite value, a label that is not among
        ``classes``, or a number of labels different from its number of rows.
    """
    be = get_backend(backend)
    x = np.asarray(x)
    y = np.asarray(y).ravel()
    with val.named_errors("X"):
        assert_all_finite(x, input_name="X")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y has {y.shape[0]} labels in a shard where X has {x.shape[0]} rows")
    labels = np.searchsorted(classes, y)
    if np.any(labels >= len(classes)) or np.any(classes[np.minimum(labels, len(classes) - 1)] != y):
        raise ValueError("y has labels that are not among its classes (non-finite or changed while fitting)")
    onehot = np.zeros((len(classes), y.shape[0]))
    onehot[labels, np.arange(y.shape[0])] = 1.0
    start, stop = columns
    iterate = None
    if resume is not None:
        U, V = ckpt.load_columns(resume, start, stop)
        iterate = dataclasses.replace(resume.iterate, U=U, V=V)
    st = estimator._state(widths, compress, tau, be, be.asarray(np.ascontiguousarray(x.T), dtype),
                          be.asarray(onehot, dtype), init, iterate)
    return Shard(st=st, ws=Workspace(st, be, v_solve, "direct"), labels=be.xp.asarray(labels), backend=backend,
                 start=start, stop=stop)


def rows_digest(x: Any, y: Any, classes: np.ndarray, start: int) -> np.ndarray:
    """:func:`~nnbcd.bcd.checkpoint.row_digest` of a block of rows ``x`` with labels ``y`` (values of
    ``classes``), the first being row ``start`` of the whole data: the client adds the blocks' digests."""
    return ckpt.row_digest(np.asarray(x), np.searchsorted(classes, np.asarray(y).ravel()), start)


def shard_save(shard: Shard, expected: int, weights: Weights, directory: str, sweep: int,
               token: str) -> Tuple[int, int]:
    """Write the shard's columns of ``U`` and ``V`` for a sharded checkpoint
    (:func:`~nnbcd.bcd.checkpoint.save_columns`), after a complete sweep.

    Parameters
    ----------
    shard, expected, weights
        As :func:`shard_monitor`.
    directory : str
        The checkpoint's directory, on a file system the workers and the client share.
    sweep : int
        The complete sweeps of the iterate (the client counts them).
    token : str
        The save's token.

    Returns
    -------
    (int, int)
        The column range written.
    """
    _check_round(shard, expected)
    _apply(shard, weights)
    host = shard.be.to_numpy
    ckpt.save_columns(directory, sweep, token, shard.start, shard.stop, [host(u) for u in shard.st.U],
                      [host(v) for v in shard.st.V])
    return shard.start, shard.stop


def _check_round(shard: Shard, expected: int) -> None:
    if shard.rounds != expected:
        raise ShardStateLost(f"a shard is at round {shard.rounds} but the run at round {expected}: it was "
                             "rebuilt after its worker was lost")
    shard.rounds += 1


def _apply(shard: Shard, weights: Weights) -> None:
    st, be = shard.st, shard.be
    for i, (w, b) in weights.items():
        st.W[i] = be.asarray(w, st.X.dtype)
        st.b[i] = None if b is None else be.asarray(b, st.X.dtype)


def initial_weights(shard: Shard) -> Tuple[List[Any], List[Optional[Any]], Dict[int, Any]]:
    """``(W, b, Wt)`` of the shard's initial state, on the host: the client's copy of the weights.

    Returns
    -------
    tuple
        Lists of layers ``0..L-1`` and the compressed copies (one pickle: an exact layer's ``W`` stays
        its compressed copy's ``dense`` array).
    """
    host = shard.be.to_numpy
    return ([host(w) for w in shard.st.W], [None if b is None else host(b) for b in shard.st.b], dict(shard.st.Wt))


def shard_round(shard: Shard, expected: int, weights: Weights, layer: int, kinds: Sequence[str], hp: Hyper,
                track: bool) -> Report:
    """One layer's per-sample blocks on a shard, then the statistics of that layer's W-block.

    Parameters
    ----------
    shard : Shard
        Updated in place.
    expected : int
        The number of rounds the client has sent this shard before.
    weights : dict
        New ``(W_i, b_i)`` to take first.
    layer : int
        The layer ``0..L-1``.
    kinds : sequence of str
        The per-sample block kinds of the layer, in sweep order (from
        :func:`~nnbcd.bcd.sweep.block_schedule`).
    hp : Hyper
        The sweep's values.
    track : bool
        Measure the squared steps.

    Returns
    -------
    Report

    Raises
    ------
    ShardStateLost
        The shard is not at round ``expected``.
    """
    _check_round(shard, expected)
    st, ws, be = shard.st, shard.ws, shard.be
    _apply(shard, weights)
    rec = new_record()
    with np.errstate(over="ignore", invalid="ignore"):
        for kind in kinds:
            timed_update(_BLOCKS[kind], st, layer, hp, be, ws, track, rec)
        t0 = time.perf_counter()
        stats = ws.weight_statistics(st, layer, be)
    host = be.to_numpy
    constant = layer == 0 and shard.input_statistics_sent
    shard.input_statistics_sent |= layer == 0
    stats = WeightStatistics(R=host(stats.R), G=None if constant else host(stats.G),
                             u=None if stats.u is None else host(stats.u),
                             s=None if (constant or stats.s is None) else host(stats.s), n=stats.n)
    rec["time_W"] += time.perf_counter() - t0
    finite = bool(be.isfinite_all(st.V[-1])) if layer == st.n_layers - 1 else True
    return Report(stats=stats, record=rec, finite=finite, nbytes=statistics_nbytes(stats))


def statistics_nbytes(stats: WeightStatistics) -> int:
    """Bytes of a :class:`~nnbcd.bcd.blocks.WeightStatistics`' arrays."""
    return sum(a.nbytes for a in (stats.R, stats.G, stats.u, stats.s) if a is not None)


def _add(a: Optional[np.ndarray], b: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return None if a is None else a + b


def add_reports(a: Report, b: Report) -> Report:
    """Two shards' reports as one: statistics and steps add, times are the larger (shards run side by
    side), finite if both are."""
    stats = WeightStatistics(R=a.stats.R + b.stats.R, G=_add(a.stats.G, b.stats.G), u=_add(a.stats.u, b.stats.u),
                             s=_add(a.stats.s, b.stats.s), n=a.stats.n + b.stats.n)
    record = {k: max(v, b.record[k]) if k.startswith("time_") else v + b.record[k] for k, v in a.record.items()}
    return Report(stats=stats, record=record, finite=a.finite and b.finite, nbytes=a.nbytes + b.nbytes)


def shard_monitor(shard: Shard, expected: int, weights: Weights, deployed: List[np.ndarray],
                  hp: Hyper) -> Dict[str, Any]:
    """A shard's sums of a monitored iteration: its objective terms and its deployed-network sums.

    Parameters
    ----------
    shard : Shard
    expected : int
        As :func:`shard_round`.
    weights : dict
        New ``(W_i, b_i)`` to take first.
    deployed : list of ndarray
        The deployed weight of each layer (compressed copies for compressed layers).
    hp : Hyper

    Returns
    -------
    dict
        ``terms`` (:func:`~nnbcd.bcd.objective.sample_terms`) and ``sums``
        (:func:`~nnbcd.bcd.objective.metric_sums`).
    """
    _check_round(shard, expected)
    st, ws, be = shard.st, shard.ws, shard.be
    _apply(shard, weights)
    terms = sample_terms(st, hp, be, ws.prod)
    out = forward([be.asarray(w, st.X.dtype) for w in deployed], st.b, st.X, be, st.conv, st.patches)
    return {"terms": terms, "sums": metric_sums(out, st.Y, shard.labels, be)}


def shard_readout(shard: Shard, expected: int, weights: Weights, deployed: List[np.ndarray]) -> ReadoutFactor:
    """A shard's samples reduced for the output layer's least-squares refit (:mod:`nnbcd.bcd.readout`); the
    arguments as :func:`shard_monitor`'s."""
    _check_round(shard, expected)
    st, be = shard.st, shard.be
    _apply(shard, weights)
    return training_factor(st, [be.asarray(w, st.X.dtype) for w in deployed], be)


def add_sums(a: Dict[str, Any], b: Dict[str, Any]) -> Dict[str, Any]:
    """Two shards' :func:`shard_monitor` results as one (every entry is a sum over samples)."""
    return {part: {k: a[part][k] + b[part][k] for k in a[part]} for part in a}
