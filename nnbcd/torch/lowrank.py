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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..ops.vbmf import evbmf_batch

__all__ = ["LayerReport", "LowRankReport", "budget_ranks", "decompose", "estimate_ranks"]

logger = logging.getLogger(__name__)


@dataclass
class LayerReport:
    """One row of the report: what was done to one layer and what it costs."""

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


@dataclass
class LowRankReport:
    """Per-layer rows and totals (parameters of the whole model, MACs for one example input)."""

    layers: list[LayerReport] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    macs_before: int | None = None
    macs_after: int | None = None

    @property
    def ratio(self) -> float:
        return self.params_after / self.params_before

    def table(self) -> str:
        head = f"{'layer':<20} {'shape':<18} {'ranks':<10} {'action':<24} {'params':>15} {'rel err':>8}"
        rows = [head] + [
            f"{r.name:<20} {r.shape!s:<18} {r.ranks!s:<10} {r.action:<24} "
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


def estimate_ranks(model: nn.Module, on_zero: str = "keep", r_min: int = 1, weaken: float = 1.0,
                   tau_mode: str = "approx") -> dict[str, tuple[tuple[int, ...], tuple[float, ...]]]:
    """EVBMF ranks of every Linear and groups-1 Conv2d: ``{name: (ranks, sigma2s)}``.

    Linear and 1×1 conv: one rank on the ``out×in`` matrix. Conv2d: ``(r_out, r_in)`` from the mode-0
    and mode-1 unfoldings. A rank of 0 is returned as 0 when ``on_zero="keep"``.
    """
    if on_zero not in ("keep", "min", "error"):
        raise ValueError(f"on_zero={on_zero!r} is not one of ('keep', 'min', 'error')")
    if not 0.0 <= weaken <= 1.0:
        raise ValueError(f"weaken must be in [0, 1], got {weaken!r}")
    layers = {}
    for name, mod in model.named_modules():
        if not _supported(mod)[0]:
            continue
        w = mod.weight
        if not torch.isfinite(w).all():
            raise ValueError(f"layer {name!r} has non-finite weights")
        layers[name] = _unfoldings(w[:, :, 0, 0] if _is_pointwise(mod) else w)
    # one batched eigenvalue call per distinct unfolding shape (networks repeat layer shapes)
    flat = [m for mats in layers.values() for m in mats]
    results = iter(evbmf_batch(flat, tau_mode=tau_mode))
    out = {}
    for name, mats in layers.items():
        res = [next(results) for _ in mats]
        ranks = tuple(_post(r.rank, min(m.shape) if len(mats) == 1 else m.shape[0], on_zero, r_min, weaken)
                      for r, m in zip(res, mats))
        out[name] = (ranks, tuple(r.sigma2 for r in res))
    return out


def budget_ranks(model: nn.Module, budget: float, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, ...]]:
    r"""Ranks that fit a global parameter budget: a fraction ``budget`` of the selected layers' weights.

    Greedy on normalised energy per parameter: every layer starts at rank 1 (each Tucker-2 mode at 1)
    and the step with the largest gain :math:`\sigma_{h}^2/\|W\|_F^2` per added parameter is taken until
    the budget would be exceeded. Conv2d modes use the singular values of their unfoldings.
    """
    if not 0.0 < budget < 1.0:
        raise ValueError(f"budget must be in (0, 1), got {budget!r}")
    layers = {}
    for name, mod in model.named_modules():
        if name in skip or not _supported(mod)[0]:
            continue
        w = mod.weight.detach()
        if not torch.isfinite(w).all():
            raise ValueError(f"layer {name!r} has non-finite weights")
        mats = _unfoldings(w[:, :, 0, 0] if _is_pointwise(mod) else w)
        energy = [np.linalg.svd(m, compute_uv=False) ** 2 / (m ** 2).sum() for m in mats]
        layers[name] = (tuple(w.shape), energy)

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
    if isinstance(mod, nn.Linear):
        return True, ""
    if isinstance(mod, nn.Conv2d):
        if mod.groups != 1:
            return False, f"groups={mod.groups}"
        return True, ""
    if isinstance(mod, nn.modules.conv._ConvNd):  # transposed and 1-D/3-D convolutions
        return False, f"{type(mod).__name__} not supported"
    return False, ""


def _svd_split(mod: nn.Module, r: int) -> tuple[nn.Module, float]:
    pointwise = isinstance(mod, nn.Conv2d)
    w = mod.weight.detach()
    mat = w[:, :, 0, 0] if pointwise else w
    u, s, vh = torch.linalg.svd(mat.to(torch.float64), full_matrices=False)
    root = s[:r].sqrt()
    a = (root[:, None] * vh[:r]).to(w.dtype)
    b = (u[:, :r] * root).to(w.dtype)
    err = float(s[r:].square().sum().sqrt() / s.square().sum().sqrt())
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
    err = float((w64.square().sum() - core.square().sum()).clamp_min(0).sqrt() / w64.square().sum().sqrt())
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
    """Multiply-accumulates of every Linear/Conv2d for one forward pass of ``example``."""
    if example is None:
        return {}
    out: dict[str, int] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            def hook(m, inp, res, name=name):  # type: ignore[no-untyped-def]
                per = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.in_features
                out[name] = out.get(name, 0) + int(res.numel() // res.shape[0]) * per
            hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        model(example)
    for h in hooks:
        h.remove()
    return out


def decompose(model: nn.Module, ranks: dict[str, Any] | None = None, *, budget: float | None = None,
              on_zero: str = "keep", r_min: int = 1, weaken: float = 1.0, skip: tuple[str, ...] = (),
              example_input: torch.Tensor | None = None, hooi_iter: int = 0) -> tuple[nn.Module, LowRankReport]:
    """Return a copy of ``model`` with its Linear/Conv2d layers replaced by low-rank factors, and a report.

    Parameters
    ----------
    ranks : {name: int | (r_out, r_in)}, optional
        Ranks to use; default EVBMF (:func:`estimate_ranks`). A layer missing from a given dict is kept.
    budget : float in (0, 1), optional
        Instead of EVBMF: ranks that keep this fraction of the selected layers' parameters
        (:func:`budget_ranks`).
    on_zero, r_min, weaken
        Rank post-processing (see :func:`estimate_ranks`).
    skip : names of layers to leave as they are (e.g. the final classifier).
    example_input : tensor, optional
        One input batch: the report then also counts MACs before and after.
    hooi_iter : int
        HOOI sweeps refining the Tucker-2 factors after the HOSVD start (0: plain truncated HOSVD);
        the reconstruction error never increases.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not (isinstance(hooi_iter, int) and hooi_iter >= 0):
        raise ValueError(f"hooi_iter must be a non-negative integer, got {hooi_iter!r}")
    if budget is not None:
        if ranks is not None:
            raise ValueError("pass ranks or budget, not both")
        ranks = budget_ranks(model, budget, skip)
    estimated = estimate_ranks(model, on_zero, r_min, weaken) if ranks is None else None
    new = copy.deepcopy(model)
    report = LowRankReport(params_before=sum(p.numel() for p in model.parameters()))
    macs_before = _macs(model, example_input)
    replacements = {}
    for name, mod in model.named_modules():
        ok, reason = _supported(mod)
        if not ok:
            if reason:
                logger.info("layer %r kept: %s", name, reason)
                report.layers.append(LayerReport(name, type(mod).__name__, tuple(mod.weight.shape), (),
                                                 f"kept ({reason})", mod.weight.numel(), mod.weight.numel()))
            continue
        w = mod.weight
        n_w = w.numel()
        if not torch.isfinite(w).all():
            raise ValueError(f"layer {name!r} has non-finite weights")
        if name in skip or (ranks is not None and name not in ranks):
            report.layers.append(LayerReport(name, type(mod).__name__, tuple(w.shape), (), "kept (not selected)",
                                             n_w, n_w))
            continue
        if estimated is not None:
            r, s2 = estimated[name]
        else:
            given = ranks[name]
            r, s2 = (tuple(given) if isinstance(given, (tuple, list)) else (int(given),)), ()
        tucker = isinstance(mod, nn.Conv2d) and not _is_pointwise(mod)
        if len(r) != (2 if tucker else 1):
            raise ValueError(f"ranks[{name!r}] = {r!r}: this layer needs "
                             f"{'(r_out, r_in)' if tucker else 'one rank'}")
        if any(x < 1 for x in r):
            logger.info("layer %r kept: rank 0", name)
            report.layers.append(LayerReport(name, type(mod).__name__, tuple(w.shape), r, "kept (rank 0)", n_w, n_w,
                                             sigma2=s2))
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
            report.layers.append(LayerReport(name, type(mod).__name__, tuple(w.shape), r,
                                             "kept (no parameter saving)", n_w, n_w, sigma2=s2))
            continue
        block, err = _tucker2(mod, *r, hooi_iter=hooi_iter) if tucker else _svd_split(mod, r[0])
        replacements[name] = block
        report.layers.append(LayerReport(name, type(mod).__name__, tuple(w.shape), r,
                                         "tucker2" if tucker else "svd split", n_w, n_new, err, sigma2=s2))
    for name, block in replacements.items():
        parent_name, _, child = name.rpartition(".")
        parent = new.get_submodule(parent_name) if parent_name else new
        setattr(parent, child, block)
    report.params_after = sum(p.numel() for p in new.parameters())
    if example_input is not None:
        macs_after = _macs(new, example_input)
        report.macs_before, report.macs_after = sum(macs_before.values()), sum(macs_after.values())
        for row in report.layers:
            row.macs_before = macs_before.get(row.name)
            row.macs_after = sum(v for k, v in macs_after.items() if k == row.name or k.startswith(row.name + "."))
    return new, report
