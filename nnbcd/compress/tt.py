r"""Tensor-train compression of a weight matrix: :math:`\tilde W = \mathrm{mat}(\mathrm{TT\text{-}SVD}_r(W))`."""
from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Optional, Sequence

from .._validation import check_int_sequence
from ..backend import Backend, infer_backend
from ..ops import tt as ops
from ..ops.vbmf import evbmf_batch
from ..schedules import Schedule, as_schedule
from .base import Compressed, Compression, ExactStep, check_reselection
from .masked import BiasTerm
from .tt_cores import tt_core_sweep

LAYOUTS = ("reshape", "matrix")
TT_BLOCKS = ("projection", "cores")

#: ``TT(rank=EVBMF)``: each unfolding's rank chosen by empirical VBMF
EVBMF = "evbmf"


class TT(Compression):
    r"""TT compression of a weight at a rank cap: the TT-SVD projection, or TT cores trained exactly.

    Parameters
    ----------
    rank : int, list, "evbmf" or Schedule
        Rank cap r (ranks (1, r, ..., r, 1), capped by the unfolding sizes), a full rank list, an integer
        :class:`~nnbcd.schedules.Schedule` of caps (or its TOML table; e.g. a cap lowered from full to the
        target), or ``"evbmf"``: each unfolding :math:`T_{\langle t\rangle}` (the tensor reshaped to
        :math:`n_1\cdots n_t \times n_{t+1}\cdots n_m`) gets the rank that empirical VBMF
        (:func:`nnbcd.ops.evbmf`; Nakajima et al., JMLR 2013) estimates for it, so no cap is given; the
        ranks are re-estimated on the sweeps of ``reselect_every`` (default every sweep) until
        ``freeze_after``.
    shape : tuple, optional
        ``layout="reshape"``: the modes :math:`(n_1..n_m)` of the row-major reshape of W, with
        :math:`\prod n = d_{out} d_{in}` (they may straddle the row/column boundary, as the reference's
        (6,22,34,2,...,2) for 1024×561). Default: the factors (≤ 4) of d_out, then those of d_in (largest
        first for ``block="cores"``, which keeps its later column cores small).
    layout : {"reshape", "matrix"}
        ``"matrix"``: TT-matrix layout with interleaved row/column modes.
    row_shape, col_shape : tuple, optional
        ``layout="matrix"``: the row modes (∏ = d_out) and column modes (∏ = d_in), of equal length
        (modes of 1 allowed). Default: factors of d_out and d_in padded with ones.
    rank_initial : int, optional
        ``block="projection"``: rank cap of the initial copy :math:`\tilde W^0` (the reference uses 400
        for its MLPs).
    svd : {"gram", "full"}
        How each unfolding is truncated, as :func:`nnbcd.ops.tt_svd`'s ``svd`` (the same default and
        the same subspaces).
    block : {"projection", "cores"}
        The layer's W-block. ``"projection"``: the paper's W-block, τ coupling and TT-SVD projection.
        ``"cores"`` (beyond the paper): W is kept as TT cores (initially TT-SVD of :math:`W^0`) and each
        W-block is one sweep of exact prox least-squares core updates
        (:func:`nnbcd.compress.tt_cores.tt_core_sweep`); no τ term, the deployed network is the trained
        one. When a scheduled cap changes, on the sweeps of ``reselect_every`` and for ``"evbmf"``, the
        cores are first re-chosen by TT-SVD of the dense W-block's step.
    reselect_every : int, optional
        Re-choose the structure (cores / EVBMF ranks) on sweeps ``e, 2e, ...``; for ``block="cores"``
        or ``rank="evbmf"`` only.
    freeze_after : int, optional
        The last sweep on which ``reselect_every`` re-chooses it (default: never frozen).
    exact_from : int
        With an exact ``block``: the sweep from which it replaces the projection block; before it the
        layer is trained by the paper's projection + τ coupling (a warm-up, e.g. with τ or the
        rank cap on a schedule), and at that sweep the structure is chosen from the dense W-block's step.

    Raises
    ------
    TypeError
        For a ``rank`` that is neither an int, a rank list, a Schedule nor ``"evbmf"`` (2.5, NaN, None).
    ValueError
        For an unknown ``layout``, ``svd`` or ``block`` (``block="masked"`` is Prune's), a bad ``rank``
        (non-positive, a list entry that is not a positive int, a schedule with non-positive or
        non-finite values, an unknown string), a ``shape`` / ``row_shape`` / ``col_shape`` entry that is
        not a positive int,
        ``rank_initial`` with ``block="cores"``, shape arguments of the other layout, or reselection
        arguments where nothing is re-chosen; the message names the argument.
    """

    def __init__(self, rank: Any = 80, shape: Optional[Sequence[int]] = None, layout: str = "reshape",
                 row_shape: Optional[Sequence[int]] = None, col_shape: Optional[Sequence[int]] = None,
                 rank_initial: Optional[int] = None, svd: str = "gram", block: str = "projection",
                 reselect_every: Optional[int] = None, freeze_after: Optional[int] = None,
                 exact_from: int = 1) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout={layout!r} is not one of {LAYOUTS}")
        ops.check_svd(svd)
        if block not in TT_BLOCKS:
            raise ValueError(f"block={block!r} is not one of {TT_BLOCKS} (block='masked' is Prune's)")
        if layout == "reshape" and (row_shape is not None or col_shape is not None):
            raise ValueError("row_shape/col_shape belong to layout='matrix'; use shape= for 'reshape'")
        if layout == "matrix" and shape is not None:
            raise ValueError("shape= belongs to layout='reshape'; use row_shape/col_shape for 'matrix'")
        if isinstance(rank, (Schedule, dict)):
            rank = as_schedule(rank, "rank", integer=True)
        elif isinstance(rank, str):
            if rank != EVBMF:
                raise ValueError(f"rank must be a positive int, a rank list, a Schedule or {EVBMF!r}, got {rank!r}")
        else:  # checked here, not at the first sweep: 2.5, NaN or [1, 2.5, 1] would fail deep in tt_ranks
            rank = ops.check_rank(rank)
        if rank_initial is not None and (isinstance(rank_initial, bool) or not isinstance(rank_initial, int)
                                         or rank_initial < 1):
            raise ValueError(f"rank_initial must be a positive int, got {rank_initial!r}")
        if rank_initial is not None and block == "cores" and exact_from == 1:
            raise ValueError("rank_initial belongs to the projection block; block='cores' from sweep 1 starts "
                             "from TT-SVD(W^0) at rank (lower a rank schedule, or warm up with exact_from)")
        check_reselection(reselect_every, freeze_after, exact_from, block)
        if reselect_every is not None and block == "projection" and rank != EVBMF:
            raise ValueError("reselect_every belongs to block='cores' or rank='evbmf' (the projection "
                             "re-chooses the TT every sweep)")
        self.rank = rank
        # int() would truncate 2.5 and keep -16 (whose product may still match the weight's size)
        self.shape = None if shape is None else check_int_sequence(shape, "shape")
        self.layout = layout
        self.row_shape = None if row_shape is None else check_int_sequence(row_shape, "row_shape")
        self.col_shape = None if col_shape is None else check_int_sequence(col_shape, "col_shape")
        self.rank_initial = rank_initial
        self.svd = svd
        self.block = block
        # EVBMF ranks follow W: re-estimated every sweep unless a period is given
        self.reselect_every = 1 if (rank == EVBMF and reselect_every is None) else reselect_every
        self.freeze_after = freeze_after
        self.exact_from = exact_from

    def __repr__(self) -> str:
        extra = "" if self.block == "projection" and self.reselect_every is None else (
            f", block={self.block!r}, reselect_every={self.reselect_every}, freeze_after={self.freeze_after}, "
            f"exact_from={self.exact_from}")
        return (f"TT(rank={self.rank!r}, layout={self.layout!r}, shape={self.shape}, "
                f"row_shape={self.row_shape}, col_shape={self.col_shape}, svd={self.svd!r}{extra})")

    # ---- schedules and structure ----------------------------------------------------------------------
    def scheduled(self) -> Dict[str, Schedule]:
        return {"rank": self.rank} if isinstance(self.rank, Schedule) else {}

    def at(self, sweep: int, previous: Optional[Compressed] = None) -> "TT":
        """As :meth:`Compression.at`; with ``rank="evbmf"`` the ranks of ``previous`` are kept on the
        sweeps that do not re-estimate them."""
        spec = super().at(sweep, previous)
        if self.rank == EVBMF and previous is not None and not self.reselects(sweep):
            spec = copy.copy(spec)
            spec.rank = list(previous.info["ranks"])
        return spec  # type: ignore[return-value]

    def record(self, compressed: Compressed) -> Dict[str, float]:
        """``{"rank": r}``: the cap of the sweep, or the largest realised rank for a rank list / EVBMF."""
        if isinstance(self.rank, int):
            return {"rank": self.rank}
        return {"rank": max(compressed.info["ranks"])}

    # ---- layout ------------------------------------------------------------------------------------
    def modes(self, shape: tuple) -> tuple:
        """The TT modes for a weight of ``shape`` (d_out, d_in): ``shape=`` or the factors of d_out then
        d_in (largest first for ``block="cores"``) for ``"reshape"``, the merged pairs :math:`o_t c_t`
        for ``"matrix"``."""
        d_out, d_in = shape
        if self.layout == "reshape":
            cols = ops.factor_shape(d_in)
            # tt_core_sweep: the later column cores' local systems are smallest with large modes first
            return self.shape or ops.factor_shape(d_out) + (cols[::-1] if self.exact else cols)
        rows, cols = self._row_col(shape)
        return tuple(o * c for o, c in zip(rows, cols))

    def _row_col(self, shape: tuple) -> tuple:
        d_out, d_in = shape
        rows = self.row_shape or ops.factor_shape(d_out)
        cols = self.col_shape or ops.factor_shape(d_in)
        m = max(len(rows), len(cols))
        return tuple(rows) + (1,) * (m - len(rows)), tuple(cols) + (1,) * (m - len(cols))

    def validate(self, shape: tuple, name: str) -> None:
        d_out, d_in = shape
        if self.layout == "reshape":
            modes = self.modes(shape)
            if math.prod(modes) != d_out * d_in:
                raise ValueError(f"{name}: TT shape {modes} has {math.prod(modes)} entries but the weight "
                                 f"is {d_out}×{d_in} = {d_out * d_in}")
        else:
            rows, cols = self._row_col(shape)
            if math.prod(rows) != d_out or math.prod(cols) != d_in or len(rows) != len(cols):
                raise ValueError(f"{name}: row_shape {rows} / col_shape {cols} must multiply to {d_out} / "
                                 f"{d_in} and have equal lengths")
        modes = self.modes(shape)
        if self.rank == EVBMF:
            sides = [(math.prod(modes[:t]), math.prod(modes[t:])) for t in range(1, len(modes))]
            if not sides or min(min(sd) for sd in sides) < 2:
                raise ValueError(f"{name}: rank='evbmf' estimates each unfolding's rank, so every unfolding must "
                                 f"be at least 2×2; the modes {modes} give {sides or 'no unfolding'}")
        elif isinstance(self.rank, Schedule):
            ops.tt_ranks(modes, self.rank.value(1))
        else:
            ops.tt_ranks(modes, self.rank)  # raises for a bad rank list

    # ---- projection ----------------------------------------------------------------------------------
    def _tensor(self, W: Any, shape: tuple) -> Any:
        if self.layout == "reshape":
            return W.reshape(self.modes(shape))
        return ops.matrix_to_tt_tensor(W, *self._row_col(shape))

    def _matrix(self, cores: List[Any], shape: tuple, be: Backend) -> Any:
        """The weight of 3-d cores (r, n, r') of :meth:`_tensor`'s layout."""
        tensor = ops.tt_to_tensor(cores, backend=be)
        if self.layout == "reshape":
            return be.xp.ascontiguousarray(tensor.reshape(shape))
        return ops.tt_tensor_to_matrix(tensor, *self._row_col(shape), backend=be)

    def _evbmf_ranks(self, T: Any, be: Backend) -> List[int]:
        """(1, r_1, ..., r_{m-1}, 1): EVBMF's rank of each unfolding (at least 1), made minimal."""
        modes = T.shape
        unfoldings = [T.reshape(math.prod(modes[:t]), -1) for t in range(1, len(modes))]
        ranks = ops.tt_ranks(modes, [1] + [max(1, res.rank) for res in evbmf_batch(unfoldings, backend=be)] + [1])
        # tt_ranks caps r_t by r_(t-1)·n_t; the core sweep's gauge moves also need r_(t-1) ≤ n_t·r_t
        for t in range(len(modes) - 1, 0, -1):
            ranks[t] = min(ranks[t], modes[t] * ranks[t + 1])
        return ranks

    def _compressed(self, cores: List[Any], shape: tuple, be: Backend) -> Compressed:
        """The copy of 3-d cores: dense weight, count, ranks, and the cores as :meth:`export` gives them."""
        dense = self._matrix(cores, shape, be)
        if self.layout == "matrix":
            cores = ops.tt_matrix_cores(cores, *self._row_col(shape))
        ranks = [1] + [int(c.shape[-1]) for c in cores]
        return Compressed(dense=dense, n_params=int(sum(c.size for c in cores)), info={"ranks": ranks},
                          factors=cores)

    def _compress(self, W: Any, backend: "str | Backend | None", rank: Any) -> Compressed:
        if isinstance(rank, Schedule):
            raise TypeError("a scheduled rank is resolved per sweep: call spec.at(sweep) first")
        be = infer_backend(W, backend=backend)
        W = be.as_real_array(W, "W", ndim=2, allow_empty=False, finite=True)
        shape = tuple(W.shape)
        T = self._tensor(W, shape)
        if rank == EVBMF:
            rank = self._evbmf_ranks(T, be)
        return self._compressed(ops.tt_svd(T, rank, svd=self.svd, backend=be), shape, be)

    def project(self, W: Any, *, backend: "str | Backend | None" = None,
                weights: Optional[Sequence[Any]] = None) -> Compressed:
        r""":math:`\tilde W = \mathrm{mat}(\mathrm{TT\text{-}SVD}_r(W))` at the rank cap ``rank`` (or
        the EVBMF ranks of W's unfoldings).

        Parameters and Returns as :meth:`Compression.project` (``weights`` is ignored: the projection is
        per layer); ``info["ranks"]`` holds the realised ranks, ``factors`` the cores.
        """
        return self._compress(W, backend, self.rank)

    def initial(self, W: Any, *, backend: "str | Backend | None" = None,
                weights: Optional[Sequence[Any]] = None) -> Compressed:
        """As :meth:`project`, at the cap ``rank_initial`` when given."""
        return self._compress(W, backend, self.rank if self.rank_initial is None else self.rank_initial)

    def exact_update(self, current: Compressed, R: Any, G: Any, rho: float, alpha: float, *,
                     bias: Optional[BiasTerm] = None, relaxation: float = 1.0,
                     backend: "str | Backend | None" = None) -> ExactStep:
        """One sweep of exact prox core updates (:func:`~nnbcd.compress.tt_cores.tt_core_sweep`); parameters
        and returns as :meth:`Compression.exact_update` (``step_sq`` sums the core steps)."""
        if not self.exact:
            return super().exact_update(current, R, G, rho, alpha, bias=bias, relaxation=relaxation,
                                        backend=backend)
        be = infer_backend(R, G, backend=backend)
        out = tt_core_sweep(current.factors, R, G, rho, alpha, bias=bias, relaxation=relaxation, backend=be)
        cores = [c.reshape(c.shape[0], -1, c.shape[-1]) for c in out.cores]
        new = self._compressed(cores, tuple(R.shape), be)
        new.info["core_solves"] = out.info["solve"]
        return ExactStep(new, out.b, float(sum(out.info["step_sq"])))

    def export(self, compressed: Compressed) -> list:
        """The TT cores as numpy arrays ((r, n, r') for 'reshape', (r, o, c, r') for 'matrix')."""
        return [c.get() if hasattr(c, "get") else c for c in compressed.factors]
