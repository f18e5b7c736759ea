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
import fnmatch
import hashlib
import math
import numbers
import weakref
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.utils import parametrize

__all__ = ["MCNCSpec", "Generator", "wrap", "bake", "compressed_state_dict", "load_compressed", "report",
           "reconstruction_flops", "coverage", "param_groups"]

# generator activations and their derivatives, both as functions of the pre-activation z
_ACTS = {"sin": (torch.sin, torch.cos),
         "tanh": (torch.tanh, lambda z: 1.0 - torch.tanh(z) ** 2),
         "relu": (torch.relu, lambda z: (z > 0).to(z.dtype)),
         "identity": (lambda z: z, torch.ones_like),
         "leaky_relu": (nn.functional.leaky_relu, lambda z: 0.01 + 0.99 * (z > 0).to(z.dtype))}
MODES = ("scratch", "residual", "lora")
ALPHA_CONSTRAINTS = ("none", "clamp", "wrap")
GENERATOR_VERSIONS = ("mcnc-gen/1",)
FORMAT, FORMAT_VERSION = "nnbcd.mcnc", 1
_COMPRESSIBLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


@dataclass(frozen=True)
class MCNCSpec:
    """Everything needed to rebuild the reparameterisation (stored inside a compressed state dict).

    k, d : manifold and chunk dimensions (k < d). width, depth : generator hidden width and number of
    hidden layers. generator : ``"mcnc"`` (sine MLP onto the sphere) or ``"pranc"`` (linear random map).
    omega : input frequency. alpha_bound : α initialised U(−L, L). mode : ``"scratch"``, ``"residual"`` or
    ``"lora"`` (W = W_0 + (lora_alpha/lora_rank)·B·A with vec(A), vec(B) generated; conv weights viewed as
    out × in·k_h·k_w). compress_bias : also reparameterise biases (not in LoRA mode). exclude : names
    kept dense: a module name (``"0"``, ``"head"``) keeps all its parameters, a parameter name
    (``"0.bias"``) or a glob (``"*.bias"``, ``"layer4.*"``) the ones it matches. alpha_constraint :
    ``"none"`` (the paper), ``"clamp"`` (the generator sees clamp(α, −L, L)) or ``"wrap"`` (it sees α
    wrapped periodically into [−L, L)); α itself is stored unconstrained. seed : generator, α and
    LoRA-base seed. version : the generator's definition (``"mcnc-gen/1"``, spec §2).
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
        if isinstance(self.exclude, str) or not all(isinstance(e, str) and e for e in self.exclude):
            raise TypeError(f"exclude must be a sequence of non-empty names or globs, got {self.exclude!r}")
        object.__setattr__(self, "exclude", tuple(self.exclude))  # a list from a stored spec, too


def _chunks(layout: List[Tuple[str, tuple]], d: int) -> Tuple[int, int]:
    r"""``(D, n)``: the flat vector's length and its number of chunks, :math:`n = \lceil D/d\rceil`."""
    total = int(sum(math.prod(shape) for _, shape in layout))
    return total, math.ceil(total / d)


def _uniform(rng: np.random.Generator, shape: tuple, bound: float) -> np.ndarray:
    return bound * (2.0 * rng.random(shape) - 1.0)


class Generator(nn.Module):
    r"""The frozen map :math:`\phi` with weights drawn from ``numpy.random.PCG64(seed)`` (identical on
    every device and process): A = √(6/fan_in)(2u−1), c = (2u−1)/√fan_in, layer by layer.

    ``"mcnc"``: hidden layers :math:`h_i = \sigma(A_i h_{i-1} + c_i)`, :math:`h_0 = \omega\alpha`, then
    :math:`\phi(\alpha) = y/\lVert y\rVert` with the linear output :math:`y = A_o h_H + c_o`, evaluated
    (and differentiated) by :class:`_Generate`. ``"pranc"``: :math:`\phi(\alpha) = A\alpha/\sqrt k`.
    """

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
        self._cast: Dict[tuple, Tuple[torch.Tensor, ...]] = {}

    def weights(self, like: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        r"""``(Ã, K, A_1, c_1, …, A_H, c_H)`` in ``like``'s dtype and device, built once per dtype/device:
        :math:`\tilde A = [A_o\ c_o]` (d × (h+1); for ``"pranc"`` A/√k, no bias column) and its Gram
        matrix :math:`K = \tilde A^T\tilde A`, formed in float64."""
        cast = self._cast.get((like.dtype, like.device))
        return cast if cast is not None else self._build(like.dtype, like.device)

    @torch.compiler.disable
    def _build(self, dtype: torch.dtype, device: torch.device) -> Tuple[torch.Tensor, ...]:
        # always run eagerly: under torch.compile(mode="reduce-overhead") a tensor made inside the
        # compiled region lives in a CUDA graph's pool and is overwritten by the next replay
        last = self.n_layers - 1
        if self.spec.generator == "pranc":
            a = self.w0.to(torch.float64) / math.sqrt(self.spec.k)
        else:
            a = torch.cat([getattr(self, f"w{last}"), getattr(self, f"b{last}")[:, None]], 1).to(torch.float64)
        hidden = [getattr(self, f"{x}{i}") for i in range(last) for x in "wb"]
        cast = tuple(t.to(device, dtype).contiguous() for t in [a, a.T @ a] + hidden)
        self._cast[(dtype, device)] = cast
        return cast

    def _apply(self, fn, recurse=True):  # .to()/.cuda()/.double() move the buffers: drop the casts
        self._cast = {}
        return super()._apply(fn, recurse)

    def combine(self, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        r""":math:`\theta_t = \sum_j \beta_{t,j}\phi(\alpha_{t,j})` for α of shape (n·m, k) and β of shape
        (n, m): an (n, d) tensor."""
        n, m = beta.shape
        if self.spec.generator == "pranc":
            phi = alpha @ self.weights(alpha)[0].T
            return (beta.reshape(n, m, 1) * phi.view(n, m, -1)).sum(1) if m > 1 else beta * phi
        return _Generate.apply(alpha, beta, self)

    def forward(self, alpha: torch.Tensor) -> torch.Tensor:
        """ϕ(α) row by row: (rows, k) → (rows, d)."""
        return self.combine(alpha, alpha.new_ones(alpha.shape[0], 1))


def _hidden_layers(alpha: torch.Tensor, spec: MCNCSpec, hidden: List[torch.Tensor],
                   slopes: Optional[List[torch.Tensor]] = None) -> torch.Tensor:
    r"""The generator's hidden layers :math:`h_i = \sigma(A_i h_{i-1} + c_i)`, :math:`h_0 = \omega\alpha`,
    for ``hidden = [A_1, c_1, …]``; appends :math:`\sigma'(z_i)` to ``slopes`` when one is given."""
    act, slope = _ACTS[spec.activation]
    h = alpha if spec.omega == 1.0 else alpha * spec.omega  # ×1 is exact: one kernel fewer
    for i in range(0, len(hidden), 2):
        z = torch.addmm(hidden[i + 1], h, hidden[i].T)
        if slopes is not None:
            slopes.append(slope(z))
        h = act(z)
    return h


class _Generate(torch.autograd.Function):
    r"""Rows :math:`\theta_t = \sum_j \beta_{t,j}\, y_{tj}/r_{tj}` with :math:`y_{tj} = \tilde A\tilde h_{tj}`,
    :math:`\tilde h = [h_H; 1]`, :math:`r_{tj} = \lVert y_{tj}\rVert`: one GEMM over n × d forward and one
    backward, everything else on n × h.

    With :math:`G_t = \partial L/\partial\theta_t`, :math:`M_t = \tilde A^T G_t` (the backward GEMM) and
    :math:`q_{tj} = \langle G_t, y_{tj}\rangle = \langle M_t, \tilde h_{tj}\rangle`:

    .. math:: \frac{\partial L}{\partial\beta_{tj}} = \frac{q_{tj}}{r_{tj}},\qquad
       \frac{\partial L}{\partial\tilde h_{tj}} = \tilde A^T\frac{\beta_{tj}}{r_{tj}}\Big(G_t -
       \frac{q_{tj}}{r_{tj}^2}y_{tj}\Big) = \frac{\beta_{tj}}{r_{tj}}\Big(M_t - \frac{q_{tj}}{r_{tj}^2}
       K\tilde h_{tj}\Big),

    then back through the hidden layers with the saved slopes :math:`\sigma'(z_i)`. Neither y nor the
    n × d gradient with respect to it is formed: autograd's graph of ``β·normalize(A h + c)`` makes about
    ten passes over n × d. The guard :math:`r\ge 10^{-12}` acts in the forward pass only (a random sine
    generator never comes near it).
    """

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, beta: torch.Tensor, gen: "Generator") -> torch.Tensor:
        spec = gen.spec
        a, gram, *hidden = gen.weights(alpha)
        slopes: List[torch.Tensor] = []
        h = _hidden_layers(alpha, spec, hidden, slopes)
        n, m = beta.shape
        ht = torch.cat([h, h.new_ones(h.shape[0], 1)], 1)
        y = ht @ a.T
        rinv = torch.linalg.vector_norm(y, dim=1).clamp_min_(1e-12).reciprocal_()
        s = beta.reshape(-1) * rinv
        theta = y.mul_(s[:, None]) if m == 1 else torch.bmm(s.view(n, 1, m), y.view(n, m, -1)).view(n, -1)
        # constants (the generator's weights) ride on ctx; what depends on alpha/beta is saved
        ctx.consts, ctx.omega, ctx.m = (a, gram, hidden[0::2]), spec.omega, m
        ctx.save_for_backward(ht, rinv, s, *slopes)
        return theta

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor) -> tuple:
        ht, rinv, s, *slopes = ctx.saved_tensors
        a, gram, ws = ctx.consts
        mt = g @ a
        if ctx.m > 1:
            mt = mt.repeat_interleave(ctx.m, 0)
        q = torch.linalg.vecdot(mt, ht)
        dbeta = q * rinv
        dh = torch.addcmul(mt * s[:, None], ht @ gram, (dbeta * s * rinv)[:, None], value=-1.0)[:, :-1]
        for sl, w in zip(reversed(slopes), reversed(ws)):
            dh = (dh * sl) @ w
        return (dh if ctx.omega == 1.0 else dh * ctx.omega), dbeta.view(-1, ctx.m), None


class _Store:
    """α, β (parameters of the root model), the generator, the frozen base (residual mode, a buffer of
    the root) and the layout of the flat vector. Not a submodule, so containers like ``nn.Sequential``
    never call it; it reads its tensors from the root so ``model.to(...)`` moves them."""

    def __init__(self, model: nn.Module, spec: MCNCSpec, layout: List[Tuple[str, tuple]], init: torch.Tensor):
        self.spec = spec
        self.layout = layout
        self.total, n = _chunks(layout, spec.d)
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
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "torch_version": torch.__version__,
            "spec": asdict(st.spec), "layout": [list(x) for x in st.layout], "alpha": st.alpha.detach().clone(),
            "beta": st.beta.detach().clone(), "dense": _dense_leftovers(model), "base_sha256": st.base_digest}


def load_compressed(model: nn.Module, state: Dict[str, Any]) -> nn.Module:
    """Wrap a fresh ``model`` of the same architecture (holding the same frozen base in residual / LoRA
    mode) with the stored spec and load α, β and the leftovers. Everything is checked before the model
    is touched: on any mismatch it raises ``ValueError`` and leaves ``model`` as it was."""
    required = ("spec", "layout", "alpha", "beta", "dense")
    if not isinstance(state, dict) or any(k not in state for k in required):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"not an nnbcd MCNC compressed state dict (needs {required}; got {got})")
    if state.get("format", FORMAT) != FORMAT or state.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise ValueError(f"state format {state.get('format')!r} version {state.get('format_version')!r} is not "
                         f"{FORMAT!r} <= {FORMAT_VERSION}")
    try:
        spec = MCNCSpec(**state["spec"])
    except TypeError as exc:
        raise ValueError(f"the stored spec does not fit this nnbcd's MCNCSpec: {exc}") from None
    layout = [(n, tuple(s)) for n, s in state["layout"]]
    sel, planned, _ = _plan(model, spec)
    if planned != layout:
        raise ValueError("the state dict was saved from another architecture or spec (parameter layout differs)")
    if (spec.mode != "scratch" and _digest([p for _, _, _, p in sel]) != state.get("base_sha256")):
        raise ValueError("the model's frozen base weights differ from those the state was trained on (SHA-256)")
    n = _chunks(layout, spec.d)[1]
    if tuple(state["alpha"].shape) != (n * spec.m, spec.k) or tuple(state["beta"].shape) != (n, spec.m):
        raise ValueError(f"alpha/beta shapes {tuple(state['alpha'].shape)}/{tuple(state['beta'].shape)} do not "
                         f"match the spec ({n * spec.m}, {spec.k})/({n}, {spec.m})")
    reparam = {name for name, _, _, _ in sel}
    own = {k: v for k, v in model.state_dict().items() if k not in reparam}
    if set(own) != set(state["dense"]):
        raise ValueError(f"dense entries differ: the state lacks {sorted(set(own) - set(state['dense']))[:5]}, "
                         f"the model lacks {sorted(set(state['dense']) - set(own))[:5]}")
    bad = [k for k, v in state["dense"].items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"dense entries of another shape: {bad[:5]}")
    wrap(model, spec)
    st = _store(model)
    with torch.no_grad():
        st.alpha.copy_(state["alpha"])
        st.beta.copy_(state["beta"])
    model.load_state_dict(state["dense"], strict=False)
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


def param_groups(model: nn.Module, lr: float = 0.05, dense_lr: float = 1e-3) -> List[Dict[str, Any]]:
    """Optimizer parameter groups for a wrapped model (spec §6): α and β at ``lr``, every other trainable
    parameter (BatchNorm, excluded or uncompressible layers) at ``dense_lr``; an empty group is left out.

    >>> opt = torch.optim.Adam(param_groups(model, lr=0.05, dense_lr=1e-3))
    """
    st = _store(model)
    ab = [st.alpha, st.beta]
    rest = [p for p in model.parameters() if p.requires_grad and all(p is not q for q in ab)]
    return [{"params": ab, "lr": lr}] + ([{"params": rest, "lr": dense_lr}] if rest else [])


def reconstruction_flops(spec: MCNCSpec, chunks: int) -> Dict[str, int]:
    r"""Multiply-add FLOPs (2 per multiply-add) of the generator's matrix products for ``chunks`` chunks.

    Per generated row (n·m rows; h = width, H = depth): forward :math:`2kh + 2(H-1)h^2 + 2(h+1)d`, and
    the m > 1 combination (a batched product) :math:`2d`. The backward of :class:`_Generate` adds the
    projection :math:`M = G\tilde A` (:math:`2(h+1)d` per chunk), the Gram product (:math:`2(h+1)^2`
    per row) and the hidden layers' input gradients (:math:`2(H-1)h^2 + 2hk` per row). ``"pranc"``:
    :math:`2kd` per row forward and again backward. Elementwise work (sines, the norm, the scaling:
    about :math:`Hh + 3d` per row) is not counted; the generator's weights never get gradients.
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
    r"""How well ϕ(U[−L, L]^k) covers the sphere S^{d−1} (spec §13): the mean and standard deviation of
    the pairwise cosines :math:`\langle\phi(\alpha_i), \phi(\alpha_j)\rangle`, i < j, over ``samples``
    random α (uniform points on the sphere give 0 ± 1/√d), and the relative spread std/mean of
    :math:`\lVert y\rVert` before normalisation (``"mcnc"`` only)."""
    if not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an int >= 2, got {samples!r}")
    gen = Generator(spec).double()
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
