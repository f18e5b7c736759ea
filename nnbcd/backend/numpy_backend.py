"""The numpy backend: the readable reference every other backend is tested against."""
from __future__ import annotations

from ._base import Backend


class NumpyBackend(Backend):
    """numpy arrays, scipy.linalg (LAPACK) for Cholesky/SVD, vectorised numpy kernels."""

    name = "numpy"
