"""Compressed state dicts: what rebuilds a wrapped model exactly, saved and loaded."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Dict

import torch
from torch import nn

from .reparam import _digest, _plan, _store, wrap
from .spec import MCNCSpec, _chunks

FORMAT, FORMAT_VERSION = "nnbcd.mcnc", 1


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
    checks it against the model it is given. The dict holds tensors and plain Python values only, so
    ``torch.load(..., weights_only=True)`` reads it.

    Parameters
    ----------
    model : torch.nn.Module
        Wrapped by :func:`wrap`.

    Returns
    -------
    dict
        ``format``, ``format_version``, ``torch_version``, ``spec`` (the MCNCSpec as a dict), ``layout``
        ([name, shape] per reparameterised tensor), ``alpha`` (n·m × k), ``beta`` (n × m), ``dense``
        (the state entries that are not reparameterised) and ``base_sha256`` (None in scratch mode).

    Raises
    ------
    ValueError
        ``model`` is not wrapped.
    """
    st = _store(model)
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "torch_version": torch.__version__,
            "spec": asdict(st.spec), "layout": [list(x) for x in st.layout], "alpha": st.alpha.detach().clone(),
            "beta": st.beta.detach().clone(), "dense": _dense_leftovers(model), "base_sha256": st.base_digest}


def load_compressed(model: nn.Module, state: Dict[str, Any]) -> nn.Module:
    """Wrap a fresh ``model`` with a compressed state's spec and load its α, β and dense leftovers.

    Parameters
    ----------
    model : torch.nn.Module
        Not wrapped, of the architecture the state was saved from (holding the same frozen base in
        residual / LoRA mode).
    state : dict
        From :func:`compressed_state_dict`.

    Returns
    -------
    torch.nn.Module
        ``model``, wrapped; its outputs equal the saved model's.

    Raises
    ------
    ValueError
        Not a compressed state dict, a newer format, a spec this version cannot read, another parameter
        layout, another frozen base (SHA-256), α/β or dense entries of other shapes. Everything is checked
        before the model is touched: on any mismatch ``model`` is left as it was.
    """
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
