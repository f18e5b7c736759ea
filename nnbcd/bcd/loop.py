"""The NN-BCD run loop: sweeps, monitoring, stopping rules and the result (spec §6).

Monitoring is separate from updating: a monitored iteration measures the block steps and records the
objective terms and the deployed network's metrics; it never changes the iterates.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .._validation import NonFiniteError
from ..backend import Backend
from ..compress.accounting import compression_ratios
from ..ops.prune import effective_sparsity, true_sparsity
from ..result import History, SolveResult, Status
from .blocks import REPORTED_KINDS, Workspace
from .checkpoint import Progress
from .objective import forward, net_metrics, objective_terms
from .readout import ReadoutFactor, join, readout_loss, solve_readout, split, training_factor
from .state import BCDState, Hyper, Schedules, last_change
from .sweep import sweep


@dataclass
class Scored:
    """Data the deployed network is scored on, on the solver's backend.

    Parameters
    ----------
    x : array, shape (d_0, N)
        Inputs as columns.
    y : array, shape (K, N)
        One-hot targets.
    labels : int array, shape (N,)
        Class indices ``0..K-1``.
    patches : array, optional
        A conv first layer's :math:`\\hat X^T` for ``x``.
    """

    x: Any
    y: Any
    labels: Any
    patches: Any = None


class SweepFailed(Exception):
    """Raised by an :class:`Engine` when a sweep cannot complete for a reason of its own (a lost worker):
    the run ends with ``status`` and the last complete iterate.

    Parameters
    ----------
    status : Status
    message : str
    """

    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = status


class Engine:
    """Where the sweeps and the monitoring of :func:`run` happen: in this process (this class, today's
    functions on the whole data) or on sample shards (``nnbcd.dask``). The loop (stopping rules,
    history, schedules, statuses, callback, Ctrl-C) is the same for both.

    Parameters
    ----------
    be : Backend
    ws : Workspace
    labels : int array, shape (N,)
        Training class indices, on ``be``.
    validation : Scored, optional
    """

    def __init__(self, be: Backend, ws: Workspace, labels: Any, validation: Optional[Scored]):
        self.be, self.ws, self.labels, self.validation = be, ws, labels, validation

    def sweep(self, st: BCDState, hp: Hyper, track: bool) -> Dict[str, float]:
        """One iteration in place: :func:`~nnbcd.bcd.sweep.sweep`'s record. May raise ``LinAlgError``,
        :class:`~nnbcd.NonFiniteError` or :class:`SweepFailed`."""
        return sweep(st, hp, self.be, self.ws, track=track)

    def finite(self, st: BCDState) -> bool:
        """Whether the iterate after a sweep is finite."""
        # weights are small and every block feeds them, so a non-finite sweep shows up here
        return all(self.be.isfinite_all(w) for w in st.W) and self.be.isfinite_all(st.V[-1])

    def monitor(self, st: BCDState, hp: Hyper) -> Dict[str, float]:
        """The record of a monitored iteration (:func:`monitor`)."""
        return monitor(st, hp, self.be, self.ws, self.labels, self.validation)

    def readout_factor(self, st: BCDState) -> ReadoutFactor:
        """The training samples reduced for the output layer's least-squares refit (:mod:`nnbcd.bcd.readout`),
        with the deployed hidden layers. May raise :class:`SweepFailed`."""
        return training_factor(st, [st.deployed(i) for i in range(st.n_layers)], self.be)


def monitor(st: BCDState, hp: Hyper, be: Backend, ws: Workspace, labels: Any,
            validation: Optional[Scored]) -> Dict[str, float]:
    """The record of a monitored iteration.

    Parameters
    ----------
    st : BCDState
    hp : Hyper
    be : Backend
    ws : Workspace
        Its product buffers are used as scratch.
    labels : int array, shape (N,)
        Training class indices, on ``be``.
    validation : Scored, optional

    Returns
    -------
    dict of str to float
        The objective terms (:func:`~nnbcd.bcd.objective.objective_terms`), ``loss``/``acc``/``bacc`` of
        the deployed network on the training data, ``val_*`` on ``validation``, and with compression
        ``n_params_i``, the compression ratios and (pruning) the sparsities.
    """
    rec = objective_terms(st, hp, be, ws.prod)
    weights = [st.deployed(i) for i in range(st.n_layers)]
    out = forward(weights, st.b, st.X, be, st.conv, st.patches)
    rec.update(net_metrics(out, st.Y, labels, hp.kappa, be))
    rec.update(deployed_metrics(st, hp, be, weights, validation))
    return rec


def deployed_metrics(st: BCDState, hp: Hyper, be: Backend, deployed: List[Any],
                     validation: Optional[Scored]) -> Dict[str, float]:
    """The part of a monitored record that reads the weights only: ``val_*`` on ``validation`` and, with
    compression, :func:`compression_metrics` (the training-data part is summed over samples elsewhere).

    Parameters
    ----------
    st : BCDState
        Its biases, conv layer and compressed copies are read (no samples needed).
    hp : Hyper
        ``kappa`` says whether the loss is a sum (κ = 1) or a mean (then over the validation samples).
    be : Backend
    deployed : list of array
        The deployed weight of each layer.
    validation : Scored, optional

    Returns
    -------
    dict of str to float
    """
    rec: Dict[str, float] = {}
    if validation is not None:
        rec.update({f"val_{k}": v for k, v in _scored(st, hp.kappa, be, deployed, validation).items()})
    if st.Wt:
        rec.update(compression_metrics(st, be, deployed))
    return rec


def _scored(st: BCDState, kappa: float, be: Backend, deployed: List[Any], validation: Scored) -> Dict[str, float]:
    """:func:`~nnbcd.bcd.objective.net_metrics` of the deployed weights on ``validation``, the loss weighted as
    the training loss (κ = 1: a sum; else a mean over the validation samples)."""
    kappa = 1.0 if kappa == 1.0 else 1.0 / validation.x.shape[1]
    out = forward(deployed, st.b, validation.x, be, st.conv, validation.patches)
    return net_metrics(out, validation.y, validation.labels, kappa, be)


def compression_metrics(st: BCDState, be: Backend, deployed: List[Any]) -> Dict[str, float]:
    """Per-layer stored numbers, CR_1 / CR_2 / cr_honest and, with pruning, the sparsities (spec §6).

    Parameters
    ----------
    st : BCDState
        Its weights' shapes, biases and compressed copies are read (no samples: a client's state will do).
    be : Backend
    deployed : list of array
        The deployed weight of each layer (``st.deployed(i)``).

    Returns
    -------
    dict of str to float
        ``n_params_i``, the ratios of :func:`~nnbcd.compress.accounting.compression_ratios` and, when a
        layer is pruned, ``true_sparsity`` and ``effective_sparsity``.
    """
    rec: Dict[str, float] = {f"n_params_{i}": c.n_params for i, c in st.Wt.items()}
    rec.update(compression_ratios(
        [tuple(w.shape) for w in st.W],
        {i: c.n_params for i, c in st.Wt.items()},
        {i: c.info.get("n_stored", c.n_params) for i, c in st.Wt.items()},
        n_biases=sum(b.size for b in st.b if b is not None),
        conv_layers=(0,) if st.conv is not None else (),
    ))
    if any("sparsity" in c.info for c in st.Wt.values()):
        host = [be.to_numpy(w) for w in deployed]
        rec["true_sparsity"] = true_sparsity(host)
        rec["effective_sparsity"] = effective_sparsity(host, [None if b is None else be.to_numpy(b) for b in st.b])
    return rec


def constant_from(st: BCDState, schedules: Schedules) -> Optional[int]:
    """The first sweep from which no scheduled value (γ, ρ, τ, rank caps, sparsities) changes and no
    compressed structure is re-chosen: from its record on, every sweep minimises the same Φ, so the
    convergence guarantee (sufficient decrease, the O(1/k) rate) applies. ``None`` if that never happens."""
    return last_change([schedules.constant_from] + [spec.constant_from for spec in st.compress.values()])


#: The history columns every run has from its start (:class:`~nnbcd.result.History`): a run that ends
#: before its first sweep (``max_iter=0``, Ctrl-C in sweep 1) has them empty, not missing, so that
#: ``history["objective"]`` and the convergence checks read an empty run as one (a resumed run has its
#: checkpoint's history).
HISTORY_COLUMNS = ("objective", "step_sq", "prox_step_sq", "time")


def _structure_record(st: BCDState) -> Dict[str, float]:
    """``rank_i`` / ``sparsity_i``: what each compression spec used in the sweep just run."""
    rec: Dict[str, float] = {}
    for i, spec in st.compress.items():
        for name, value in spec.at(st.sweep, st.Wt[i]).record(st.Wt[i]).items():
            rec[f"{name}_{i}"] = value
    return rec


def run(st: BCDState, hp: Hyper, engine: Engine, *, max_iter: int, tol: Optional[float], monitor_every: int,
        callback: Optional[Callable[[SolveResult], Any]], verbose: bool,
        schedules: Optional[Schedules] = None, start: Optional[Progress] = None,
        checkpoint: Optional[Callable[[BCDState, Progress], Any]] = None, refit_output: bool = False) -> SolveResult:
    r"""Sweep until a stopping rule holds.

    Parameters
    ----------
    st : BCDState
        The initial iterate, updated in place (on a failure, its weights are reset to the last finite
        iterate).
    hp : Hyper
        γ and ρ are replaced in each sweep by those of ``schedules``.
    engine : Engine
        Runs the sweeps and the monitoring: :class:`Engine` in this process, or one on sample shards
        (``nnbcd.dask``, whose ``st`` holds the weights only).
    max_iter : int
        Most sweeps to run.
    tol : float, optional
        Stop with :attr:`~nnbcd.result.Status.CONVERGED` when, between consecutive monitored
        iterations from :func:`constant_from` on, :math:`|\Phi^{prev}-\Phi| \le tol\cdot\max(1,|\Phi^{prev}|)`
        (while a schedule still moves, Φ is not one function).
    monitor_every : int
        Monitor every this many sweeps and the last one.
    callback : callable, optional
        Called after every completed sweep with the intermediate :class:`~nnbcd.result.SolveResult`
        (no ``status``/``success``/``message``); raising ``StopIteration`` stops the run.
        A ``KeyboardInterrupt`` (Ctrl-C, or raised by the callback) anywhere in the loop ends the run with
        :attr:`~nnbcd.result.Status.INTERRUPTED` and the last sweep that completed with its record.
    verbose : bool
        Show a tqdm progress bar.
    schedules : Schedules, optional
        γ, ρ and τ per sweep; default the constants of ``hp`` and ``st.tau``.
    start : Progress, optional
        Resume: ``st`` is the iterate after ``start.nit`` complete sweeps (with its ``U``/``V``), and the
        run continues from sweep ``start.nit + 1`` with this history and stopping-rule memory
        (:mod:`nnbcd.bcd.checkpoint`); ``start.history`` is appended to.
    checkpoint : callable, optional
        ``checkpoint(st, progress)`` after every complete sweep that did not stop the run by ``tol``,
        before ``callback``: ``st`` and ``progress`` are then exactly what resuming needs.
    refit_output : bool
        After the last sweep, whatever the status, replace the output layer by the least-squares fit on the
        deployed features (:func:`refit_output_layer`); checkpoints hold the iterate before it. A Ctrl-C
        during the refit keeps the output layer and ends the run as :attr:`~nnbcd.result.Status.INTERRUPTED`.

    Returns
    -------
    SolveResult
        With the :class:`~nnbcd.result.Status` the run stopped with; ``nit`` sweeps, one history
        record each (the failed sweep's record included) with the values of the sweep (``gamma``,
        ``rho``, ``tau_i``, ``rank_i``, ``sparsity_i``), and ``constant_from``. The history has the
        :data:`HISTORY_COLUMNS` even when no sweep ran (``nit == 0``, status 1, ``fun`` NaN): empty.
        With ``refit_output``, ``output_refit`` holds :func:`refit_output_layer`'s record (``None`` without).
    """
    from tqdm.auto import tqdm

    start = Progress(History.from_columns({key: [] for key in HISTORY_COLUMNS})) if start is None else start
    history, fun, total, previous = start.history, start.fun, start.total, start.previous
    status = Status.MAX_ITER
    nit = history.n_iter
    if nit and nit >= max_iter:
        then = "only its output layer is refit (refit_output)" if refit_output else "it is returned as it is"
        warnings.warn(f"max_iter={max_iter} but the resumed iterate has {nit} sweeps already: no sweep runs and {then} "
                      "(raise max_iter to continue it)", UserWarning, stacklevel=3)
    last_good = _snapshot(st)
    complete = last_good  # the iterate of the last sweep whose history record was appended
    if schedules is None:
        schedules = Schedules(gamma=hp.gamma, rho=hp.rho, tau=dict(st.tau))
    settled = constant_from(st, schedules)
    interrupt = _CatchInterrupt()
    with tqdm(total=max_iter, initial=nit, disable=not verbose or None, desc="nnbcd") as bar, interrupt:
        for k in range(nit + 1, max_iter + 1):
            nit = k
            monitored = k % monitor_every == 0 or k == max_iter
            st.sweep = k
            hp_k = schedules.hyper(hp, k)
            exact = st.exact_layers
            st.tau = {i: t for i, t in schedules.tau_at(k).items() if i not in exact}
            t0 = time.perf_counter()
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    rec = engine.sweep(st, hp_k, track=monitored)
                failure = None if engine.finite(st) else Status.NON_FINITE
            except np.linalg.LinAlgError:
                # every system is SPD in exact arithmetic: only overflowing or non-finite data get here
                rec, failure = {}, Status.NOT_POSITIVE_DEFINITE
            except NonFiniteError:
                # a compression block (TT-SVD, top-k) refused a weight that had become non-finite
                rec, failure = {}, Status.NON_FINITE
            except SweepFailed as exc:
                rec, failure = {}, exc.status
            rec["time"] = time.perf_counter() - t0
            total += rec["time"]
            if failure is not None:
                status = failure
                _restore(st, last_good)
                history.append(rec)
                break
            if not monitored:
                rec.update({key: math.nan for key in rec if key.startswith("step_") or key == "prox_step_sq"})
            rec["step_sq"] = sum(rec[f"step_{kind}"] for kind in REPORTED_KINDS)
            rec.update(schedules.record(k))
            rec.update(_structure_record(st))
            last_good = _snapshot(st)
            if monitored:
                t1 = time.perf_counter()
                rec.update(engine.monitor(st, hp_k))
                rec["time_monitor"] = time.perf_counter() - t1
                fun = rec["objective"]
            history.append(rec)
            complete = last_good
            bar.update(1)
            if monitored:
                post = {"acc": f"{rec['acc']:.4f}", "objective": f"{fun:.4g}"}
                if "val_acc" in rec:
                    post["val_acc"] = f"{rec['val_acc']:.4f}"
                bar.set_postfix(post, refresh=False)
                if tol is not None and settled is not None and k >= settled:
                    if previous is not None and abs(previous - fun) <= tol * max(1.0, abs(previous)):
                        status = Status.CONVERGED
                        break
                    previous = fun
            if checkpoint is not None:
                checkpoint(st, Progress(history, fun, total, previous))
            if callback is not None:
                try:
                    callback(SolveResult(_fields(st, history, k, fun, total, settled)))
                except StopIteration:
                    status = Status.CALLBACK
                    break
    if interrupt.caught:  # it may have landed mid-sweep: go back to the last complete one
        status, nit = Status.INTERRUPTED, history.n_iter
        _restore(st, complete)
    refit = refit_output_layer(st, engine, hp.kappa) if refit_output else None
    if refit is not None and refit.get("interrupted"):  # Ctrl-C during the refit: the run was interrupted too
        status = Status.INTERRUPTED
    return SolveResult.finished(status, **dict(_fields(st, history, nit, fun, total, settled), output_refit=refit))


def refit_output_layer(st: BCDState, engine: Engine, kappa: float) -> Dict[str, Any]:
    r"""Replace ``st``'s output layer :math:`(W_L, b_L)` by the least-squares fit of the training targets on the
    deployed network's features (:mod:`nnbcd.bcd.readout`), in place, unless that would not lower the
    training loss (in the computation's dtype) or cannot be done.

    Parameters
    ----------
    st : BCDState
        Its output layer is not compressed.
    engine : Engine
        Reduces the training samples (:meth:`Engine.readout_factor`); its ``validation`` is scored.
    kappa : float
        κ of the run: the losses are weighted as the history's ``loss``.

    Returns
    -------
    dict
        ``refit`` (bool: the output layer was replaced); ``loss_before`` / ``loss``, the deployed network's
        training loss before and after (equal when not replaced; NaN when not known: a lost shard, an
        interruption, non-finite features); with validation data ``val_loss``, ``val_acc`` of the network
        returned and, when replaced, ``val_loss_before``, ``val_acc_before``; and ``reason`` when not
        replaced: a lost shard, non-finite features (a diverged run), no decrease (the output layer was
        already the least-squares one to the dtype's precision), or a Ctrl-C during the refit, which also
        sets ``interrupted`` (True: the run's status becomes INTERRUPTED, the sweeps' work is kept) and
        leaves the validation scores out.

    Warns
    -----
    UserWarning
        When the least-squares layer fits the training targets exactly (loss ≈ 0: as many independent
        output-layer inputs as samples), which overfits.
    """
    rec: Dict[str, Any] = {"refit": False, "loss_before": math.nan, "loss": math.nan}
    new = None
    with _CatchInterrupt() as interrupt:  # the sweeps' work must survive a Ctrl-C here
        try:
            new = _least_squares_output(st, engine, kappa, rec)
        except SweepFailed as exc:
            rec["reason"] = f"the training data could not be read: {exc}"
    if interrupt.caught:
        return {"refit": False, "loss_before": math.nan, "loss": math.nan, "interrupted": True,
                "reason": "interrupted (KeyboardInterrupt) during the refit"}
    if new is not None:
        st.W[-1] = new[0]
        if new[1] is not None:
            st.b[-1] = new[1]
    with _CatchInterrupt():  # a Ctrl-C here only leaves the validation scores out
        rec.update(_validation_metrics(st, engine, kappa))
    return rec


def _least_squares_output(st: BCDState, engine: Engine, kappa: float,
                          rec: Dict[str, Any]) -> Optional[Tuple[Any, Any]]:
    """The refit output layer ``(W_L, b_L)`` on the backend, or ``None`` to keep the current one; fills
    ``rec`` (:func:`refit_output_layer`)."""
    be, dtype = engine.be, st.W[-1].dtype
    factor = engine.readout_factor(st)
    if not factor.finite:
        rec["reason"] = "the deployed network's features are not finite (a diverged run)"
        return None
    rec["loss_before"] = rec["loss"] = kappa * readout_loss(factor, join(st.W[-1], st.b[-1], be))
    with np.errstate(over="ignore", invalid="ignore"):
        coef = solve_readout(factor).astype(dtype).astype(np.float64)  # judged as the network will hold it
    loss = kappa * readout_loss(factor, coef) if np.isfinite(coef).all() else math.nan
    if loss <= factor.eps * kappa * readout_loss(factor, np.zeros_like(coef)):  # ≈ 0 against ½‖Y‖²
        warnings.warn(f"refit_output: the least-squares output layer fits the {factor.n} training samples exactly "
                      f"(it has {factor.width} inputs): expect it to overfit", UserWarning, stacklevel=5)
    if not loss < rec["loss_before"]:
        rec["reason"] = ("the least-squares output layer overflows the dtype" if math.isnan(loss) else
                         "no decrease: the output layer is already the least-squares one to the dtype's precision")
        return None
    rec.update({f"{k}_before": v for k, v in _validation_metrics(st, engine, kappa).items()})
    rec.update(refit=True, loss=loss)
    w, b = split(coef, st.b[-1] is not None)
    return be.asarray(w, dtype), None if b is None else be.asarray(b, dtype)


def _validation_metrics(st: BCDState, engine: Engine, kappa: float) -> Dict[str, float]:
    """``val_loss`` and ``val_acc`` of the deployed network on the engine's validation data (none without)."""
    if engine.validation is None:
        return {}
    metrics = _scored(st, kappa, engine.be, [st.deployed(i) for i in range(st.n_layers)], engine.validation)
    return {"val_loss": metrics["loss"], "val_acc": metrics["acc"]}


def _fields(st: BCDState, history: History, nit: int, fun: float, total: float,
            settled: Optional[int]) -> Dict[str, Any]:
    """Everything a result holds but its status."""
    x = {
        "W": list(st.W),
        "b": list(st.b),
        "Wt": dict(st.Wt),
        "W_deployed": [st.deployed(i) for i in range(st.n_layers)],
    }
    compression = {i: dict(c.info, n_params=c.n_params) for i, c in st.Wt.items()}
    return dict(x=x, nit=nit, fun=fun, history=history, time=total, compression=compression,
                constant_from=settled, output_refit=None)  # the refit follows the last sweep


class _CatchInterrupt:
    """A context that ends on ``KeyboardInterrupt`` instead of raising it, and records that it did."""

    caught = False

    def __enter__(self) -> "_CatchInterrupt":
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        self.caught = kind is not None and issubclass(kind, KeyboardInterrupt)
        return self.caught


def _snapshot(st: BCDState) -> Dict[str, Any]:
    return {"W": [w.copy() for w in st.W], "b": [None if b is None else b.copy() for b in st.b],
            "Wt": dict(st.Wt)}


def _restore(st: BCDState, snap: Dict[str, Any]) -> None:
    st.W, st.b, st.Wt = snap["W"], snap["b"], snap["Wt"]
