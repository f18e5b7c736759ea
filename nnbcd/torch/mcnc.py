r"""MCNC: manifold-constrained reparameterisation of any ``nn.Module`` (arXiv 2406.19301).

The selected parameters are flattened (``named_parameters`` order, row-major) into :math:`\theta\in\mathbb
R^D`, cut into :math:`n=\lceil D/d\rceil` chunks of size d (the last one padded), and each chunk is

.. math:: \theta_t = \beta_t\,\phi(\alpha_t),\qquad \alpha_t\in\mathbb R^k,\ \beta_t\in\mathbb R,

where :math:`\phi:\mathbb R^k\to S^{d-1}` is a frozen generator rebuilt from a seed (``"mcnc"``: a sine
MLP with normalised output, the spec's ``mcnc-gen/1``; ``"pranc"``: a linear random map, the PRANC-style
baseline). ``mode="residual"`` adds a frozen base: :math:`\theta = \theta_0 + \beta\phi(\alpha)`, β = 0 at
the start. Only α and β train; BatchNorm/LayerNorm parameters and buffers stay dense.

Built on ``torch.nn.utils.parametrize``: the user's module classes are not edited. The generator runs
once per forward over all chunks (one batched call); in eval mode without gradients the reconstruction
is cached until α or β change.
"""
from __future__ import annotations

import copy
import math
import weakref
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["MCNCSpec", "Generator", "wrap", "bake", "compressed_state_dict", "load_compressed", "report"]

_ACTS = {"sin": torch.sin, "tanh": torch.tanh, "relu": torch.relu, "identity": lambda x: x,
         "leaky_relu": nn.functional.leaky_relu}
_COMPRESSIBLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


@dataclass(frozen=True)
class MCNCSpec:
    """Everything needed to rebuild the reparameterisation (stored inside a compressed state dict).

    k, d : manifold and chunk dimensions (k < d). width, depth : generator hidden width and number of
    hidden layers. generator : ``"mcnc"`` (sine MLP onto the sphere) or ``"pranc"`` (linear random map).
    omega : input frequency. alpha_bound : α initialised U(−L, L). mode : ``"scratch"`` or ``"residual"``.
    compress_bias : also reparameterise biases. seed : generator and α initialisation seed.
    """

    k: int = 16
    d: int = 1024
    width: int = 256
    depth: int = 2
    generator: str = "mcnc"
    activation: str = "sin"
    omega: float = 1.0
    alpha_bound: float = 1.0
    mode: str = "scratch"
    compress_bias: bool = True
    seed: int = 0
    version: str = "mcnc-gen/1"

    def __post_init__(self) -> None:
        if not isinstance(self.d, int) or self.d <= 0:
            raise ValueError(f"d (chunk size) must be a positive int, got {self.d!r}")
        if not isinstance(self.k, int) or not 0 < self.k < self.d:
            raise ValueError(f"k must be an int with 0 < k < d = {self.d}, got {self.k!r}")
        if self.generator not in ("mcnc", "pranc"):
            raise ValueError(f"generator={self.generator!r} is not one of ('mcnc', 'pranc')")
        if self.activation not in _ACTS:
            raise ValueError(f"activation={self.activation!r} is not one of {sorted(_ACTS)}")
        if self.mode not in ("scratch", "residual"):
            raise ValueError(f"mode={self.mode!r} is not one of ('scratch', 'residual')")
        if self.width < 1 or self.depth < 1 or self.alpha_bound <= 0 or self.omega <= 0:
            raise ValueError("width, depth, alpha_bound and omega must be positive")


def _uniform(rng: np.random.Generator, shape: tuple, bound: float) -> np.ndarray:
    return bound * (2.0 * rng.random(shape) - 1.0)


class Generator(nn.Module):
    r"""The frozen map :math:`\phi` with weights drawn from ``numpy.random.PCG64(seed)`` (identical on
    every device and process): A = √(6/fan_in)(2u−1), c = (2u−1)/√fan_in, layer by layer."""

    def __init__(self, spec: MCNCSpec) -> None:
        super().__init__()
        self.spec = spec
        rng = np.random.Generator(np.random.PCG64(spec.seed))
        if spec.generator == "pranc":
            dims = [(spec.d, spec.k)]
        else:
            dims = [(spec.width, spec.k)] + [(spec.width, spec.width)] * (spec.depth - 1) + [(spec.d, spec.width)]
        for i, (fo, fi) in enumerate(dims):
            w = _uniform(rng, (fo, fi), math.sqrt(6.0 / fi))
            b = _uniform(rng, (fo,), 1.0 / math.sqrt(fi))
            self.register_buffer(f"w{i}", torch.tensor(w, dtype=torch.float32), persistent=False)
            self.register_buffer(f"b{i}", torch.tensor(b if spec.generator == "mcnc" else 0 * b,
                                                       dtype=torch.float32), persistent=False)
        self.n_layers = len(dims)

    def forward(self, alpha: torch.Tensor) -> torch.Tensor:
        act = _ACTS[self.spec.activation]
        h = alpha * self.spec.omega
        for i in range(self.n_layers):
            w, b = getattr(self, f"w{i}").to(alpha.dtype), getattr(self, f"b{i}").to(alpha.dtype)
            h = nn.functional.linear(h, w, b)
            if i < self.n_layers - 1:
                h = act(h)
        if self.spec.generator == "pranc":
            return h / math.sqrt(self.spec.k)
        return h / h.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class _Store:
    """α, β (parameters of the root model), the generator, the frozen base (residual mode, a buffer of
    the root) and the layout of the flat vector. Not a submodule, so containers like ``nn.Sequential``
    never call it; it reads its tensors from the root so ``model.to(...)`` moves them."""

    def __init__(self, model: nn.Module, spec: MCNCSpec, layout: List[Tuple[str, tuple]], init: torch.Tensor):
        self.spec = spec
        self.layout = layout
        self.total = int(sum(math.prod(s) for _, s in layout))
        n = math.ceil(self.total / spec.d)
        self.generator = Generator(spec)
        rng = np.random.Generator(np.random.PCG64(spec.seed + 1))
        alpha = torch.tensor(_uniform(rng, (n, spec.k), spec.alpha_bound), dtype=init.dtype, device=init.device)
        padded = torch.zeros(n * spec.d, dtype=init.dtype, device=init.device)
        padded[: self.total] = init.detach()
        if spec.mode == "residual":
            model.register_buffer("mcnc_base", init.detach().clone(), persistent=False)
            beta = torch.zeros(n, 1, dtype=init.dtype, device=init.device)
        else:
            beta = padded.view(n, spec.d).norm(dim=1, keepdim=True)  # match the init's chunk norms
        model.register_parameter("mcnc_alpha", nn.Parameter(alpha))
        model.register_parameter("mcnc_beta", nn.Parameter(beta))
        self._root = weakref.ref(model)
        self._cache: Optional[torch.Tensor] = None
        self._key: Optional[tuple] = None

    @property
    def root(self) -> nn.Module:
        return self._root()

    @property
    def alpha(self) -> nn.Parameter:
        return self.root.mcnc_alpha

    @property
    def beta(self) -> nn.Parameter:
        return self.root.mcnc_beta

    @property
    def base(self) -> Optional[torch.Tensor]:
        return getattr(self.root, "mcnc_base", None)

    def flat(self) -> torch.Tensor:
        alpha, beta = self.alpha, self.beta
        key = (alpha._version, beta._version, alpha.data_ptr(), beta.data_ptr())
        if self._cache is not None and self._key == key:
            return self._cache
        if self.generator.w0.device != alpha.device:
            self.generator.to(alpha.device)
        theta = (beta * self.generator(alpha)).reshape(-1)[: self.total]
        if self.base is not None:
            theta = self.base + theta
        self._cache, self._key = theta, key
        return theta

    def clear(self) -> None:
        self._cache = None


class _Slice(nn.Module):
    """Parametrization of one tensor: its slice of the store's flat vector."""

    def __init__(self, store: _Store, start: int, shape: tuple) -> None:
        super().__init__()
        self.store = [store]  # a list: not registered as a submodule, so no duplicate parameters
        self.start, self.shape = start, shape

    def forward(self, _original: torch.Tensor) -> torch.Tensor:
        n = math.prod(self.shape)
        return self.store[0].flat()[self.start: self.start + n].view(self.shape)


def _selected(model: nn.Module, spec: MCNCSpec) -> List[Tuple[str, nn.Module, str, nn.Parameter]]:
    out = []
    for mname, mod in model.named_modules():
        if not isinstance(mod, _COMPRESSIBLE):
            continue
        for pname, p in list(mod.named_parameters(recurse=False)):
            if pname == "bias" and not spec.compress_bias:
                continue
            out.append((f"{mname}.{pname}" if mname else pname, mod, pname, p))
    return out


def wrap(model: nn.Module, spec: MCNCSpec) -> nn.Module:
    """Reparameterise ``model`` in place (Linear/Conv/Embedding weights and biases) and return it.

    Its ``parameters()`` then hold α and β (``model.mcnc_alpha``, ``model.mcnc_beta``) plus what stays
    dense; the original tensors are kept frozen inside the parametrizations.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(spec, MCNCSpec):
        raise TypeError(f"spec must be an MCNCSpec, got {type(spec).__name__}")
    if "_mcnc_store" in model.__dict__:
        raise ValueError("model is already wrapped")
    sel = _selected(model, spec)
    if not sel:
        raise ValueError("model has no Linear/Conv/Embedding parameters to compress")
    layout = [(name, tuple(p.shape)) for name, _, _, p in sel]
    init = torch.cat([p.detach().reshape(-1) for _, _, _, p in sel])
    store = _Store(model, spec, layout, init)
    object.__setattr__(model, "_mcnc_store", store)  # plain attribute: not a submodule
    start = 0
    for _, mod, pname, p in sel:
        p.requires_grad_(False)
        parametrize.register_parametrization(mod, pname, _Slice(store, start, tuple(p.shape)), unsafe=True)
        getattr(mod.parametrizations, pname).original.requires_grad_(False)
        start += p.numel()
    model.register_forward_pre_hook(_fresh_reconstruction)
    return model


def _fresh_reconstruction(model: nn.Module, _inputs: Any) -> None:
    # one generator call per forward: drop the cache unless evaluating without gradients
    if model.training or torch.is_grad_enabled():
        model.__dict__["_mcnc_store"].clear()


def _store(model: nn.Module) -> _Store:
    if "_mcnc_store" not in model.__dict__:
        raise ValueError("model is not wrapped by nnbcd.torch.mcnc.wrap")
    return model.__dict__["_mcnc_store"]


def _dense_leftovers(model: nn.Module) -> Dict[str, torch.Tensor]:
    """State entries that are not reparameterised (BatchNorm, buffers, uncompressed parameters)."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("mcnc_") or ".parametrizations." in key:
            continue
        out[key] = value
    return out


def compressed_state_dict(model: nn.Module) -> Dict[str, Any]:
    """What rebuilds the model exactly: the spec, the layout, α, β and the dense leftovers (and, in
    residual mode, the frozen base), nothing else."""
    st = _store(model)
    out = {"spec": asdict(st.spec), "layout": [list(x) for x in st.layout], "alpha": st.alpha.detach().clone(),
           "beta": st.beta.detach().clone(), "dense": _dense_leftovers(model)}
    if st.base is not None:
        out["base"] = st.base.detach().clone()
    return out


def load_compressed(model: nn.Module, state: Dict[str, Any]) -> nn.Module:
    """Wrap a fresh ``model`` of the same architecture with the stored spec and load α, β, leftovers."""
    spec = MCNCSpec(**state["spec"])
    layout = [(n, tuple(s)) for n, s in state["layout"]]
    got = [(name, tuple(p.shape)) for name, _, _, p in _selected(model, spec)]
    if got != layout:
        raise ValueError("the state dict was saved from another architecture or spec (parameter layout differs)")
    wrap(model, spec)
    st = _store(model)
    if st.alpha.shape != state["alpha"].shape or st.beta.shape != state["beta"].shape:
        raise ValueError("alpha/beta shapes do not match the spec")
    with torch.no_grad():
        st.alpha.copy_(state["alpha"])
        st.beta.copy_(state["beta"])
        if "base" in state:
            st.base.copy_(state["base"])
    missing = model.load_state_dict(state["dense"], strict=False)
    unexpected = [k for k in missing.unexpected_keys]
    if unexpected:
        raise ValueError(f"the state dict has entries this model lacks: {unexpected[:5]}")
    st.clear()
    return model


def bake(model: nn.Module) -> nn.Module:
    """A plain dense copy of a wrapped model: parametrizations removed, weights materialised."""
    st = _store(model)
    with torch.no_grad():
        st.clear()
        values = {name: st.flat()[start: start + math.prod(shape)].view(shape).clone()
                  for (name, shape), start in zip(st.layout, _offsets(st.layout))}
        st.clear()  # no tensor of the graph may be deep-copied
    out = copy.deepcopy(model)
    del out.__dict__["_mcnc_store"]
    out._forward_pre_hooks.clear()
    for name in ("mcnc_alpha", "mcnc_beta", "mcnc_base"):
        if hasattr(out, name):
            delattr(out, name)
    for mod in list(out.modules()):
        if parametrize.is_parametrized(mod):
            # the copy shares its dynamic Parametrized<cls> class with the original, so
            # remove_parametrizations (which edits that class) would break the original: swap the
            # class back and re-register plain parameters instead
            names = list(mod.parametrizations.keys())
            originals = {n: mod.parametrizations[n].original for n in names}
            del mod._modules["parametrizations"]
            mod.__class__ = mod.__class__.__bases__[0]
            for n in names:
                mod.register_parameter(n, nn.Parameter(originals[n].detach().clone()))
    params = dict(out.named_parameters())
    with torch.no_grad():
        for name, value in values.items():
            params[name].copy_(value)
    for p in out.parameters():
        p.requires_grad_(True)
    return out


def _offsets(layout: List[Tuple[str, tuple]]) -> List[int]:
    starts, pos = [], 0
    for _, shape in layout:
        starts.append(pos)
        pos += math.prod(shape)
    return starts


def report(model: nn.Module) -> Dict[str, Any]:
    """Stored numbers vs dense: ``paper_ratio`` = compressed parameters / (α + β) (BN and leftovers
    excluded, as the paper counts); ``honest_ratio`` = all dense parameters / everything stored
    (α, β, leftover parameters, the residual base if any; the seed and spec are a handful of integers)."""
    st = _store(model)
    n_ab = st.alpha.numel() + st.beta.numel()
    leftovers = sum(v.numel() for k, v in _dense_leftovers(model).items() if v.is_floating_point()
                    and not k.endswith(("running_mean", "running_var")))
    base = 0 if st.base is None else st.base.numel()
    dense_total = st.total + leftovers
    return {"compressed_params": st.total, "alpha_beta": n_ab, "dense_leftovers": leftovers, "base": base,
            "stored": n_ab + leftovers + base, "paper_ratio": st.total / n_ab,
            "honest_ratio": dense_total / (n_ab + leftovers + base), "chunks": st.alpha.shape[0]}
