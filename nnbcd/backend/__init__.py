"""Array backends: one object per backend holding the array module, linear algebra and fused kernels.

Code above this package never imports numpy/cupy for array math; it asks the backend::

    be = get_backend("numba")
    x = be.asarray(X, dtype="float32")
    c = be.cho_factor(G)
    W = be.cho_solve(c, B)

Backends are registered by name and imported lazily, so ``import nnbcd`` does not import numba or cupy.
The package imports nothing from the layers above it (``nnbcd.ops`` and up): the scalar kernels the
backends compile (:mod:`.relu_prox_kernel`) live here.
"""
from __future__ import annotations

from typing import Any, Callable, Dict

from ._base import Backend, BackendUnavailableError, check_dtype

_FACTORIES: Dict[str, Callable[[], Backend]] = {}
_CACHE: Dict[str, Backend] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Register a backend factory under ``name``.

    Parameters
    ----------
    name : str
        The name :func:`get_backend` and ``backend=`` arguments accept.
    factory : callable
        Returns the :class:`Backend`; called once, on first use (it may raise
        :class:`BackendUnavailableError`).

    Raises
    ------
    TypeError
        If ``name`` is not a non-empty string or ``factory`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory must be a callable returning a Backend, got {type(factory).__name__}")
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
    """The backend object for a name (created once, then cached) or a backend object.

    Parameters
    ----------
    backend : {"numpy", "numba", "cupy"} or Backend
        Name of a registered backend, or a backend object (returned unchanged).

    Returns
    -------
    Backend

    Raises
    ------
    ValueError
        If the name is not registered (the message names ``backend`` and lists the known names).
    TypeError
        If ``backend`` is neither a string nor a :class:`Backend`.
    BackendUnavailableError
        If the backend's library (or, for cupy, a CUDA device) is missing.
    """
    if isinstance(backend, Backend):
        return backend
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a backend name {sorted(_FACTORIES)} or a Backend, "
                        f"got {type(backend).__name__} {backend!r}")
    if backend not in _FACTORIES:
        raise ValueError(
            f"backend={backend!r} is not a known backend; choose one of {sorted(_FACTORIES)}"
        )
    if backend not in _CACHE:
        _CACHE[backend] = _FACTORIES[backend]()
    return _CACHE[backend]


def _is_cupy_array(x: Any) -> bool:
    # by the type's module, so that inferring never imports cupy
    return type(x).__module__.split(".", 1)[0] == "cupy"


def infer_backend(*arrays: Any, backend: "str | Backend | None" = None) -> Backend:
    """The backend a public function runs on: the one asked for, else the one of its input arrays.

    Every public function of :mod:`nnbcd.ops` and :mod:`nnbcd.compress` resolves its keyword-only
    ``backend=None`` argument through this function (tensorly and the array API take the array module
    from the inputs in the same way, without a global backend).

    Parameters
    ----------
    *arrays : array or None
        The function's array inputs (numpy, CuPy, anything else is ignored).
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Explicit choice; wins over the inputs.

    Returns
    -------
    Backend
        ``get_backend(backend)`` when ``backend`` is given; else the cupy backend when any of ``arrays``
        is a CuPy array; else the numpy backend.

    Raises
    ------
    ValueError, TypeError, BackendUnavailableError
        As :func:`get_backend`, for an unknown or unavailable ``backend``.
    """
    if backend is not None:
        return get_backend(backend)
    if any(_is_cupy_array(x) for x in arrays):
        return get_backend("cupy")
    return get_backend("numpy")


def available_backends() -> list[str]:
    """Names of the backends whose libraries (and devices) are present on this machine.

    Returns
    -------
    list of str
        A subset of ``["numpy", "numba", "cupy"]``, in that order; each one is created (and cached) to
        find out.
    """
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
    "infer_backend",
    "register_backend",
]
