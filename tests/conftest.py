"""Shared fixtures: ``backend`` runs a test once per installed array backend (as scipy's ``xp``)."""
from __future__ import annotations

import os

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from nnbcd.backend import available_backends, get_backend  # noqa: E402

try:
    from hypothesis import settings

    settings.register_profile("ci", max_examples=30, deadline=None)
    settings.register_profile("dev", max_examples=100, deadline=None)
    settings.load_profile("ci" if os.environ.get("CI") else "dev")
except ImportError:  # pragma: no cover
    pass

BACKENDS = available_backends()


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Every backend available on this machine (numpy, numba; cupy where a GPU exists)."""
    return get_backend(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
