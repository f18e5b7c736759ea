"""nnbcd: gradient-free solvers for compressing neural networks.

* :class:`NNBCD` / :func:`solve` -- block coordinate descent training (arXiv 2303.06815) with
  tensor-train or pruning compression blocks;
* :mod:`nnbcd.compress` -- the compression specs :class:`TT` and :class:`Prune`;
* :mod:`nnbcd.ops` -- the array operations on any backend: :func:`tt_svd`, :func:`tt_to_tensor`,
  :func:`evbmf` / :func:`vbmf` (empirical VBMF rank estimation, arXiv 2408.16289), top-k, ReLU prox, im2col;
* :mod:`nnbcd.torch` -- the PyTorch bridge (MCNC, VBMF low-rank layers, orthogonal regularisation).
"""
from .backend import available_backends, get_backend, infer_backend
from .bcd import NNBCD, InputConv2d, solve
from .compress import TT, Prune
from .ops import evbmf, tt_svd, tt_to_tensor, vbmf
from .result import History, SolveResult

__version__ = "0.1.0"

__all__ = ["InputConv2d", "NNBCD", "History", "SolveResult", "available_backends", "get_backend", "solve", "__version__",
           "TT", "Prune", "evbmf", "infer_backend", "tt_svd", "tt_to_tensor", "vbmf"]
