"""The networks the sweep benchmarks train: the digits and HAR MLPs and the MNIST CNN, at two sizes.

``paper`` uses the paper's sizes (spec §7): digits 64-256-256-10 with N = 1347, HAR 561-1024-1024-1024-512-6
with N = 7352, the MNIST CNN (conv 3×3/2, 32 filters → 5408-1024-1024-10, N = 6000). ``small`` keeps the
digits MLP and shrinks the others so that ``nnbcd bench --size small`` runs in about a minute on 2 cores:
HAR at a quarter of the width (561-256-256-256-128-6, N = 1024) and a CNN on 14×14 images (conv 3×3/2, 16 filters →
576-256-256-10, N = 1000).
The data are synthetic (uniform inputs, uniform labels): a sweep's cost does not depend on the values.
Each network comes in the variants ``dense``, ``tt`` (TT-SVD at the presets' ranks) and, for the MLPs,
``prune`` (90 % top-k), the paper's projection blocks, and ``tt_cores`` / ``prune_masked``, the exact blocks
on the compressed form (``TT(block="cores")``, ``Prune(block="masked")``) that replace them
(:data:`PROJECTION_OF` pairs them); the hyperparameters are those of the presets in ``solvers/``.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ..bcd import NNBCD
from ..bcd.conv import InputConv2d
from ..compress import TT, Prune, Compression
from .flops import block_flops, largest_gemm, sweep_flops

SIZES = ("small", "paper")

#: a variant: a factory of the ``compress`` dict (fresh spec objects per fit) and τ
Variant = Tuple[Optional[Callable[[], Dict[int, Compression]]], float]

#: each exact-block variant and the projection variant it replaces (the ``vs_projection`` ratio's base)
PROJECTION_OF = {"tt_cores": "tt", "prune_masked": "prune"}


@dataclass(frozen=True)
class Workload:
    """One network and data size of the sweep benchmarks.

    Parameters
    ----------
    name : str
        ``digits``, ``har`` or ``cnn``.
    n_features : int
        d_0 (for a CNN, C·H·W of ``conv.in_shape``).
    hidden : tuple of int
        The hidden widths.
    n_classes : int
        d_L.
    n : int
        N, the training samples.
    variants : dict of str to Variant
        ``dense``, ``tt``, ``prune``, ``tt_cores``, ``prune_masked``: the compression factory and τ.
    params : dict
        Further :class:`~nnbcd.NNBCD` parameters (γ, ρ, α, init, ...).
    conv : InputConv2d, optional
    """

    name: str
    n_features: int
    hidden: Tuple[int, ...]
    n_classes: int
    n: int
    variants: Dict[str, Variant]
    params: Dict[str, Any] = field(default_factory=dict)
    conv: Optional[InputConv2d] = None

    @property
    def widths(self) -> Tuple[int, ...]:
        """(d_0, ..., d_L) as the solver sees them (with a conv layer, d_1 = F·H'·W')."""
        first = (self.n_features,) if self.conv is None else (self.conv.n_in, self.conv.n_out)
        return first + self.hidden + (self.n_classes,)

    @property
    def flops(self) -> float:
        """FLOPs of one sweep (:func:`~nnbcd.bench.flops.sweep_flops`)."""
        return sweep_flops(self.widths, self.n, self.conv)

    @property
    def block_flops(self) -> Dict[str, float]:
        """FLOPs of one sweep per block kind (:func:`~nnbcd.bench.flops.block_flops`)."""
        return block_flops(self.widths, self.n, self.conv)

    @property
    def gemm(self) -> Tuple[int, int, int]:
        """The sweep's largest product (:func:`~nnbcd.bench.flops.largest_gemm`)."""
        return largest_gemm(self.widths, self.n, self.conv)

    def resized(self, n: Optional[int] = None, hidden: Optional[Tuple[int, ...]] = None) -> "Workload":
        """The same network with another N or other hidden widths (the scaling runs)."""
        return dataclasses.replace(self, n=self.n if n is None else n, hidden=self.hidden if hidden is None else hidden)

    def data(self, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
        """Synthetic training data: X uniform in [0, 1), shape (N, d_0), labels uniform in 0..d_L-1."""
        rng = np.random.default_rng(seed)
        return rng.uniform(0.0, 1.0, (self.n, self.n_features)), rng.integers(0, self.n_classes, self.n)

    def estimator(self, variant: str, backend: str, dtype: str, **fit: Any) -> NNBCD:
        """An unfitted :class:`~nnbcd.NNBCD` of this network in ``variant``.

        Parameters
        ----------
        variant : str
            A key of :attr:`variants`.
        backend, dtype : str
        **fit
            Further parameters (``max_iter``, ``monitor_every``, ...).
        """
        make, tau = self.variants[variant]
        return NNBCD(self.hidden, conv=self.conv, compress=None if make is None else make(), tau=tau,
                     backend=backend, dtype=dtype, random_state=0, **self.params, **fit)


def _tt_specs(layers: Dict[int, Dict[str, Any]]) -> Dict[int, Compression]:
    return {i: TT(**kw) for i, kw in layers.items()}


def _prune_specs(layers: Tuple[int, ...], block: str) -> Dict[int, Compression]:
    return {i: Prune(0.9, block=block) for i in layers}


# factories as partials of module-level functions, so that a Workload pickles (the two-runs-at-once workers)
def _tt(layers: Dict[int, Dict[str, Any]]) -> Callable[[], Dict[int, Compression]]:
    return functools.partial(_tt_specs, layers)


def _prune(layers: Tuple[int, ...], block: str = "projection") -> Callable[[], Dict[int, Compression]]:
    return functools.partial(_prune_specs, layers, block=block)


def digits() -> Workload:
    """digits (solvers/digits*.toml): 64-256-256-10, N = 1347; TT r = 80 (TT-matrix layout) and 90 % pruning
    on layers 0 and 1, τ = 20; ``tt_cores``: solvers/digits_tt_cr10.toml's exact TT-matrix cores (ranks 13 /
    11), ``prune_masked``: the masked block at 90 %."""
    tt = {i: dict(rank=80, layout="matrix", rank_initial=400) for i in (0, 1)}
    cores = {0: dict(rank=13, layout="matrix", block="cores"), 1: dict(rank=11, layout="matrix", block="cores")}
    return Workload("digits", 64, (256, 256), 10, 1347,
                    {"dense": (None, 0.0), "tt": (_tt(tt), 20.0), "prune": (_prune((0, 1)), 20.0),
                     "tt_cores": (_tt(cores), 0.0), "prune_masked": (_prune((0, 1), "masked"), 0.0)},
                    dict(gamma=0.5, rho=0.5, alpha=1.0))


def digits_tt_preset() -> Workload:
    """solvers/digits_tt.toml's model (TT-matrix rank 24 on layers 0 and 1, τ = 20): the "two runs at once"
    workload of issue 14."""
    tt = {i: dict(rank=24, layout="matrix", rank_initial=400) for i in (0, 1)}
    return dataclasses.replace(digits(), variants={"tt": (_tt(tt), 20.0)})


def har(size: str) -> Workload:
    """HAR (solvers/har_tt.toml): TT r = 80 and 90 % pruning on layers 0..3, τ = 5, init scale 0.2;
    ``tt_cores`` / ``prune_masked``: the exact blocks at the same r = 80 (the cores' default modes) and 90 %.

    ``paper``: 561-1024-1024-1024-512-6, N = 7352, the reference's reshape modes, initial rank 400.
    ``small``: 561-256-256-256-128-6 (a quarter of the width), N = 1024, the default modes.
    """
    if size == "paper":
        w23 = dict(rank=80, shape=(4,) * 10, rank_initial=400)
        tt = {0: dict(rank=80, shape=(6, 22, 34, 2, 2, 2, 2, 2, 2, 2), rank_initial=400), 1: w23, 2: w23,
              3: dict(rank=80, shape=(4,) * 9 + (2,), rank_initial=400)}
        hidden, n = (1024, 1024, 1024, 512), 7352
    else:
        tt = {i: dict(rank=80) for i in range(4)}
        hidden, n = (256, 256, 256, 128), 1024
    cores = {i: dict(rank=80, block="cores") for i in range(4)}
    return Workload("har", 561, hidden, 6, n,
                    {"dense": (None, 0.0), "tt": (_tt(tt), 5.0), "prune": (_prune((0, 1, 2, 3)), 5.0),
                     "tt_cores": (_tt(cores), 0.0), "prune_masked": (_prune((0, 1, 2, 3), "masked"), 0.0)},
                    dict(gamma=0.5, rho=0.5, alpha=1.0, init_scale=0.2))


def cnn(size: str) -> Workload:
    """The MNIST CNN (solvers/mnist_cnn.toml), TT r = 40 on layers 1 and 2, τ = 0.1, γ = ρ = 5.

    ``paper``: 1×28×28 images, conv 3×3/2 with 32 filters → 5408-1024-1024-10, N = 6000, the preset's modes.
    ``small``: 1×14×14 images, 16 filters → 576-256-256-10, N = 1000.
    """
    if size == "paper":
        conv = InputConv2d(in_shape=(1, 28, 28), filters=32, kernel=3, stride=2)
        hidden, n = (1024, 1024), 6000
        tt = {1: dict(rank=40, shape=(26, 26, 4, 4, 4, 4, 4, 2, 2, 2), rank_initial=700),
              2: dict(rank=40, shape=(4,) * 10, rank_initial=700)}
    else:
        conv = InputConv2d(in_shape=(1, 14, 14), filters=16, kernel=3, stride=2)
        hidden, n = (256, 256), 1000
        tt = {1: dict(rank=40, shape=(4,) * 7 + (3, 3), rank_initial=200), 2: dict(rank=40, shape=(4,) * 8,
                                                                                  rank_initial=200)}
    return Workload("cnn", conv.n_in, hidden, 10, n, {"dense": (None, 0.0), "tt": (_tt(tt), 0.1)},
                    dict(gamma=5.0, rho=5.0, alpha=1.0, init="normal"), conv=conv)


def workloads(size: str) -> Dict[str, Workload]:
    """The sweep workloads of a ``--size``: ``digits``, ``har``, ``cnn``.

    Raises
    ------
    ValueError
        If ``size`` is not one of :data:`SIZES`.
    """
    if size not in SIZES:
        raise ValueError(f"size={size!r} is not one of {SIZES}")
    return {"digits": digits(), "har": har(size), "cnn": cnn(size)}
