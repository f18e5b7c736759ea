"""``DaskNNBCD``: the NN-BCD estimator on samples sharded over the workers of a Dask cluster."""
from __future__ import annotations

import copy
import inspect
import logging
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from sklearn.base import clone
from sklearn.utils import assert_all_finite
from sklearn.utils.multiclass import check_classification_targets

from .. import _validation as val
from ..bcd import checkpoint as ckpt
from ..bcd.estimator import NNBCD, _check_conv_input, _checked_checkpoint, _checkpointer
from ..bcd.loop import SweepFailed, run
from ..bcd.state import BCDState
from ..result import SolveResult, Status
from .engine import DaskEngine
from .shards import initial_weights, make_shard, rows_digest

logger = logging.getLogger(__name__)


class DaskNNBCD(NNBCD):
    r"""NN-BCD with the samples sharded over the workers of a Dask cluster (``pip install nnbcd[dask]``).

    The same algorithm, block formulas, parameters, attributes and result as :class:`~nnbcd.NNBCD`
    (see there); the samples' columns of ``X``, ``Y``, ``U`` and ``V`` live in shards on the workers for the
    whole run, and the client holds the weights only. Per sweep and layer, one round trip: the shards
    run the layer's per-sample blocks and send the W-block's Grams (summed over the shards by a tree of
    tasks on the workers), the client solves the W-block (and the compression block) once and sends
    the new weights with the next round (docs/dask.md). In float64 the iterates equal
    :class:`~nnbcd.NNBCD`'s up to the rounding of the sums' order.

    Parameters
    ----------
    hidden_layer_sizes, **params
        As :class:`~nnbcd.NNBCD`. ``w_solve`` may be ``"auto"`` or ``"direct"`` (the W-block takes its Gram
        form: the push-through form reads U and V); ``warm_start`` is not supported yet (``ValueError``).
        ``checkpoint_every`` / ``checkpoint_dir`` write a sharded checkpoint (each shard its columns of
        ``U``, ``V``; the client the weights, history and meta, last: :mod:`nnbcd.bcd.checkpoint`), in a
        directory the workers and the client share.
    client : distributed.Client, optional
        The cluster's client; default the current one (``distributed.default_client()``).
    n_shards : int ≥ 1, optional
        With numpy input, the number of row blocks (default: one per worker); a dask array's row chunks
        are its shards and take no ``n_shards``.

    Attributes
    ----------
    classes_, n_features_in_, coefs_, intercepts_, n_iter_, result_, backend_
        As :class:`~nnbcd.NNBCD`.
    state_ : BCDState
        The final weights, biases and compressed copies (``U``, ``V``, ``X``, ``Y`` stay on the workers and
        are released after the fit).
    n_shards_ : int
        The shards of the last fit.

    Notes
    -----
    A worker lost during the run ends it with status 5 (:attr:`~nnbcd.result.Status.WORKER_LOST`) and
    the last complete iterate; the weights are never half updated.
    """

    def __init__(self, hidden_layer_sizes: "int | Sequence[int]" = (256, 256), *, client: Any = None,
                 n_shards: Optional[int] = None, **params: Any) -> None:
        super().__init__(hidden_layer_sizes, **params)
        self.client = client
        self.n_shards = n_shards

    # ---- copies: a live client (sockets, an event loop) is shared, never copied ---------------------------
    def __sklearn_clone__(self) -> "DaskNNBCD":
        """:func:`sklearn.base.clone`: the parameters cloned as scikit-learn does, the ``client`` itself shared
        (so ``cross_val_score`` and grid searches work with an explicit client)."""
        params = self.get_params(deep=False)
        client = params.pop("client")
        return type(self)(client=client, **{k: clone(v, safe=False) for k, v in params.items()})

    def __getstate__(self) -> Dict[str, Any]:
        """Pickled without its client: an unpickled model runs on the current client (or the one set)."""
        return dict(super().__getstate__(), client=None)

    # ---- inputs ---------------------------------------------------------------------------------------
    def _client(self) -> Any:
        """The client to run on: ``client`` or the current one."""
        from distributed import Client, default_client

        if self.client is None:
            try:
                return default_client()
            except ValueError:
                raise ValueError("DaskNNBCD needs a dask.distributed client: pass client=Client(...) or create one "
                                 "first (e.g. Client(LocalCluster(n_workers=2)))") from None
        if not isinstance(self.client, Client):
            raise TypeError(f"client must be a distributed.Client or None, got {type(self.client).__name__}")
        if self.client.status != "running":
            raise ValueError(f"client is {self.client.status}: DaskNNBCD needs a running distributed.Client")
        return self.client

    def _parts(self, client: Any, X: Any, y: Any,
               workers: List[str]) -> Tuple[List[Any], List[Any], Tuple[int, int], List[Tuple[int, int]]]:
        """Row blocks of ``X`` and ``y`` as futures, ``X``'s shape and each block's rows ``[start, stop)``;
        sets ``classes_``.

        Raises
        ------
        ValueError, TypeError
            Naming ``X``, ``y`` or ``n_shards``: a dask array chunked along columns, row chunks of ``X``
            and ``y`` that differ, a dask array with a numpy one, ``n_shards`` with dask arrays or more
            shards than samples.
        """
        import dask.array as da

        if isinstance(X, da.Array) or isinstance(y, da.Array):
            if not isinstance(X, da.Array) or not isinstance(y, da.Array):
                raise TypeError(f"X and y must both be dask arrays or both not, got X {type(X).__name__} and "
                                f"y {type(y).__name__}")
            if self.n_shards is not None:
                raise ValueError(f"n_shards={self.n_shards!r} is for numpy input: a dask array's row chunks are "
                                 "its shards (rechunk X and y to change them)")
            if X.ndim != 2:
                raise ValueError(f"X must be a 2-d dask array (samples × features), got {X.ndim} dimensions")
            if any(np.isnan(c) for c in X.chunks[0]) or any(np.isnan(c) for c in y.chunks[0]):
                raise ValueError("X and y need known chunk sizes: call X.compute_chunk_sizes() (and y's)")
            if len(X.chunks[1]) != 1:
                raise ValueError(f"X is chunked along its columns ({len(X.chunks[1])} column chunks {X.chunks[1]}): "
                                 "each shard needs whole samples; rechunk with X.rechunk({1: -1})")
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.ndim != 1:
                raise ValueError(f"y must be a 1-d dask array of labels, got shape {y.shape}")
            if X.chunks[0] != y.chunks[0]:
                raise ValueError(f"X and y have different row chunks (X {X.chunks[0]}, y {y.chunks[0]}): "
                                 "shard i holds rows chunk i of both; rechunk y to X.chunks[0]")
            if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
                raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
            with val.named_errors("y"):
                classes = np.asarray(da.unique(y).compute())
                if classes.dtype.kind in "fc":
                    assert_all_finite(classes, input_name="y")
                check_classification_targets(classes)
            self.n_features_in_ = X.shape[1]
            if X.shape[0] == 0:
                raise ValueError("X has no rows (0 samples)")
            # an empty row chunk (left by a filter, e.g. X[mask]) is no shard: a shard needs samples
            starts = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(int)
            keep = [j for j, rows in enumerate(X.chunks[0]) if rows > 0]
            xd, yd = X.to_delayed()[:, 0], y.to_delayed()
            xs = client.compute([xd[j] for j in keep])
            ys = client.compute([yd[j] for j in keep])
            ranges = [(int(starts[j]), int(starts[j + 1])) for j in keep]
            shape = X.shape
        else:
            X, y = self._checked_data(X, y)
            classes = np.unique(y)
            n = len(workers) if self.n_shards is None else val.check_int(self.n_shards, "n_shards")
            if n > X.shape[0]:
                raise ValueError(f"n_shards={n} is more than the {X.shape[0]} samples")
            bounds = np.linspace(0, X.shape[0], n + 1).astype(int)
            # hash=False: a key made from the content (the default) can be one a previous fit's futures are
            # releasing, and the new task then fails with "lost dependencies"
            ranges = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
            xs, ys = ([client.scatter(a[lo:hi], workers=[workers[j % len(workers)]], hash=False)
                       for j, (lo, hi) in enumerate(ranges)] for a in (X, y))
            shape = X.shape
        self.classes_ = classes
        return xs, ys, shape, ranges

    # ---- fit ---------------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None,
            callback: Optional[Callable[[SolveResult], Any]] = None,
            resume: "str | os.PathLike[str] | None" = None) -> "DaskNNBCD":
        """Run NN-BCD on the cluster for at most ``max_iter`` sweeps.

        Parameters
        ----------
        X : dask array or array-like, shape (n_samples, n_features)
            A dask array with one column chunk: each row chunk is one shard. A numpy array is cut into
            ``n_shards`` row blocks and scattered (one per worker, in turn).
        y : dask array or array-like, shape (n_samples,)
            Labels; a dask array must have ``X``'s row chunks.
        X_val, y_val : array-like, optional
            Validation data, kept and scored on the client (``val_*`` in the history).
        callback : callable, optional
            As :meth:`NNBCD.fit <nnbcd.NNBCD.fit>`.
        resume : str or path-like, optional
            A checkpoint, sharded (written by a ``DaskNNBCD`` with ``checkpoint_every``, on any number of
            shards and workers) or not (written by :class:`~nnbcd.NNBCD`): each shard reads its columns of
            ``U``, ``V`` from the checkpoint's files that overlap them, and the run continues as
            :meth:`NNBCD.fit <nnbcd.NNBCD.fit>`'s ``resume`` does. With the checkpointed run's shards the
            iterates are those of the uninterrupted run bit for bit; with other shards they differ by the
            rounding of the W-block's sums over the shards (docs/dask.md). ``client`` and ``n_shards``
            may differ from the checkpointed run's.

        Returns
        -------
        self

        Raises
        ------
        ValueError, TypeError
            Naming the parameter or input that is invalid; ``client`` when there is no client; for
            ``resume``, as :meth:`NNBCD.fit <nnbcd.NNBCD.fit>`, and a sharded checkpoint whose shard files
            are missing or not those its meta names.
        FileNotFoundError
            No checkpoint at ``resume``.
        """
        cfg = self._start_fit(callback, resume, stacklevel=3)  # called by fit itself
        client = self._client()
        if cfg["warm_start"]:
            raise ValueError("warm_start is not supported by DaskNNBCD yet (got True); to continue a run, "
                             "use checkpoint_every and fit(..., resume=...)")
        if cfg["w_solve"] == "woodbury":
            raise ValueError("w_solve='woodbury' reads U and V on one machine; DaskNNBCD solves the W-block "
                             "from the shards' Grams: use 'auto' or 'direct'")
        be, dtype = cfg["be"], cfg["dtype"]
        workers = sorted(client.nthreads())
        if not workers:
            raise ValueError("client has no workers")
        xs, ys, shape, ranges = self._parts(client, X, y, workers)
        _check_conv_input(np.empty((0, shape[1])), self.conv)  # reads the number of features only
        widths, compress, validation, xv, lv, schedules, hp = self._network(cfg, *shape, X_val, y_val)
        # every shard draws the initial weights from a copy of the one generator: the same W^0 everywhere
        init = {"rng": cfg["rng"], "init_scale": cfg["init_scale"], "bias": cfg["bias"]}
        unfitted = copy.copy(self)
        unfitted.client = None  # a client does not travel to the workers
        homes = [workers[j % len(workers)] for j in range(len(xs))]
        # what a checkpoint must match: the data's fingerprint adds the shards' digests (any sharding)
        digests = client.gather([client.submit(rows_digest, xf, yf, self.classes_, start, workers=[w], pure=False)
                                 for xf, yf, w, (start, _) in zip(xs, ys, homes, ranges)])
        data = ckpt.data_fingerprint(np.sum(digests, axis=0, dtype=np.uint64), *shape,
                                     self.classes_.astype(str), xv, lv)
        params, dtype_name = self._resume_params(), str(np.dtype(dtype))
        # the client reads the weights and history; each shard reads its own columns of U, V
        saved = None if resume is None else _checked_checkpoint(resume, params, data, dtype_name, columns=False,
                                                                defaults=type(self)()._resume_params())
        shards = [client.submit(make_shard, unfitted, xf, yf, self.classes_, widths, compress,
                                schedules.tau_at(1), init, be.name, dtype, cfg["v_solve"], cols, saved,
                                workers=[w], allow_other_workers=False, pure=False)
                  for xf, yf, w, cols in zip(xs, ys, homes, ranges)]
        del xs, ys  # the shards copied their rows
        engine = None
        try:
            if saved is None:
                W, b, Wt = client.submit(initial_weights, shards[0], workers=[homes[0]], pure=False).result()
                head = BCDState(W=[be.asarray(w, dtype) for w in W],
                                b=[None if v is None else be.asarray(v, dtype) for v in b],
                                U=[], V=[], X=None, Y=None, compress=compress, tau=schedules.tau_at(1), Wt=Wt,
                                conv=self.conv)
                for i in head.exact_layers:  # an exact layer's W is its compressed copy's array, as in NNBCD
                    head.W[i] = head.Wt[i].dense
            else:  # the weights from the checkpoint, as every shard took them
                head = BCDState(**ckpt.restore(saved.iterate, be), X=None, Y=None, compress=compress,
                                tau=schedules.tau_at(1), conv=self.conv)
                head.sweep = saved.iterate.sweep
            engine = DaskEngine(client, shards, homes, head, be, validation)
            result = run(head, hp, engine, max_iter=cfg["max_iter"], tol=cfg["tol"],
                         monitor_every=cfg["monitor_every"], callback=callback, verbose=cfg["verbose"],
                         schedules=schedules,
                         start=None if saved is None else saved.progress,
                         checkpoint=_checkpointer(cfg, be, params, data, dtype_name,
                                                  columns=_shard_writer(engine, shape[0])),
                         refit_output=cfg["refit_output"])
        finally:  # the shards' U, V leave the workers' memory
            for shard in shards:
                shard.release()
        if result.status == Status.WORKER_LOST:
            # result.nit counts the sweep that failed (its history row is the failure's, as for status 2 and 3)
            logger.warning("DaskNNBCD.fit lost a worker after %d complete sweeps (%s); the last complete "
                           "iterate is kept (result_.status %d; its history's last row is the failed sweep %d).",
                           result.nit - 1, engine.lost, result.status, result.nit)
        self.n_shards_ = len(shards)
        return self._finish(result, head, be, cfg)

    def _resume_params(self) -> Dict[str, Any]:
        """As :class:`~nnbcd.NNBCD`'s, without ``client`` and ``n_shards``: a checkpoint resumes on any
        cluster and sharding, and one of either estimator resumes with the other."""
        return ckpt.plain_params({k: v for k, v in self.get_params(deep=False).items()
                                  if k not in ("client", "n_shards")})

    # ---- inference on dask arrays -----------------------------------------------------------------------------
    def _outputs(self, X: Any) -> Any:
        import dask.array as da

        if isinstance(X, da.Array):
            if len(X.chunks[1]) != 1:
                raise ValueError(f"X is chunked along its columns ({len(X.chunks[1])} column chunks): rechunk "
                                 "with X.rechunk({1: -1})")
            outputs, width, dtype = super()._outputs, len(self.classes_), self.coefs_[0].dtype

            def block_outputs(block: Any) -> np.ndarray:  # an empty row chunk (a filter leaves them) has none
                return outputs(block) if block.shape[0] else np.empty((0, width), dtype)

            return X.map_blocks(block_outputs, chunks=(X.chunks[0], (width,)), dtype=dtype)
        return super()._outputs(X)

    def predict(self, X: Any) -> Any:
        """Class labels, a dask array for a dask ``X`` (computed per row chunk on the workers).

        Parameters
        ----------
        X : dask array or array-like, shape (n_samples, n_features)

        Returns
        -------
        ndarray or dask array, shape (n_samples,)
        """
        out = self._outputs(X)
        classes = self.classes_
        if not isinstance(out, np.ndarray):
            return out.map_blocks(lambda o: classes[o.argmax(axis=1)], drop_axis=1, dtype=classes.dtype)
        return classes[out.argmax(axis=1)]


def _shard_writer(engine: DaskEngine, n_samples: int) -> Callable[[BCDState, Path], Optional[ckpt.ShardSet]]:
    """The ``columns`` hook of :func:`~nnbcd.bcd.estimator._checkpointer`: every shard writes its columns of
    ``U``, ``V`` (in a new folder, under a new token); ``None`` (no checkpoint this time, the previous one
    stays whole) when a shard is lost — the next sweep then ends the run with status 5."""
    def write(st: BCDState, directory: Path) -> Optional[ckpt.ShardSet]:
        token = uuid.uuid4().hex[:12]
        try:
            ranges = engine.save(str(directory), st.sweep, token)
        except SweepFailed as exc:
            logger.warning("DaskNNBCD: no checkpoint after sweep %d, a shard could not write its columns (%s)",
                           st.sweep, exc)
            return None
        return ckpt.ShardSet(folder=ckpt.shard_folder(st.sweep, token), ranges=ranges, token=token,
                             n_samples=n_samples)
    return write


def _signature() -> inspect.Signature:
    """``NNBCD.__init__``'s parameters plus ``client`` and ``n_shards``, for scikit-learn's ``get_params``
    (which reads the constructor's signature): one list of parameters, NNBCD's."""
    base = inspect.signature(NNBCD.__init__)
    params = list(base.parameters.values())
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in ("client", "n_shards")]
    return base.replace(parameters=params + extra)


DaskNNBCD.__init__.__signature__ = _signature()  # type: ignore[attr-defined]
