"""Reparameterising a module: the store of α and β, the parametrizations, ``wrap``, ``bake``, ``param_groups``.

Built on ``torch.nn.utils.parametrize``: the user's module classes are not edited.
"""
from __future__ import annotations

import copy
import fnmatch
import hashlib
import math
import weakref
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from .generator import MCNCGenerator
from .spec import MCNCSpec, _chunks, _uniform

_COMPRESSIBLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


class _Store:
    """α, β (parameters of the root model), the generator, the frozen base (residual mode, a buffer of
    the root) and the layout of the flat vector. Not a submodule, so containers like ``nn.Sequential``
    never call it; it reads its tensors from the root so ``model.to(...)`` moves them."""

    def __init__(self, model: nn.Module, spec: MCNCSpec, layout: List[Tuple[str, tuple]], init: torch.Tensor):
        self.spec = spec
        self.layout = layout
        self.total, n = _chunks(layout, spec.d)
        self.generator = MCNCGenerator(spec)
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

    @torch.compiler.disable
    def parts(self) -> Tuple[torch.Tensor, ...]:
        """The reconstructed tensors of the layout, flattened, as views of one vector.

        One ``split`` per forward: its backward is a single concatenation, where one slice per tensor
        would allocate and zero-fill a full-length gradient for each (measured: a third of the step).
        Always eager, as is the pre-hook that empties the cache: under ``torch.compile`` a traced
        version defers the hook's side effect past the forward and the weights of the last step,
        detached, were used (α and β got zero gradients on CUDA).
        """
        alpha, beta = self.alpha, self.beta
        # the key holds the tensors themselves (compared by identity) so that neither a freed address
        # nor a recycled id can make another alpha look cached; versions catch in-place updates
        key = (alpha._version, beta._version, alpha.data_ptr(), beta.data_ptr())
        if (self._cache is not None and self._key[0] is alpha and self._key[1] is beta
                and self._key[2] == key):
            return self._cache
        L, seen = self.spec.alpha_bound, alpha
        if self.spec.alpha_constraint == "clamp":
            seen = alpha.clamp(-L, L)
        elif self.spec.alpha_constraint == "wrap":
            seen = torch.remainder(alpha + L, 2 * L) - L
        theta = self.generator.combine(seen, beta).reshape(-1)
        sizes = [math.prod(shape) for _, shape in self.layout]
        pieces = torch.split(theta, sizes + [theta.numel() - self.total])[:-1]
        if self.base is not None:
            pieces = tuple(b + t for b, t in zip(torch.split(self.base, sizes), pieces))
        self._cache, self._key = pieces, (alpha, beta, key)
        return pieces

    def clear(self) -> None:
        self._cache = self._key = None

    def __deepcopy__(self, memo: Dict[int, Any]) -> "_Store":
        # copy.deepcopy(model) records the model's copy in memo before it copies the model's __dict__
        # (where the store lives): the copy's store must read α and β from that copy, not through the
        # weak reference to the original. The cache is dropped: after a forward with gradients it holds
        # non-leaf tensors, which refuse to be deep-copied, and it belongs to the original's α and β.
        root = memo.get(id(self.root))
        if root is None:  # a submodule copied on its own: its parametrizations still read the model's α, β
            return self
        new = copy.copy(self)
        memo[id(self)] = new
        new.layout = list(self.layout)
        new.generator = copy.deepcopy(self.generator, memo)
        new._root = weakref.ref(root)
        new.clear()
        return new


class _Slice(nn.Module):
    """Parametrization of one tensor: its piece of the store's reconstruction."""

    def __init__(self, store: _Store, index: int, shape: tuple) -> None:
        super().__init__()
        self.store = [store]  # a list: not registered as a submodule, so no duplicate parameters
        self.index, self.shape = index, shape

    def forward(self, _original: torch.Tensor) -> torch.Tensor:
        return self.store[0].parts()[self.index].view(self.shape)


def _excluded(name: str, pattern: str) -> bool:
    return name == pattern or name.startswith(pattern + ".") or fnmatch.fnmatchcase(name, pattern)


def _selected(model: nn.Module, spec: MCNCSpec) -> List[Tuple[str, nn.Module, str, nn.Parameter]]:
    candidates = [(f"{mname}.{pname}" if mname else pname, mod, pname, p)
                  for mname, mod in model.named_modules() if isinstance(mod, _COMPRESSIBLE)
                  for pname, p in mod.named_parameters(recurse=False)
                  if not (pname == "bias" and (spec.mode == "lora" or not spec.compress_bias))]
    for pattern in spec.exclude:
        if not any(_excluded(c[0], pattern) for c in candidates):
            raise ValueError(f"exclude entry {pattern!r} matches none of the compressible parameters "
                             f"{[c[0] for c in candidates]}")
    kept = [c for c in candidates if not any(_excluded(c[0], e) for e in spec.exclude)]
    names: Dict[int, List[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):  # every name of every tensor
        names.setdefault(id(p), []).append(name)
    for name, _, _, p in kept:
        tied = names[id(p)]
        if len(tied) > 1:  # reparameterising one name would freeze or untie the others
            raise ValueError(f"{tied} are one tied tensor, which MCNC cannot share between modules; keep it "
                             f"dense with exclude={tuple(tied)!r}")
    return kept


def _plan(model: nn.Module, spec: MCNCSpec) -> tuple:
    """``(selected, layout, init)``: the tensors reparameterised, the flat vector's layout and its value
    at the start (the weights themselves; in LoRA mode a seeded A and a zero B per layer)."""
    sel = _selected(model, spec)
    if not sel:
        raise ValueError("nothing to compress: the model has no Linear/Conv/Embedding parameters, or "
                         f"exclude={spec.exclude!r} removed them all")
    kinds = {(p.dtype, p.device) for _, _, _, p in sel}
    if len(kinds) > 1 or not sel[0][3].is_floating_point():
        raise ValueError("the compressed tensors must share one floating dtype and device, got "
                         f"{sorted((n, str(p.dtype), str(p.device)) for n, _, _, p in sel)[:6]}; "
                         "convert the model (model.to(dtype, device)) or exclude= the odd ones")
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
    r"""Reparameterise ``model`` in place (Linear/Conv/Embedding weights and biases) and return it.

    The selected tensors, flattened in ``named_parameters`` order, become :math:`n = \lceil D/d\rceil`
    chunks :math:`\theta_t = \sum_j\beta_{t,j}\phi(\alpha_{t,j})` (arXiv 2406.19301). Its
    ``parameters()`` then hold α and β (``model.mcnc_alpha``, ``model.mcnc_beta``) plus what stays dense;
    the original tensors are kept frozen inside the parametrizations. In ``"residual"`` and ``"lora"``
    modes the original weights are the frozen base θ_0 / W_0, which a compressed state dict identifies
    by its SHA-256 instead of storing it.

    Parameters
    ----------
    model : torch.nn.Module
        Its compressed tensors must share one floating dtype and device.
    spec : MCNCSpec

    Returns
    -------
    torch.nn.Module
        ``model`` itself. α: (n·m, k), initialised U(−L, L) from PCG64(seed + 1); β: (n, m), the initial
        chunk norms / √m (zeros in residual and LoRA modes); both in the model's dtype and device.

    Raises
    ------
    TypeError
        ``model`` is not a module or ``spec`` not an MCNCSpec.
    ValueError
        The model is already wrapped, a parameter holds NaN or Inf (named), nothing is left to compress,
        ``exclude`` names nothing, a tied tensor is selected, or the tensors' dtypes/devices differ. The
        model is left as it was.
    """
    _check_unwrapped(model)
    if not isinstance(spec, MCNCSpec):
        raise TypeError(f"spec must be an MCNCSpec, got {type(spec).__name__}")
    for name, p in model.named_parameters():
        # the start (β = the chunk norms, or the frozen base) is read from the weights: NaN/Inf would
        # train from NaN without an error
        if (p.is_floating_point() or p.is_complex()) and not bool(torch.isfinite(p).all()):
            raise ValueError(f"parameter {name!r} holds NaN or Inf: wrap a model with finite weights")
    sel, layout, init = _plan(model, spec)
    return _attach(model, spec, sel, layout, init)


def _check_unwrapped(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if "_mcnc_store" in model.__dict__:
        raise ValueError("model is already wrapped")


def _attach(model: nn.Module, spec: MCNCSpec, sel: list, layout: List[Tuple[str, tuple]],
            init: torch.Tensor) -> nn.Module:
    """Wrap ``model`` with ``_plan``'s result: the part of :func:`wrap` that changes the model."""
    store = _Store(model, spec, layout, init)
    store.generator.weights(store.alpha)  # the casts for the model's dtype and device, made eagerly
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


@torch.compiler.disable
def _fresh_reconstruction(model: nn.Module, _inputs: Any) -> None:
    # one generator call per forward: drop the cache unless evaluating without gradients
    if model.training or torch.is_grad_enabled():
        model.__dict__["_mcnc_store"].clear()


def _store(model: nn.Module) -> _Store:
    if "_mcnc_store" not in model.__dict__:
        raise ValueError("model is not wrapped by nnbcd.torch.mcnc.wrap")
    return model.__dict__["_mcnc_store"]



def bake(model: nn.Module) -> nn.Module:
    """A plain dense copy of a wrapped model: parametrizations removed, weights materialised.

    Parameters
    ----------
    model : torch.nn.Module
        Wrapped by :func:`wrap`; left as it is.

    Returns
    -------
    torch.nn.Module
        A deep copy whose reparameterised tensors hold their current reconstruction as ordinary
        trainable parameters (no α, β, generator or hook).

    Raises
    ------
    ValueError
        ``model`` is not wrapped.
    """
    st = _store(model)
    with torch.no_grad():
        st.clear()
        values = {f"{mname}.{pname}" if mname else pname: getattr(mod, pname).detach().clone()
                  for mname, mod in model.named_modules() if parametrize.is_parametrized(mod)
                  for pname in mod.parametrizations.keys()}
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


def param_groups(model: nn.Module, lr: float = 0.05, dense_lr: float = 1e-3) -> List[Dict[str, Any]]:
    """Optimizer parameter groups for a wrapped model (spec §6).

    Parameters
    ----------
    model : torch.nn.Module
        Wrapped by :func:`wrap`.
    lr : float
        Learning rate of α and β.
    dense_lr : float
        Learning rate of every other trainable parameter (BatchNorm, excluded or uncompressible layers).

    Returns
    -------
    list of dict
        ``[{"params": [α, β], "lr": lr}, {"params": rest, "lr": dense_lr}]``; the second group is left
        out when empty.

    Raises
    ------
    ValueError
        ``model`` is not wrapped.

    Examples
    --------
    >>> opt = torch.optim.Adam(param_groups(model, lr=0.05, dense_lr=1e-3))  # doctest: +SKIP
    """
    st = _store(model)
    ab = [st.alpha, st.beta]
    rest = [p for p in model.parameters() if p.requires_grad and all(p is not q for q in ab)]
    return [{"params": ab, "lr": lr}] + ([{"params": rest, "lr": dense_lr}] if rest else [])
