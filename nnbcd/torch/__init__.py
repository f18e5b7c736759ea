"""PyTorch bridge: MCNC reparameterisation, VBMF-driven low-rank layers, orthogonal regularisation.

torch is an optional dependency (``pip install 'nnbcd[torch]'``); it is imported when this package is.
Public names are looked up lazily in the submodules listed in ``_SUBMODULES``.
"""
from __future__ import annotations

import importlib
from typing import Any

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("nnbcd.torch needs PyTorch: pip install 'nnbcd[torch]'") from exc

_SUBMODULES = ("mcnc", "lowrank", "orthreg")


def __getattr__(name: str) -> Any:
    for sub in _SUBMODULES:
        try:
            mod = importlib.import_module(f"{__name__}.{sub}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{sub}":
                continue
            raise
        if name in getattr(mod, "__all__", ()):
            return getattr(mod, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
