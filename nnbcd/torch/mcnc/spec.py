"""The MCNC specification: what rebuilds a reparameterisation, and its seeded draws (spec §2)."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
import torch
from torch import nn

# generator activations and their derivatives, both as functions of the pre-activation z
_ACTS = {"sin": (torch.sin, torch.cos),
         "tanh": (torch.tanh, lambda z: 1.0 - torch.tanh(z) ** 2),
         "relu": (torch.relu, lambda z: (z > 0).to(z.dtype)),
         "identity": (lambda z: z, torch.ones_like),
         "leaky_relu": (nn.functional.leaky_relu, lambda z: 0.01 + 0.99 * (z > 0).to(z.dtype))}
MODES = ("scratch", "residual", "lora")
ALPHA_CONSTRAINTS = ("none", "clamp", "wrap")
GENERATOR_VERSIONS = ("mcnc-gen/1",)


@dataclass(frozen=True)
class MCNCSpec:
    r"""Everything needed to rebuild the reparameterisation (stored inside a compressed state dict).

    Each chunk of d consecutive parameters is :math:`\theta_t = \sum_{j\le m}\beta_{t,j}\,\phi(\alpha_{t,j})`
    with :math:`\alpha_{t,j}\in\mathbb R^k` (arXiv 2406.19301, eq. 3; the spec's ``mcnc-gen/1``).

    Parameters
    ----------
    k : int ≥ 1
        Manifold dimension: the length of each α (k < d).
    d : int ≥ 1
        Chunk size: the generator's output dimension.
    width, depth : int ≥ 1
        The generator's hidden width and number of hidden layers (``"mcnc"`` only).
    generator : {"mcnc", "pranc"}
        ``"mcnc"``: an MLP with normalised output onto the sphere :math:`S^{d-1}`; ``"pranc"``: the linear
        random map :math:`A\alpha/\sqrt k` (the PRANC-style baseline).
    activation : {"sin", "tanh", "relu", "identity", "leaky_relu"}
        The generator's hidden activation.
    omega : float > 0
        Input frequency: the first hidden layer sees ω·α.
    alpha_bound : float > 0
        L: α is initialised U(−L, L).
    alpha_constraint : {"none", "clamp", "wrap"}
        ``"none"`` (the paper), ``"clamp"`` (the generator sees clamp(α, −L, L)) or ``"wrap"`` (it sees
        α wrapped periodically into [−L, L)); α itself is stored unconstrained.
    mode : {"scratch", "residual", "lora"}
        ``"scratch"``: θ = βϕ(α); ``"residual"``: θ = θ_0 + βϕ(α) on a frozen base, β = 0 at the start;
        ``"lora"``: W = W_0 + (lora_alpha/lora_rank)·B·A with vec(A), vec(B) generated (conv weights
        viewed as out × in·k_h·k_w).
    compress_bias : bool
        Also reparameterise biases (never in LoRA mode).
    exclude : list or tuple of str
        Names kept dense: a module name (``"0"``, ``"head"``) keeps all its parameters, a parameter name
        (``"0.bias"``) or a glob (``"*.bias"``, ``"layer4.*"``) the ones it matches.
    lora_rank : int ≥ 1
    lora_alpha : float > 0
        LoRA rank r and scale s (the update is scaled s/r).
    m : int ≥ 1
        Generator terms per chunk.
    seed : int ≥ 0
        Seed of the generator's weights (PCG64(seed)), of α's start (seed + 1) and of the LoRA base (seed + 2).
    version : {"mcnc-gen/1"}
        The generator's definition (spec §2).

    Raises
    ------
    ValueError, TypeError
        A field of the wrong kind or out of range; the message names it.
    """

    k: int = 16
    d: int = 1024
    width: int = 64
    depth: int = 2
    generator: str = "mcnc"
    activation: str = "sin"
    omega: float = 1.0
    alpha_bound: float = 1.0
    alpha_constraint: str = "none"
    mode: str = "scratch"
    compress_bias: bool = True
    exclude: Tuple[str, ...] = ()
    lora_rank: int = 8
    lora_alpha: float = 8.0
    m: int = 1
    seed: int = 0
    version: str = "mcnc-gen/1"

    def __post_init__(self) -> None:
        # integers (numpy's too, as a config file may give them) and finite positive reals, named
        label = {"d": "d (chunk size)", "m": "m (generator terms per chunk)", "version": "generator version"}
        for name in ("k", "d", "width", "depth", "m", "lora_rank", "seed"):
            v = getattr(self, name)
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or (v < 0 if name == "seed" else v < 1):
                raise ValueError(f"{label.get(name, name)} must be a "
                                 f"{'non-negative' if name == 'seed' else 'positive'} int, got {v!r}")
            object.__setattr__(self, name, int(v))
        for name in ("omega", "alpha_bound", "lora_alpha"):
            v = getattr(self, name)
            if not isinstance(v, numbers.Real) or isinstance(v, bool) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite positive number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if not self.k < self.d:
            raise ValueError(f"k must be smaller than the chunk size d = {self.d}, got k = {self.k}")
        for name, allowed in (("generator", ("mcnc", "pranc")), ("activation", tuple(sorted(_ACTS))),
                              ("alpha_constraint", ALPHA_CONSTRAINTS), ("mode", MODES),
                              ("version", GENERATOR_VERSIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{label.get(name, name)} {getattr(self, name)!r} is not one of {allowed}")
        if not isinstance(self.compress_bias, bool):
            raise ValueError(f"compress_bias must be True or False, got {self.compress_bias!r}")
        if not (isinstance(self.exclude, (list, tuple)) and all(isinstance(e, str) and e for e in self.exclude)):
            raise TypeError(f"exclude must be a list or tuple of non-empty names or globs, got {self.exclude!r}")
        object.__setattr__(self, "exclude", tuple(self.exclude))  # a list from a stored spec, too


def _chunks(layout: List[Tuple[str, tuple]], d: int) -> Tuple[int, int]:
    r"""``(D, n)``: the flat vector's length and its number of chunks, :math:`n = \lceil D/d\rceil`."""
    total = int(sum(math.prod(shape) for _, shape in layout))
    return total, math.ceil(total / d)


def _uniform(rng: np.random.Generator, shape: tuple, bound: float) -> np.ndarray:
    return bound * (2.0 * rng.random(shape) - 1.0)
