"""Bad and unusual inputs to every public entry point (issue 12), one table row per call.

Each row is a call and what it must give: ``Err(exc, name)``, a ``ValueError``/``TypeError`` (or the
subclass given) whose message names the argument ``name`` as a word, never an error from deep inside a
library or kernel; or ``Ok(check)``, a result that ``check`` verifies against an independent oracle
(a hand-computed value, exact rational arithmetic, numpy.linalg). Rows whose fault lies outside the
numerical core are marked ``xfail(strict=True)`` with where the fix belongs, so they turn into
failures the day they are fixed and the mark must go.

Covered: every public function of ``nnbcd.ops``, the compression specs' constructors and
``compression_ratios``, ``nnbcd.backend`` (names, dtypes, ``asarray`` and the fused kernels on numpy
and numba), ``nnbcd.convergence``, the ``NNBCD`` estimator (constructor parameters, ``fit``, ``predict``,
``score``) and ``nnbcd.solve``, the data loaders, and the CLI (``nnbcd solve`` with bad ``--set``
values and bad preset files). Inputs: shapes, dtypes (int, bool, complex, float16, object, strings),
NaN/Inf, empty, negative/zero/huge numbers, unknown strings, wrong container types.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Tuple, Type, Union

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

import nnbcd
from nnbcd import NNBCD, InputConv2d, Prune, TT, convergence, ops
from nnbcd.backend import check_dtype, get_backend, infer_backend, register_backend
from nnbcd.cli import main
from nnbcd.compress import compression_ratios
from nnbcd.result import History

# ---- the two kinds of expectation --------------------------------------------------------------------


@dataclass(frozen=True)
class Err:
    """The call raises ``exc`` and its message names ``name`` (as a word: ``rank`` not in ``ranks``)."""

    exc: Union[Type[BaseException], Tuple[Type[BaseException], ...]]
    name: str


@dataclass(frozen=True)
class Ok:
    """The call returns a value that ``check`` accepts (``check`` asserts against an oracle)."""

    check: Callable[[Any], None]


def _names(message: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message) is not None


def _run(call: Callable[[], Any], expect: Union[Err, Ok]) -> None:
    if isinstance(expect, Err):
        with pytest.raises(expect.exc) as info:
            call()
        assert isinstance(info.value, (ValueError, TypeError, OSError)), repr(info.value)
        assert _names(str(info.value), expect.name), f"message does not name {expect.name!r}: {info.value}"
    else:
        expect.check(call())


def row(id_: str, call: Callable[[], Any], expect: Union[Err, Ok], xfail: str = "") -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=f"issue 12: {xfail}")] if xfail else []
    return pytest.param(call, expect, id=id_, marks=marks)


def close(want: Any, rtol: float = 1e-12, atol: float = 0.0) -> Ok:
    def check(got: Any) -> None:
        np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=rtol, atol=atol)
    return Ok(check)


def holds(pred: Callable[[Any], bool]) -> Ok:
    def check(got: Any) -> None:
        assert pred(got), got
    return Ok(check)


def equal(want: Any) -> Ok:
    def check(got: Any) -> None:
        assert type(got) is type(want) or isinstance(got, np.ndarray), type(got)
        np.testing.assert_array_equal(got, want)
    return Ok(check)


# ---- inputs ------------------------------------------------------------------------------------------
#: arrays of non-real dtypes, each refused with a TypeError naming the argument
BAD_DTYPES = {
    "bool": lambda shape: np.ones(shape, dtype=bool),
    "float16": lambda shape: np.ones(shape, dtype=np.float16),
    "complex": lambda shape: np.ones(shape, dtype=complex),
    "object": lambda shape: np.ones(shape).astype(object),
    "str": lambda shape: np.full(shape, "1.0"),
}
#: numbers that are not a positive finite real
BAD_POSITIVE = {"zero": 0.0, "negative": -1.0, "nan": math.nan, "inf": math.inf}
BAD_TYPES = {"str": "1.0", "bool": True, "none": None, "list": [1.0]}


def _with(shape: Tuple[int, ...], value: float, at: Tuple[int, ...] = None) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal(shape)
    x[at if at is not None else (0,) * len(shape)] = value
    return x


def _dtype_rows(prefix: str, make: Callable[[np.ndarray], Any], name: str, shape: Tuple[int, ...]) -> list:
    return [row(f"{prefix}-{kind}", lambda m=maker: make(m(shape)), Err(TypeError, name))
            for kind, maker in BAD_DTYPES.items()]


def _positive_rows(prefix: str, make: Callable[[Any], Any], name: str, zero_ok: bool = False) -> list:
    rows = [row(f"{prefix}-{k}", lambda v=v: make(v), Err(ValueError, name))
            for k, v in BAD_POSITIVE.items() if not (zero_ok and v == 0.0)]
    rows += [row(f"{prefix}-{k}", lambda v=v: make(v), Err(TypeError, name)) for k, v in BAD_TYPES.items()]
    return rows


def _prox_oracle(v: float, a: float, beta: float) -> float:
    """The ReLU prox's minimiser in exact rational arithmetic: the best of the three candidates
    (u+ when ≥ 0, 0, min(a, 0)) of the two convex pieces, by exact objective values."""
    v, a, b = Fraction(v), Fraction(a), Fraction(beta)

    def f(u: Fraction) -> Fraction:
        return (v - max(u, Fraction(0))) ** 2 / 2 + b * (u - a) ** 2 / 2
    cands = [max((v + b * a) / (1 + b), Fraction(0)), min(a, Fraction(0))]
    return float(min(cands, key=f))


# ---- nnbcd.ops -----------------------------------------------------------------------------------------
W = np.random.default_rng(1).standard_normal((6, 8))
T3 = np.random.default_rng(2).standard_normal((2, 3, 4))
INT_T3 = np.arange(24).reshape(2, 3, 4) - 11
RANK2_INT = np.outer([1, 2, 3, 4], [1, 0, 2, 1, 3]) + np.outer([0, 1, 0, 1], [2, 1, 0, 0, 1])  # rank 2


def _planted(scale: float, dtype: Any = np.float64) -> np.ndarray:
    """20×30, rank 3 plus noise of σ = 0.1: EVBMF's rank is 3 at every scale."""
    rng = np.random.default_rng(3)
    y = rng.standard_normal((20, 3)) @ rng.standard_normal((3, 30)) * 3 + 0.1 * rng.standard_normal((20, 30))
    return (y * scale).astype(dtype)


def _rank(r: int, sigma2: Any = None) -> Ok:
    def check(res: Any) -> None:
        assert res.rank == r, res.rank
        if sigma2 is not None:
            assert res.sigma2 == pytest.approx(sigma2, rel=0.15, abs=1e-300)
    return Ok(check)


def _tt_exact(tensor: Any) -> Ok:
    """Uncapped TT-SVD rebuilds the tensor (oracle: the tensor itself)."""
    def check(cores: Any) -> None:
        got = ops.tt_to_tensor(cores)
        np.testing.assert_allclose(got, np.asarray(tensor, dtype=float), rtol=1e-12,
                                   atol=1e-12 * np.abs(np.asarray(tensor, dtype=float)).max())
    return Ok(check)


def _tt_matrix_apply_case() -> Tuple[list, np.ndarray, np.ndarray]:
    w = np.random.default_rng(4).standard_normal((6, 6))
    cores4 = ops.tt_matrix_cores(ops.tt_svd(ops.matrix_to_tt_tensor(w, (2, 3), (3, 2)), 100), (2, 3), (3, 2))
    x = np.random.default_rng(5).standard_normal((6, 4))
    return cores4, x, w @ x


CORES4, X_APPLY, WX = _tt_matrix_apply_case()

OPS_ROWS = [
    # relu_prox: issue 12's integer case (7/3), lists, every backend, huge and float32-cancelling values
    row("relu_prox-int", lambda: ops.relu_prox(np.array([3]), np.array([1]), 0.5), close([7 / 3])),
    row("relu_prox-int-numba", lambda: ops.relu_prox(np.array([3]), np.array([1]), 0.5, backend="numba"),
        close([7 / 3])),
    row("relu_prox-lists", lambda: ops.relu_prox([3, -2.0], [1, 0.5], 0.5),
        close([_prox_oracle(3, 1, 0.5), _prox_oracle(-2, 0.5, 0.5)])),
    row("relu_prox-0d", lambda: ops.relu_prox(np.float64(3), np.float64(1), 0.5), close(7 / 3)),
    row("relu_prox-empty", lambda: ops.relu_prox(np.zeros((0, 3)), np.zeros((0, 3)), 1.0),
        holds(lambda u: u.shape == (0, 3))),
    row("relu_prox-nan-entry-only", lambda: ops.relu_prox(np.array([np.nan, 3.0]), np.array([1.0, 1.0]), 0.5),
        close([np.nan, 7 / 3])),
    row("relu_prox-huge-a", lambda: ops.relu_prox(np.array([1.0]), np.array([1e300]), 1e10),
        close([_prox_oracle(1.0, 1e300, 1e10)])),
    row("relu_prox-huge-beta-float32", lambda: ops.relu_prox(np.float32([2.5e7]), np.float32([-1.0]), 1e7),
        close([_prox_oracle(2.5e7, -1.0, 1e7)], rtol=1e-6)),
    row("relu_prox-beta-1e200-float32", lambda: ops.relu_prox(np.float32([1.0]), np.float32([0.0]), 1e200),
        close([0.0], atol=1e-30)),
    row("relu_prox-shapes", lambda: ops.relu_prox(np.ones((2, 3)), np.ones(4), 1.0), Err(ValueError, "v")),
    row("relu_prox-a-complex", lambda: ops.relu_prox(np.ones(3), np.ones(3, dtype=complex), 1.0), Err(TypeError, "a")),
    row("relu_prox-ragged", lambda: ops.relu_prox([[1.0], [1.0, 2.0]], np.ones(1), 1.0), Err(TypeError, "v")),
    *_dtype_rows("relu_prox-v", lambda x: ops.relu_prox(x, np.ones(3), 1.0), "v", (3,)),
    *_positive_rows("relu_prox-beta", lambda b: ops.relu_prox(np.ones(3), np.ones(3), b), "beta"),
    # topk_mask: exact count with ties and duplicates, NaN refused, k in 0..n
    row("topk-ties", lambda: ops.topk_mask(np.array([1.0, 1.0, 1.0, 1.0]), 2),
        equal(np.array([True, True, False, False]))),
    row("topk-duplicates", lambda: ops.topk_mask(np.array([2.0, 5.0, 2.0, 5.0, 2.0]), 3),
        equal(np.array([True, True, False, True, False]))),
    row("topk-inf", lambda: ops.topk_mask(np.array([1.0, np.inf, 2.0]), 1), equal(np.array([False, True, False]))),
    row("topk-int", lambda: ops.topk_mask(np.array([3, 1, 2]), 2), equal(np.array([True, False, True]))),
    row("topk-list", lambda: ops.topk_mask([3.0, 1.0, 2.0], 1), equal(np.array([True, False, False]))),
    row("topk-empty", lambda: ops.topk_mask(np.zeros(0), 0), equal(np.zeros(0, dtype=bool))),
    row("topk-nan", lambda: ops.topk_mask(np.array([np.nan, 1.0, 2.0, 3.0]), 2), Err(ValueError, "absval")),
    row("topk-2d", lambda: ops.topk_mask(np.ones((2, 2)), 1), Err(ValueError, "absval")),
    row("topk-k-negative", lambda: ops.topk_mask(np.ones(4), -1), Err(ValueError, "k")),
    row("topk-k-too-big", lambda: ops.topk_mask(np.ones(4), 5), Err(ValueError, "k")),
    row("topk-k-float", lambda: ops.topk_mask(np.ones(4), 2.5), Err(ValueError, "k")),
    row("topk-k-str", lambda: ops.topk_mask(np.ones(4), "2"), Err(ValueError, "k")),
    *_dtype_rows("topk-absval", lambda x: ops.topk_mask(x, 1), "absval", (4,)),
    # hard_threshold / n_keep / sparsities
    row("hard_threshold-int", lambda: ops.hard_threshold([np.array([[3, -1], [2, 0]])], 0.5),
        Ok(lambda out: np.testing.assert_array_equal(out[0], [[3.0, 0.0], [2.0, 0.0]]))),
    row("hard_threshold-inf", lambda: ops.hard_threshold([np.array([np.inf, 1.0, -2.0, 0.5])], 0.5),
        Ok(lambda out: np.testing.assert_array_equal(out[0], [np.inf, 0.0, -2.0, 0.0]))),
    row("hard_threshold-nan", lambda: ops.hard_threshold([np.array([np.nan, 1.0, 2.0, 3.0])], 0.5),
        Err(ValueError, "weights[0]")),
    row("hard_threshold-nan-second", lambda: ops.hard_threshold([np.ones(2), np.array([1.0, np.nan])], 0.5),
        Err(ValueError, "weights[1]")),
    row("hard_threshold-bare-array", lambda: ops.hard_threshold(np.ones((3, 3)), 0.5), Err(TypeError, "weights")),
    row("hard_threshold-empty-list", lambda: ops.hard_threshold([], 0.5), Err(ValueError, "weights")),
    row("hard_threshold-dict", lambda: ops.hard_threshold({0: np.ones(3)}, 0.5), Err(TypeError, "weights")),
    row("hard_threshold-complex", lambda: ops.hard_threshold([np.ones(3, dtype=complex)], 0.5),
        Err(TypeError, "weights[0]")),
    *[row(f"hard_threshold-sparsity-{v}", lambda v=v: ops.hard_threshold([np.ones(4)], v), Err(ValueError, "sparsity"))
      for v in (-0.5, 1.5, 1.0, math.nan)],
    row("hard_threshold-sparsity-str", lambda: ops.hard_threshold([np.ones(4)], "0.5"), Err(TypeError, "sparsity")),
    row("n_keep-halves-up", lambda: ops.n_keep(10, 0.25), equal(7)),
    row("n_keep-sparsity", lambda: ops.n_keep(10, 1.5), Err(ValueError, "sparsity")),
    row("n_keep-n-negative", lambda: ops.n_keep(-1, 0.5), Err(ValueError, "n")),
    row("n_keep-n-float", lambda: ops.n_keep(2.5, 0.5), Err(ValueError, "n")),
    row("true_sparsity-hand", lambda: ops.true_sparsity([np.array([0, 1, 0, 2])]), equal(0.5)),
    row("true_sparsity-empty", lambda: ops.true_sparsity([]), Err(ValueError, "weights")),
    row("true_sparsity-no-entries", lambda: ops.true_sparsity([np.zeros(0)]), Err(ValueError, "weights")),
    row("true_sparsity-bare-array", lambda: ops.true_sparsity(np.zeros(3)), Err(TypeError, "weights")),
    row("true_sparsity-str", lambda: ops.true_sparsity([np.array(["a"])]), Err(TypeError, "weights[0]")),
    # unit 0 of the hidden layer has no input (zero row, no bias): its outgoing weight is dead too
    row("effective_sparsity-hand",
        lambda: ops.effective_sparsity([np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 1.0]])]),
        equal(0.5)),
    row("effective_sparsity-chain", lambda: ops.effective_sparsity([np.ones((3, 2)), np.ones((1, 4))]),
        Err(ValueError, "weights[1]")),
    row("effective_sparsity-1d", lambda: ops.effective_sparsity([np.ones(3)]), Err(ValueError, "weights[0]")),
    row("effective_sparsity-biases-len", lambda: ops.effective_sparsity([np.ones((2, 2))], [None, None]),
        Err(ValueError, "biases")),
    row("effective_sparsity-bias-shape", lambda: ops.effective_sparsity([np.ones((2, 2))], [np.ones(3)]),
        Err(ValueError, "biases[0]")),
    # TT: ranks and sizes
    row("tt_ranks-hand", lambda: ops.tt_ranks((4, 4, 4), 100), equal([1, 4, 4, 1])),
    row("tt_ranks-rank-2.5", lambda: ops.tt_ranks((4, 4), 2.5), Err(TypeError, "rank")),
    row("tt_ranks-rank-nan", lambda: ops.tt_ranks((4, 4), math.nan), Err(TypeError, "rank")),
    row("tt_ranks-rank-str", lambda: ops.tt_ranks((4, 4), "3"), Err(TypeError, "rank")),
    row("tt_ranks-rank-zero", lambda: ops.tt_ranks((4, 4), 0), Err(ValueError, "rank")),
    row("tt_ranks-rank-list-float", lambda: ops.tt_ranks((4, 4), [1, 2.5, 1]), Err(ValueError, "rank[1]")),
    row("tt_ranks-rank-list-length", lambda: ops.tt_ranks((4, 4), [1, 3]), Err(ValueError, "rank")),
    row("tt_ranks-modes-negative", lambda: ops.tt_ranks((4, -2), 3), Err(ValueError, "modes[1]")),
    row("tt_ranks-modes-int", lambda: ops.tt_ranks(4, 3), Err(TypeError, "modes")),
    row("tt_ranks-modes-empty", lambda: ops.tt_ranks((), 3), Err(ValueError, "modes")),
    row("tt_n_params-hand", lambda: ops.tt_n_params((4, 4), [1, 2, 1]), equal(16)),
    row("tt_n_params-ranks-length", lambda: ops.tt_n_params((4, 4), [1, 1]), Err(ValueError, "ranks")),
    row("factor_shape-hand", lambda: ops.factor_shape(12), equal((3, 4))),
    row("factor_shape-zero", lambda: ops.factor_shape(0), Err(ValueError, "n")),
    row("factor_shape-float", lambda: ops.factor_shape(2.5), Err(ValueError, "n")),
    row("factor_shape-max_mode", lambda: ops.factor_shape(12, 1), Err(ValueError, "max_mode")),
    # tt_svd: issue 12's complex tensor, empty input, NaN with svd="gram", a positional backend
    row("tt_svd-int", lambda: ops.tt_svd(INT_T3, 100), _tt_exact(INT_T3)),
    row("tt_svd-list", lambda: ops.tt_svd(INT_T3.tolist(), 100), _tt_exact(INT_T3)),
    row("tt_svd-1d", lambda: ops.tt_svd(np.arange(5.0), 3), _tt_exact(np.arange(5.0))),
    row("tt_svd-huge-gram", lambda: ops.tt_svd(T3 * 1e200, 100, svd="gram"), _tt_exact(T3 * 1e200)),
    row("tt_svd-tiny-gram", lambda: ops.tt_svd(T3 * 1e-200, 100, svd="gram"), _tt_exact(T3 * 1e-200)),
    row("tt_svd-complex", lambda: ops.tt_svd(T3 * 1j, 4), Err(TypeError, "tensor")),
    *_dtype_rows("tt_svd-tensor", lambda x: ops.tt_svd(x, 2), "tensor", (2, 3)),
    row("tt_svd-empty", lambda: ops.tt_svd(np.ones((0, 2, 2)), 4), Err(ValueError, "tensor")),
    row("tt_svd-0d", lambda: ops.tt_svd(np.float64(1.0), 4), Err(ValueError, "tensor")),
    row("tt_svd-nan-gram", lambda: ops.tt_svd(_with((2, 3, 4), np.nan), 2, svd="gram"), Err(ValueError, "tensor")),
    row("tt_svd-nan-full", lambda: ops.tt_svd(_with((2, 3, 4), np.nan), 2, svd="full"), Err(ValueError, "tensor")),
    row("tt_svd-inf", lambda: ops.tt_svd(_with((2, 3, 4), np.inf), 2), Err(ValueError, "tensor")),
    row("tt_svd-rank-2.5", lambda: ops.tt_svd(T3, 2.5), Err(TypeError, "rank")),
    row("tt_svd-svd", lambda: ops.tt_svd(T3, 2, svd="lanczos"), Err(ValueError, "svd")),
    row("tt_svd-positional-backend", lambda: ops.tt_svd(T3, 2, "numpy"), Err(TypeError, "positional")),
    row("tt_svd-backend-unknown", lambda: ops.tt_svd(T3, 2, backend="jax"), Err(ValueError, "backend")),
    row("tt_svd-backend-int", lambda: ops.tt_svd(T3, 2, backend=5), Err(TypeError, "backend")),
    row("tt_to_tensor-int", lambda: ops.tt_to_tensor([np.array([[[1], [2]]])]), close([1.0, 2.0])),
    row("tt_to_tensor-bare-array", lambda: ops.tt_to_tensor(np.ones((1, 2, 1))), Err(TypeError, "cores")),
    row("tt_to_tensor-empty", lambda: ops.tt_to_tensor([]), Err(ValueError, "cores")),
    row("tt_to_tensor-2d-core", lambda: ops.tt_to_tensor([np.ones((2, 2))]), Err(ValueError, "cores[0]")),
    row("tt_to_tensor-chain", lambda: ops.tt_to_tensor([np.ones((1, 2, 3)), np.ones((2, 2, 1))]),
        Err(ValueError, "cores[1]")),
    row("tt_to_tensor-end-rank", lambda: ops.tt_to_tensor([np.ones((1, 2, 2))]), Err(ValueError, "cores")),
    row("tt_to_tensor-complex", lambda: ops.tt_to_tensor([np.ones((1, 2, 1), dtype=complex)]),
        Err(TypeError, "cores[0]")),
    row("tt_truncation_bound-hand", lambda: ops.tt_truncation_bound(np.diag([3.0, 2.0, 1.0]), [1, 1, 1]),
        close(math.sqrt(5))),
    row("tt_truncation_bound-complex", lambda: ops.tt_truncation_bound(np.eye(3) * 1j, [1, 1, 1]),
        Err(TypeError, "tensor")),
    row("tt_truncation_bound-nan", lambda: ops.tt_truncation_bound(_with((3, 3), np.nan), [1, 1, 1]),
        Err(ValueError, "tensor")),
    row("tt_truncation_bound-ranks", lambda: ops.tt_truncation_bound(np.eye(3), [1, 1]), Err(ValueError, "ranks")),
    row("matrix_to_tt_tensor-hand", lambda: ops.matrix_to_tt_tensor(np.arange(4.0).reshape(2, 2), (2,), (2,)),
        equal(np.arange(4.0).reshape(4))),
    row("matrix_to_tt_tensor-shape", lambda: ops.matrix_to_tt_tensor(np.ones((6, 4)), (2, 3), (2, 3)),
        Err(ValueError, "w")),
    row("matrix_to_tt_tensor-mode-float", lambda: ops.matrix_to_tt_tensor(np.ones((6, 4)), (2, 2.5), (2, 2)),
        Err(ValueError, "row_modes[1]")),
    row("matrix_to_tt_tensor-lengths", lambda: ops.matrix_to_tt_tensor(np.ones((6, 4)), (6,), (2, 2)),
        Err(ValueError, "row_modes")),
    row("matrix_to_tt_tensor-list", lambda: ops.matrix_to_tt_tensor([[1.0]], (1,), (1,)), Err(TypeError, "w")),
    row("tt_tensor_to_matrix-round-trip", lambda: ops.tt_tensor_to_matrix(
        ops.matrix_to_tt_tensor(W, (2, 3), (2, 4)), (2, 3), (2, 4)), equal(W)),
    row("tt_tensor_to_matrix-size", lambda: ops.tt_tensor_to_matrix(np.ones(5), (2,), (2,)), Err(ValueError, "t")),
    row("tt_matrix_cores-count", lambda: ops.tt_matrix_cores(CORES4[:1], (2, 3), (3, 2)), Err(ValueError, "cores")),
    row("tt_matrix_apply-oracle", lambda: ops.tt_matrix_apply(CORES4, X_APPLY), close(WX, rtol=1e-10)),
    row("tt_matrix_apply-x-shape", lambda: ops.tt_matrix_apply(CORES4, np.ones((5, 2))), Err(ValueError, "x")),
    row("tt_matrix_apply-x-complex", lambda: ops.tt_matrix_apply(CORES4, np.ones((6, 2), dtype=complex)),
        Err(TypeError, "x")),
    row("tt_matrix_apply-bare-array", lambda: ops.tt_matrix_apply(np.ones((1, 2, 3, 1)), np.ones((3, 2))),
        Err(TypeError, "cores4")),
    # EVBMF: issue 12's H=2.5 and complex batches; ints, lists, extreme scales
    row("evbmf-int", lambda: ops.evbmf(RANK2_INT), _rank(int(np.linalg.matrix_rank(RANK2_INT)), 0.0)),
    row("evbmf-list", lambda: ops.evbmf(RANK2_INT.tolist()), _rank(2, 0.0)),
    *[row(f"evbmf-scale-{c:g}-float32", lambda c=c: ops.evbmf(_planted(c, np.float32)), _rank(3, 0.01 * c * c))
      for c in (1e-30, 1e-20, 1e18, 1e30)],
    row("evbmf-huge-float64", lambda: ops.evbmf(_planted(1e200)), Err(ValueError, "y")),
    row("evbmf-H-2.5", lambda: ops.evbmf(W, H=2.5), Err(ValueError, "H")),
    row("evbmf-H-0", lambda: ops.evbmf(W, H=0), Err(ValueError, "H")),
    row("evbmf-H-too-big", lambda: ops.evbmf(W, H=7), Err(ValueError, "H")),
    *_dtype_rows("evbmf-y", lambda x: ops.evbmf(x), "y", (3, 4)),
    row("evbmf-nan", lambda: ops.evbmf(_with((4, 6), np.nan)), Err(ValueError, "y")),
    row("evbmf-inf", lambda: ops.evbmf(_with((4, 6), -np.inf)), Err(ValueError, "y")),
    row("evbmf-empty", lambda: ops.evbmf(np.ones((0, 4))), Err(ValueError, "y")),
    row("evbmf-1d", lambda: ops.evbmf(np.ones(5)), Err(ValueError, "y")),
    row("evbmf-sigma2-negative", lambda: ops.evbmf(W, sigma2=-1.0), Err(ValueError, "sigma2")),
    row("evbmf-sigma2-nan", lambda: ops.evbmf(W, sigma2=math.nan), Err(ValueError, "sigma2")),
    row("evbmf-tau_mode", lambda: ops.evbmf(W, tau_mode="rough"), Err(ValueError, "tau_mode")),
    row("evbmf-tau_mode-zero-matrix", lambda: ops.evbmf(np.zeros((3, 4)), tau_mode="rough"),
        Err(ValueError, "tau_mode")),
    row("evbmf-factors-str", lambda: ops.evbmf(W, factors="yes"), Err(TypeError, "factors")),
    row("evbmf_batch-int", lambda: ops.evbmf_batch([RANK2_INT]), Ok(lambda r: _rank(2, 0.0).check(r[0]))),
    row("evbmf_batch-lists", lambda: ops.evbmf_batch([RANK2_INT.tolist(), RANK2_INT.T.tolist()]),
        Ok(lambda r: [_rank(2, 0.0).check(x) for x in r])),
    row("evbmf_batch-stack", lambda: ops.evbmf_batch(np.stack([_planted(1.0), _planted(1e-30)])),
        Ok(lambda r: [_rank(3).check(x) for x in r])),
    row("evbmf_batch-empty", lambda: ops.evbmf_batch([]), equal([])),
    row("evbmf_batch-complex", lambda: ops.evbmf_batch([W, W * 1j]), Err(TypeError, "matrices[1]")),
    row("evbmf_batch-nan", lambda: ops.evbmf_batch([W, _with((6, 8), np.nan)]), Err(ValueError, "matrices[1]")),
    row("evbmf_batch-1d", lambda: ops.evbmf_batch([np.ones(3)]), Err(ValueError, "matrices[0]")),
    row("evbmf_batch-bare-matrix", lambda: ops.evbmf_batch(W), Err(TypeError, "matrices")),
    row("evbmf_batch-dict", lambda: ops.evbmf_batch({"a": W}), Err(TypeError, "matrices")),
    row("evbmf_batch-tau_mode", lambda: ops.evbmf_batch([W], tau_mode="x"), Err(ValueError, "tau_mode")),
    row("evbmf_from_sv-H-2.5", lambda: ops.evbmf_from_singular_values(np.ones(3), 3.0, (3, 5), H=2.5),
        Err(ValueError, "H")),
    row("evbmf_from_sv-shape", lambda: ops.evbmf_from_singular_values(np.ones(3), 3.0, (3,)), Err(ValueError, "shape")),
    row("evbmf_from_sv-shape-float", lambda: ops.evbmf_from_singular_values(np.ones(3), 3.0, (3, 5.5)),
        Err(ValueError, "shape[1]")),
    row("evbmf_from_sv-fro2", lambda: ops.evbmf_from_singular_values(np.ones(3), math.nan, (3, 5)),
        Err(ValueError, "fro2")),
    row("evbmf_from_sv-s-negative", lambda: ops.evbmf_from_singular_values(-np.ones(3), 3.0, (3, 5)),
        Err(ValueError, "s")),
    row("evbmf_from_sv-sigma2", lambda: ops.evbmf_from_singular_values(np.ones(3), 3.0, (3, 5), sigma2=0.0),
        Err(ValueError, "sigma2")),
    row("vbmf-zero", lambda: ops.vbmf(np.zeros((3, 4)), 1.0, 1.0), _rank(0)),
    row("vbmf-sigma2", lambda: ops.vbmf(W, 0.0, 1.0), Err(ValueError, "sigma2")),
    row("vbmf-c-negative", lambda: ops.vbmf(W, 1.0, -1.0), Err(ValueError, "c")),
    row("vbmf-c-str", lambda: ops.vbmf(W, 1.0, "1"), Err(TypeError, "c")),
    row("vbmf-complex", lambda: ops.vbmf(W * 1j, 1.0, 1.0), Err(TypeError, "y")),
    row("tau_lower-hand", lambda: ops.tau_lower(1.0), close(2.5129)),
    row("tau_lower-alpha-zero", lambda: ops.tau_lower(0.0), Err(ValueError, "alpha")),
    row("tau_lower-alpha-big", lambda: ops.tau_lower(1.5), Err(ValueError, "alpha")),
    row("tau_lower-mode", lambda: ops.tau_lower(0.5, "x"), Err(ValueError, "tau_mode")),
    # im2col / conv_output_shape
    row("im2col-int", lambda: ops.im2col(np.arange(4).reshape(1, 1, 2, 2), (1, 1), 1), equal(np.array([[0, 1, 2, 3]]))),
    row("im2col-3d", lambda: ops.im2col(np.ones((2, 3, 4)), (2, 2), 1), Err(ValueError, "x")),
    row("im2col-object", lambda: ops.im2col(np.ones((1, 1, 2, 2)).astype(object), (1, 1), 1), Err(TypeError, "x")),
    row("im2col-no-pixels", lambda: ops.im2col(np.ones((1, 1, 0, 2)), (1, 1), 1), Err(ValueError, "x")),
    row("im2col-kernel-float", lambda: ops.im2col(np.ones((1, 1, 4, 4)), (2.5, 2), 1), Err(ValueError, "kernel[0]")),
    row("im2col-kernel-int", lambda: ops.im2col(np.ones((1, 1, 4, 4)), 3, 1), Err(TypeError, "kernel")),
    row("im2col-kernel-big", lambda: ops.im2col(np.ones((1, 1, 4, 4)), (5, 2), 1), Err(ValueError, "kernel")),
    row("im2col-stride-zero", lambda: ops.im2col(np.ones((1, 1, 4, 4)), (2, 2), 0), Err(ValueError, "stride")),
    row("im2col-stride-float", lambda: ops.im2col(np.ones((1, 1, 4, 4)), (2, 2), 1.5), Err(ValueError, "stride")),
    row("conv_output_shape-hand", lambda: ops.conv_output_shape((5, 5), (3, 3), 2), equal((2, 2))),
    row("conv_output_shape-hw", lambda: ops.conv_output_shape((0, 5), (1, 1), 1), Err(ValueError, "hw[0]")),
    row("conv_output_shape-kernel", lambda: ops.conv_output_shape((5, 5), (6, 1), 1), Err(ValueError, "kernel")),
    row("conv_output_shape-stride", lambda: ops.conv_output_shape((5, 5), (1, 1), 0), Err(ValueError, "stride")),
]

# ---- nnbcd.backend: names, dtypes, asarray and the fused kernels -------------------------------------
NUMPY, NUMBA = get_backend("numpy"), get_backend("numba")


def _kernel_rows(be: Any) -> list:
    n = be.name
    f64 = lambda *s: np.ones(s)  # noqa: E731
    ro = np.ones((2, 3))
    ro.flags.writeable = False
    return [
        # issue 12: p 2×3 with u 4×5 read out of bounds; an int64 u got truncated results
        row(f"{n}-relu_prox_update-shapes",
            lambda: be.relu_prox_update(f64(2, 3), f64(4, 5), f64(4, 5), None, 1.0, 1.0, 1.0),
            Err(ValueError, "p")),
        row(f"{n}-relu_prox_update-v-shape",
            lambda: be.relu_prox_update(f64(4, 5), f64(4, 5), f64(5, 4), None, 1.0, 1.0, 1.0),
            Err(ValueError, "v")),
        row(f"{n}-relu_prox_update-int64", lambda: be.relu_prox_update(
            np.array([[1]]), np.array([[1]]), np.array([[3]]), None, 1.0, 1.0, 4.0), Err(TypeError, "u")),
        row(f"{n}-relu_prox_update-mixed", lambda: be.relu_prox_update(
            np.ones((2, 3), np.float32), f64(2, 3), f64(2, 3), None, 1.0, 1.0, 1.0), Err(TypeError, "p")),
        row(f"{n}-relu_prox_update-bias",
            lambda: be.relu_prox_update(f64(2, 3), f64(2, 3), f64(2, 3), f64(3), 1.0, 1.0, 1.0),
            Err(ValueError, "b")),
        row(f"{n}-relu_prox_update-read-only",
            lambda: be.relu_prox_update(f64(2, 3), ro, f64(2, 3), None, 1.0, 1.0, 1.0),
            Err(ValueError, "u")),
        row(f"{n}-relu_prox_update-1d", lambda: be.relu_prox_update(f64(3), f64(3), f64(3), None, 1.0, 1.0, 1.0),
            Err(ValueError, "u")),
        # P = U^k = a, ρ = α = 1, γ = 2/β: the update is the prox at a (7/3 for v = 3, a = 1, β = 0.5)
        row(f"{n}-relu_prox_update-value", lambda: be.relu_prox_update(
            np.array([[1.0]]), np.array([[1.0]]), np.array([[3.0]]), None, 1.0, 1.0, 4.0), close([[7 / 3]])),
        row(f"{n}-relu_prox_update-strided", lambda: be.relu_prox_update(
            np.ones((2, 6))[:, ::2], np.ones((2, 6))[:, ::2], np.full((2, 6), 3.0)[:, ::2], None, 1.0, 1.0, 4.0),
            close(np.full((2, 3), 7 / 3))),
        row(f"{n}-relu_gap_sq-shapes", lambda: be.relu_gap_sq(f64(2, 3), f64(4, 5)), Err(ValueError, "u")),
        row(f"{n}-lin_gap_sq-bias", lambda: be.lin_gap_sq(f64(2, 3), f64(2, 3), f64(5)), Err(ValueError, "b")),
        row(f"{n}-lin_gap_sq-int", lambda: be.lin_gap_sq(np.ones((2, 3), int), f64(2, 3), None), Err(TypeError, "u")),
        row(f"{n}-add_scaled_relu-shapes", lambda: be.add_scaled_relu(f64(2, 3), f64(3, 2), 1.0), Err(ValueError, "x")),
        row(f"{n}-add_scaled_relu-value",
            lambda: be.add_scaled_relu(f64(2, 2), np.array([[-1.0, 2.0], [0.5, -3.0]]), 2.0),
            close([[1.0, 5.0], [2.0, 1.0]])),
        row(f"{n}-relu-out-shape", lambda: be.relu(f64(2, 3), out=f64(3, 2)), Err(ValueError, "out")),
        row(f"{n}-relu-int", lambda: be.relu(np.array([-1, 2])), Err(TypeError, "x")),
        row(f"{n}-sq_dist-shapes", lambda: be.sq_dist(f64(2, 3), f64(3)), Err(ValueError, "y")),
    ]


BACKEND_ROWS = [
    row("get_backend-unknown", lambda: get_backend("jax"), Err(ValueError, "backend")),
    row("get_backend-int", lambda: get_backend(5), Err(TypeError, "backend")),
    row("get_backend-none", lambda: get_backend(None), Err(TypeError, "backend")),
    row("infer_backend-unknown", lambda: infer_backend(np.ones(2), backend="JAX"), Err(ValueError, "backend")),
    row("infer_backend-default", lambda: infer_backend(np.ones(2), [1.0], None), holds(lambda be: be is NUMPY)),
    row("check_dtype-int32", lambda: check_dtype("int32"), Err(ValueError, "dtype")),
    row("check_dtype-unknown", lambda: check_dtype("floaty"), Err(ValueError, "dtype")),
    row("check_dtype-number", lambda: check_dtype(5), Err(ValueError, "dtype")),
    row("check_dtype-none", lambda: check_dtype(None), Err(ValueError, "dtype")),
    row("check_dtype-float32", lambda: check_dtype(np.float32), equal(np.dtype(np.float32))),
    row("register_backend-name", lambda: register_backend(5, lambda: NUMPY), Err(TypeError, "name")),
    row("register_backend-factory", lambda: register_backend("mine", 5), Err(TypeError, "factory")),
    row("asarray-int", lambda: NUMPY.asarray([2 ** 53 - 1]), equal(np.array([2.0 ** 53 - 1]))),
    row("asarray-ragged", lambda: NUMPY.asarray([[1.0], [1.0, 2.0]], name="X"), Err(TypeError, "X")),
    row("asarray-complex-with-dtype", lambda: NUMPY.asarray(np.ones(2, complex), dtype="float64"), Err(TypeError, "x")),
    row("asarray-dtype-float16", lambda: NUMPY.asarray(np.ones(2), dtype="float16"), Err(ValueError, "dtype")),
    row("as_real_array-ndim", lambda: NUMPY.as_real_array(np.ones(3), "M", ndim=2), Err(ValueError, "M")),
    row("as_real_array-empty", lambda: NUMPY.as_real_array(np.ones((0, 2)), "M", allow_empty=False),
        Err(ValueError, "M")),
    row("as_real_array-inf", lambda: NUMPY.as_real_array(np.array([np.inf]), "M", finite=True), Err(ValueError, "M")),
    *_kernel_rows(NUMPY),
    *_kernel_rows(NUMBA),
]

# ---- nnbcd.convergence ---------------------------------------------------------------------------------
HIST = {"objective": np.array([3.0, 2.0, 1.0]), "prox_step_sq": np.array([np.nan, 1.0, 1.0]),
        "step_sq": np.array([4.0, 2.0, 1.0, 0.5, 0.25])[:3]}


def _decrease_hand(res: Any) -> None:
    # Φ^k − Φ^{k+1} − α/2 ‖Δ‖² + rtol |Φ^{k+1}| with α = 1, rtol = 0: 3 − 2 − 0.5 and 2 − 1 − 0.5
    assert res.ok and res.n_checked == 2
    np.testing.assert_allclose(res.margins, [0.5, 0.5])


def _history_of_failed_run() -> Any:
    """A run that becomes non-finite in its first sweep (status 2): its history has no objective."""
    X, y = load_digits(return_X_y=True)
    with np.errstate(all="ignore"):
        return NNBCD((8,), max_iter=2, init_scale=1e200, random_state=0).fit(X[:60] / 16, y[:60]).result_


def _clear_answer_for_failed_run() -> Ok:
    """Issue 12: ``sufficient_decrease`` of a run that stopped at iteration 1 answers clearly (a check with
    nothing checked, or an error naming the missing ``objective``), never a KeyError."""
    def check(call_result: Any) -> None:
        kind, value = call_result
        if kind == "error":
            assert isinstance(value, ValueError) and _names(str(value), "objective"), repr(value)
        else:
            assert value.n_checked == 0
    return Ok(check)


def _catching(call: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        try:
            return "value", call()
        except Exception as exc:  # the check decides whether this error is a clear answer
            return "error", exc
    return run


CONVERGENCE_ROWS = [
    row("sufficient_decrease-hand", lambda: convergence.sufficient_decrease(HIST, 1.0, rtol=0.0), Ok(_decrease_hand)),
    row("sufficient_decrease-history-obj", lambda: convergence.sufficient_decrease(History(), 1.0),
        Err(ValueError, "objective")),
    row("sufficient_decrease-failed-run",
        _catching(lambda: convergence.sufficient_decrease(_history_of_failed_run(), 1.0)),
        _clear_answer_for_failed_run()),
    row("sufficient_decrease-alpha-negative", lambda: convergence.sufficient_decrease(HIST, -1.0),
        Err(ValueError, "alpha")),
    row("sufficient_decrease-alpha-nan", lambda: convergence.sufficient_decrease(HIST, math.nan),
        Err(ValueError, "alpha")),
    row("sufficient_decrease-alpha-str", lambda: convergence.sufficient_decrease(HIST, "1"), Err(TypeError, "alpha")),
    row("sufficient_decrease-rtol", lambda: convergence.sufficient_decrease(HIST, 1.0, rtol=-1.0),
        Err(ValueError, "rtol")),
    row("sufficient_decrease-history-int", lambda: convergence.sufficient_decrease(5, 1.0), Err(TypeError, "history")),
    row("sufficient_decrease-missing", lambda: convergence.sufficient_decrease({"prox_step_sq": [1.0]}, 1.0),
        Err(ValueError, "objective")),
    row("sufficient_decrease-lengths", lambda: convergence.sufficient_decrease(
        {"objective": [1.0, 2.0], "prox_step_sq": [1.0]}, 1.0), Err(ValueError, "history")),
    row("sufficient_decrease-start-zero", lambda: convergence.sufficient_decrease(HIST, 1.0, start=0),
        Err(ValueError, "start")),
    row("sufficient_decrease-start-float", lambda: convergence.sufficient_decrease(HIST, 1.0, start=1.5),
        Err(ValueError, "start")),
    row("rate-growth", lambda: convergence.rate({"step_sq": np.ones(8)}, growth=0.0), Err(ValueError, "growth")),
    row("rate-missing", lambda: convergence.rate({"objective": np.ones(8)}), Err(ValueError, "step_sq")),
    row("rate-too-short", lambda: convergence.rate(HIST), Err(ValueError, "step_sq")),
    row("rate-hand", lambda: convergence.rate({"step_sq": 1.0 / np.arange(1.0, 17.0)}),
        Ok(lambda r: (np.testing.assert_allclose(r.c_k, 1.0), np.testing.assert_allclose(r.slope, -1.0)))),
    row("plot_history-keys", lambda: convergence.plot_history(HIST, keys=["nope"]), Err(ValueError, "keys")),
]

# ---- compression specs ---------------------------------------------------------------------------------
COMPRESS_ROWS = [
    row("TT-rank-2.5", lambda: TT(rank=2.5), Err((TypeError, ValueError), "rank")),
    row("TT-rank-nan", lambda: TT(rank=math.nan), Err((TypeError, ValueError), "rank")),
    row("TT-rank-list-float", lambda: TT(rank=[1, 2.5, 1]), Err(ValueError, "rank[1]")),
    row("TT-rank-zero", lambda: TT(rank=0), Err(ValueError, "rank")),
    row("TT-shape-negative", lambda: TT(shape=(-16, -64)), Err(ValueError, "shape[0]")),
    row("TT-shape-negative-validate", lambda: TT(shape=(-16, -64)).validate((16, 64), "compress[0]"),
        Err(ValueError, "shape[0]")),
    row("TT-layout", lambda: TT(layout="tucker"), Err(ValueError, "layout")),
    row("TT-svd", lambda: TT(svd="lanczos"), Err(ValueError, "svd")),
    row("TT-rank_initial", lambda: TT(rank_initial=2.5), Err(ValueError, "rank_initial")),
    row("TT-project-complex", lambda: TT(rank=2).project(W * 1j), Err(TypeError, "W")),
    row("TT-project-hand", lambda: TT(rank=100, shape=(6, 8)).project(W),
        Ok(lambda c: np.testing.assert_allclose(c.dense, W, atol=1e-12))),
    row("Prune-sparsity-float32", lambda: Prune(np.float32(0.5)), holds(lambda p: p.sparsity == 0.5)),
    row("Prune-sparsity-one", lambda: Prune(1.0), Err(ValueError, "sparsity")),
    row("Prune-sparsity-nan", lambda: Prune(math.nan), Err(ValueError, "sparsity")),
    row("Prune-sparsity-str", lambda: Prune("0.5"), Err((TypeError, ValueError), "sparsity")),
    row("Prune-scope", lambda: Prune(0.5, scope="net"), Err(ValueError, "scope")),
    row("Prune-mode", lambda: Prune(0.5, mode="soft"), Err(ValueError, "mode")),
    row("Prune-project-nan", lambda: Prune(0.5).project(_with((3, 3), np.nan)), Err(ValueError, "weights[0]")),
    row("compression_ratios-hand", lambda: compression_ratios([(4, 4), (2, 4)], {0: 8}),
        Ok(lambda r: (np.testing.assert_allclose(r["cr_1"], 16 / 24), np.testing.assert_allclose(r["cr_2"], 0.5)))),
    row("compression_ratios-empty", lambda: compression_ratios([], {}), Err(ValueError, "shapes")),
    row("compression_ratios-layer", lambda: compression_ratios([(4, 4)], {3: 8}), Err(ValueError, "params")),
]

# ---- the estimator ------------------------------------------------------------------------------------
_X, _Y = load_digits(return_X_y=True)
X, Y = _X[:60] / 16.0, _Y[:60]


def _fit(**params: Any) -> Any:
    hidden = params.pop("hidden_layer_sizes", (8,))
    return NNBCD(hidden, **{"max_iter": 1, **params}).fit(X, Y)


def _is_lstsq_on_inputs(model: Any) -> None:
    """A one-layer network's refit output layer is numpy's lstsq of the one-hot targets on [X; 1]."""
    onehot = (Y[:, None] == model.classes_[None, :]).astype(float)
    coef = np.linalg.lstsq(np.hstack([X, np.ones((len(X), 1))]), onehot, rcond=None)[0].T
    scale = np.abs(coef).max()
    np.testing.assert_allclose(model.coefs_[0], coef[:, :-1], rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(model.intercepts_[0], coef[:, -1], rtol=0, atol=1e-8 * scale)


def _fit_data(x: Any, y: Any, **kw: Any) -> Any:
    return NNBCD((8,), max_iter=1, random_state=0).fit(x, y, **kw)


def _predicts_training_labels(model: Any) -> None:
    assert set(model.predict(X)) <= set(model.classes_)


FITTED = NNBCD((8,), max_iter=1, random_state=0).fit(X, Y)

_PARAM_CASES = [
    # (parameter, bad values as (id, value, exception))
    ("hidden_layer_sizes", [("zero", 0, ValueError), ("negative", (8, -1), ValueError), ("float", (8.5,), ValueError),
                            ("str", "10", ValueError)]),
    ("gamma", [(k, v, ValueError) for k, v in BAD_POSITIVE.items()]
     + [("str", "1", TypeError), ("bool", True, TypeError)]),
    ("rho", [("zero", 0.0, ValueError), ("none", None, TypeError)]),
    ("alpha", [("negative", -1.0, ValueError), ("inf", math.inf, ValueError), ("str", "1", TypeError),
               ("bool", True, TypeError),
               # a schedule (issue 11): a non-positive or non-finite value, an unknown type
               ("schedule-negative", {"type": "piecewise", "pieces": [[1, 1.0], [21, -0.1]]}, ValueError),
               ("schedule-nan", {"type": "geometric", "start": 1.0, "factor": math.nan}, ValueError),
               ("schedule-unknown", {"type": "cosine", "start": 1.0}, ValueError)]),
    ("alpha_w", [("negative", -1.0, ValueError),
                 ("schedule-inf", {"type": "geometric", "start": 1.0, "factor": 2.0, "ceiling": math.inf}, ValueError)]),
    ("alpha_b", [("zero", 0.0, ValueError), ("list", [1.0, 0.1], TypeError)]),
    # over-relaxation: ω in [1, 2) (Φ decreases for ω < 2; below 1 only slows the sweeps), a number
    ("relaxation", [("zero", 0.0, ValueError), ("below-one", 0.5, ValueError), ("two", 2.0, ValueError),
                    ("nan", math.nan, ValueError), ("str", "1.5", TypeError), ("bool", True, TypeError),
                    ("schedule", {"type": "constant", "value": 1.5}, TypeError)]),
    ("tau", [("negative", -1.0, ValueError), ("str", "x", TypeError)]),
    ("loss_scale", [("unknown", "avg", ValueError)]),
    ("init", [("unknown", "he", ValueError)]),
    ("init_scale", [("zero", 0.0, ValueError), ("nan", math.nan, ValueError)]),
    ("max_iter", [("negative", -1, ValueError), ("float", 2.5, ValueError), ("str", "3", ValueError)]),
    ("tol", [("negative", -1.0, ValueError), ("nan", math.nan, ValueError)]),
    ("monitor_every", [("zero", 0, ValueError)]),
    ("backend", [("unknown", "jax", ValueError), ("int", 5, TypeError)]),
    ("dtype", [("int32", "int32", ValueError), ("float16", "float16", ValueError),
               ("complex", "complex64", ValueError)]),
    ("v_solve", [("unknown", "lu", ValueError)]),
    ("w_solve", [("unknown", "qr", ValueError)]),
    ("conv", [("int", 5, TypeError)]),
]
_PARAM_CASES += [("bias", [("str", "yes", TypeError)]), ("verbose", [("str", "yes", TypeError)]),
                 ("random_state", [("str", "x", (TypeError, ValueError))]),
                 ("warm_start", [("str", "yes", TypeError), ("int", 1, TypeError)]),
                 ("n_jobs", [("zero", 0, ValueError), ("minus-two", -2, ValueError), ("float", 2.5, ValueError),
                             ("str", "all", ValueError), ("bool", True, ValueError)]),
                 # alone (without checkpoint_dir) or with a bad value
                 ("checkpoint_every", [("alone", 5, ValueError), ("zero", 0, ValueError), ("float", 2.5, ValueError)]),
                 ("checkpoint_dir", [("int", 5, TypeError), ("alone", "/tmp", ValueError)]),
                 # a truthy non-bool ("yes", 1) is refused, not taken for True
                 ("refit_output", [("str", "yes", TypeError), ("int", 1, TypeError), ("none", None, TypeError),
                                   ("str-false", "false", TypeError), ("float", 1.0, TypeError)])]


def _param_rows() -> list:
    out = []
    for name, cases in _PARAM_CASES:
        for id_, value, exc in cases:
            out.append(row(f"NNBCD-{name}-{id_}", lambda n=name, v=value: _fit(**{n: v}), Err(exc, name)))
    return out


ESTIMATOR_ROWS = [
    *_param_rows(),
    # compress / tau as containers, issue 12's compress=[TT(4)]
    row("NNBCD-compress-list", lambda: _fit(compress=[TT(4)]), Err((TypeError, ValueError), "compress")),
    row("NNBCD-compress-layer", lambda: _fit(compress={5: TT(4)}), Err(ValueError, "compress")),
    row("NNBCD-compress-str", lambda: _fit(compress={0: "tt"}), Err(TypeError, "compress[0]")),
    row("NNBCD-compress-rank-2.5", lambda: _fit(compress={0: TT(rank=2.5)}), Err(TypeError, "rank")),
    row("NNBCD-compress-shape", lambda: _fit(compress={0: TT(shape=(4, 4))}), Err(ValueError, "compress[0]")),
    row("NNBCD-tau-keys", lambda: _fit(compress={0: TT(4)}, tau={7: 1.0}), Err(ValueError, "tau")),
    row("NNBCD-callback-int", lambda: NNBCD((8,), max_iter=2).fit(X, Y, callback=5), Err(TypeError, "callback")),
    row("fit-resume-int", lambda: _fit_data(X, Y, resume=5), Err(TypeError, "resume")),
    row("fit-resume-missing", lambda: _fit_data(X, Y, resume="/nonexistent/run"), Err(FileNotFoundError, "resume")),
    row("fit-resume-not-a-checkpoint", lambda: _fit_data(X, Y, resume=__file__), Err(ValueError, "resume")),
    row("NNBCD-checkpoint_dir-empty", lambda: _fit(checkpoint_every=1, checkpoint_dir=""),
        Err(ValueError, "checkpoint_dir")),
    row("NNBCD-checkpoint_dir-unwritable", lambda: _fit(checkpoint_every=1, checkpoint_dir=__file__),
        Err(OSError, "checkpoint_dir")),
    row("NNBCD-init_scale-overflows-float32", lambda: _fit(init_scale=1e40, dtype="float32"),
        Err(ValueError, "init_scale")),
    # a run whose weights overflow inside a compression block ends with status 2 and finite weights
    *[row(f"NNBCD-diverges-{kind}", lambda c=spec: _fit(max_iter=3, init_scale=1e200, compress={1: c}, tau=1.0,
                                                         hidden_layer_sizes=(8, 8), random_state=0),
          holds(lambda m: m.result_.status == 2 and all(np.isfinite(w).all() for w in m.coefs_)))
      for kind, spec in (("TT", TT(4)), ("Prune", Prune(0.5)))],
    row("solve-unknown-param", lambda: nnbcd.solve(X, Y, gama=1.0), Err(TypeError, "gama")),
    # the output layer refit replaces layer L-1 by a dense least-squares fit: it cannot be compressed too
    *[row(f"NNBCD-refit_output-compressed-output-{kind}", lambda c=spec, h=hidden: _fit(
        refit_output=True, compress={len(h): c()}, hidden_layer_sizes=h), Err(ValueError, "refit_output"))
      for kind, spec, hidden in (("TT", lambda: TT(4), (8,)), ("Prune", lambda: Prune(0.5), (8,)),
                                 ("TT-cores", lambda: TT(4, block="cores"), (8, 8)),
                                 ("Prune-one-layer", lambda: Prune(0.5, block="masked"), ()))],
    row("NNBCD-refit_output-shared-spec-on-output", lambda: _fit(refit_output=True, compress=dict.fromkeys(
        (0, 1), Prune(0.5, scope="global"))), Err(ValueError, "refit_output")),
    row("solve-refit_output-str", lambda: nnbcd.solve(X, Y, refit_output="yes", max_iter=1),
        Err(TypeError, "refit_output")),
    # a numpy bool is a bool; a one-layer network refits on the inputs themselves (oracle: lstsq on [X; 1])
    row("NNBCD-refit_output-numpy-bool", lambda: _fit(refit_output=np.bool_(True), bias=True),
        holds(lambda m: m.result_.output_refit["refit"] is True)),
    row("NNBCD-refit_output-one-layer", lambda: _fit(refit_output=True, hidden_layer_sizes=(), bias=True),
        Ok(lambda m: _is_lstsq_on_inputs(m))),
    # data
    row("fit-X-int", lambda: _fit_data((X * 16).astype(int), Y), Ok(_predicts_training_labels)),
    row("fit-X-list", lambda: _fit_data(X.tolist(), Y.tolist()), Ok(_predicts_training_labels)),
    row("fit-y-str", lambda: _fit_data(X, np.where(Y > 4, "big", "small")),
        Ok(lambda m: np.testing.assert_array_equal(m.classes_, ["big", "small"]))),
    row("fit-X-nan", lambda: _fit_data(np.where(X > 0.5, np.nan, X), Y), Err(ValueError, "X")),
    row("fit-X-inf", lambda: _fit_data(np.where(X > 0.5, np.inf, X), Y), Err(ValueError, "X")),
    row("fit-X-complex", lambda: _fit_data(X.astype(complex), Y), Err(ValueError, "X")),
    row("fit-X-1d", lambda: _fit_data(X[:, 0], Y), Err(ValueError, "X")),
    row("fit-X-empty", lambda: _fit_data(X[:0], Y[:0]), Err(ValueError, "X")),
    row("fit-X-words", lambda: _fit_data(np.full(X.shape, "a"), Y), Err(ValueError, "X")),
    row("fit-y-none", lambda: _fit_data(X, None), Err(ValueError, "y")),
    row("fit-y-scalar", lambda: _fit_data(X, 3), Err(ValueError, "y")),
    row("fit-y-nan", lambda: _fit_data(X, np.where(Y > 5, np.nan, Y)), Err(ValueError, "y")),
    row("fit-y-short", lambda: _fit_data(X, Y[:10]), Err(ValueError, "y")),
    row("fit-y-continuous", lambda: _fit_data(X, Y + 0.5), Err(ValueError, "y")),
    row("fit-X_val-alone", lambda: _fit_data(X, Y, X_val=X), Err(ValueError, "y_val")),
    row("fit-X_val-features", lambda: _fit_data(X, Y, X_val=X[:, :3], y_val=Y), Err(ValueError, "X_val")),
    row("fit-X_val-nan", lambda: _fit_data(X, Y, X_val=X * np.nan, y_val=Y), Err(ValueError, "X_val")),
    row("fit-y_val-unknown", lambda: _fit_data(X, Y, X_val=X, y_val=Y + 100), Err(ValueError, "y_val")),
    row("predict-features", lambda: FITTED.predict(X[:, :3]), Err(ValueError, "X")),
    row("predict-nan", lambda: FITTED.predict(X * np.nan), Err(ValueError, "X")),
    row("predict-1d", lambda: FITTED.predict(X[0]), Err(ValueError, "X")),
    row("predict-complex", lambda: FITTED.predict(X.astype(complex)), Err(ValueError, "X")),
    row("predict-unfitted", lambda: NNBCD().predict(X), Err(NotFittedError, "NNBCD")),
    row("score-short-y", lambda: FITTED.score(X, Y[:5]), Err(ValueError, "y")),
    row("decision_function-shape", lambda: FITTED.decision_function(X), holds(lambda d: d.shape == (60, 10))),
    row("InputConv2d-filters", lambda: InputConv2d((1, 8, 8), 0), Err(ValueError, "filters")),
    row("InputConv2d-kernel", lambda: InputConv2d((1, 8, 8), 4, kernel=9), Err(ValueError, "kernel")),
]

# ---- data loaders --------------------------------------------------------------------------------------
from nnbcd import data as nd  # noqa: E402

DATA_ROWS = [
    *[row(f"load_digits-test_size-{v}", lambda v=v: nd.load_digits(test_size=v), Err(ValueError, "test_size"))
      for v in (0.0, 1.0, 1.5, math.nan)],
    row("load_digits-test_size-str", lambda: nd.load_digits(test_size="0.2"), Err(TypeError, "test_size")),
    row("load_digits-seed-negative", lambda: nd.load_digits(seed=-1), Err(ValueError, "seed")),
    row("load_digits-seed-float", lambda: nd.load_digits(seed=2.5), Err(ValueError, "seed")),
    row("load_digits-dtype-int32", lambda: nd.load_digits(dtype="int32"), Err(TypeError, "dtype")),
    row("load_digits-dtype-complex", lambda: nd.load_digits(dtype="complex64"), Err(TypeError, "dtype")),
    row("load_digits-dtype-unknown", lambda: nd.load_digits(dtype="floaty"), Err(TypeError, "dtype")),
    row("load_mnist5k-labels", lambda: nd.load_mnist5k(), Ok(lambda s: np.testing.assert_array_equal(
        np.bincount(np.concatenate([s[1], s[3]]).astype(int)), [500] * 10))),
    row("load_mnist5k-dtype", lambda: nd.load_mnist5k(dtype="int32"), Err(TypeError, "dtype")),
    row("load_dataset-unknown", lambda: nd.load_dataset("cifar"), Err(ValueError, "dataset")),
    row("load_dataset-int", lambda: nd.load_dataset(5), Err((TypeError, ValueError), "dataset")),
    row("load_har-missing", lambda: nd.load_har(path="/nonexistent/har"), Err(OSError, "/nonexistent/har")),
    row("load_mnist-fraction", lambda: nd.load_mnist(path="/nonexistent", fraction=1.5), Err(ValueError, "fraction")),
    row("load_flare-seed", lambda: nd.load_flare(path="/nonexistent", seed=-1), Err(ValueError, "seed")),
]

ROWS = OPS_ROWS + BACKEND_ROWS + CONVERGENCE_ROWS + COMPRESS_ROWS + ESTIMATOR_ROWS + DATA_ROWS


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::sklearn.exceptions.DataConversionWarning")
@pytest.mark.parametrize("call,expect", ROWS)
def test_bad_input(call: Callable[[], Any], expect: Union[Err, Ok]) -> None:
    _run(call, expect)


# ---- the CLI ---------------------------------------------------------------------------------------------
def _preset(tmp_path: Any, text: str) -> str:
    path = tmp_path / "preset.toml"
    path.write_text(text)
    return str(path)


DIGITS = "solvers/digits.toml"
#: (id, argv builder(tmp_path), name the error must mention); every row must exit with status 2 and one
#: "nnbcd: error:" line naming it, without a traceback
CLI_ROWS = [
    *[pytest.param(lambda tmp, s=s: ["solve", DIGITS, "--set", s, "--set", "fit.max_iter=1"], name, id=f"set-{s}")
      for s, name in [("fit=3", "fit"), ("compress=5", "compress"), ('data="digits"', "data"),
                      ("model.gamma=-1", "gamma"), ("model.gamma='x'", "gamma"),
                      ("model.alpha={type='piecewise', pieces=[[1, 1.0], [3, 0.0]]}", "alpha"),
                      ("model.hidden_layer_sizes=[0]", "hidden_layer_sizes"), ("model.dtype='int32'", "dtype"),
                      ("data.dtype='int32'", "dtype"), ("data.test_size=1.5", "test_size"), ("data.seed=-1", "seed"),
                      ("model.backend='jax'", "backend"), ("model.init_scale=nan", "init_scale"),
                      ("fit.tol=-1", "tol"), ("fit.monitor_every=0", "monitor_every"), ("model.gama=1", "gama"),
                      ("fit.checkpoint_every=0", "checkpoint_every"), ("fit.checkpoint_every=1.5", "checkpoint_every"),
                      ("fit.n_jobs=0", "n_jobs"), ("model.warm_start=true", "warm_start"),
                      ("model.refit_output='yes'", "refit_output"), ("model.refit_output=1", "refit_output"),
                      ("fit.max_iter", "fit.max_iter"),
                      # a value that starts as TOML (an array) but does not parse: refused by --set itself
                      ("fit.max_iter=[", "fit.max_iter")]],
    *[pytest.param(lambda tmp, s=s: ["solve", DIGITS, "--set", s], "max_iter", id=f"set-{s}")
      for s in ("fit.max_iter=-1", "fit.max_iter=2.5", "fit.max_iter=1e400")],
    pytest.param(lambda tmp: ["solve", DIGITS, "--set", "model.bias='yes'", "--set", "fit.max_iter=1"], "bias",
                 id="set-model.bias='yes'"),
    pytest.param(lambda tmp: ["solve", DIGITS, "--set", "model.random_state='x'", "--set", "fit.max_iter=1"],
                 "random_state", id="set-model.random_state='x'"),
    # the preset's output layer (64-256-256-10: layer 2) both compressed and refit
    pytest.param(lambda tmp: ["solve", DIGITS, "--set", "model.refit_output=true", "--set",
                              "compress=[{type='prune', layers=[2], sparsity=0.5}]", "--set", "fit.max_iter=1"],
                 "refit_output", id="set-refit_output-compressed-output"),
    pytest.param(lambda tmp: ["solve", "/nonexistent/preset.toml"], "/nonexistent/preset.toml", id="preset-missing"),
    pytest.param(lambda tmp: ["solve", _preset(tmp, "method = \n")], "preset.toml", id="preset-invalid-toml"),
    pytest.param(lambda tmp: ["solve", _preset(tmp, "method = 'sgd'\n")], "method", id="preset-unknown-method"),
    pytest.param(lambda tmp: ["solve", _preset(tmp, "method = 5\n")], "method", id="preset-method-int"),
    pytest.param(lambda tmp: ["solve", _preset(tmp, "[data]\nname = 'digits'\n[model]\nhidden_layer_sizes = 'wide'\n")],
                 "hidden_layer_sizes", id="preset-hidden-str"),
    pytest.param(lambda tmp: ["solve", _preset(tmp, "[data]\nname = 'digits'\n[fit]\nmax_iter = true\n")], "max_iter",
                 id="preset-max_iter-bool"),
    pytest.param(lambda tmp: ["solve", DIGITS, "--out", str(tmp / "file"), "--set", "fit.max_iter=1"], "file",
                 id="out-is-a-file"),
    pytest.param(lambda tmp: ["solve", "--resume", str(tmp / "none")], "--resume", id="resume-missing-dir"),
    pytest.param(lambda tmp: ["solve", "--resume", str(tmp / "file")], "--resume", id="resume-a-file"),
    pytest.param(lambda tmp: ["solve", "solvers/digits_mcnc.toml", "--set", "fit.seeds=[]"], "seeds",
                 id="mcnc-seeds-empty"),
    pytest.param(lambda tmp: ["solve", "solvers/digits_mcnc.toml", "--set", "fit.epochs=0"], "epochs",
                 id="mcnc-epochs-zero"),
    pytest.param(lambda tmp: ["solve", "solvers/digits_lowrank.toml", "--set", "fit.lam=-1"], "lam",
                 id="lowrank-lam-negative"),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("argv,name", CLI_ROWS)
def test_cli_bad_input(argv: Callable[[Any], list], name: str, tmp_path: Any, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parents[1])
    (tmp_path / "file").write_text("not a directory")
    args = argv(tmp_path)
    if "--out" not in args and "--resume" not in args:  # --resume DIR writes into DIR
        args += ["--out", str(tmp_path / "out")]
    assert main(args + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnbcd: error:") and "Traceback" not in err, err
    assert _names(err, name), f"stderr does not name {name!r}: {err}"


def test_row_counts() -> None:
    """The table's size, for the report (issue 12 asks for the count in the docs)."""
    rows = ROWS + CLI_ROWS
    xfail = sum(any(m.name == "xfail" for m in p.marks) for p in rows)
    assert xfail == 0  # docs/nnbcd.md: 0 deep crashes, 0 silent wrong results
    docs = (Path(__file__).resolve().parents[1] / "docs" / "nnbcd.md").read_text()
    counts = re.search(r"table of (\d+) bad or unusual calls \((\d+) to the Python API,\s+(\d+) `nnbcd solve`", docs)
    assert counts and tuple(map(int, counts.groups())) == (len(rows), len(ROWS), len(CLI_ROWS)), \
        "update the bad-input count in docs/nnbcd.md"
