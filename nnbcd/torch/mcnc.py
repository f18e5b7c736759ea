r"""MCNC: manifold-constrained reparameterisation of any ``nn.Module`` (arXiv 2406.19301).

The selected parameters are flattened (``named_parameters`` order, row-major) into :math:`\theta\in\mathbb
R^D`, cut into :math:`n=\lceil D/d\rceil` chunks of size d (the last one padded), and each chunk is

.. math:: \theta_t = \sum_{j\le m}\beta_{t,j}\,\phi(\alpha_{t,j}),\qquad \alpha_{t,j}\in\mathbb R^k,\
   \beta_{t,j}\in\mathbb R \quad(m = 1 \text{ by default}),

where :math:`\phi:\mathbb R^k\to S^{d-1}` is a frozen generator rebuilt from a seed (``"mcnc"``: a sine
MLP with normalised output, the spec's ``mcnc-gen/1``; ``"pranc"``: a linear random map, the PRANC-style
baseline). ``mode="residual"`` adds a frozen base: :math:`\theta = \theta_0 + \beta\phi(\alpha)`, β = 0 at
the start; ``mode="lora"`` generates LoRA factors for a frozen base, :math:`W = W_0 + (s/r)BA`. Only α and β train; BatchNorm/LayerNorm parameters and buffers stay dense.

Built on ``torch.nn.utils.parametrize``: the user's module classes are not edited. The generator runs
once per forward over all chunks (one batched call); in eval mode without gradients the reconstruction
is cached until α or β change.
"""
from __future__ import annotations

import copy
import hashlib
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
MODES = ("scratch", "residual", "lora")
_COMPRESSIBLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


@dataclass(frozen=True)
class MCNCSpec:
    """Everything needed to rebuild the reparameterisation (stored inside a compressed state dict).

    k, d : manifold and chunk dimensions (k < d). width, depth : generator hidden width and number of
    hidden layers. generator : ``"mcnc"`` (sine MLP onto the sphere) or ``"pranc"`` (linear random map).
    omega : input frequency. alpha_bound : α initialised U(−L, L). mode : ``"scratch"``, ``"residual"`` or
    ``"lora"`` (W = W_0 + (lora_alpha/lora_rank)·B·A with vec(A), vec(B) generated; conv weights viewed as
    out × in·k_h·k_w). compress_bias : also reparameterise biases (not in LoRA mode). seed : generator,
    α and LoRA-base seed.
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
    lora_rank: int = 8
    lora_alpha: float = 8.0
    m: int = 1
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
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} is not one of {MODES}")
        if not isinstance(self.m, int) or self.m < 1:
            raise ValueError(f"m (generator terms per chunk) must be a positive int, got {self.m!r}")
        if not isinstance(self.lora_rank, int) or self.lora_rank < 1:
            raise ValueError(f"lora_rank must be a positive int, got {self.lora_rank!r}")
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
        alpha = torch.tensor(_uniform(rng, (n * spec.m, spec.k), spec.alpha_bound), dtype=init.dtype,
                             device=init.device)
        padded = torch.zeros(n * spec.d, dtype=init.dtype, device=init.device)
        padded[: self.total] = init.detach()
        if spec.mode in ("residual", "lora"):
            model.register_buffer("mcnc_base", init.detach().clone(), persistent=False)
            beta = torch.zeros(n, spec.m, dtype=init.dtype, device=init.device)
        else:
            # match the init's chunk norms: β_{t,j} = ‖θ_t^init‖/√m
            beta = padded.view(n, spec.d).norm(dim=1, keepdim=True).expand(n, spec.m) / math.sqrt(spec.m)
            beta = beta.contiguous()
        model.register_parameter("mcnc_alpha", nn.Parameter(alpha))
        model.register_parameter("mcnc_beta", nn.Parameter(beta))
        self._root = weakref.ref(model)
        self._cache: Optional[Tuple[torch.Tensor, ...]] = None
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

    def parts(self) -> Tuple[torch.Tensor, ...]:
        """The reconstructed tensors of the layout, flattened, as views of one vector.

        One ``split`` per forward: its backward is a single concatenation, where one slice per tensor
        would allocate and zero-fill a full-length gradient for each (measured: a third of the step).
        """
        alpha, beta = self.alpha, self.beta
        key = (alpha._version, beta._version, alpha.data_ptr(), beta.data_ptr())
        if self._cache is not None and self._key == key:
            return self._cache
        if self.generator.w0.device != alpha.device:
            self.generator.to(alpha.device)
        phi = self.generator(alpha)
        if beta.shape[1] == 1:
            theta = (beta * phi).reshape(-1)
        else:
            theta = (beta[:, :, None] * phi.view(beta.shape[0], beta.shape[1], -1)).sum(dim=1).reshape(-1)
        sizes = [math.prod(shape) for _, shape in self.layout]
        pieces = torch.split(theta, sizes + [theta.numel() - self.total])[:-1]
        if self.base is not None:
            pieces = tuple(b + t for b, t in zip(torch.split(self.base, sizes), pieces))
        self._cache, self._key = pieces, key
        return pieces

    def clear(self) -> None:
        self._cache = None


class _Slice(nn.Module):
    """Parametrization of one tensor: its piece of the store's reconstruction."""

    def __init__(self, store: _Store, index: int, shape: tuple) -> None:
        super().__init__()
        self.store = [store]  # a list: not registered as a submodule, so no duplicate parameters
        self.index, self.shape = index, shape

    def forward(self, _original: torch.Tensor) -> torch.Tensor:
        return self.store[0].parts()[self.index].view(self.shape)


def _selected(model: nn.Module, spec: MCNCSpec) -> List[Tuple[str, nn.Module, str, nn.Parameter]]:
    out = []
    for mname, mod in model.named_modules():
        if not isinstance(mod, _COMPRESSIBLE):
            continue
        for pname, p in list(mod.named_parameters(recurse=False)):
            if pname == "bias" and (spec.mode == "lora" or not spec.compress_bias):
                continue
            out.append((f"{mname}.{pname}" if mname else pname, mod, pname, p))
    return out


def _plan(model: nn.Module, spec: MCNCSpec) -> tuple:
    """``(selected, layout, init)``: the tensors reparameterised, the flat vector's layout and its value
    at the start (the weights themselves; in LoRA mode a seeded A and a zero B per layer)."""
    sel = _selected(model, spec)
    if not sel:
        raise ValueError("model has no Linear/Conv/Embedding parameters to compress")
    if spec.mode != "lora":
        return sel, [(name, tuple(p.shape)) for name, _, _, p in sel], torch.cat(
            [p.detach().reshape(-1) for _, _, _, p in sel])
    rng = np.random.Generator(np.random.PCG64(spec.seed + 2))
    layout, parts = [], []
    ref = sel[0][3]
    for name, _, _, p in sel:
        out_f, in_f = p.shape[0], p[0].numel()
        layout += [(name + ".lora_A", (spec.lora_rank, in_f)), (name + ".lora_B", (out_f, spec.lora_rank))]
        a = _uniform(rng, (spec.lora_rank, in_f), 1.0 / math.sqrt(in_f))  # frozen seeded base of A
        parts += [torch.tensor(a.reshape(-1), dtype=ref.dtype), torch.zeros(out_f * spec.lora_rank, dtype=ref.dtype)]
    return sel, layout, torch.cat(parts).to(ref.device)


def _digest(tensors: List[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


class _LoRA(nn.Module):
    r"""Parametrization :math:`W = W_0 + (s/r)\,BA` with A, B pieces ``index``, ``index + 1`` of the store."""

    def __init__(self, store: _Store, index: int, rank: int, shape: tuple, scale: float) -> None:
        super().__init__()
        self.store = [store]
        self.index, self.rank, self.shape, self.scale = index, rank, shape, scale

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        parts = self.store[0].parts()
        a = parts[self.index].view(self.rank, -1)
        b = parts[self.index + 1].view(-1, self.rank)
        return original + self.scale * (b @ a).view(self.shape)


def wrap(model: nn.Module, spec: MCNCSpec) -> nn.Module:
    """Reparameterise ``model`` in place (Linear/Conv/Embedding weights and biases) and return it.

    Its ``parameters()`` then hold α and β (``model.mcnc_alpha``, ``model.mcnc_beta``) plus what stays
    dense; the original tensors are kept frozen inside the parametrizations. In ``"residual"`` and
    ``"lora"`` modes the original weights are the frozen base θ_0 / W_0, which a compressed state dict
    identifies by its SHA-256 instead of storing it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(spec, MCNCSpec):
        raise TypeError(f"spec must be an MCNCSpec, got {type(spec).__name__}")
    if "_mcnc_store" in model.__dict__:
        raise ValueError("model is already wrapped")
    sel, layout, init = _plan(model, spec)
    store = _Store(model, spec, layout, init)
    store.base_digest = _digest([p for _, _, _, p in sel]) if spec.mode != "scratch" else None
    object.__setattr__(model, "_mcnc_store", store)  # plain attribute: not a submodule
    for k, (_, mod, pname, p) in enumerate(sel):
        p.requires_grad_(False)
        if spec.mode == "lora":
            param = _LoRA(store, 2 * k, spec.lora_rank, tuple(p.shape), spec.lora_alpha / spec.lora_rank)
        else:
            param = _Slice(store, k, tuple(p.shape))
        parametrize.register_parametrization(mod, pname, param, unsafe=True)
        getattr(mod.parametrizations, pname).original.requires_grad_(False)
    if spec.mode == "lora":  # a frozen base: its biases do not train either
        for _, mod, _, _ in sel:
            if getattr(mod, "bias", None) is not None:
                mod.bias.requires_grad_(False)
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
    """What rebuilds the model exactly: the spec, the layout, α, β and the dense leftovers, nothing else.
    In residual / LoRA mode the frozen base is not stored: its SHA-256 is, and :func:`load_compressed`
    checks it against the model it is given."""
    st = _store(model)
    return {"spec": asdict(st.spec), "layout": [list(x) for x in st.layout], "alpha": st.alpha.detach().clone(),
            "beta": st.beta.detach().clone(), "dense": _dense_leftovers(model), "base_sha256": st.base_digest}


def load_compressed(model: nn.Module, state: Dict[str, Any]) -> nn.Module:
    """Wrap a fresh ``model`` of the same architecture (holding the same frozen base in residual / LoRA
    mode) with the stored spec and load α, β and the leftovers."""
    spec = MCNCSpec(**state["spec"])
    layout = [(n, tuple(s)) for n, s in state["layout"]]
    if _plan(model, spec)[1] != layout:
        raise ValueError("the state dict was saved from another architecture or spec (parameter layout differs)")
    wrap(model, spec)
    st = _store(model)
    if st.base_digest != state.get("base_sha256"):
        raise ValueError("the model's frozen base weights differ from those the state was trained on (SHA-256)")
    if st.alpha.shape != state["alpha"].shape or st.beta.shape != state["beta"].shape:
        raise ValueError("alpha/beta shapes do not match the spec")
    with torch.no_grad():
        st.alpha.copy_(state["alpha"])
        st.beta.copy_(state["beta"])
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
        values = {f"{mname}.{pname}" if mname else pname: getattr(mod, pname).detach().clone()
                  for mname, mod in model.named_modules() if parametrize.is_parametrized(mod)
                  for pname in mod.parametrizations.keys()}
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


def report(model: nn.Module) -> Dict[str, Any]:
    """Stored numbers vs dense: ``paper_ratio`` = reparameterised numbers (weights, or LoRA factors) /
    (α + β), BN and leftovers excluded as the paper counts; ``honest_ratio`` = those numbers plus the dense
    leftover parameters over everything stored (α, β, leftovers; the seed and spec are a handful of
    integers). ``external_base`` counts the frozen base of residual / LoRA mode, identified by hash, not
    stored."""
    st = _store(model)
    n_ab = st.alpha.numel() + st.beta.numel()
    leftovers = sum(v.numel() for k, v in _dense_leftovers(model).items() if v.is_floating_point()
                    and not k.endswith(("running_mean", "running_var")))
    base = 0 if st.spec.mode == "scratch" else sum(
        mod.parametrizations[name].original.numel() for mod in model.modules()
        if parametrize.is_parametrized(mod) for name in mod.parametrizations.keys())
    dense_total = st.total + leftovers
    return {"compressed_params": st.total, "alpha_beta": n_ab, "dense_leftovers": leftovers,
            "external_base": base,
            "stored": n_ab + leftovers, "paper_ratio": st.total / n_ab,
            "honest_ratio": dense_total / (n_ab + leftovers), "chunks": st.beta.shape[0]}
