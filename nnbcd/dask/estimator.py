"""``DaskNNBCD``: the NN-BCD estimator on samples sharded over the workers of a Dask cluster."""
from __future__ import annotations

import copy
import inspect
import logging
import warnings
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import assert_all_finite
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d, validate_data

from .. import _validation as val
from ..bcd.estimator import NNBCD, _INPUT_DTYPES, _check_conv_input, _one_hot
from ..bcd.loop import Scored, run
from ..bcd.state import BCDState, Hyper, Schedules
from ..result import SolveResult, Status
from .engine import DaskEngine
from .shards import initial_weights, make_shard

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
        form: the push-through form reads U and V); ``warm_start``, ``checkpoint_every`` and
        ``checkpoint_dir`` are not supported yet (``ValueError`` when set).
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
        return self.client

    def _parts(self, client: Any, X: Any, y: Any, workers: List[str]) -> Tuple[List[Any], List[Any], Tuple[int, int]]:
        """Row blocks of ``X`` and ``y`` as futures, and ``X``'s shape; sets ``classes_``.

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
            xs = client.compute(list(X.to_delayed()[:, 0]))
            ys = client.compute(list(y.to_delayed()))
            shape = X.shape
        else:
            with val.named_errors("X"):
                X = validate_data(self, val.to_host(X), dtype=_INPUT_DTYPES)
            with val.named_errors("y"):
                y = column_or_1d(val.to_host(y), warn=True)
                assert_all_finite(y, input_name="y")
                check_consistent_length(X, y)
                check_classification_targets(y)
            classes = np.unique(y)
            n = len(workers) if self.n_shards is None else val.check_int(self.n_shards, "n_shards")
            if n > X.shape[0]:
                raise ValueError(f"n_shards={n} is more than the {X.shape[0]} samples")
            bounds = np.linspace(0, X.shape[0], n + 1).astype(int)
            xs = [client.scatter(X[a:b], workers=[workers[j % len(workers)]]) for j, (a, b) in
                  enumerate(zip(bounds[:-1], bounds[1:]))]
            ys = [client.scatter(y[a:b], workers=[workers[j % len(workers)]]) for j, (a, b) in
                  enumerate(zip(bounds[:-1], bounds[1:]))]
            shape = X.shape
        self.classes_ = classes
        return xs, ys, shape

    # ---- fit ---------------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None,
            callback: Optional[Callable[[SolveResult], Any]] = None) -> "DaskNNBCD":
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

        Returns
        -------
        self

        Raises
        ------
        ValueError, TypeError
            Naming the parameter or input that is invalid; ``client`` when there is no client.
        """
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)
        client = self._client()
        cfg = self._checked_params()
        for name in ("warm_start", "checkpoint_every", "checkpoint_dir"):
            if getattr(self, name, None) not in (None, False):
                raise ValueError(f"{name} is not supported by DaskNNBCD yet (got {getattr(self, name)!r})")
        if cfg["w_solve"] == "woodbury":
            raise ValueError("w_solve='woodbury' reads U and V on one machine; DaskNNBCD solves the W-block "
                             "from the shards' Grams: use 'auto' or 'direct'")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable or None, got {type(callback).__name__} {callback!r}")
        be, dtype = cfg["be"], cfg["dtype"]
        workers = sorted(client.nthreads())
        if not workers:
            raise ValueError("client has no workers")
        xs, ys, shape = self._parts(client, X, y, workers)
        _check_conv_input(np.empty((0, shape[1])), self.conv)  # reads the number of features only
        first = (shape[1],) if self.conv is None else (self.conv.n_in, self.conv.n_out)
        widths = first + cfg["hidden"] + (len(self.classes_),)
        compress, tau = self._checked_compression(widths)
        validation = self._scored(X_val, y_val, shape[1], be, dtype)
        schedules = Schedules(gamma=cfg["gamma"], rho=cfg["rho"], tau=tau)
        hp = schedules.hyper(Hyper(gamma=0.0, rho=0.0, alpha=cfg["alpha"], alpha_w=cfg["alpha_w"],
                                   alpha_b=cfg["alpha_b"],
                                   kappa=1.0 if cfg["loss_scale"] == "sum" else 1.0 / shape[0]), 1)
        # every shard draws the initial weights from a copy of the one generator: the same W^0 everywhere
        init = {"rng": cfg["rng"], "init_scale": cfg["init_scale"], "bias": cfg["bias"]}
        unfitted = copy.copy(self)
        unfitted.client = None  # a client does not travel to the workers
        homes = [workers[j % len(workers)] for j in range(len(xs))]
        shards = [client.submit(make_shard, unfitted, xf, yf, self.classes_, widths, compress,
                                schedules.tau_at(1), init, be.name, dtype, cfg["v_solve"], workers=[w],
                                allow_other_workers=False, pure=False)
                  for xf, yf, w in zip(xs, ys, homes)]
        del xs, ys  # the shards copied their rows
        engine = None
        try:
            W, b, Wt = client.submit(initial_weights, shards[0], workers=[homes[0]], pure=False).result()
            head = BCDState(W=[be.asarray(w, dtype) for w in W], b=[None if v is None else be.asarray(v, dtype)
                                                                     for v in b],
                            U=[], V=[], X=None, Y=None, compress=compress, tau=schedules.tau_at(1), Wt=Wt,
                            conv=self.conv)
            for i in head.exact_layers:  # an exact layer's W is its compressed copy's array, as in NNBCD
                head.W[i] = head.Wt[i].dense
            engine = DaskEngine(client, shards, homes, head, be, validation)
            result = run(head, hp, be, None, labels=None, validation=None, max_iter=cfg["max_iter"],
                         tol=cfg["tol"], monitor_every=cfg["monitor_every"], callback=callback,
                         verbose=cfg["verbose"], schedules=schedules, engine=engine)
        finally:  # the shards' U, V leave the workers' memory
            for shard in shards:
                shard.release()
        if result.status == Status.INTERRUPTED:
            logger.warning("DaskNNBCD.fit was interrupted (KeyboardInterrupt) after %d complete sweeps; the last "
                           "complete iterate is kept (result_.status %d).", result.nit, result.status)
        if result.status == Status.WORKER_LOST:
            logger.warning("DaskNNBCD.fit lost a worker after %d complete sweeps (%s); the last complete "
                           "iterate is kept (result_.status %d).", result.nit, engine.lost, result.status)
        if cfg["tol"] is not None and result.status == Status.MAX_ITER:
            warnings.warn(f"DaskNNBCD reached max_iter={cfg['max_iter']} before the relative objective change "
                          f"fell below tol={cfg['tol']}; increase max_iter or tol.", ConvergenceWarning,
                          stacklevel=2)
        self.result_ = result
        self.state_ = head
        self.backend_ = be
        self.n_shards_ = len(shards)
        self.coefs_ = [be.to_numpy(w) for w in result.x["W_deployed"]]
        self.intercepts_ = [None if v is None else be.to_numpy(v) for v in result.x["b"]]
        self.n_iter_ = result.nit
        return self

    def _scored(self, X_val: Any, y_val: Any, n_features: int, be: Any, dtype: Any) -> Optional[Scored]:
        """Validation data on the client's backend, checked as :meth:`NNBCD.fit <nnbcd.NNBCD.fit>` does."""
        if (X_val is None) != (y_val is None):
            raise ValueError("pass both X_val and y_val, or neither")
        if X_val is None:
            return None
        with val.named_errors("X_val"):
            xv = check_array(val.to_host(X_val), dtype=_INPUT_DTYPES, input_name="X_val")
        if xv.shape[1] != n_features:
            raise ValueError(f"X_val has {xv.shape[1]} features but X has {n_features}")
        lv = self._validation_labels(y_val)
        with val.named_errors("y_val"):
            check_consistent_length(xv, lv)
        x_cols = be.asarray(xv.T, dtype)
        return Scored(x_cols, be.asarray(_one_hot(lv, len(self.classes_)), dtype), be.xp.asarray(lv),
                      None if self.conv is None else self.conv.patches(x_cols, be))

    # ---- inference on dask arrays -----------------------------------------------------------------------------
    def _outputs(self, X: Any) -> Any:
        import dask.array as da

        if isinstance(X, da.Array):
            if len(X.chunks[1]) != 1:
                raise ValueError(f"X is chunked along its columns ({len(X.chunks[1])} column chunks): rechunk "
                                 "with X.rechunk({1: -1})")
            outputs = super()._outputs
            return X.map_blocks(lambda block: outputs(block), chunks=(X.chunks[0], (len(self.classes_),)),
                                dtype=self.coefs_[0].dtype)
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


def _signature() -> inspect.Signature:
    """``NNBCD.__init__``'s parameters plus ``client`` and ``n_shards``, for scikit-learn's ``get_params``
    (which reads the constructor's signature): one list of parameters, NNBCD's."""
    base = inspect.signature(NNBCD.__init__)
    params = [p for p in base.parameters.values()]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in ("client", "n_shards")]
    return base.replace(parameters=params + extra)


DaskNNBCD.__init__.__signature__ = _signature()  # type: ignore[attr-defined]
