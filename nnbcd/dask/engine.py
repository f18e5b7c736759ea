r"""The client side of a sample-sharded NN-BCD run: a :class:`~nnbcd.bcd.loop.Engine` on Dask shards.

One sweep is one round trip per layer, in :func:`~nnbcd.bcd.sweep.block_schedule`'s order (L−1 down
to 0). In the round of layer ``i`` every shard takes the weights that changed since its last round,
runs layer ``i``'s per-sample blocks (``V_out, U_out`` or ``V, U``) and computes layer ``i``'s
:class:`~nnbcd.bcd.blocks.WeightStatistics`; the shards' statistics are added by a tree of tasks on the
workers, only the sum (O(d_i d_{i−1}) numbers) comes back, and the client runs layer ``i``'s weight blocks
(``W`` or ``W_exact``, then ``comp``) once: the same update functions as the single-process solver,
reading the sum through :class:`ReducedWorkspace`, the :meth:`~nnbcd.bcd.blocks.Workspace.weight_statistics`
seam. The new :math:`W_i, b_i` travel with the next round. The W-block always takes its Gram (direct)
form: the push-through form reads U and V themselves.
"""
from __future__ import annotations

import time
from itertools import groupby
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..backend import Backend
from ..bcd.blocks import WeightStatistics, Workspace
from ..bcd.loop import Engine, Scored, SweepFailed, deployed_metrics
from ..bcd.objective import coupling_terms, metrics_from_sums, with_objective
from ..bcd.readout import ReadoutFactor, combine_readout
from ..bcd.state import BCDState, Hyper
from ..bcd.sweep import block_schedule, new_record, timed_update
from ..result import Status
from .shards import (ShardStateLost, Weights, add_reports, add_sums, shard_monitor, shard_readout, shard_round,
                     shard_save)


class ReducedWorkspace(Workspace):
    """The client's workspace: no d×N buffers, and the W-blocks' statistics are the shards' sum.

    Parameters
    ----------
    head : BCDState
        The client's state (weights only, no samples).
    be : Backend
    """

    def __init__(self, head: BCDState, be: Backend):
        super().__init__(head, be, "auto", "direct")  # head.U is empty: no buffers
        self.statistics: Dict[int, WeightStatistics] = {}

    def weight_statistics(self, st: BCDState, i: int, be: Backend) -> WeightStatistics:
        """The sum over the shards of layer ``i``'s statistics, set by the round just run."""
        return self.statistics[i]


def _weights(st: BCDState, layers: Any) -> Weights:
    return {i: (st.W[i], st.b[i]) for i in layers}


def _nbytes(weights: Weights) -> int:
    return sum(w.nbytes + (0 if b is None else b.nbytes) for w, b in weights.values())


class DaskEngine(Engine):
    """Sweeps and monitoring of :func:`~nnbcd.bcd.loop.run` on shards held by Dask workers.

    Parameters
    ----------
    client : distributed.Client
    shards : list of distributed.Future
        One :class:`~nnbcd.dask.shards.Shard` each, pinned to ``workers``.
    workers : list of str
        The address of the worker holding each shard.
    head : BCDState
        The client's state: the weights, compressed copies and specs, no samples.
    be : Backend
        The client's backend (for the weight blocks).
    validation : Scored, optional
        Validation data, scored on the client.
    poll : float
        Seconds between checks that the shards' workers are alive while waiting for a round.

    Attributes
    ----------
    bytes_sent, bytes_received : int
        Bytes of weights sent to the shards and of statistics and sums the shards sent (to another
        worker in the reduction tree or to the client) so far.
    """

    def __init__(self, client: Any, shards: List[Any], workers: List[str], head: BCDState, be: Backend,
                 validation: Optional[Scored] = None, poll: float = 2.0):
        super().__init__(be, ReducedWorkspace(head, be), None, validation)
        self.client, self.shards, self.workers, self.poll = client, shards, workers, poll
        self.rounds = 0
        self.pending: Weights = _weights(head, range(head.n_layers))  # the shards start from their own W^0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.lost: Optional[str] = None
        self._input_statistics: Optional[WeightStatistics] = None

    # ---- one round ----------------------------------------------------------------------------------
    def _submit(self, fn: Callable[..., Any], *args: Any, send: bool = True) -> List[Any]:
        """``fn(shard, round, pending weights, *args)`` on every shard, where it lives (with ``send=False``,
        no weights: they stay pending for the next round)."""
        if self.lost is not None:
            raise SweepFailed(Status.WORKER_LOST, self.lost)
        weights: Weights = {}
        if send:
            weights, self.pending = self.pending, {}
        payload = self.broadcast(weights) if weights else weights
        futures = [self.client.submit(fn, shard, self.rounds, payload, *args, workers=[w], allow_other_workers=False,
                                      pure=False)
                   for shard, w in zip(self.shards, self.workers)]
        self.rounds += 1
        self.bytes_sent += _nbytes(weights) * len(set(self.workers))
        return futures

    def broadcast(self, value: Any) -> Any:
        """``value`` copied once to every worker that holds a shard; a future the shards' tasks take in its
        place. (Inside each task's graph it would travel once per shard, and Dask warns of graphs above
        10 MB: the full HAR widths' weights are 12 MB.) Raises :class:`~nnbcd.bcd.loop.SweepFailed` when one of
        those workers has left."""
        homes = sorted(set(self.workers))
        alive = set(self.client.nthreads())  # one call to the scheduler, not one per worker
        gone = [w for w in homes if w not in alive]
        if gone:
            self._lose(f"worker(s) {gone} holding shards of the samples left the cluster")
        try:
            return self.client.scatter([value], workers=homes, broadcast=True, hash=False)[0]
        except (OSError, TimeoutError, ValueError) as exc:  # a worker left between the check and the copy
            self._lose(f"the weights could not reach the shards' workers: {exc}")

    def _reduce(self, futures: List[Any], add: Callable[[Any, Any], Any]) -> Any:
        """The sum of the futures' values by a tree of ``add`` tasks on the workers: only the total comes
        back."""
        while len(futures) > 1:
            pairs = [self.client.submit(add, a, b, pure=False) for a, b in zip(futures[::2], futures[1::2])]
            futures = pairs + futures[len(pairs) * 2:]
        return self._result(futures[0])

    def _result(self, future: Any) -> Any:
        """The future's value; :class:`~nnbcd.bcd.loop.SweepFailed` (status 5) when a shard's worker is gone or
        its shard was rebuilt (its tasks, pinned to a lost worker, would wait for ever)."""
        from distributed import TimeoutError as DaskTimeout
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        while True:
            try:
                return future.result(timeout=self.poll)
            except (DaskTimeout, TimeoutError):
                alive = set(self.client.nthreads())
                gone = sorted({w for w in self.workers if w not in alive})
                if gone:
                    self._lose(f"worker(s) {gone} holding shards of the samples left the cluster")
            except (ShardStateLost, KilledWorker, FutureCancelledError) as exc:
                self._lose(f"a shard of the samples was lost: {exc}")

    def _lose(self, message: str) -> None:
        self.lost = message
        raise SweepFailed(Status.WORKER_LOST, message)

    def save(self, directory: str, sweep: int, token: str) -> List[Tuple[int, int]]:
        """Every shard writes its columns of ``U``, ``V`` for a sharded checkpoint
        (:func:`~nnbcd.dask.shards.shard_save`); the column ranges written, in shard order. Raises
        :class:`~nnbcd.bcd.loop.SweepFailed` when a shard is lost."""
        futures = self._submit(shard_save, directory, sweep, token, send=False)
        return [tuple(self._result(f)) for f in futures]  # type: ignore[misc]

    # ---- Engine -----------------------------------------------------------------------------------------
    def sweep(self, st: BCDState, hp: Hyper, track: bool) -> Dict[str, float]:
        """One sweep, one round per layer; the record of :func:`~nnbcd.bcd.sweep.sweep` plus ``bytes_sent``,
        ``bytes_received`` and ``time_wait`` (seconds the client waited beyond the slowest shard's
        compute: transfers, scheduling, reduction)."""
        out = new_record()
        out["time_wait"] = 0.0
        sent, received = self.bytes_sent, self.bytes_received
        self._finite = True
        schedule = block_schedule(st.n_layers, st.compress, st.exact_layers)
        for i, group in groupby(schedule, key=lambda entry: entry[1]):
            blocks = [block for block, _ in group]
            t0 = time.perf_counter()
            report = self._reduce(self._submit(shard_round, i, [b.kind for b in blocks if b.per_sample], hp, track),
                                  add_reports)
            wall = time.perf_counter() - t0
            self.bytes_received += report.nbytes
            self._finite &= report.finite
            out["time_wait"] += max(0.0, wall - sum(v for k, v in report.record.items() if k.startswith("time_")))
            for key, value in report.record.items():
                out[key] += value
            self.ws.statistics = {i: self._on_backend(i, report.stats)}
            for block in blocks:
                if not block.per_sample:
                    timed_update(block, st, i, hp, self.be, self.ws, track, out)
            self.pending.update(_weights(st, [i]))
        out["bytes_sent"] = float(self.bytes_sent - sent)
        out["bytes_received"] = float(self.bytes_received - received)
        return out

    def _on_backend(self, i: int, stats: WeightStatistics) -> WeightStatistics:
        """The summed statistics on the client's backend; layer 0's constant G and s from its first round."""
        be = self.be
        dev = (lambda a: None if a is None else be.asarray(a))
        if i == 0:
            if self._input_statistics is None:
                self._input_statistics = WeightStatistics(R=None, G=dev(stats.G), u=None, s=dev(stats.s), n=stats.n)
            stats = WeightStatistics(R=stats.R, G=self._input_statistics.G, u=stats.u, s=self._input_statistics.s,
                                     n=stats.n)
        return WeightStatistics(R=dev(stats.R), G=dev(stats.G), u=dev(stats.u), s=dev(stats.s), n=stats.n)

    def finite(self, st: BCDState) -> bool:
        """Weights finite on the client and every shard's output variable finite."""
        return self._finite and all(self.be.isfinite_all(w) for w in st.W)

    def monitor(self, st: BCDState, hp: Hyper) -> Dict[str, float]:
        """The record of :func:`~nnbcd.bcd.loop.monitor`, from the shards' sums. A lost shard gives NaN
        measurements here and ends the run at the next sweep (the iterate itself is complete)."""
        deployed = [self.be.to_numpy(st.deployed(i)) for i in range(st.n_layers)]
        sent = self.bytes_sent
        try:
            futures = self._submit(shard_monitor, self.broadcast(deployed), hp)
            self.bytes_sent += sum(w.nbytes for w in deployed) * len(set(self.workers))
            total = self._reduce(futures, add_sums)
        except SweepFailed:
            return {"objective": np.nan, "acc": np.nan}
        rec = with_objective({**total["terms"], **coupling_terms(st, self.be)}, hp)
        rec["bytes_monitor"] = float(self.bytes_sent - sent)  # weights out; the sums back are O(K + L) numbers
        rec.update(metrics_from_sums(total["sums"], hp.kappa))
        rec.update(deployed_metrics(st, hp, self.be, [st.deployed(i) for i in range(st.n_layers)], self.validation))
        return rec

    def readout_factor(self, st: BCDState) -> ReadoutFactor:
        """The output layer refit's factor: each shard's (:func:`~nnbcd.dask.shards.shard_readout`), combined
        on the workers (TSQR); raises :class:`~nnbcd.bcd.loop.SweepFailed` when a shard is lost."""
        deployed = [self.be.to_numpy(st.deployed(i)) for i in range(st.n_layers)]
        total = self._reduce(self._submit(shard_readout, self.broadcast(deployed)), combine_readout)
        self.bytes_received += total.R.nbytes
        return total
