r"""Low-rank replacement of ``Linear`` and ``Conv2d`` layers with ranks from EVBMF (arXiv 2408.16289).

* ``Linear`` (and 1×1 ``Conv2d``): SVD split :math:`W \approx (U_r\Sigma_r^{1/2})(\Sigma_r^{1/2}V_r^T)`, two
  layers; :math:`\|W - BA\|_F^2 = \sum_{h>r}\sigma_h^2`.
* ``Conv2d`` (groups = 1): Tucker-2 by truncated HOSVD, :math:`W \approx G\times_0 U_{out}\times_1 U_{in}`,
  replaced by 1×1 (in→r_in) → k×k core (r_in→r_out, the original stride/padding/dilation) → 1×1 (r_out→out,
  the original bias). Exact when the ranks are full, because 1×1 channel mixing commutes with padding and
  strided sampling.

Ranks: EVBMF (:func:`nnbcd.ops.vbmf.evbmf`) on the weight (Linear) or on the two mode unfoldings of the
kernel (Conv2d), then the spec's post-processing: rank-0 policy, optional weakening, clamping, and a
benefit check (a layer is replaced only if its parameter count drops). Layers that cannot be handled
(groups > 1, transposed convolutions, no benefit, rank 0 with ``on_zero="keep"``) are left as they are
and listed in the report with the reason.
"""
from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .._validation import check_choice, check_int, check_real
from ..ops.vbmf import TAU_MODES, evbmf_batch

__all__ = ["LayerReport", "LowRankReport", "budget_ranks", "decompose", "estimate_ranks"]

logger = logging.getLogger(__name__)


@dataclass
class LayerReport:
    r"""One row of the report: what was done to one layer and what it costs.

    Attributes
    ----------
    name : str
        The module's (first) name in ``named_modules``.
    kind : str
        Its class name (``"Linear"``, ``"Conv2d"``, ...).
    shape : tuple of int
        The weight's shape.
    ranks : tuple of int
        ``(r,)`` for an SVD split, ``(r_out, r_in)`` for Tucker-2; empty when the layer was not selected.
    action : str
        ``"svd split"``, ``"tucker2"`` or ``"kept (reason)"``.
    params_before, params_after : int
        The layer's weight count, and the factors' count after replacement.
    rel_error : float
        :math:`\|W - \hat W\|_F / \|W\|_F` of the replacement (0 when kept).
    macs_before, macs_after : int or None
        Multiply-accumulates for the example input, when one was given.
    sigma2 : tuple of float
        EVBMF's noise-variance estimates, one per unfolding (empty with given ranks).
    aliases : tuple of str
        Further names the same module is registered under (all get the same block).
    """

    name: str
    kind: str
    shape: tuple
    ranks: tuple
    action: str
    params_before: int
    params_after: int
    rel_error: float = 0.0
    macs_before: int | None = None
    macs_after: int | None = None
    sigma2: tuple = ()
    aliases: tuple = ()  # further names the same module is registered under (all get the same block)


@dataclass
class LowRankReport:
    """Per-layer rows and totals (parameters of the whole model, MACs for one example input).

    Attributes
    ----------
    layers : list of LayerReport
    params_before, params_after : int
        Parameters of the whole model before and after.
    macs_before, macs_after : int or None
        Multiply-accumulates of every Linear/Conv2d for the example input, when one was given.
    """

    layers: list[LayerReport] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    macs_before: int | None = None
    macs_after: int | None = None

    @property
    def ratio(self) -> float:
        """``params_after / params_before`` (below 1 when the model shrank)."""
        return self.params_after / self.params_before

    def table(self) -> str:
        """The report as a fixed-width text table: one line per layer, then the totals."""
        head = f"{'layer':<20} {'shape':<18} {'ranks':<10} {'action':<24} {'params':>15} {'rel err':>8}"
        rows = [head] + [
            f"{'='.join((r.name, *r.aliases)):<20} {r.shape!s:<18} {r.ranks!s:<10} {r.action:<24} "
            f"{r.params_before:>7}->{r.params_after:<7} {r.rel_error:8.4f}" for r in self.layers]
        rows.append(f"total parameters {self.params_before} -> {self.params_after} (ratio {self.ratio:.4f})")
        if self.macs_before:
            rows.append(f"total MACs per input {self.macs_before} -> {self.macs_after}")
        return "\n".join(rows)


def _unfoldings(w: torch.Tensor) -> list[np.ndarray]:
    a = w.detach().to("cpu", torch.float64).numpy()
    if a.ndim == 2:
        return [a]
    return [a.reshape(a.shape[0], -1), a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1)]


def _post(rank: int, full: int, on_zero: str, r_min: int, weaken: float) -> int:
    if rank == 0:
        if on_zero == "error":
            raise ValueError("EVBMF returned rank 0 and on_zero='error'")
        if on_zero == "keep":
            return 0
        rank = r_min
    rank = max(r_min, math.floor(full - weaken * (full - rank)))
    return int(min(max(rank, 1), full))


def _check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _check_post_args(on_zero: Any, r_min: Any, weaken: Any) -> None:
    check_choice(on_zero, ("keep", "min", "error"), "on_zero")
    check_int(r_min, "r_min", minimum=1)
    check_real(weaken, "weaken", 0.0, 1.0)


def estimate_ranks(model: nn.Module, on_zero: str = "keep", r_min: int = 1, weaken: float = 1.0,
                   tau_mode: str = "approx") -> dict[str, tuple[tuple[int, ...], tuple[float, ...]]]:
    """EVBMF ranks of every Linear and groups-1 Conv2d: ``{name: (ranks, sigma2s)}``.

    Linear and 1×1 conv: one rank on the ``out×in`` matrix. Conv2d: ``(r_out, r_in)`` from the mode-0
    and mode-1 unfoldings. A rank of 0 is returned as 0 when ``on_zero="keep"``. A module registered
    under several names appears once, under its first name; layers that :func:`decompose` keeps
    whatever the rank (e.g. parameters shared with another module) are left out.

    Parameters
    ----------
    model : torch.nn.Module
    on_zero : {"keep", "min", "error"}
        What a rank of 0 becomes: 0, ``r_min``, or a ``ValueError``.
    r_min : int ≥ 1
        Smallest rank returned for a non-zero estimate.
    weaken : float in [0, 1]
        ``r = max(r_min, floor(full − weaken·(full − r_EVBMF)))``: 1 keeps the EVBMF rank, 0 the full rank.
    tau_mode : {"approx", "exact"}
        The EVBMF threshold (:func:`nnbcd.ops.vbmf.tau_lower`).

    Returns
    -------
    dict
        ``{name: (ranks, sigma2s)}``, ranks a tuple of ints, sigma2s the estimated noise variances.

    Raises
    ------
    TypeError, ValueError
        A bad argument (the message names it), or a layer with non-finite weights.
    """
    _check_model(model)
    _check_post_args(on_zero, r_min, weaken)
    check_choice(tau_mode, TAU_MODES, "tau_mode")
    layers = {}
    for lay in _layers(model):
        if lay.reason:
            continue
        w = lay.module.weight
        if not torch.isfinite(w).all():
            raise ValueError(f"layer {lay.name!r} has non-finite weights")
        layers[lay.name] = _unfoldings(w[:, :, 0, 0] if _is_pointwise(lay.module) else w)
    # one batched eigenvalue call per distinct unfolding shape (networks repeat layer shapes)
    flat = [m for mats in layers.values() for m in mats]
    results = iter(evbmf_batch(flat, backend="numpy", tau_mode=tau_mode))  # host arrays
    out = {}
    for name, mats in layers.items():
        res = [next(results) for _ in mats]
        ranks = tuple(_post(r.rank, min(m.shape) if len(mats) == 1 else m.shape[0], on_zero, r_min, weaken)
                      for r, m in zip(res, mats))
        out[name] = (ranks, tuple(r.sigma2 for r in res))
    return out


def budget_ranks(model: nn.Module, budget: float, skip: Iterable[str] = ()) -> dict[str, tuple[int, ...]]:
    r"""Ranks that fit a global parameter budget: a fraction ``budget`` of the selected layers' weights.

    Greedy on normalised energy per parameter: every layer starts at rank 1 (each Tucker-2 mode at 1)
    and the step with the largest gain :math:`\sigma_{h}^2/\|W\|_F^2` per added parameter is taken until
    the budget would be exceeded. Conv2d modes use the singular values of their unfoldings.

    Parameters
    ----------
    model : torch.nn.Module
    budget : float in (0, 1]
        Fraction of the selected layers' weight count the factors may use.
    skip : iterable of str
        Names of Linear/Conv2d layers to leave out (any name a module is registered under).

    Returns
    -------
    dict
        ``{name: ranks}`` for every selected layer (first name of each module).

    Raises
    ------
    TypeError, ValueError
        A bad ``model``, ``budget`` or ``skip`` (the message names it), or non-finite weights.
    """
    _check_model(model)
    check_real(budget, "budget", 0.0, 1.0, low_open=True)
    table = _layers(model)
    skipped = _check_skip(skip, _owners(table))
    layers = {}
    for lay in table:
        if lay.name in skipped or lay.reason:
            continue
        w = lay.module.weight.detach()
        if not torch.isfinite(w).all():
            raise ValueError(f"layer {lay.name!r} has non-finite weights")
        mats = _unfoldings(w[:, :, 0, 0] if _is_pointwise(lay.module) else w)
        energy = [np.linalg.svd(m, compute_uv=False) ** 2 / (m ** 2).sum() for m in mats]
        layers[lay.name] = (tuple(w.shape), energy)

    def params(shape: tuple, r: list) -> int:
        if len(r) == 1:
            return r[0] * (shape[0] + shape[1])
        return shape[1] * r[1] + r[1] * r[0] * shape[2] * shape[3] + r[0] * shape[0]

    ranks = {n: [1] * len(e) for n, (_, e) in layers.items()}
    total = sum(params(layers[n][0], r) for n, r in ranks.items())
    limit = budget * sum(int(np.prod(shape)) for shape, _ in layers.values())
    while True:
        best = None
        for n, (shape, energy) in layers.items():
            for k, e in enumerate(energy):
                r = ranks[n]
                if r[k] >= len(e):
                    continue
                trial = r.copy()
                trial[k] += 1
                extra = params(shape, trial) - params(shape, r)
                gain = e[r[k]] / max(extra, 1)
                if total + extra <= limit and (best is None or gain > best[0]):
                    best = (gain, n, k, extra)
        if best is None:
            break
        _, n, k, extra = best
        ranks[n][k] += 1
        total += extra
    return {n: tuple(r) for n, r in ranks.items()}


def _is_pointwise(mod: nn.Module) -> bool:
    return isinstance(mod, nn.Conv2d) and mod.kernel_size == (1, 1)


def _supported(mod: nn.Module) -> tuple[bool, str]:
    if isinstance(mod, (nn.Linear, nn.modules.conv._ConvNd)) and nn.parameter.is_lazy(mod.weight):
        raise ValueError(f"model has an uninitialised lazy {type(mod).__name__}: run one forward pass first")
    if isinstance(mod, (nn.Linear, nn.Conv2d)) and mod.weight.is_complex():
        return False, "complex weights"
    if isinstance(mod, nn.Linear):
        return True, ""
    if isinstance(mod, nn.Conv2d):
        if mod.groups != 1:
            return False, f"groups={mod.groups}"
        return True, ""
    if isinstance(mod, nn.modules.conv._ConvNd):  # transposed and 1-D/3-D convolutions
        return False, f"{type(mod).__name__} not supported"
    return False, ""


class _Layer(NamedTuple):
    name: str  # the first name the module is registered under
    aliases: tuple[str, ...]  # every name it is registered under, ``name`` first
    module: nn.Module
    reason: str  # why it is kept whatever the rank; "" when it can be replaced


def _layers(model: nn.Module) -> list[_Layer]:
    """Every Linear and convolution module of ``model`` once, in registration order, with all its names.

    A module registered under several names (``enc = dec = nn.Linear(...)``) is one layer: replacing it
    under every name keeps the tie. A layer whose parameters another module also holds (tied embedding
    and output weights) is kept, since a replacement would break the tie and add parameters.
    """
    names: dict[nn.Module, list[str]] = {}
    for name, mod in model.named_modules(remove_duplicate=False):
        names.setdefault(mod, []).append(name)
    holders: dict[int, list[nn.Module]] = {}
    for mod in names:
        for p in mod.parameters(recurse=False):
            holders.setdefault(id(p), []).append(mod)
    out = []
    for mod, aliases in names.items():
        ok, reason = _supported(mod)
        if not ok and not reason:
            continue
        others = [o for p in mod.parameters(recurse=False) for o in holders[id(p)] if o is not mod]
        if ok and others:
            reason = f"parameters shared with {names[others[0]][0]!r}"
        out.append(_Layer(aliases[0], tuple(aliases), mod, reason))
    return out


def _owners(layers: list[_Layer]) -> dict[str, str]:
    """Every registered name of a layer -> its first name."""
    return {alias: lay.name for lay in layers for alias in lay.aliases}


def _layer_list(owners: dict[str, str]) -> str:
    """The layers' first names in registration order, for messages (at most 20 listed)."""
    names = list(dict.fromkeys(owners.values()))
    return f"{names[:20]}" + (f" and {len(names) - 20} more" if len(names) > 20 else "")


def _check_skip(skip: Any, owners: dict[str, str]) -> set[str]:
    """``skip`` as the set of first names of the layers it names."""
    if isinstance(skip, str) or not isinstance(skip, Iterable):
        raise TypeError(f"skip must be a sequence of layer names such as ('fc',), got {skip!r}")
    out = set()
    for key in skip:
        if not isinstance(key, str) or key not in owners:
            raise ValueError(f"skip names {key!r}, which is not a Linear/Conv layer of the model; "
                             f"the layers are {_layer_list(owners)}")
        out.add(owners[key])
    return out


def _check_ranks(ranks: Any, owners: dict[str, str]) -> dict[str, tuple[int, ...]]:
    """``ranks`` keyed by first names, each value a tuple of integers ≥ 0."""
    if not isinstance(ranks, Mapping):
        raise TypeError(f"ranks must be a dict {{layer name: rank}}, got {type(ranks).__name__}")
    out: dict[str, tuple[int, ...]] = {}
    for key, value in ranks.items():
        if not isinstance(key, str) or key not in owners:
            raise ValueError(f"ranks names {key!r}, which is not a Linear/Conv layer of the model; "
                             f"the layers are {_layer_list(owners)}")
        items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        if not items or any(isinstance(x, bool) or not isinstance(x, Integral) for x in items):
            raise TypeError(f"ranks[{key!r}] = {value!r}: a rank is an integer, or a pair (r_out, r_in) of "
                            "integers for a k×k Conv2d")
        if any(x < 0 for x in items):
            raise ValueError(f"ranks[{key!r}] = {value!r}: ranks must be ≥ 0 (0 keeps the layer)")
        r = tuple(int(x) for x in items)
        if out.setdefault(owners[key], r) != r:
            raise ValueError(f"ranks[{key!r}] = {value!r} but the same module, {owners[key]!r}, is also given "
                             f"{out[owners[key]]!r}")
    return out


def _svd_split(mod: nn.Module, r: int) -> tuple[nn.Module, float]:
    pointwise = isinstance(mod, nn.Conv2d)
    w = mod.weight.detach()
    mat = w[:, :, 0, 0] if pointwise else w
    u, s, vh = torch.linalg.svd(mat.to(torch.float64), full_matrices=False)
    root = s[:r].sqrt()
    a = (root[:, None] * vh[:r]).to(w.dtype)
    b = (u[:, :r] * root).to(w.dtype)
    total = s.square().sum()
    err = float((s[r:].square().sum() / total).sqrt()) if total > 0 else 0.0  # an all-zero W is exact
    kw = dict(device=w.device, dtype=w.dtype)
    if pointwise:
        first = nn.Conv2d(mod.in_channels, r, 1, stride=mod.stride, padding=mod.padding, dilation=mod.dilation,
                          padding_mode=mod.padding_mode, bias=False, **kw)
        second = nn.Conv2d(r, mod.out_channels, 1, bias=mod.bias is not None, **kw)
        first.weight.data.copy_(a[:, :, None, None])
        second.weight.data.copy_(b[:, :, None, None])
    else:
        first = nn.Linear(mod.in_features, r, bias=False, **kw)
        second = nn.Linear(r, mod.out_features, bias=mod.bias is not None, **kw)
        first.weight.data.copy_(a)
        second.weight.data.copy_(b)
    if mod.bias is not None:
        second.bias.data.copy_(mod.bias.detach())
    return nn.Sequential(first, second), err


def _leading_left(mat: torch.Tensor, r: int) -> torch.Tensor:
    u, _, _ = torch.linalg.svd(mat, full_matrices=False)
    u = u[:, :r]
    # sign convention: the largest-magnitude entry of each column is positive (reproducible factors)
    idx = u.abs().argmax(dim=0)
    return u * torch.sign(u[idx, torch.arange(r)])


def _tucker2(mod: nn.Conv2d, r_out: int, r_in: int, hooi_iter: int = 0) -> tuple[nn.Module, float]:
    w = mod.weight.detach()
    w64 = w.to(torch.float64)
    out_c, in_c, kh, kw_ = w.shape
    u_out = _leading_left(w64.reshape(out_c, -1), r_out)
    u_in = _leading_left(w64.transpose(0, 1).reshape(in_c, -1), r_in)
    core = torch.einsum("oikl,oa,ib->abkl", w64, u_out, u_in)
    tol = 1e-7 * float(w64.norm())
    for _ in range(hooi_iter):
        # HOOI sweep: each factor is the leading subspace of W projected on the other factor
        u_out = _leading_left(torch.einsum("oikl,ib->obkl", w64, u_in).reshape(out_c, -1), r_out)
        u_in = _leading_left(torch.einsum("oikl,oa->iakl", w64, u_out).reshape(in_c, -1), r_in)
        prev, core = core, torch.einsum("oikl,oa,ib->abkl", w64, u_out, u_in)
        if abs(float(core.norm()) - float(prev.norm())) <= tol:
            break
    total = w64.square().sum()
    err = float(((total - core.square().sum()).clamp_min(0) / total).sqrt()) if total > 0 else 0.0
    kw = dict(device=w.device, dtype=w.dtype)
    first = nn.Conv2d(in_c, r_in, 1, bias=False, **kw)
    middle = nn.Conv2d(r_in, r_out, (kh, kw_), stride=mod.stride, padding=mod.padding, dilation=mod.dilation,
                       padding_mode=mod.padding_mode, bias=False, **kw)
    last = nn.Conv2d(r_out, out_c, 1, bias=mod.bias is not None, **kw)
    first.weight.data.copy_(u_in.T[:, :, None, None].to(w.dtype))
    middle.weight.data.copy_(core.to(w.dtype))
    last.weight.data.copy_(u_out[:, :, None, None].to(w.dtype))
    if mod.bias is not None:
        last.bias.data.copy_(mod.bias.detach())
    return nn.Sequential(first, middle, last), err


def _macs(model: nn.Module, example: torch.Tensor | None) -> dict[str, int]:
    """Multiply-accumulates of every Linear/Conv2d for one forward pass of ``example``.

    The pass runs in eval mode under ``no_grad`` and every module's training flag is restored after it:
    counting must not touch the caller's state (BatchNorm running statistics, ``num_batches_tracked``).
    """
    if example is None:
        return {}
    out: dict[str, int] = {}
    modes = {m: m.training for m in model.modules()}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            def hook(m, inp, res, name=name):  # type: ignore[no-untyped-def]
                per = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.in_features
                out[name] = out.get(name, 0) + int(res.numel() // res.shape[0]) * per
            hooks.append(mod.register_forward_hook(hook))
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    except Exception as err:
        raise ValueError(f"example_input: the model's forward pass failed ({type(err).__name__}: {err})") from err
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    return out


def _within(key: str, name: str) -> bool:
    """Whether module ``key`` is ``name`` or inside it (the root, name "", holds every module)."""
    return not name or key == name or key.startswith(name + ".")


def decompose(model: nn.Module, ranks: dict[str, Any] | None = None, *, budget: float | None = None,
              on_zero: str = "keep", r_min: int = 1, weaken: float = 1.0, skip: Iterable[str] = (),
              example_input: torch.Tensor | None = None, hooi_iter: int = 0) -> tuple[nn.Module, LowRankReport]:
    """Return a copy of ``model`` with its Linear/Conv2d layers replaced by low-rank factors, and a report.

    Parameters
    ----------
    ranks : {name: int | (r_out, r_in)}, optional
        Ranks (integers ≥ 0; 0 keeps the layer) to use; default EVBMF (:func:`estimate_ranks`). A layer
        missing from a given dict is kept. A module registered under several names may be named by any of
        them; it is replaced under all of them by one block, so the tie (and the parameter sharing) stays.
    budget : float in (0, 1], optional
        Instead of EVBMF: ranks that keep this fraction of the selected layers' parameters
        (:func:`budget_ranks`).
    on_zero, r_min, weaken
        Rank post-processing (see :func:`estimate_ranks`).
    skip : iterable of str
        Names of layers to leave as they are (e.g. the final classifier).
    example_input : tensor, optional
        One input batch: the report then also counts MACs before and after (the counting pass runs in
        eval mode and leaves the model's state, BatchNorm statistics included, as it was).
    hooi_iter : int ≥ 0
        HOOI sweeps refining the Tucker-2 factors after the HOSVD start (0: plain truncated HOSVD);
        the reconstruction error never increases.

    Returns
    -------
    new_model : torch.nn.Module
        A deep copy of ``model`` with the replaced layers (the block itself when ``model`` is one layer).
    report : LowRankReport
        One row per layer (each module once, its further names in ``aliases``); totals count every
        distinct parameter once.

    Raises
    ------
    TypeError, ValueError
        A bad argument (the message names it: unknown layer names in ``ranks``/``skip``, non-integer or
        negative ranks, ``budget`` outside (0, 1], a forward pass failing on ``example_input``), or a layer
        with non-finite weights.
    """
    _check_model(model)
    check_int(hooi_iter, "hooi_iter", minimum=0)
    _check_post_args(on_zero, r_min, weaken)
    if example_input is not None and not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a torch.Tensor, got {type(example_input).__name__}")
    table = _layers(model)
    owners = _owners(table)
    skipped = _check_skip(skip, owners)
    if budget is not None:
        if ranks is not None:
            raise ValueError("pass ranks or budget, not both")
        ranks = budget_ranks(model, budget, skip)
    chosen = _check_ranks(ranks, owners) if ranks is not None else None
    if chosen is not None and skipped & set(chosen):
        raise ValueError(f"layers {sorted(skipped & set(chosen))} are in both ranks and skip")
    estimated = estimate_ranks(model, on_zero, r_min, weaken) if chosen is None else None
    new = copy.deepcopy(model)
    report = LowRankReport(params_before=sum(p.numel() for p in model.parameters()))
    macs_before = _macs(model, example_input)
    replacements = {}
    for name, aliases, mod, reason in table:
        w = mod.weight
        n_w = w.numel()
        info = dict(name=name, kind=type(mod).__name__, shape=tuple(w.shape), aliases=aliases[1:])
        if reason:
            logger.info("layer %r kept: %s", name, reason)
            report.layers.append(LayerReport(**info, ranks=(), action=f"kept ({reason})", params_before=n_w,
                                             params_after=n_w))
            continue
        if not torch.isfinite(w).all():
            raise ValueError(f"layer {name!r} has non-finite weights")
        if name in skipped or (chosen is not None and name not in chosen):
            report.layers.append(LayerReport(**info, ranks=(), action="kept (not selected)", params_before=n_w,
                                             params_after=n_w))
            continue
        r, s2 = estimated[name] if estimated is not None else (chosen[name], ())
        tucker = isinstance(mod, nn.Conv2d) and not _is_pointwise(mod)
        if len(r) != (2 if tucker else 1):
            raise ValueError(f"ranks[{name!r}] = {r!r}: this layer needs "
                             f"{'(r_out, r_in)' if tucker else 'one rank'}")
        if any(x < 1 for x in r):
            logger.info("layer %r kept: rank 0", name)
            report.layers.append(LayerReport(**info, ranks=r, action="kept (rank 0)", params_before=n_w,
                                             params_after=n_w, sigma2=s2))
            continue
        if tucker:
            out_c, in_c, kh, kw_ = w.shape
            r_out, r_in = min(r[0], out_c, r[1] * kh * kw_), min(r[1], in_c, r[0] * kh * kw_)
            r = (r_out, r_in)
            n_new = in_c * r_in + r_in * r_out * kh * kw_ + r_out * out_c
        else:
            out_c, in_c = w.shape[:2]
            r = (min(r[0], out_c, in_c),)
            n_new = r[0] * (in_c + out_c)
        if n_new >= n_w:
            report.layers.append(LayerReport(**info, ranks=r, action="kept (no parameter saving)", params_before=n_w,
                                             params_after=n_w, sigma2=s2))
            continue
        block, err = _tucker2(mod, *r, hooi_iter=hooi_iter) if tucker else _svd_split(mod, r[0])
        replacements[aliases] = block
        report.layers.append(LayerReport(**info, ranks=r, action="tucker2" if tucker else "svd split",
                                         params_before=n_w, params_after=n_new, rel_error=err, sigma2=s2))
    for aliases, block in replacements.items():
        for name in aliases:  # every name of a tied module gets the same block: the tie stays
            if not name:  # the model is the layer itself
                new = block
                break
            parent_name, _, child = name.rpartition(".")
            setattr(new.get_submodule(parent_name) if parent_name else new, child, block)
    report.params_after = sum(p.numel() for p in new.parameters())
    if example_input is not None:
        macs_after = _macs(new, example_input)
        report.macs_before, report.macs_after = sum(macs_before.values()), sum(macs_after.values())
        for row in report.layers:
            row.macs_before = macs_before.get(row.name)
            row.macs_after = sum(v for k, v in macs_after.items() if _within(k, row.name))
    return new, report
