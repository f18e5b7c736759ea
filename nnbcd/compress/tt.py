r"""Tensor-train compression of a weight matrix: :math:`\tilde W = \mathrm{mat}(\mathrm{TT\text{-}SVD}_r(W))`."""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

from ..backend import Backend, infer_backend
from ..ops import tt as ops
from .base import Compressed, Compression

LAYOUTS = ("reshape", "matrix")


class TT(Compression):
    """TT-SVD projection at a rank cap, recomputed from scratch at every compression block.

    Parameters
    ----------
    rank : int or list
        Rank cap r (ranks (1, r, ..., r, 1), capped by the unfolding sizes) or a full rank list.
    shape : tuple, optional
        ``layout="reshape"``: the modes :math:`(n_1..n_m)` of the row-major reshape of W, with
        :math:`\\prod n = d_{out} d_{in}` (they may straddle the row/column boundary, as the reference's
        (6,22,34,2,...,2) for 1024×561). Default: the factors (≤ 4) of d_out, then those of d_in.
    layout : {"reshape", "matrix"}
        ``"matrix"``: TT-matrix layout with interleaved row/column modes.
    row_shape, col_shape : tuple, optional
        ``layout="matrix"``: the row modes (∏ = d_out) and column modes (∏ = d_in), of equal length
        (modes of 1 allowed). Default: factors of d_out and d_in padded with ones.
    rank_initial : int, optional
        Rank cap of the initial copy :math:`\\tilde W^0` (the reference uses 400 for its MLPs).
    svd : {"gram", "full"}
        How each unfolding is truncated, as :func:`nnbcd.ops.tt_svd`'s ``svd`` (the same default and
        the same subspaces).

    Raises
    ------
    ValueError
        For an unknown ``layout`` or ``svd``, a non-positive ``rank``/``rank_initial``, or shape arguments
        of the other layout; the message names the argument.
    """

    def __init__(self, rank: Any = 80, shape: Optional[Sequence[int]] = None, layout: str = "reshape",
                 row_shape: Optional[Sequence[int]] = None, col_shape: Optional[Sequence[int]] = None,
                 rank_initial: Optional[int] = None, svd: str = "gram") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout={layout!r} is not one of {LAYOUTS}")
        ops.check_svd(svd)
        if layout == "reshape" and (row_shape is not None or col_shape is not None):
            raise ValueError("row_shape/col_shape belong to layout='matrix'; use shape= for 'reshape'")
        if layout == "matrix" and shape is not None:
            raise ValueError("shape= belongs to layout='reshape'; use row_shape/col_shape for 'matrix'")
        if isinstance(rank, bool) or (isinstance(rank, int) and rank < 1):
            raise ValueError(f"rank must be a positive int or a rank list, got {rank!r}")
        if rank_initial is not None and (isinstance(rank_initial, bool) or not isinstance(rank_initial, int)
                                         or rank_initial < 1):
            raise ValueError(f"rank_initial must be a positive int, got {rank_initial!r}")
        self.rank = rank
        self.shape = None if shape is None else tuple(int(n) for n in shape)
        self.layout = layout
        self.row_shape = None if row_shape is None else tuple(int(n) for n in row_shape)
        self.col_shape = None if col_shape is None else tuple(int(n) for n in col_shape)
        self.rank_initial = rank_initial
        self.svd = svd

    def __repr__(self) -> str:
        return (f"TT(rank={self.rank!r}, layout={self.layout!r}, shape={self.shape}, "
                f"row_shape={self.row_shape}, col_shape={self.col_shape}, svd={self.svd!r})")

    # ---- layout ------------------------------------------------------------------------------------
    def modes(self, shape: tuple) -> tuple:
        """The TT modes for a weight of ``shape`` (d_out, d_in): ``shape=`` or the factors of d_out then
        d_in for ``"reshape"``, the merged pairs :math:`o_t c_t` for ``"matrix"``."""
        d_out, d_in = shape
        if self.layout == "reshape":
            return self.shape or ops.factor_shape(d_out) + ops.factor_shape(d_in)
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
        ops.tt_ranks(self.modes(shape), self.rank)  # raises for a bad rank list

    # ---- projection ----------------------------------------------------------------------------------
    def _compress(self, W: Any, backend: "str | Backend | None", rank: Any) -> Compressed:
        be = infer_backend(W, backend=backend)
        shape = tuple(W.shape)
        modes = self.modes(shape)
        if self.layout == "reshape":
            cores = ops.tt_svd(W.reshape(modes), rank, svd=self.svd, backend=be)
            dense = ops.tt_to_tensor(cores, backend=be).reshape(shape)
        else:
            rows, cols = self._row_col(shape)
            cores = ops.tt_svd(ops.matrix_to_tt_tensor(W, rows, cols), rank, svd=self.svd, backend=be)
            dense = ops.tt_tensor_to_matrix(ops.tt_to_tensor(cores, backend=be), rows, cols, backend=be)
            cores = ops.tt_matrix_cores(cores, rows, cols)
        ranks = [1] + [int(c.shape[-1]) for c in cores]
        n_params = int(sum(c.size for c in cores))
        return Compressed(dense=be.xp.ascontiguousarray(dense), n_params=n_params,
                          info={"ranks": ranks}, factors=cores)

    def project(self, W: Any, *, backend: "str | Backend | None" = None,
                weights: Optional[Sequence[Any]] = None) -> Compressed:
        r""":math:`\tilde W = \mathrm{mat}(\mathrm{TT\text{-}SVD}_r(W))` at the rank cap ``rank``.

        Parameters and Returns as :meth:`Compression.project` (``weights`` is ignored: the projection is
        per layer); ``info["ranks"]`` holds the realised ranks, ``factors`` the cores.
        """
        return self._compress(W, backend, self.rank)

    def initial(self, W: Any, *, backend: "str | Backend | None" = None,
                weights: Optional[Sequence[Any]] = None) -> Compressed:
        """As :meth:`project`, at the cap ``rank_initial`` when given."""
        return self._compress(W, backend, self.rank if self.rank_initial is None else self.rank_initial)

    def export(self, compressed: Compressed) -> list:
        """The TT cores as numpy arrays ((r, n, r') for 'reshape', (r, o, c, r') for 'matrix')."""
        return [c.get() if hasattr(c, "get") else c for c in compressed.factors]
