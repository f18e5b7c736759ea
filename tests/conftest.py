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


def sgd_gradients(eager, wrapped, compiled, x, steps, lr=0.1):
    """Yield, step by step, the (alpha, beta) gradients of an MCNC model run through ``compiled`` and of
    its eager twin, each then taking a plain SGD step (which keeps a rounding difference a rounding
    difference; Adam's sign-like first steps would amplify it)."""
    import torch

    for _ in range(steps):
        grads = []
        for model, fn in ((wrapped, compiled), (eager, eager)):
            model.zero_grad()
            fn(x).square().mean().backward()
            grads.append((model.mcnc_alpha.grad.clone(), model.mcnc_beta.grad.clone()))
            with torch.no_grad():
                model.mcnc_alpha -= lr * model.mcnc_alpha.grad
                model.mcnc_beta -= lr * model.mcnc_beta.grad
        yield grads[0], grads[1]
