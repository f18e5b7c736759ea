"""The NN-BCD estimator (scikit-learn style) and its functional twin :func:`solve`."""
from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from .. import _validation as val
from ..backend import Backend, get_backend
from ..backend._base import check_dtype
from ..compress.accounting import compression_ratios
from ..compress.base import Compression
from ..ops.prune import effective_sparsity, true_sparsity
from ..result import STATUS_MESSAGES, History, SolveResult
from .blocks import Workspace
from .conv import Conv2d
from .init import init_weight
from .objective import forward, net_metrics, objective_terms
from .state import BCDState, Hyper
from .sweep import sweep

logger = logging.getLogger(__name__)


class NNBCD(BaseEstimator):
    r"""Gradient-free training of an MLP by block coordinate descent (NN-BCD, arXiv 2303.06815).

    Minimises (spec §2), over :math:`V_i, U_i, W_i, b_i` and the compressed copies :math:`\tilde W_i`,

    .. math::

        \Phi = \kappa\Big[\tfrac12\|V_L-Y\|^2 + \tfrac\gamma2\|V_L-U_L\|^2
        + \sum_{i<L}\tfrac\gamma2\|V_i-\sigma(U_i)\|^2
        + \sum_i\tfrac\rho2\|U_i-W_iV_{i-1}-b_i1^T\|^2\Big] + \sum_{i\in C}\tfrac\tau2\|W_i-\tilde W_i\|^2

    with one exact (proximal) minimisation per block, swept backwards over the layers.

    Parameters
    ----------
    layers : sequence
        Widths ``(d_0, d_1, ..., d_L)``: input features, hidden widths, classes. The first entry may
        be a :class:`~nnbcd.bcd.conv.Conv2d` instead of ``d_0``: a convolutional first layer (its
        output width H'W'F is d_1), e.g. ``(Conv2d((1, 28, 28), 32, 3, stride=2), 1024, 1024, 10)``.
    gamma, rho, alpha : float > 0
        Activation coupling γ, linear coupling ρ, proximal weight α.
    alpha_w, alpha_b : float > 0, optional
        Prox weights of the W and bias blocks (default ``alpha``).
    compress : mapping {layer: Compression}, optional
        Compression spec per layer, keyed by the paper's layer number ``1..L`` (``W_1`` is layer 1).
        One spec object shared by several layers is one group (e.g. global pruning).
    tau : float ≥ 0 or mapping {layer: float}
        Compression coupling τ (per compressed layer).
    bias : bool
        Train biases with their exact joint update (the reference has none).
    loss_scale : {"sum", "mean"}
        κ = 1 (reference) or κ = 1/N (hyperparameters transfer across data-set sizes).
    init, init_scale : str, float
        Weight init scheme (:data:`nnbcd.bcd.init.INIT_SCHEMES`) and its multiplier.
    backend : {"numpy", "numba", "cupy"}
    dtype : {"float32", "float64"}
    seed : int, numpy Generator or None
    monitor_every : int
        Record objective terms and metrics every this many iterations (NaN in between); the last
        iteration is always recorded. Monitoring never changes the iterates.
    v_solve, w_solve : {"auto", "direct", "woodbury"}
        Force one form of the V/W solves (``"auto"`` chooses by FLOP count).

    Attributes
    ----------
    result_ : SolveResult
    weights_, biases_ : list of numpy arrays
        Deployed weights (compressed copies for compressed layers) and biases.
    n_iter_ : int
    """

    def __init__(
        self,
        layers: Sequence[int],
        gamma: float = 0.5,
        rho: float = 0.5,
        alpha: float = 1.0,
        *,
        alpha_w: Optional[float] = None,
        alpha_b: Optional[float] = None,
        compress: Optional[Mapping[int, Compression]] = None,
        tau: "float | Mapping[int, float]" = 0.0,
        bias: bool = False,
        loss_scale: str = "sum",
        init: str = "xavier_normal",
        init_scale: float = 1.0,
        backend: str = "numpy",
        dtype: str = "float64",
        seed: Any = None,
        monitor_every: int = 1,
        v_solve: str = "auto",
        w_solve: str = "auto",
    ) -> None:
        self.layers = layers
        self.gamma = gamma
        self.rho = rho
        self.alpha = alpha
        self.alpha_w = alpha_w
        self.alpha_b = alpha_b
        self.compress = compress
        self.tau = tau
        self.bias = bias
        self.loss_scale = loss_scale
        self.init = init
        self.init_scale = init_scale
        self.backend = backend
        self.dtype = dtype
        self.seed = seed
        self.monitor_every = monitor_every
        self.v_solve = v_solve
        self.w_solve = w_solve

    # ---- validation ------------------------------------------------------------------------------
    def _validated(self) -> Dict[str, Any]:
        layers = list(self.layers) if isinstance(self.layers, (list, tuple)) else self.layers
        conv = None
        if isinstance(layers, list) and layers and isinstance(layers[0], Conv2d):
            conv = layers[0]
            widths = (conv.n_in,) + val.check_layers([conv.n_out] + layers[1:])
        else:
            if isinstance(layers, list) and any(isinstance(x, Conv2d) for x in layers):
                raise ValueError("layers: a Conv2d may only be the first entry")
            widths = val.check_layers(self.layers)
        L = len(widths) - 1
        alpha = val.check_positive(self.alpha, "alpha")
        cfg = {
            "widths": widths,
            "conv": conv,
            "gamma": val.check_positive(self.gamma, "gamma"),
            "rho": val.check_positive(self.rho, "rho"),
            "alpha": alpha,
            "alpha_w": val.check_positive(alpha if self.alpha_w is None else self.alpha_w, "alpha_w"),
            "alpha_b": val.check_positive(alpha if self.alpha_b is None else self.alpha_b, "alpha_b"),
            "loss_scale": val.check_choice(self.loss_scale, ("sum", "mean"), "loss_scale"),
            "init_scale": val.check_positive(self.init_scale, "init_scale"),
            "dtype": check_dtype(self.dtype),
            "be": get_backend(self.backend),
            "monitor_every": val.check_int(self.monitor_every, "monitor_every"),
            "v_solve": val.check_choice(self.v_solve, ("auto", "direct", "woodbury"), "v_solve"),
            "w_solve": val.check_choice(self.w_solve, ("auto", "direct", "woodbury"), "w_solve"),
        }
        compress: Dict[int, Compression] = {}
        for layer, spec in dict(self.compress or {}).items():
            if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 1 <= layer <= L:
                raise ValueError(f"compress has key {layer!r}; layers are numbered 1..{L} (W_1..W_{L})")
            if layer == 1 and conv is not None:
                raise ValueError("compress[1]: the conv kernel is not compressed (compress layers 2..L)")
            if not isinstance(spec, Compression):
                raise TypeError(f"compress[{layer}] must be a Compression (TT, Prune, ...), got {type(spec).__name__}")
            spec.validate((widths[layer], widths[layer - 1]), f"compress[{layer}]")
            compress[int(layer) - 1] = spec
        if isinstance(self.tau, Mapping):
            extra = set(self.tau) - {i + 1 for i in compress}
            if extra:
                raise ValueError(f"tau has keys {sorted(extra)} that are not compressed layers")
            tau = {i: val.check_positive(self.tau.get(i + 1, 0.0), f"tau[{i + 1}]", True) for i in compress}
        else:
            t = val.check_positive(self.tau, "tau", allow_zero=True)
            tau = {i: t for i in compress}
        if compress and not any(tau.values()) and not all(s.replaces_weight for s in compress.values()):
            logger.warning("compress is set but tau is 0: the compressed copies do not act on the weights")
        cfg["compress"], cfg["tau"] = compress, tau
        return cfg

    # ---- fit ---------------------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any,
        X_val: Any = None,
        y_val: Any = None,
        max_iter: int = 100,
        tol: Optional[float] = None,
        callback: Optional[Callable[[SolveResult], Any]] = None,
        verbose: bool = False,
    ) -> "NNBCD":
        """Run NN-BCD for at most ``max_iter`` sweeps on ``X`` (n_samples × d_0) and labels ``y``.

        Parameters
        ----------
        X, y : arrays
            Samples as rows; ``y`` integer labels ``0..K-1`` or one-hot ``(n, K)``.
        X_val, y_val : arrays, optional
            Validation data, scored with the deployed network at monitored iterations.
        max_iter : int
        tol : float, optional
            Stop when :math:`|\\Phi^{k}-\\Phi^{k+1}| \\le tol\\cdot\\max(1,|\\Phi^k|)` (checked at monitored
            iterations).
        callback : callable, optional
            ``callback(intermediate_result)`` after every sweep; raising ``StopIteration`` stops the run
            with ``status=99``.
        verbose : bool
            Show a tqdm progress bar with the train/val accuracy.

        Returns
        -------
        self
        """
        cfg = self._validated()
        be, dtype, widths = cfg["be"], cfg["dtype"], cfg["widths"]
        max_iter = val.check_int(max_iter, "max_iter", minimum=0)
        if tol is not None:
            tol = val.check_positive(tol, "tol")
        X = val.check_matrix(X, "X")
        if X.shape[1] != widths[0]:
            raise ValueError(f"X has {X.shape[1]} features but layers[0] expects {widths[0]}")
        labels, onehot = val.check_targets(y, X.shape[0], widths[-1], "y")
        val_data = None
        if (X_val is None) != (y_val is None):
            raise ValueError("pass both X_val and y_val, or neither")
        if X_val is not None:
            Xv = val.check_matrix(X_val, "X_val")
            if Xv.shape[1] != widths[0]:
                raise ValueError(f"X_val has {Xv.shape[1]} features but layers[0] expects {widths[0]}")
            lv, ohv = val.check_targets(y_val, Xv.shape[0], widths[-1], "y_val")
            xv = be.asarray(Xv.T, dtype)
            patches = None if cfg["conv"] is None else cfg["conv"].patches(xv, be)
            val_data = (xv, be.asarray(ohv, dtype), be.xp.asarray(lv), patches)
        n = X.shape[0]
        hp = Hyper(
            gamma=cfg["gamma"], rho=cfg["rho"], alpha=cfg["alpha"], alpha_w=cfg["alpha_w"],
            alpha_b=cfg["alpha_b"], kappa=1.0 if cfg["loss_scale"] == "sum" else 1.0 / n,
        )
        st = self._initial_state(cfg, be.asarray(X.T, dtype), be.asarray(onehot, dtype))
        ws = Workspace(st, be, cfg["v_solve"], cfg["w_solve"])
        labels_be = be.xp.asarray(labels)
        self.result_ = self._run(st, hp, be, ws, labels_be, val_data, max_iter, tol, callback, verbose,
                                 cfg["monitor_every"])
        self.state_ = st
        self.backend_ = be
        self.weights_ = [be.to_numpy(w) for w in self.result_.x["W_deployed"]]
        self.biases_ = [None if b is None else be.to_numpy(b) for b in self.result_.x["b"]]
        self.n_iter_ = self.result_.nit
        self.n_features_in_ = X.shape[1]
        return self

    def _initial_state(self, cfg: Dict[str, Any], X: Any, Y: Any) -> BCDState:
        """Weights from the init scheme, zero biases, and the forward pass of spec §5."""
        be, dtype, widths = cfg["be"], cfg["dtype"], cfg["widths"]
        rng = np.random.default_rng(self.seed)
        conv = cfg["conv"]
        L = len(widths) - 1
        # the conv kernel is stored as Z^T (filters × patch size): a dense layer on patch samples
        shapes = [(conv.filters, conv.patch_size) if (i == 0 and conv) else (widths[i + 1], widths[i])
                  for i in range(L)]
        W = [be.asarray(init_weight(self.init, rng, *shape, cfg["init_scale"]), dtype) for shape in shapes]
        b = [be.zeros(shape[0], dtype) if self.bias else None for shape in shapes]
        st = BCDState(W=W, b=b, U=[], V=[], X=X, Y=Y, compress=cfg["compress"], tau=cfg["tau"], conv=conv,
                      patches=None if conv is None else conv.patches(X, be))
        for i, spec in st.compress.items():
            shared = [w for j, w in enumerate(W) if st.compress.get(j) is spec]
            st.Wt[i] = spec.initial(W[i], be, weights=shared if len(shared) > 1 else None)
        for i, spec in st.compress.items():  # after all initial copies: a global threshold sees W^0
            if spec.replaces_weight:
                st.W[i] = st.Wt[i].dense.copy()
        for i in range(L):  # forward pass with the weights in use: every coupling term is 0 (spec §5)
            u = st.linear(i, be)
            if b[i] is not None:
                u += st.bias_rows(i, be)[:, None]
            st.U.append(u)
            st.V.append(be.relu(u) if i < L - 1 else u.copy())
        return st

    def _monitor(self, st: BCDState, hp: Hyper, be: Backend, ws: Workspace, labels: Any,
                 val_data: Any) -> Dict[str, float]:
        rec = objective_terms(st, hp, be, ws.prod)
        rec["objective"] = rec["phi"]
        weights = [st.deployed(i) for i in range(st.n_layers)]
        out = forward(weights, st.b, st.X, be, st.conv, st.patches)
        rec.update(net_metrics(out, st.Y, labels, hp.kappa, be))
        if val_data is not None:
            xv, yv, lv, pv = val_data
            kv = 1.0 if hp.kappa == 1.0 else 1.0 / xv.shape[1]
            m = net_metrics(forward(weights, st.b, xv, be, st.conv, pv), yv, lv, kv, be)
            rec.update({f"val_{k}": v for k, v in m.items()})
        if st.Wt:
            rec.update(_compression_metrics(st, be, weights))
        return rec

    def _run(self, st, hp, be, ws, labels, val_data, max_iter, tol, callback, verbose, every) -> SolveResult:
        from tqdm.auto import tqdm

        history = History()
        status = 0
        fun = math.nan
        total = 0.0
        last_good = _snapshot(st)
        prev_phi = None
        bar = tqdm(total=max_iter, disable=not verbose or None, desc="nnbcd", leave=True)
        nit = 0
        try:
            for k in range(1, max_iter + 1):
                monitored = k % every == 0 or k == max_iter
                t0 = time.perf_counter()
                try:
                    with np.errstate(over="ignore", invalid="ignore"):
                        rec: Dict[str, float] = dict(sweep(st, hp, be, ws, track=monitored))
                except np.linalg.LinAlgError:
                    # a system lost positive definiteness: only non-finite data gets here (all are SPD)
                    status, nit = 2, k
                    _restore(st, last_good)
                    break
                rec["time"] = time.perf_counter() - t0
                total += rec["time"]
                nit = k
                if not monitored:
                    for key in list(rec):
                        if key.startswith("step_") or key == "prox_step_sq":
                            rec[key] = math.nan
                rec["step_sq"] = sum(rec[f"step_{kk}"] for kk in ("V", "U", "W", "comp"))
                if not _finite(st, be):
                    status = 2
                    _restore(st, last_good)
                    history.append(rec)
                    break
                last_good = _snapshot(st)
                if monitored:
                    t1 = time.perf_counter()
                    rec.update(self._monitor(st, hp, be, ws, labels, val_data))
                    rec["time_monitor"] = time.perf_counter() - t1
                    fun = rec["phi"]
                history.append(rec)
                bar.update(1)
                if monitored:
                    post = {"acc": f"{rec['acc']:.4f}", "phi": f"{rec['phi']:.4g}"}
                    if "val_acc" in rec:
                        post["val_acc"] = f"{rec['val_acc']:.4f}"
                    bar.set_postfix(post, refresh=False)
                if tol is not None and monitored:
                    if prev_phi is not None and abs(prev_phi - rec["phi"]) <= tol * max(1.0, abs(prev_phi)):
                        status = 1
                        break
                    prev_phi = rec["phi"]
                if callback is not None:
                    try:
                        callback(_result(st, be, history, 0, k, fun, total))
                    except StopIteration:
                        status = 99
                        break
        finally:
            bar.close()
        return _result(st, be, history, status, nit, fun, total)

    # ---- inference ---------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "result_"):
            raise RuntimeError("this NNBCD instance is not fitted yet; call fit(X, y) first")

    def decision_function(self, X: Any) -> np.ndarray:
        """Network outputs ``f(X)`` (n_samples × K), with the deployed (compressed) weights."""
        self._check_fitted()
        X = val.check_matrix(X, "X")
        n_in = self.state_.X.shape[0]
        if X.shape[1] != n_in:
            raise ValueError(f"X has {X.shape[1]} features but the network expects {n_in}")
        be = self.backend_
        dtype = self.state_.X.dtype
        w = [be.asarray(x, dtype) for x in self.weights_]
        b = [None if x is None else be.asarray(x, dtype) for x in self.biases_]
        return be.to_numpy(forward(w, b, be.asarray(X.T, dtype), be, self.state_.conv)).T

    def export(self) -> Dict[str, Any]:
        """The deployed network in storage form.

        Returns ``{"layers": [...], "biases": [...]}``: for each layer the compression spec's export of
        its compressed copy (TT cores, a ``scipy.sparse`` matrix, ...) or the dense weight (numpy), and
        the biases (``None`` when trained without).
        """
        self._check_fitted()
        st = self.state_
        layers = [st.compress[i].export(st.Wt[i]) if i in st.Wt else self.backend_.to_numpy(st.W[i])
                  for i in range(st.n_layers)]
        return {"layers": layers, "biases": self.biases_}

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (argmax of :meth:`decision_function`)."""
        return self.decision_function(X).argmax(axis=1)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy of :meth:`predict` on ``(X, y)``."""
        labels, _ = val.check_targets(y, np.asarray(X).shape[0], self.weights_[-1].shape[0])
        return float((self.predict(X) == labels).mean())


def _compression_metrics(st: BCDState, be: Any, deployed: List[Any]) -> Dict[str, float]:
    """Per-layer stored numbers, CR_1 / CR_2 / cr_honest and, with pruning, the sparsities (spec §6)."""
    rec: Dict[str, float] = {f"n_params_{i + 1}": c.n_params for i, c in st.Wt.items()}
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
        biases = [None if b is None else be.to_numpy(b) for b in st.b]
        rec["effective_sparsity"] = effective_sparsity(host, biases)
    return rec


def _finite(st: BCDState, be: Any) -> bool:
    # weights are small and every block feeds them, so a non-finite sweep shows up here
    return all(be.isfinite_all(w) for w in st.W) and be.isfinite_all(st.V[-1])


def _snapshot(st: BCDState) -> Dict[str, Any]:
    return {"W": [w.copy() for w in st.W], "b": [None if b is None else b.copy() for b in st.b],
            "Wt": dict(st.Wt)}


def _restore(st: BCDState, snap: Dict[str, Any]) -> None:
    st.W, st.b, st.Wt = snap["W"], snap["b"], snap["Wt"]


def _result(st: BCDState, be: Any, history: History, status: int, nit: int, fun: float,
            total: float) -> SolveResult:
    x = {
        "W": list(st.W),
        "b": list(st.b),
        "Wt": dict(st.Wt),
        "W_deployed": [st.deployed(i) for i in range(st.n_layers)],
    }
    compression = {i + 1: dict(c.info, n_params=c.n_params) for i, c in st.Wt.items()}
    return SolveResult(x=x, status=status, success=status in (0, 1), message=STATUS_MESSAGES[status],
                       nit=nit, fun=fun, history=history, time=total, compression=compression)


def solve(
    X: Any,
    y: Any,
    layers: Sequence[int],
    *,
    method: str = "nnbcd",
    X_val: Any = None,
    y_val: Any = None,
    max_iter: int = 100,
    tol: Optional[float] = None,
    callback: Optional[Callable[[SolveResult], Any]] = None,
    verbose: bool = False,
    **options: Any,
) -> SolveResult:
    """Functional form: ``solve(X, y, layers, **options)`` returns the :class:`SolveResult` of
    ``NNBCD(layers, **options).fit(...)`` (scipy.optimize style).
    """
    if method != "nnbcd":
        raise ValueError(f"method={method!r} is not known; the only method is 'nnbcd'")
    model = NNBCD(layers, **options)
    model.fit(X, y, X_val, y_val, max_iter=max_iter, tol=tol, callback=callback, verbose=verbose)
    return model.result_
