"""What a wrapped model stores and costs: ``report``, ``reconstruction_flops``, ``coverage`` (spec §7, §13)."""
from __future__ import annotations

import math
from typing import Any, Dict

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from .generator import MCNCGenerator, _hidden_layers
from .reparam import _store
from .spec import MCNCSpec, _uniform
from .state import _dense_leftovers


def reconstruction_flops(spec: MCNCSpec, chunks: int) -> Dict[str, int]:
    r"""Multiply-add FLOPs (2 per multiply-add) of the generator's matrix products for ``chunks`` chunks.

    Per generated row (n·m rows; h = width, H = depth): forward :math:`2kh + 2(H-1)h^2 + 2(h+1)d`, and
    the m > 1 combination (a batched product) :math:`2d`. The backward of :class:`_Generate` adds the
    projection :math:`M = G\tilde A` (:math:`2(h+1)d` per chunk), the Gram product (:math:`2(h+1)^2`
    per row) and the hidden layers' input gradients (:math:`2(H-1)h^2 + 2hk` per row). ``"pranc"``:
    :math:`2kd` per row forward and again backward. Elementwise work (sines, the norm, the scaling:
    about :math:`Hh + 3d` per row) is not counted; the generator's weights never get gradients.

    Parameters
    ----------
    spec : MCNCSpec
    chunks : int
        n, the number of chunks.

    Returns
    -------
    dict
        ``forward`` (one reconstruction) and ``train_step`` (forward + backward), in FLOPs.
    """
    k, d, h, depth, m = spec.k, spec.d, spec.width, spec.depth, spec.m
    rows = chunks * m
    if spec.generator == "pranc":
        return {"forward": rows * 2 * k * d, "train_step": rows * 4 * k * d}
    hidden = 2 * k * h + 2 * (depth - 1) * h * h
    fwd = rows * (hidden + 2 * (h + 1) * d) + (2 * rows * d if m > 1 else 0)
    bwd = chunks * 2 * (h + 1) * d + rows * (2 * (h + 1) ** 2 + hidden)
    return {"forward": fwd, "train_step": fwd + bwd}


def coverage(spec: MCNCSpec, samples: int = 1024, seed: int = 0) -> Dict[str, float]:
    r"""How well ϕ(U[−L, L]^k) covers the sphere S^{d−1} (spec §13).

    Parameters
    ----------
    spec : MCNCSpec
    samples : int ≥ 2
        Number of random α, drawn U(−L, L)^k from PCG64(seed).
    seed : int

    Returns
    -------
    dict
        ``cosine_mean`` and ``cosine_std`` of the pairwise cosines
        :math:`\langle\phi(\alpha_i), \phi(\alpha_j)\rangle`, i < j (``"pranc"`` rows normalised first);
        ``uniform_std`` = 1/√d, what uniform points on the sphere give (mean 0); and for ``"mcnc"``
        ``norm_spread``, std/mean of :math:`\lVert y\rVert` before normalisation.

    Raises
    ------
    ValueError
        ``samples`` is not an int ≥ 2.
    """
    if not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an int >= 2, got {samples!r}")
    gen = MCNCGenerator(spec).double()
    rng = np.random.Generator(np.random.PCG64(seed))
    alpha = torch.tensor(_uniform(rng, (samples, spec.k), spec.alpha_bound), dtype=torch.float64)
    with torch.no_grad():
        phi = gen(alpha)
        if spec.generator == "pranc":
            phi = phi / phi.norm(dim=1, keepdim=True)
        cos = (phi @ phi.T)[torch.triu_indices(samples, samples, 1).unbind()]
        out = {"cosine_mean": float(cos.mean()), "cosine_std": float(cos.std()), "uniform_std": 1 / math.sqrt(spec.d)}
        if spec.generator == "mcnc":
            a, _, *hidden = gen.weights(alpha)
            norms = torch.addmm(a[:, -1], _hidden_layers(alpha, spec, hidden), a[:, :-1].T).norm(dim=1)
            out["norm_spread"] = float(norms.std() / norms.mean())
    return out


def report(model: nn.Module) -> Dict[str, Any]:
    """What a compressed state dict stores against the dense model (spec §7, §13).

    ``paper_ratio`` = reparameterised numbers (weights, or LoRA factors) / (α + β), leftovers excluded as
    the paper counts; ``honest_ratio`` = (reparameterised + dense leftover parameters + buffers) / (α +
    β + leftover parameters + buffers), i.e. everything :func:`compressed_state_dict` holds (the seed and
    spec are a handful of integers; the generator is never stored). ``*_bytes`` count the same in
    their storage dtypes. ``external_base`` is the frozen base of residual / LoRA mode, identified by
    its hash and not stored. ``tensors`` lists every state entry: shape, numel, whether it is
    reparameterised and which chunks it spans. ``flops`` is :func:`reconstruction_flops`.

    Parameters
    ----------
    model : torch.nn.Module
        Wrapped by :func:`wrap`.

    Returns
    -------
    dict
        ``compressed_params``, ``alpha_beta``, ``dense_leftovers``, ``dense_buffers``, ``external_base``,
        ``stored``, ``stored_bytes``, ``paper_ratio``, ``honest_ratio``, ``honest_ratio_bytes``,
        ``chunks``, ``generator_params``, ``flops`` and ``tensors`` as above.

    Raises
    ------
    ValueError
        ``model`` is not wrapped.
    """
    st = _store(model)
    spec, d = st.spec, st.spec.d
    dense = _dense_leftovers(model)
    param_names = {n for n, _ in model.named_parameters()}
    p_dense = sum(v.numel() for k, v in dense.items() if k in param_names)
    b_dense = sum(v.numel() for k, v in dense.items() if k not in param_names)
    n_ab = st.alpha.numel() + st.beta.numel()
    base = 0 if spec.mode == "scratch" else sum(
        mod.parametrizations[name].original.numel() for mod in model.modules()
        if parametrize.is_parametrized(mod) for name in mod.parametrizations.keys())
    tensors, offset = [], 0
    for name, shape in st.layout:
        numel = math.prod(shape)
        tensors.append({"name": name, "shape": list(shape), "numel": numel, "compressed": True,
                        "chunks": [offset // d, (offset + numel - 1) // d]})
        offset += numel
    tensors += [{"name": k, "shape": list(v.shape), "numel": v.numel(), "compressed": False}
                for k, v in dense.items()]
    item = st.alpha.element_size()
    dense_bytes = sum(v.numel() * v.element_size() for v in dense.values())
    stored = n_ab + p_dense + b_dense
    stored_bytes = n_ab * item + dense_bytes
    return {"compressed_params": st.total, "alpha_beta": n_ab, "dense_leftovers": p_dense,
            "dense_buffers": b_dense, "external_base": base, "stored": stored, "stored_bytes": stored_bytes,
            "paper_ratio": st.total / n_ab, "honest_ratio": (st.total + p_dense + b_dense) / stored,
            "honest_ratio_bytes": (st.total * item + dense_bytes) / stored_bytes,
            "chunks": st.beta.shape[0], "generator_params": sum(b.numel() for b in st.generator.buffers()),
            "flops": reconstruction_flops(spec, st.beta.shape[0]), "tensors": tensors}
