"""Weight initialisation schemes of the reference (spec §5), drawn with a numpy Generator."""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np


def _xavier_normal(rng, d_out, d_in):
    return rng.standard_normal((d_out, d_in)) * np.sqrt(2.0 / (d_in + d_out))


def _xavier_uniform(rng, d_out, d_in):
    lim = np.sqrt(6.0 / (d_in + d_out))
    return rng.uniform(-lim, lim, (d_out, d_in))


def _kaiming_normal(rng, d_out, d_in):
    return rng.standard_normal((d_out, d_in)) * np.sqrt(2.0 / d_in)


def _kaiming_uniform(rng, d_out, d_in):
    lim = np.sqrt(6.0 / d_in)
    return rng.uniform(-lim, lim, (d_out, d_in))


def _lecun_normal(rng, d_out, d_in):
    return rng.standard_normal((d_out, d_in)) * np.sqrt(1.0 / d_in)


def _lecun_uniform(rng, d_out, d_in):
    lim = np.sqrt(3.0 / d_in)
    return rng.uniform(-lim, lim, (d_out, d_in))


def _orthogonal(rng, d_out, d_in):
    a = rng.standard_normal((max(d_out, d_in), min(d_out, d_in)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q if d_out >= d_in else q.T


def _uniform(rng, d_out, d_in):
    return rng.uniform(-0.01, 0.01, (d_out, d_in))


def _normal(rng, d_out, d_in):
    return 0.01 * rng.standard_normal((d_out, d_in))


#: name -> f(rng, d_out, d_in) returning a float64 matrix; multiplied by ``init_scale`` afterwards
INIT_SCHEMES: Dict[str, Callable] = {
    "xavier_normal": _xavier_normal,
    "xavier_uniform": _xavier_uniform,
    "kaiming_normal": _kaiming_normal,
    "kaiming_uniform": _kaiming_uniform,
    "lecun_normal": _lecun_normal,
    "lecun_uniform": _lecun_uniform,
    "orthogonal": _orthogonal,
    "uniform": _uniform,
    "normal": _normal,
}


def init_weight(scheme: str, rng: np.random.Generator, d_out: int, d_in: int, scale: float) -> np.ndarray:
    """Draw one ``d_out × d_in`` weight matrix."""
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init={scheme!r} is not a known scheme; choose one of {sorted(INIT_SCHEMES)}")
    return scale * INIT_SCHEMES[scheme](rng, d_out, d_in)
