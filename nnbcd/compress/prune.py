r"""Pruning: top-k hard thresholding :math:`S = H_q(W)`, the exact projection onto :math:`\|S\|_0\le k`."""
from __future__ import annotations

from typing import Any, Optional, Sequence

from ..backend import Backend, infer_backend
from ..ops.prune import hard_threshold
from .base import Compressed, Compression

SCOPES = ("layer", "global")
MODES = ("split", "projected")


class Prune(Compression):
    """Keep the largest-magnitude weights, zero the rest (exactly ``n - round(q n)`` kept).

    Parameters
    ----------
    sparsity : float in [0, 1)
        Fraction q of weights set to zero.
    scope : {"layer", "global"}
        One threshold per layer, or one threshold over all layers that share this spec object.
    mode : {"split", "projected"}
        ``"split"`` (correct penalised split): a separate copy S coupled by τ/2‖W − S‖².
        ``"projected"``: the reference's behaviour (its S aliases W): after each W-block W itself is
        replaced by H(W) and the W-step's prox pulls toward the previous, already pruned W.

    Raises
    ------
    ValueError
        If ``sparsity`` is not in [0, 1) or ``scope``/``mode`` is unknown; the message names the argument.
    """

    def __init__(self, sparsity: float = 0.9, scope: str = "layer", mode: str = "split") -> None:
        if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
        if scope not in SCOPES:
            raise ValueError(f"scope={scope!r} is not one of {SCOPES}")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not one of {MODES}")
        self.sparsity = float(sparsity)
        self.scope = scope
        self.mode = mode

    @property
    def replaces_weight(self) -> bool:  # type: ignore[override]
        return self.mode == "projected"

    def __repr__(self) -> str:
        return f"Prune(sparsity={self.sparsity}, scope={self.scope!r}, mode={self.mode!r})"

    def project(self, W: Any, *, backend: "str | Backend | None" = None,
                weights: Optional[Sequence[Any]] = None) -> Compressed:
        """:math:`S = H_q(W)` (:func:`nnbcd.ops.hard_threshold`), over the whole group for ``scope="global"``.

        Parameters and Returns as :meth:`Compression.project`; ``info`` has ``"sparsity"`` (realised) and
        ``"n_stored"`` (numbers of a CSR copy: values, column indices, row pointers).

        Raises
        ------
        ValueError
            If ``weights`` is given for a global spec but does not contain ``W`` (by identity).
        """
        be = infer_backend(W, backend=backend)
        group = list(weights) if (self.scope == "global" and weights) else [W]
        idx = next((k for k, w in enumerate(group) if w is W), None)
        if idx is None:
            raise ValueError("weights must contain W itself (the layers sharing this Prune spec)")
        s = hard_threshold(group, self.sparsity, backend=be)[idx]
        nnz = int(be.xp.count_nonzero(s))
        # stored as CSR: values, column indices, row pointers
        return Compressed(dense=s, n_params=nnz, factors=s,
                          info={"sparsity": 1.0 - nnz / s.size, "n_stored": 2 * nnz + s.shape[0] + 1})

    def export(self, compressed: Compressed) -> Any:
        """The pruned weight as a ``scipy.sparse.csr_array`` on the host."""
        import scipy.sparse

        s = compressed.factors
        return scipy.sparse.csr_array(s.get() if hasattr(s, "get") else s)
