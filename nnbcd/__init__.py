"""nnbcd: gradient-free solvers for compressing neural networks.

* :class:`NNBCD` / :func:`solve` -- block coordinate descent training (arXiv 2303.06815) with
  tensor-train or pruning compression blocks;
* :mod:`nnbcd.ops.vbmf` -- empirical VBMF rank estimation (arXiv 2408.16289);
* :mod:`nnbcd.torch` -- the PyTorch bridge (MCNC, VBMF low-rank layers, orthogonal regularisation).
"""
from .backend import available_backends, get_backend
from .bcd import NNBCD, Conv2d, solve
from .result import History, SolveResult

__version__ = "0.1.0"

__all__ = ["Conv2d", "NNBCD", "History", "SolveResult", "available_backends", "get_backend", "solve", "__version__"]
