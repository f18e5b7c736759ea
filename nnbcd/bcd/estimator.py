"""The NN-BCD estimator (scikit-learn classifier) and its functional twin :func:`solve`.

Layers are numbered ``0..L-1`` everywhere in the API (``compress``, ``tau``, ``coefs_``, the history's and
``result_.compression``'s keys): layer ``i`` is the paper's :math:`W_{i+1}`.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.utils import assert_all_finite
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from .. import _validation as val
from ..backend import Backend, check_dtype, get_backend
from ..backend.threads import blas_thread_limit
from ..compress.base import Compression
from ..result import SolveResult, Status
from ..schedules import Schedule, as_schedule, check_within_run
from . import checkpoint as ckpt
from .blocks import Workspace
from .conv import InputConv2d
from .init import init_weight
from .loop import Engine, Scored, run
from .objective import forward
from .state import BCDState, Hyper, Scheduled, Schedules

logger = logging.getLogger(__name__)

#: dtypes sklearn's validation keeps as they are (anything else becomes float64 before the model's cast)
_INPUT_DTYPES = (np.float64, np.float32)

#: Parameters that may differ between a checkpointed run and its resumption: they change how long the run
#: goes, what it reports or where it saves, never an iterate (BLAS results may depend on ``n_jobs``'s thread
#: count: bit-for-bit equality holds for equal thread counts).
RESUME_FREE = ("max_iter", "verbose", "checkpoint_every", "checkpoint_dir", "n_jobs", "warm_start", "refit_output")


class NNBCD(ClassifierMixin, BaseEstimator):
    r"""Gradient-free training of an MLP by block coordinate descent (NN-BCD, arXiv 2303.06815).

    Minimises (spec §2), over :math:`V_i, U_i, W_i, b_i` and the compressed copies :math:`\tilde W_i`,

    .. math::

        \Phi = \kappa\Big[\tfrac12\|V_L-Y\|^2 + \tfrac\gamma2\|V_L-U_L\|^2
        + \sum_{i<L}\tfrac\gamma2\|V_i-\sigma(U_i)\|^2
        + \sum_i\tfrac\rho2\|U_i-W_iV_{i-1}-b_i1^T\|^2\Big] + \sum_{i\in C}\tfrac\tau2\|W_i-\tilde W_i\|^2

    with one exact (proximal) minimisation per block, swept backwards over the layers (paper numbering
    :math:`W_1..W_L` in the formula; the API numbers layers ``0..L-1``, layer ``i`` being the paper's
    :math:`W_{i+1}`).

    The network's widths are ``(d_0, *hidden_layer_sizes, d_L)``, with ``d_0 = n_features_in_`` and
    ``d_L = len(classes_)`` taken from the data; with ``conv``, ``(C·H·W, conv.n_out,
    *hidden_layer_sizes, d_L)``.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (256, 256)
        Widths of the hidden layers (after the conv layer, when there is one); ``()`` for none.
    conv : InputConv2d, optional
        A convolutional first layer (layer 0); ``X``'s rows then hold ``conv.in_shape`` images.
    gamma, rho : float > 0 or Schedule
        Activation coupling γ and linear coupling ρ: a number, or a :class:`~nnbcd.schedules.Schedule`
        (or its table, ``{"type": "geometric", "start": ..., "factor": ..., "ceiling": ...}``) giving the
        value of each sweep.
    alpha : float > 0 or Schedule
        Proximal weight α: a number, or a :class:`~nnbcd.schedules.Schedule` (or its table, e.g.
        ``{"type": "piecewise", "pieces": [[1, 1.0], [21, 0.1]]}``) giving the value of each sweep, recorded in
        ``history["alpha"]``; as with γ and ρ, the convergence guarantee holds from the sweep where every
        schedule is constant (``result_.constant_from``), with the α of those sweeps.
    alpha_w, alpha_b : float > 0 or Schedule, optional
        Prox weights of the W and bias blocks (default ``alpha``, its schedule included); when given, a number
        or a schedule as ``alpha``, recorded in ``history["alpha_w"]`` / ``history["alpha_b"]``. ``alpha_b``
        acts only with ``bias=True``: given without, ``fit`` warns (``UserWarning``).
    relaxation : float in [1, 2)
        Over-relaxation factor ω (beyond the paper; 1, the default, is the paper's algorithm bit for bit): a
        number, no schedule. The blocks whose sub-problem is a convex quadratic (V_L, U_L, the hidden V_i,
        the dense W_i with their biases, each TT core or pruned weight of an exact block) step to
        :math:`X^k + \omega(X^* - X^k)` from their exact minimiser :math:`X^*` (successive
        over-relaxation); each entry of a hidden U-block (the ReLU prox, not convex) takes that step where
        it does not raise the entry's sub-problem and :math:`X^*` elsewhere. Φ still decreases in every
        block: by at least :math:`\tfrac\alpha\omega\|X^{k+1}-X^k\|^2` in the quadratic prox blocks and
        :math:`\tfrac\alpha2\|X^{k+1}-X^k\|^2` in the U-blocks, so
        :func:`nnbcd.convergence.sufficient_decrease` (α/2) holds as at ω = 1. The iterate is no longer
        each block's minimiser, so the relative-error bound of the convergence analysis gains a factor
        about :math:`(\omega - 1)/\omega\,\|H\|` (H the block's Hessian), finite for ω in [1, 2). Recorded in
        ``history["relaxation"]`` when not 1. Measured on the MNIST-5k TT CNN (docs/compression.md,
        ``solvers/mnist5k_cnn_tt.toml`` uses 1.8).
    refit_output : bool
        After the last sweep (whatever ended the run), replace the output layer :math:`(W_L, b_L)` by the
        minimiser of the *deployed* network's training loss over it, the linear least-squares problem
        :math:`\min\tfrac12\|W_LH + b_L1^T - Y\|^2` on the features :math:`H` the deployed hidden layers
        compute (:mod:`nnbcd.bcd.readout`; beyond the paper). The sweeps fit :math:`W_L` to the auxiliary
        :math:`V_{L-1}` instead, which the coupling terms let drift from :math:`H`; the refit is that
        layer's exact block of the deployed loss, so the training loss cannot rise (the layer is kept when
        it would not fall). The hidden layers and the checkpoints (the iterate before the refit: ``resume``
        continues the sweeps from there, ``warm_start`` from the refit layer) are unchanged, and so are
        ``result_.fun`` and the history (the sweeps' records: ``history["acc"]`` is the network before the refit,
        :meth:`score` the one after) and ``state_``'s ``U``, ``V``; ``result_.output_refit`` records the training
        loss and the validation metrics before and after. When the layer fits the training targets exactly (as
        many independent output-layer inputs as samples) ``fit`` warns (``UserWarning``): it overfits. The output layer
        must not be compressed. Default False (the paper's algorithm).
    compress : mapping {int: Compression}, optional
        Compression spec per layer, keyed by layer ``0..L-1``. One spec object shared by several layers
        is one group (e.g. global pruning). A conv layer 0 is not compressed. A spec with an exact block
        (``Prune(block="masked")``, ``TT(block="cores")``) trains the layer on its compressed form: no τ.
    tau : float ≥ 0, Schedule or mapping {int: float or Schedule}
        Compression coupling τ of the layers with the projection block: one value or schedule, or one
        per layer (keys ``0..L-1``). With schedules (τ growing geometrically to a ceiling, as the LC
        algorithm's penalty), the convergence guarantee holds from the sweep where every schedule is
        constant (``result_.constant_from``); ``tol`` is checked from there.
    bias : bool
        Train biases with their exact joint update (the reference has none).
    loss_scale : {"sum", "mean"}
        κ = 1 (reference) or κ = 1/N (hyperparameters transfer across data-set sizes).
    init : str
        Weight init scheme, one of :data:`nnbcd.bcd.init.INIT_SCHEMES`.
    init_scale : float > 0
        Multiplier of the initial weights.
    max_iter : int ≥ 0
        Most sweeps (iterations) to run.
    tol : float > 0, optional
        Stop when :math:`|\Phi^{prev}-\Phi| \le tol\cdot\max(1,|\Phi^{prev}|)` between consecutive
        monitored iterations. When given and ``max_iter`` is reached first, ``fit`` warns
        (:class:`~sklearn.exceptions.ConvergenceWarning`).
    monitor_every : int ≥ 1
        Record the objective terms and metrics every this many iterations (NaN in between); the last
        iteration is always recorded. Monitoring never changes the iterates.
    verbose : bool
        Show a tqdm progress bar with the train/val accuracy.
    backend : {"numpy", "numba", "cupy"} or Backend
    dtype : {"float32", "float64"}
        Precision of the whole computation.
    random_state : int, numpy.random.Generator or None
        Seed of the weight initialisation (as ``numpy.random.default_rng`` takes it).
    v_solve, w_solve : {"auto", "direct", "woodbury"}
        Force one form of the V/W solves (``"auto"`` chooses by FLOP count).
    warm_start : bool
        As scikit-learn's ``MLPClassifier``: when True and the estimator is fitted, the next ``fit`` starts
        from the previous fit's iterate (``state_``: weights, biases and compressed copies — TT cores,
        pruning masks — of the layers whose compression spec is unchanged) instead of the init scheme;
        ``U``/``V`` are re-initialised by the forward pass of those weights (every coupling term 0, as at
        the first start), the sweep counter, schedules and history start again at sweep 1, and ``max_iter``
        more sweeps run (``n_iter_`` counts this fit's). The classes, the layer widths and ``bias`` must be
        those of the previous fit (``ValueError`` otherwise). To continue a run exactly as if it had not
        stopped, use ``checkpoint_every`` and ``fit(..., resume=...)``.
    n_jobs : int, optional
        BLAS threads during ``fit`` (scikit-learn's meaning): ``None`` lets
        :func:`~nnbcd.backend.threads.blas_threads` choose by the largest product,
        :math:`2N\max_i d_{i+1}d_i` FLOPs (one thread per 1e9, at most the usable cores), ``-1`` uses every
        usable core, ``k ≥ 1`` uses ``k``. Scoped to the fit (threadpoolctl); numba's and cuBLAS's pools are
        not affected.
    checkpoint_every : int ≥ 1, optional
        Write a checkpoint (:mod:`nnbcd.bcd.checkpoint`) to ``checkpoint_dir`` after every this many
        complete sweeps (sweeps ``k, 2k, ...``; one file, replaced atomically). ``None``: no checkpoints.
    checkpoint_dir : str or path-like, optional
        Directory of the checkpoint (created if missing); required with ``checkpoint_every``.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        The class labels (``np.unique(y)``); output unit ``k`` stands for ``classes_[k]``.
    n_features_in_ : int
        d_0.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` had them.
    coefs_ : list of ndarray, shape (d_{i+1}, d_i)
        Deployed weight of each layer ``0..L-1`` (the compressed copy for compressed layers), in the
        paper's orientation: ``coefs_[i] @ h`` maps a column of layer inputs (the transpose of
        ``MLPClassifier.coefs_``). A conv layer 0 is its kernel reshaped to (F, C·k_h·k_w).
    intercepts_ : list of (ndarray of shape (d_{i+1},) or None)
        Biases (per filter for a conv layer); ``None`` entries when ``bias=False``.
    n_iter_ : int
        Sweeps run.
    result_ : SolveResult
        Status, history and final iterate of the last fit.
    state_ : BCDState
        The final iterate on the backend.
    backend_ : Backend

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> model = NNBCD((64,), max_iter=3, random_state=0).fit(X / 16, y)
    >>> model.coefs_[0].shape, model.n_iter_
    ((64, 64), 3)
    """

    def __init__(
        self,
        hidden_layer_sizes: "int | Sequence[int]" = (256, 256),
        *,
        conv: Optional[InputConv2d] = None,
        gamma: float = 0.5,
        rho: float = 0.5,
        alpha: float = 1.0,
        alpha_w: Optional[float] = None,
        alpha_b: Optional[float] = None,
        relaxation: float = 1.0,
        refit_output: bool = False,
        compress: Optional[Mapping] = None,
        tau: "float | Mapping[int, float]" = 0.0,
        bias: bool = False,
        loss_scale: str = "sum",
        init: str = "xavier_normal",
        init_scale: float = 1.0,
        max_iter: int = 100,
        tol: Optional[float] = None,
        monitor_every: int = 1,
        verbose: bool = False,
        backend: "str | Backend" = "numpy",
        dtype: str = "float64",
        random_state: Any = None,
        v_solve: str = "auto",
        w_solve: str = "auto",
        warm_start: bool = False,
        n_jobs: Optional[int] = None,
        checkpoint_every: Optional[int] = None,
        checkpoint_dir: "str | os.PathLike[str] | None" = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.conv = conv
        self.gamma = gamma
        self.rho = rho
        self.alpha = alpha
        self.alpha_w = alpha_w
        self.alpha_b = alpha_b
        self.relaxation = relaxation
        self.refit_output = refit_output
        self.compress = compress
        self.tau = tau
        self.bias = bias
        self.loss_scale = loss_scale
        self.init = init
        self.init_scale = init_scale
        self.max_iter = max_iter
        self.tol = tol
        self.monitor_every = monitor_every
        self.verbose = verbose
        self.backend = backend
        self.dtype = dtype
        self.random_state = random_state
        self.v_solve = v_solve
        self.w_solve = w_solve
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.checkpoint_every = checkpoint_every
        self.checkpoint_dir = checkpoint_dir

    # ---- validation ------------------------------------------------------------------------------
    def _checked_params(self) -> Dict[str, Any]:
        """The constructor parameters that do not depend on the data, validated."""
        if self.conv is not None and not isinstance(self.conv, InputConv2d):
            raise TypeError(f"conv must be an InputConv2d or None, got {type(self.conv).__name__}")
        alpha = _scheduled(self.alpha, "alpha")
        with val.named_errors("random_state"):  # numpy's SeedSequence message does not say which argument
            rng = np.random.default_rng(self.random_state)
        cfg = {
            "hidden": val.check_hidden_layer_sizes(self.hidden_layer_sizes),
            "bias": val.check_bool(self.bias, "bias"),
            "verbose": val.check_bool(self.verbose, "verbose"),
            "rng": rng,
            "gamma": _scheduled(self.gamma, "gamma"),
            "rho": _scheduled(self.rho, "rho"),
            "alpha": alpha,
            # default: the very object alpha (number or schedule), so that the history records alpha alone
            "alpha_w": alpha if self.alpha_w is None else _scheduled(self.alpha_w, "alpha_w"),
            "alpha_b": alpha if self.alpha_b is None else _scheduled(self.alpha_b, "alpha_b"),
            "relaxation": _checked_relaxation(self.relaxation),
            "refit_output": val.check_bool(self.refit_output, "refit_output"),
            "loss_scale": val.check_choice(self.loss_scale, ("sum", "mean"), "loss_scale"),
            "init_scale": val.check_positive(self.init_scale, "init_scale"),
            "max_iter": val.check_int(self.max_iter, "max_iter", minimum=0),
            "tol": None if self.tol is None else val.check_positive(self.tol, "tol"),
            "monitor_every": val.check_int(self.monitor_every, "monitor_every"),
            "dtype": check_dtype(self.dtype),
            "be": get_backend(self.backend),
            "v_solve": val.check_choice(self.v_solve, ("auto", "direct", "woodbury"), "v_solve"),
            "w_solve": val.check_choice(self.w_solve, ("auto", "direct", "woodbury"), "w_solve"),
            "warm_start": val.check_bool(self.warm_start, "warm_start"),
            "n_jobs": _checked_n_jobs(self.n_jobs),
            "checkpoint_every": val.check_int(self.checkpoint_every, "checkpoint_every", optional=True),
            "checkpoint_dir": self._checked_checkpoint_dir(),
        }
        for name in ("gamma", "rho", "alpha", "alpha_w", "alpha_b"):
            check_within_run(cfg[name], name, cfg["max_iter"])
        return cfg

    def _checked_checkpoint_dir(self) -> Optional[Path]:
        """``checkpoint_dir`` as a Path (created), which must be given exactly when ``checkpoint_every`` is."""
        directory = self.checkpoint_dir
        if directory is not None and not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"checkpoint_dir must be a path (str or os.PathLike) or None, got "
                            f"{type(directory).__name__} {directory!r}")
        if (directory is None) != (self.checkpoint_every is None):
            raise ValueError("checkpoint_every and checkpoint_dir go together: give both (write a checkpoint every "
                             "checkpoint_every sweeps into checkpoint_dir) or neither")
        if directory is None:
            return None
        if not os.fspath(directory):
            raise ValueError("checkpoint_dir is empty: give a directory (\".\" for the current one)")
        # absolute, so that processes with another working directory (Dask workers) write to the same place;
        # checked now, not after the first checkpoint_every sweeps
        return val.writable_dir(os.path.abspath(directory), f"checkpoint_dir {str(directory)!r}")

    def _checked_compression(self, widths: Tuple[int, ...]) -> Tuple[Dict[int, Compression], Dict[int, Scheduled]]:
        """``compress`` as a dict keyed by the compressed layers ``0..L-1``, ``tau`` by the layers with the
        projection block."""
        L = len(widths) - 1
        if self.compress is not None and not isinstance(self.compress, Mapping):
            raise TypeError(f"compress must be a mapping {{layer: Compression}} with layers 0..{L - 1}, e.g. "
                            f"{{0: TT(4)}}, got {type(self.compress).__name__} {self.compress!r}")
        compress: Dict[int, Compression] = {}
        for layer, spec in dict(self.compress or {}).items():
            if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < L:
                raise ValueError(f"compress has key {layer!r}; layers are numbered 0..{L - 1} "
                                 f"(layer i is the paper's W_(i+1))")
            if layer == 0 and self.conv is not None:
                raise ValueError("compress[0]: layer 0 is the conv kernel, which is not compressed "
                                 f"(compress layers 1..{L - 1})")
            if not isinstance(spec, Compression):
                raise TypeError(f"compress[{layer}] must be a Compression (TT, Prune, ...), got {type(spec).__name__}")
            spec.validate((widths[layer + 1], widths[layer]), f"compress[{layer}]")
            compress[int(layer)] = spec
        coupled = [i for i, spec in compress.items() if not spec.exact_at(1)]
        if isinstance(self.tau, Mapping) and "type" not in self.tau:
            extra = set(self.tau) - set(compress)
            if extra:
                raise ValueError(f"tau has keys {sorted(extra, key=repr)} that are not compressed layers "
                                 f"(compressed: {sorted(compress)}; layers are numbered 0..{L - 1})")
            exact = sorted(set(self.tau) - set(coupled))
            if exact:
                raise ValueError(f"tau has keys {exact} whose compression has an exact block "
                                 f"({compress[exact[0]]!r}): those layers have no τ coupling")
            tau = {i: _scheduled(self.tau.get(i, 0.0), f"tau[{i}]", allow_zero=True) for i in coupled}
        else:
            t = _scheduled(self.tau, "tau", allow_zero=True)
            tau = {i: t for i in coupled}
            if not coupled and (isinstance(t, Schedule) or t):
                logger.warning("tau is set but no layer has a projection-block compression (compress=%r): tau has "
                               "no effect", self.compress)
        # a warm-up before an exact block (exact_from > 1) may run uncoupled on purpose
        projected = [i for i in coupled if not compress[i].exact]
        if projected and not any(tau[i] for i in projected) and not all(compress[i].replaces_weight for i in projected):
            logger.warning("compress is set but tau is 0: the compressed copies do not act on the weights")
        return compress, tau

    def _resume_params(self) -> Dict[str, Any]:
        """The parameters a checkpoint records and a resume compares (:func:`~nnbcd.bcd.checkpoint.plain_params`)."""
        return ckpt.plain_params(self.get_params(deep=False))

    def _checked_data(self, X: Any, y: Any) -> Tuple[np.ndarray, np.ndarray]:
        """``X`` (float64 or float32 rows; sets ``n_features_in_``) and ``y`` (1-d, finite, class labels),
        checked apart, as ``validate_data(X, y)`` does in one call, so that each error names its argument."""
        with val.named_errors("X"):
            X = validate_data(self, val.to_host(X), dtype=_INPUT_DTYPES)
        with val.named_errors("y"):
            y = column_or_1d(val.to_host(y), warn=True)
            assert_all_finite(y, input_name="y")
            check_consistent_length(X, y)
            check_classification_targets(y)
        return X, y

    def _validation_data(self, X_val: Any, y_val: Any, n_features: int, be: Backend,
                         dtype: Any) -> Tuple[Optional[Scored], Optional[np.ndarray], Optional[np.ndarray]]:
        """The validation data checked (errors name ``X_val`` / ``y_val``) and on ``be`` in ``dtype``.

        Returns
        -------
        tuple
            The :class:`~nnbcd.bcd.loop.Scored` data, the host rows of ``X_val`` and the class indices
            of ``y_val`` (all ``None`` without validation data).
        """
        if (X_val is None) != (y_val is None):
            raise ValueError("pass both X_val and y_val, or neither")
        if X_val is None:
            return None, None, None
        with val.named_errors("X_val"):
            xv = check_array(val.to_host(X_val), dtype=_INPUT_DTYPES, input_name="X_val")
        if xv.shape[1] != n_features:
            raise ValueError(f"X_val has {xv.shape[1]} features but X has {n_features}")
        lv = self._validation_labels(y_val)
        with val.named_errors("y_val"):
            check_consistent_length(xv, lv)
        x_cols = be.asarray(xv.T, dtype)
        return (Scored(x_cols, be.asarray(_one_hot(lv, len(self.classes_)), dtype), be.xp.asarray(lv),
                       None if self.conv is None else self.conv.patches(x_cols, be)), xv, lv)

    def _validation_labels(self, y_val: Any) -> np.ndarray:
        """Indices into ``classes_`` of the validation labels, which must be classes of ``y``."""
        with val.named_errors("y_val"):
            y_val = column_or_1d(val.to_host(y_val), warn=True)
        unknown = np.setdiff1d(y_val, self.classes_)
        if unknown.size:
            raise ValueError(f"y_val has labels {unknown.tolist()} that are not in y's classes "
                             f"{self.classes_.tolist()}")
        return np.searchsorted(self.classes_, y_val)

    # ---- fit ---------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None,
            callback: Optional[Callable[[SolveResult], Any]] = None,
            resume: "str | os.PathLike[str] | None" = None) -> "NNBCD":
        """Run NN-BCD for at most ``max_iter`` sweeps.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Training samples (any real dtype; computed in ``dtype``). With ``conv``, each row holds one
            image of shape ``conv.in_shape``, flattened row-major.
        y : array-like, shape (n_samples,)
            Class labels of any kind (ints, strings, ...); ``classes_ = np.unique(y)``.
        X_val, y_val : array-like, optional
            Validation data (labels among ``y``'s), scored with the deployed network at monitored
            iterations (``val_*`` in the history).
        callback : callable, optional
            ``callback(intermediate_result)`` after every sweep, with a :class:`~nnbcd.result.SolveResult`
            that has no ``status``/``success``/``message`` yet; raising ``StopIteration`` stops the run
            with status 99. A ``KeyboardInterrupt`` (Ctrl-C) during the sweeps ends the run with status 4
            and the last complete iterate, logs a warning and returns (as scikit-learn's MLP does).
        resume : str or path-like, optional
            A checkpoint written with ``checkpoint_every`` (its directory or file): the run continues
            from the checkpoint's sweep to ``max_iter`` and ends exactly as the uninterrupted run would
            (same iterates bit for bit, same history but the wall times). The estimator's parameters
            (but :data:`RESUME_FREE`), the data (``X``, ``y``, ``X_val``, ``y_val``) and the dtype must be
            those of the checkpointed run.

        Returns
        -------
        self

        Raises
        ------
        ValueError, TypeError
            Naming the parameter or input that is invalid; for ``resume``, a checkpoint that is truncated
            or corrupt, of another format version, or written with other parameters (named) or data.
        FileNotFoundError
            No checkpoint at ``resume``.
        OSError
            ``checkpoint_dir`` cannot be written to.

        Warns
        -----
        ConvergenceWarning
            When ``tol`` is given and ``max_iter`` sweeps ran without meeting it (status 1).
        UserWarning
            When ``alpha_b`` is given and ``bias`` is False (``alpha_b`` then has no effect).
        """
        warm = self._warm_iterate()  # before the fitted attributes go
        p = self._prepare(X, y, X_val, y_val, callback, resume)
        cfg, be, dtype, schedules = p.cfg, p.cfg["be"], p.cfg["dtype"], p.schedules
        Xb, Yb = be.asarray(p.X.T, dtype), be.asarray(_one_hot(p.labels, len(self.classes_)), dtype)
        start = None
        if p.saved is not None:
            st = self._state(p.widths, p.compress, schedules.tau_at(1), be, Xb, Yb, cfg, p.saved.iterate)
            start = p.saved.progress
        else:
            st = self._state(p.widths, p.compress, schedules.tau_at(1), be, Xb, Yb, cfg,
                             warm if cfg["warm_start"] else None)
        ws = Workspace(st, be, cfg["v_solve"], cfg["w_solve"])
        # the largest product of a sweep: a layer's weight times its input columns (GEMM: 2·m·k·n FLOPs)
        flops = max(2.0 * w.shape[0] * w.shape[1] * st.weight_input(i).shape[1] for i, w in enumerate(st.W))
        with blas_thread_limit(flops, cfg["n_jobs"]):
            result = run(st, p.hp, Engine(be, ws, be.xp.asarray(p.labels), p.validation), max_iter=cfg["max_iter"],
                         tol=cfg["tol"], monitor_every=cfg["monitor_every"], callback=callback,
                         verbose=cfg["verbose"], schedules=schedules, start=start,
                         checkpoint=_checkpointer(cfg, be, p.params, p.data, str(np.dtype(dtype))),
                         refit_output=cfg["refit_output"])
        return self._finish(result, st, be, cfg)

    def _prepare(self, X: Any, y: Any, X_val: Any, y_val: Any, callback: Any, resume: Any,
                 columns: bool = True) -> "_Prepared":
        """Every check :meth:`fit` makes before its first sweep, and what they give.

        Forgets the previous fit (:meth:`_start_fit`), checks the parameters, the data, the compression
        specs against their layers' shapes, ``tau``, the schedules over ``max_iter`` sweeps, the validation
        data and, with ``resume``, the checkpoint (read with or without its ``U``, ``V`` ``columns``); sets
        ``classes_``. A caller that must refuse a run before it deletes anything (``nnbcd solve`` into a
        used ``--out``) runs it on a copy of the estimator.
        """
        cfg = self._start_fit(callback, resume)
        X, y = self._checked_data(X, y)
        _check_conv_input(X, self.conv)
        self.classes_ = np.unique(y)
        labels = np.searchsorted(self.classes_, y)
        widths, compress, validation, xv, lv, schedules, hp = self._network(cfg, *X.shape, X_val, y_val)
        # what a checkpoint must match to be resumed by this fit
        params = self._resume_params()
        data = ckpt.data_fingerprint(ckpt.row_digest(X, labels), *X.shape, self.classes_.astype(str), xv, lv)
        saved = None
        if resume is not None:
            if cfg["warm_start"]:
                raise ValueError("resume and warm_start=True exclude each other: resume continues a checkpointed "
                                 "run, warm_start begins a new run from the previous fit's weights")
            saved = _checked_checkpoint(resume, params, data, str(np.dtype(cfg["dtype"])), columns=columns,
                                        defaults=type(self)()._resume_params())
        return _Prepared(cfg, X, labels, widths, compress, schedules, hp, validation, params, data, saved)

    def _network(self, cfg: Dict[str, Any], n_samples: int, n_features: int, X_val: Any,
                 y_val: Any) -> Tuple[Tuple[int, ...], Dict[int, Compression], Any, Any, Any, Schedules, Hyper]:
        """What a fit builds once the data's size and ``classes_`` are known (this estimator's and
        ``DaskNNBCD``'s, whose data stay on the workers): the layer widths, the checked compression specs,
        the validation data (:meth:`_validation_data`: scored set, features, labels), and the run loop's
        :class:`~nnbcd.bcd.state.Schedules` (γ, ρ, α, α_W, α_b, τ) with the :class:`~nnbcd.bcd.state.Hyper` of
        sweep 1 (κ from ``loss_scale`` and ``n_samples``)."""
        first = (n_features,) if self.conv is None else (self.conv.n_in, self.conv.n_out)
        widths = first + cfg["hidden"] + (len(self.classes_),)
        compress, tau = self._checked_compression(widths)
        if cfg["refit_output"] and len(widths) - 2 in compress:
            raise ValueError(f"refit_output=True replaces the output layer {len(widths) - 2} by a dense least-squares "
                             f"fit, but compress[{len(widths) - 2}] compresses it: drop one of them")
        for i, t in tau.items():
            check_within_run(t, f"tau[{i}]", cfg["max_iter"], allow_zero=True)
        validation, xv, lv = self._validation_data(X_val, y_val, n_features, cfg["be"], cfg["dtype"])
        # without biases alpha_b acts on nothing (fit warned): its schedule neither delays constant_from nor is recorded
        schedules = Schedules(gamma=cfg["gamma"], rho=cfg["rho"], tau=tau, alpha=cfg["alpha"], alpha_w=cfg["alpha_w"],
                              alpha_b=cfg["alpha_b"] if cfg["bias"] else None, relaxation=cfg["relaxation"])
        kappa = 1.0 if cfg["loss_scale"] == "sum" else 1.0 / n_samples
        hp = schedules.hyper(Hyper(gamma=0.0, rho=0.0, alpha=0.0, alpha_w=0.0, alpha_b=0.0, kappa=kappa), 1)
        return widths, compress, validation, xv, lv, schedules, hp

    def _start_fit(self, callback: Any, resume: Any, stacklevel: int = 4) -> Dict[str, Any]:
        """Forget the previous fit and check the parameters, ``callback`` and ``resume`` (before any work):
        the checked parameters (:meth:`_checked_params`). Warns when ``alpha_b`` is given without
        ``bias``; ``stacklevel`` makes the warning point at the caller of ``fit`` (``fit`` → ``_prepare``
        → here: 4)."""
        # a failed or interrupted refit must not leave the previous fit's attributes looking current
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)
        cfg = self._checked_params()
        # here, not in _checked_params: nnbcd solve calls that before loading the data, then fit again
        if self.alpha_b is not None and not cfg["bias"]:
            warnings.warn(f"alpha_b={self.alpha_b!r} has no effect without bias=True: it is the prox weight of the "
                          "bias blocks, and this network has none", UserWarning, stacklevel=stacklevel)
        if callback is not None and not callable(callback):  # checked now, not after the first sweep
            raise TypeError(f"callback must be callable or None, got {type(callback).__name__} {callback!r}")
        _check_resume(resume)
        return cfg

    def _finish(self, result: SolveResult, st: BCDState, be: Backend, cfg: Dict[str, Any]) -> "NNBCD":
        """Set the fitted attributes from a run's result; log an interrupted run, warn when ``tol`` was not
        met (scikit-learn's MLP does both). Returns ``self``."""
        name = type(self).__name__
        if result.status == Status.INTERRUPTED:  # as scikit-learn's MLP: keep the work done, say so
            logger.warning("%s.fit was interrupted (KeyboardInterrupt) after %d complete sweeps; the last "
                           "complete iterate is kept (result_.status %d).", name, result.nit, result.status)
        if cfg["tol"] is not None and result.status == Status.MAX_ITER:
            warnings.warn(f"{name} reached max_iter={cfg['max_iter']} before the relative objective change "
                          f"fell below tol={cfg['tol']}; increase max_iter or tol.", ConvergenceWarning,
                          stacklevel=3)
        self.result_ = result
        self.state_ = st
        self.backend_ = be
        self.coefs_ = [be.to_numpy(w) for w in result.x["W_deployed"]]
        self.intercepts_ = [None if b is None else be.to_numpy(b) for b in result.x["b"]]
        self.n_iter_ = result.nit
        return self

    def _warm_iterate(self) -> Optional[Dict[str, Any]]:
        """The previous fit's iterate (host copies) and classes when a warm start will use them, else ``None``."""
        if self.warm_start is not True or not hasattr(self, "state_"):
            return None
        # the weights only: U, V (d×N each) are re-initialised by the forward pass, so not copied
        weights = dataclasses.replace(self.state_, U=[], V=[])
        return {"iterate": ckpt.capture(weights, self.backend_), "classes": self.classes_,
                "compress": dict(self.state_.compress)}

    def _state(self, widths: Tuple[int, ...], compress: Dict[int, Compression], tau: Dict[int, float], be: Backend,
               X: Any, Y: Any, cfg: Dict[str, Any], start: "ckpt.Iterate | Dict[str, Any] | None") -> BCDState:
        """The state the sweeps start from: a checkpoint's iterate (:class:`~nnbcd.bcd.checkpoint.Iterate`),
        a warm start's (:meth:`_warm_iterate`), or the initial one (``None``)."""
        conv = self.conv
        patches = None if conv is None else conv.patches(X, be)
        if isinstance(start, ckpt.Iterate):  # resume: every block as saved, U/V included
            st = BCDState(**ckpt.restore(start, be), X=X, Y=Y, compress=compress, tau=tau, conv=conv, patches=patches)
            st.sweep = start.sweep
            return st
        # the conv kernel is stored as Z^T (filters × patch size): a dense layer on patch samples
        shapes = [(conv.filters, conv.patch_size) if (i == 0 and conv) else (widths[i + 1], widths[i])
                  for i in range(len(widths) - 1)]
        kept: Dict[int, Any] = {}
        with np.errstate(over="ignore"):  # an overflowing cast is refused below, by name
            if start is None:
                W = [be.asarray(init_weight(self.init, cfg["rng"], *shape, cfg["init_scale"]), X.dtype)
                     for shape in shapes]
                b = [be.zeros(shape[0], X.dtype) if cfg["bias"] else None for shape in shapes]
            else:
                W, b, kept = self._warm_blocks(start, shapes, compress, be, X.dtype, cfg["bias"])
        overflow = [i for i, w in enumerate(W) if not be.isfinite_all(w)]
        if overflow:  # a run from them could only return them as its "last finite" weights
            what = (f"init_scale={cfg['init_scale']!r} makes" if start is None
                    else "warm_start=True: the previous fit's weights make")
            raise ValueError(f"{what} the initial weights of layer {overflow[0]} overflow {np.dtype(X.dtype)} "
                             f"(largest finite {np.finfo(X.dtype).max:.3g})")
        st = BCDState(W=W, b=b, U=[], V=[], X=X, Y=Y, compress=compress, tau=tau, conv=conv, patches=patches)
        for i, spec in compress.items():
            st.Wt[i] = kept[i] if i in kept else spec.at(1).initial(W[i], backend=be, weights=st.group(i))
        for i, spec in compress.items():  # after all initial copies: a global threshold sees W^0
            if i not in kept and (spec.replaces_weight or spec.exact_at(1)):
                st.W[i] = st.Wt[i].dense.copy()
        for i in range(st.n_layers):  # forward pass with the weights in use: every coupling term is 0 (spec §5)
            u = st.linear(i, be)
            if b[i] is not None:
                u += st.bias_rows(i, be)[:, None]
            st.U.append(u)
            st.V.append(be.relu(u) if i < st.n_layers - 1 else u.copy())
        return st

    def _warm_blocks(self, warm: Dict[str, Any], shapes: List[Tuple[int, int]], compress: Dict[int, Compression],
                     be: Backend, dtype: Any, bias: bool) -> Tuple[List[Any], List[Any], Dict[int, Any]]:
        """A warm start's ``W``, ``b`` and the compressed copies it keeps (layers whose spec is unchanged,
        same dtype), on ``be`` in ``dtype``.

        Raises
        ------
        ValueError
            Other classes, layer widths or ``bias`` than the previous fit's.
        """
        it: ckpt.Iterate = warm["iterate"]
        if not np.array_equal(warm["classes"], self.classes_):
            raise ValueError(f"warm_start=True needs y with the previous fit's classes {warm['classes'].tolist()}, "
                             f"got {self.classes_.tolist()} (set warm_start=False to start afresh)")
        before = [tuple(w.shape) for w in it.W]
        if before != [tuple(s) for s in shapes]:
            raise ValueError(f"warm_start=True: the layer shapes changed from {before} to {shapes} "
                             "(hidden_layer_sizes, conv or the number of features differ from the previous fit); "
                             "set warm_start=False to start afresh")
        if any(b is not None for b in it.b) != bias:
            raise ValueError(f"warm_start=True: bias={bias} but the previous fit had bias={not bias}; "
                             "set warm_start=False to start afresh")
        same = it.W[0].dtype == np.dtype(dtype)
        kept_layers = [i for i, spec in compress.items() if same and i in warm["compress"]
                       and ckpt.plain_params({"c": spec}) == ckpt.plain_params({"c": warm["compress"][i]})]
        blocks = ckpt.restore(ckpt.Iterate(W=it.W, b=it.b, U=[], V=[], sweep=0,
                                           alias=[i for i in it.alias if i in kept_layers],
                                           Wt={i: it.Wt[i] for i in kept_layers}), be)
        W = [w if same else be.asarray(w, dtype) for w in blocks["W"]]
        b = [x if (same or x is None) else be.asarray(x, dtype) for x in blocks["b"]]
        return W, b, blocks["Wt"]

    # ---- inference ---------------------------------------------------------------------------------
    def _outputs(self, X: Any) -> np.ndarray:
        """Network outputs (n_samples × n_classes) with the deployed weights."""
        check_is_fitted(self)
        with val.named_errors("X"):
            X = validate_data(self, val.to_host(X), reset=False, dtype=_INPUT_DTYPES)
        _check_conv_input(X, self.state_.conv)
        be = self.backend_
        dtype = self.coefs_[0].dtype
        w = [be.asarray(c, dtype) for c in self.coefs_]
        b = [None if c is None else be.asarray(c, dtype) for c in self.intercepts_]
        return be.to_numpy(forward(w, b, be.asarray(X.T, dtype), be, self.state_.conv)).T

    def decision_function(self, X: Any) -> np.ndarray:
        """Network outputs :math:`f(X)`, with the deployed (compressed) weights.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples, n_classes), or (n_samples,) for two classes
            Output ``k`` scores ``classes_[k]``; for two classes, :math:`f_1(X) - f_0(X)` (positive for
            ``classes_[1]``), as scikit-learn's binary classifiers return.
        """
        out = self._outputs(X)
        return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out

    def predict(self, X: Any) -> np.ndarray:
        """Class labels: ``classes_[argmax f(X)]``.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples,)
            Labels of ``classes_``'s dtype.
        """
        winners = self._outputs(X).argmax(axis=1)
        return self.classes_[winners]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of :meth:`predict` on ``X`` against ``y`` (scikit-learn's ``ClassifierMixin.score``).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples,)
        sample_weight : array-like, shape (n_samples,), optional

        Returns
        -------
        float
            The (weighted) fraction of samples whose predicted label equals ``y``.

        Raises
        ------
        ValueError
            Naming ``X`` or ``y`` (e.g. ``y`` with a different number of samples than ``X``).
        """
        predicted = self.predict(X)
        with val.named_errors("y"):  # accuracy_score's length check names neither argument
            return float(accuracy_score(y, predicted, sample_weight=sample_weight))

    def export(self) -> Dict[str, List[Any]]:
        """The deployed network in storage form.

        Returns
        -------
        dict
            ``{"layers": [...], "biases": [...]}``, indexed by layer ``0..L-1``: for each layer the
            compression spec's export of its compressed copy (TT cores, a ``scipy.sparse`` matrix, ...)
            or the dense weight (numpy), and :attr:`intercepts_`.
        """
        check_is_fitted(self)
        st = self.state_
        layers = [st.compress[i].export(st.Wt[i]) if i in st.Wt else self.backend_.to_numpy(st.W[i])
                  for i in range(st.n_layers)]
        return {"layers": layers, "biases": self.intercepts_}

    # ---- pickling ----------------------------------------------------------------------------------
    def __getstate__(self) -> Dict[str, Any]:
        state = super().__getstate__()
        if "backend_" in state:  # a backend holds modules and compiled kernels: its name travels instead
            state = dict(state, backend_=state["backend_"].name)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        if isinstance(state.get("backend_"), str):
            state = dict(state, backend_=get_backend(state["backend_"]))
        super().__setstate__(state)


class _Prepared(NamedTuple):
    """What :meth:`NNBCD._prepare` checked and built for a fit."""

    cfg: Dict[str, Any]
    X: np.ndarray
    labels: np.ndarray
    widths: Tuple[int, ...]
    compress: Dict[int, Compression]
    schedules: Schedules
    hp: Hyper
    validation: Any
    params: Dict[str, Any]
    data: str
    saved: Optional[ckpt.Checkpoint]


def _scheduled(value: Any, name: str, allow_zero: bool = False) -> Scheduled:
    """A hyperparameter as a number (> 0, or ≥ 0 with ``allow_zero``) or a :class:`~nnbcd.schedules.Schedule`
    (from a Schedule or its table), checked; errors name ``name``."""
    if isinstance(value, (Schedule, Mapping)):
        return as_schedule(dict(value) if isinstance(value, Mapping) else value, name)
    try:
        return val.check_positive(value, name, allow_zero=allow_zero)
    except TypeError:  # say that a schedule is allowed too (e.g. the Schedule class passed instead of an instance)
        raise TypeError(f"{name} must be a number {'≥' if allow_zero else '>'} 0, a nnbcd.schedules.Schedule or its "
                        f"table (e.g. {{'type': 'geometric', 'start': 1.0, 'factor': 1.1, 'ceiling': 10.0}}), got "
                        f"{type(value).__name__} {value!r}") from None


def _checked_n_jobs(n_jobs: Any) -> Optional[int]:
    """``n_jobs`` as scikit-learn takes it: ``None``, -1 or a positive int (errors name ``n_jobs``)."""
    if n_jobs is None or (isinstance(n_jobs, (int, np.integer)) and not isinstance(n_jobs, bool) and n_jobs == -1):
        return n_jobs if n_jobs is None else -1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise ValueError(f"n_jobs must be None (threads chosen by the problem size), -1 (every usable core) or a "
                         f"positive int, got {n_jobs!r}")
    return int(n_jobs)


def _check_resume(resume: Any) -> None:
    """``resume`` is a path or ``None`` (checked before any work)."""
    if resume is not None and not isinstance(resume, (str, os.PathLike)):
        raise TypeError(f"resume must be a path (str or os.PathLike) to a checkpoint or None, got "
                        f"{type(resume).__name__} {resume!r}")


def _checked_relaxation(value: Any) -> float:
    """``relaxation`` in [1, 2), a number (a schedule is refused with a message that says so)."""
    if isinstance(value, (Mapping, Schedule)):
        raise TypeError(f"relaxation must be a number in [1, 2), got {value!r}: unlike gamma, rho, alpha and tau it "
                        "takes no schedule")
    return val.check_relaxation(value)


def _checked_checkpoint(resume: Any, params: Dict[str, Any], data: str, dtype: str,
                        columns: bool = True, defaults: Optional[Dict[str, Any]] = None) -> ckpt.Checkpoint:
    """The checkpoint at ``resume`` (:func:`~nnbcd.bcd.checkpoint.load`, with or without its ``U``, ``V``
    ``columns``), refused unless written with these parameters (but :data:`RESUME_FREE`), this data
    fingerprint and dtype; every message names ``resume``. A parameter the checkpoint does not record
    (written before the parameter existed) counts as its value in ``defaults``, the constructor's default,
    which reproduces the algorithm that wrote it."""
    saved = ckpt.load(resume, "resume", columns=columns)
    recorded = {**{k: v for k, v in (defaults or {}).items() if k not in saved.params}, **saved.params}
    changed = ckpt.differences(recorded, params, RESUME_FREE)
    if changed:
        detail = "; ".join(f"{k}: checkpoint {ckpt.canonical(recorded.get(k))!r}, now "
                           f"{ckpt.canonical(params.get(k))!r}" for k in changed[:3])
        raise ValueError(f"resume: the checkpoint {str(saved.path)!r} was written with other parameters "
                         f"{changed} ({detail})")
    if saved.dtype != dtype:
        raise ValueError(f"resume: the checkpoint {str(saved.path)!r} holds dtype {saved.dtype}, this fit computes "
                         f"in {dtype}")
    if saved.data != data:
        raise ValueError(f"resume: the checkpoint {str(saved.path)!r} was written for other data (X, y, X_val or "
                         "y_val differ from the checkpointed run's)")
    return saved


def _checkpointer(cfg: Dict[str, Any], be: Backend, params: Dict[str, Any], data: str, dtype: str,
                  columns: Optional[Callable[[BCDState, Path], Optional[ckpt.ShardSet]]] = None,
                  ) -> Optional[Callable[[BCDState, ckpt.Progress], None]]:
    """The run loop's ``checkpoint`` callable: every ``checkpoint_every`` complete sweeps, the iterate
    (:func:`~nnbcd.bcd.checkpoint.capture`) and the progress to ``checkpoint_dir``; ``None`` without.

    ``columns(st, directory)``, when given, writes the shard files of a sharded checkpoint first (``st``
    then holds no ``U``, ``V``) and returns their :class:`~nnbcd.bcd.checkpoint.ShardSet`, or ``None`` to
    skip this checkpoint (a shard could not write: the previous checkpoint stays)."""
    every, directory = cfg["checkpoint_every"], cfg["checkpoint_dir"]
    if every is None:
        return None

    def save(st: BCDState, progress: ckpt.Progress) -> None:
        if progress.nit % every == 0:
            shards = None if columns is None else columns(st, directory)
            if columns is None or shards is not None:
                ckpt.save(directory, ckpt.capture(st, be), progress, params=params, data=data, dtype=dtype,
                          shards=shards)
    return save


def _check_conv_input(X: np.ndarray, conv: Optional[InputConv2d]) -> None:
    """A conv first layer reads rows of exactly C·H·W pixels."""
    if conv is not None and X.shape[1] != conv.n_in:
        raise ValueError(f"X has {X.shape[1]} features but conv.in_shape {conv.in_shape} expects {conv.n_in}")


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n) float64 matrix with a 1 in row ``labels[j]`` of column ``j``."""
    onehot = np.zeros((n_classes, labels.size))
    onehot[labels, np.arange(labels.size)] = 1.0
    return onehot


def solve(X: Any, y: Any, *, X_val: Any = None, y_val: Any = None,
          callback: Optional[Callable[[SolveResult], Any]] = None, resume: "str | os.PathLike[str] | None" = None,
          **params: Any) -> SolveResult:
    """Functional form of :class:`NNBCD` (scipy.optimize style).

    Parameters
    ----------
    X, y, X_val, y_val, callback, resume
        As :meth:`NNBCD.fit`.
    **params
        :class:`NNBCD`'s constructor parameters.

    Returns
    -------
    SolveResult
        ``NNBCD(**params).fit(X, y, X_val=X_val, y_val=y_val, callback=callback, resume=resume).result_``.
    """
    return NNBCD(**params).fit(X, y, X_val=X_val, y_val=y_val, callback=callback, resume=resume).result_
