r"""Pruning: top-k hard thresholding :math:`S = H_q(W)`, the exact projection onto :math:`\|S\|_0\le k`."""
from __future__ import annotations

import numbers
from typing import Any, Dict, Optional, Sequence

from .._validation import check_relaxation
from ..backend import Backend, infer_backend
from ..ops.prune import hard_threshold, n_keep, topk_mask
from ..schedules import Schedule, as_schedule
from .base import Compressed, Compression, ExactStep, check_reselection
from .masked import BiasTerm, masked_weight_update

SCOPES = ("layer", "global")
MODES = ("split", "projected")
PRUNE_BLOCKS = ("projection", "masked")


class Prune(Compression):
    """Keep the largest-magnitude weights, zero the rest (exactly ``n - round(q n)`` kept).

    Parameters
    ----------
    sparsity : float in [0, 1) or Schedule
        Fraction q of weights set to zero; a :class:`~nnbcd.schedules.Schedule` (or its TOML table) gives
        one per sweep, each in (0, 1).
    scope : {"layer", "global"}
        One threshold per layer, or one threshold over all layers that share this spec object.
    mode : {"split", "projected"}
        For the projection block (``block="projection"``, or the sweeps before ``exact_from``). ``"split"`` (correct penalised split): a separate copy S coupled by
        τ/2‖W − S‖². ``"projected"``: the reference's behaviour (its S aliases W): after each W-block W
        itself is replaced by H(W) and the W-step's prox pulls toward the previous, already pruned W.
    block : {"projection", "masked"}
        The layer's W-block. ``"projection"``: the paper's W-block and projection (``mode``).
        ``"masked"`` (beyond the paper): W lives on its support and each W-block is the exact prox
        least-squares solution over the kept entries (:func:`nnbcd.compress.masked.masked_weight_update`);
        no τ term. The support starts as the top-k of :math:`W^0` and is re-chosen, on the sweeps of
        ``reselect_every`` and whenever a scheduled sparsity changes, as the top-k of the dense W-block's
        step; after ``freeze_after`` it is frozen and the iteration is exact block coordinate descent.
    reselect_every : int, optional
        ``block="masked"``: re-choose the support on sweeps ``e, 2e, ...``.
    freeze_after : int, optional
        The last sweep on which ``reselect_every`` re-chooses it (default: never frozen).
    exact_from : int
        With an exact ``block``: the sweep from which it replaces the projection block; before it the
        layer is trained by the paper's projection + τ coupling (a warm-up, e.g. with τ or the
        sparsity on a schedule), and at that sweep the structure is chosen from the dense W-block's step.

    Raises
    ------
    ValueError
        If ``sparsity`` is not in [0, 1) (or a schedule leaves (0, 1)), ``scope``/``mode``/``block`` is
        unknown, ``block="masked"`` is combined with ``scope="global"``, ``sparsity=0`` (nothing pruned)
        or, from the first sweep, ``mode="projected"``, or the reselection arguments are not positive ints; the message
        names the argument.
    """

    def __init__(self, sparsity: Any = 0.9, scope: str = "layer", mode: str = "split",
                 block: str = "projection", reselect_every: Optional[int] = None,
                 freeze_after: Optional[int] = None, exact_from: int = 1) -> None:
        if isinstance(sparsity, (Schedule, dict)):
            sparsity = as_schedule(sparsity, "sparsity")
            if sparsity.bounds()[1] >= 1.0:
                raise ValueError(f"sparsity: a schedule's values must stay below 1, got {sparsity!r}")
        elif isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real) or not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be a number in [0, 1) or a Schedule, got {sparsity!r}")
        else:
            sparsity = float(sparsity)
        if scope not in SCOPES:
            raise ValueError(f"scope={scope!r} is not one of {SCOPES}")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not one of {MODES}")
        if block not in PRUNE_BLOCKS:
            raise ValueError(f"block={block!r} is not one of {PRUNE_BLOCKS} (block='cores' is TT's)")
        check_reselection(reselect_every, freeze_after, exact_from, block)
        if block == "masked":
            # the masked block re-chooses one layer's support at a time; a global budget would drift
            if scope != "layer":
                raise ValueError(f"scope={scope!r} cannot be combined with block='masked': the masked block keeps "
                                 "each layer's own support (top-k per layer), so use scope='layer' (one sparsity "
                                 "per layer) or the projection block for one threshold over the group")
            if mode != "split" and exact_from == 1:
                raise ValueError("mode='projected' belongs to the projection block (a warm-up before "
                                 "exact_from); block='masked' keeps W on its support by construction")
            if sparsity == 0.0:
                raise ValueError("block='masked' needs sparsity > 0: with nothing pruned the layer is dense")
        elif reselect_every is not None:
            raise ValueError("reselect_every belongs to block='masked' (the projection re-chooses the "
                             "support every sweep)")
        self.sparsity = sparsity
        self.scope = scope
        self.mode = mode
        self.block = block
        self.reselect_every = reselect_every
        self.freeze_after = freeze_after
        self.exact_from = exact_from

    @property
    def replaces_weight(self) -> bool:  # type: ignore[override]
        return self.mode == "projected"

    def __repr__(self) -> str:
        extra = "" if self.block == "projection" else (
            f", block={self.block!r}, reselect_every={self.reselect_every}, freeze_after={self.freeze_after}, "
            f"exact_from={self.exact_from}")
        return f"Prune(sparsity={self.sparsity}, scope={self.scope!r}, mode={self.mode!r}{extra})"

    def scheduled(self) -> Dict[str, Schedule]:
        return {"sparsity": self.sparsity} if isinstance(self.sparsity, Schedule) else {}

    def record(self, compressed: Compressed) -> Dict[str, float]:
        """``{"sparsity": q}``, the target sparsity of the sweep."""
        return {"sparsity": self.sparsity}

    def project(self, W: Any, *, backend: "str | Backend | None" = None,
                weights: Optional[Sequence[Any]] = None) -> Compressed:
        """:math:`S = H_q(W)` (:func:`nnbcd.ops.hard_threshold`), over the whole group for ``scope="global"``.

        Parameters and Returns as :meth:`Compression.project`; ``info`` has ``"sparsity"`` (realised) and
        ``"n_stored"`` (numbers of a CSR copy: values, column indices, row pointers); for
        ``block="masked"``, ``support`` is the kept set (exactly the kept count).

        Raises
        ------
        ValueError
            If ``weights`` is given for a global spec but does not contain ``W`` (by identity).
        """
        be = infer_backend(W, backend=backend)
        q = self._plain_sparsity()
        if self.exact:
            # the support itself is the state of the masked block: exactly k entries, even where W is 0
            support = topk_mask(be.xp.abs(W).ravel(), n_keep(W.size, q), backend=be).reshape(W.shape)
            return self._compressed(be.xp.where(support, W, be.xp.zeros((), dtype=W.dtype)), support, be)
        group = list(weights) if (self.scope == "global" and weights) else [W]
        idx = next((k for k, w in enumerate(group) if w is W), None)
        if idx is None:
            raise ValueError("weights must contain W itself (the layers sharing this Prune spec)")
        s = hard_threshold(group, q, backend=be)[idx]
        return self._compressed(s, None, be)

    def _plain_sparsity(self) -> float:
        if isinstance(self.sparsity, Schedule):
            raise TypeError("a scheduled sparsity is resolved per sweep: call spec.at(sweep) first")
        return self.sparsity

    @staticmethod
    def _compressed(s: Any, support: Any, be: Backend) -> Compressed:
        nnz = int(be.xp.count_nonzero(s if support is None else support))
        # stored as CSR: values, column indices, row pointers
        return Compressed(dense=s, n_params=nnz, factors=s, support=support,
                          info={"sparsity": 1.0 - nnz / s.size, "n_stored": 2 * nnz + s.shape[0] + 1})

    def exact_update(self, current: Compressed, R: Any, G: Any, rho: float, alpha: float, *,
                     bias: Optional[BiasTerm] = None, relaxation: float = 1.0,
                     backend: "str | Backend | None" = None) -> ExactStep:
        """The exact W-block on ``current.support`` (:func:`~nnbcd.compress.masked.masked_weight_update`),
        over-relaxed jointly with the bias (the support is kept); parameters and returns as
        :meth:`Compression.exact_update`."""
        if not self.exact:
            return super().exact_update(current, R, G, rho, alpha, bias=bias, relaxation=relaxation,
                                        backend=backend)
        relaxation = check_relaxation(relaxation)
        be = infer_backend(R, G, backend=backend)
        new = masked_weight_update(R, G, current.dense, current.support, rho, alpha, bias=bias, backend=be)
        be.over_relax(new.W, current.dense, relaxation)
        if new.b is not None:
            be.over_relax(new.b, bias.b, relaxation)
        return ExactStep(self._compressed(new.W, current.support, be), new.b, be.sq_dist(new.W, current.dense))

    def export(self, compressed: Compressed) -> Any:
        """The pruned weight as a ``scipy.sparse.csr_array`` on the host."""
        import scipy.sparse

        s = compressed.factors
        return scipy.sparse.csr_array(s.get() if hasattr(s, "get") else s)
