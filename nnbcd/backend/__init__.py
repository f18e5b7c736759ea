"""Array backends: one object per backend holding the array module, linear algebra and fused kernels.

Code above this package never imports numpy/cupy for array math; it asks the backend::

    be = get_backend("numba")
    x = be.asarray(X, dtype="float32")
    c = be.cho_factor(G)
    W = be.cho_solve(c, B)

Backends are registered by name and imported lazily, so ``import nnbcd`` does not import numba or cupy.
"""
from __future__ import annotations

from typing import Callable, Dict

from ._base import Backend, BackendUnavailableError, check_dtype

_FACTORIES: Dict[str, Callable[[], Backend]] = {}
_CACHE: Dict[str, Backend] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Register a backend factory under ``name`` (called once, on first use)."""
    _FACTORIES[name] = factory


def _numpy() -> Backend:
    from .numpy_backend import NumpyBackend

    return NumpyBackend()


def _numba() -> Backend:
    from .numba_backend import NumbaBackend

    return NumbaBackend()


def _cupy() -> Backend:
    from .cupy_backend import CupyBackend

    return CupyBackend()


register_backend("numpy", _numpy)
register_backend("numba", _numba)
register_backend("cupy", _cupy)


def get_backend(backend: "str | Backend" = "numpy") -> Backend:
    """Return the backend object for ``backend``.

    Parameters
    ----------
    backend : {"numpy", "numba", "cupy"} or Backend
        Name of a registered backend, or a backend object (returned unchanged).

    Raises
    ------
    ValueError
        If the name is not registered.
    BackendUnavailableError
        If the backend's library (or, for cupy, a CUDA device) is missing.
    """
    if isinstance(backend, Backend):
        return backend
    if not isinstance(backend, str) or backend not in _FACTORIES:
        raise ValueError(
            f"backend={backend!r} is not a known backend; choose one of {sorted(_FACTORIES)}"
        )
    if backend not in _CACHE:
        _CACHE[backend] = _FACTORIES[backend]()
    return _CACHE[backend]


def available_backends() -> list[str]:
    """Names of the backends whose libraries (and devices) are present on this machine."""
    names = []
    for name in _FACTORIES:
        try:
            get_backend(name)
        except BackendUnavailableError:
            continue
        names.append(name)
    return names


__all__ = [
    "Backend",
    "BackendUnavailableError",
    "available_backends",
    "check_dtype",
    "get_backend",
    "register_backend",
]
