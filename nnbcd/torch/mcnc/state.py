"""Compressed state dicts: what rebuilds a wrapped model exactly, saved and loaded."""
from __future__ import annotations

import numbers
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from .generator import MCNCGenerator
from .reparam import _attach, _check_unwrapped, _digest, _plan, _store
from .spec import MCNCSpec, _chunks

# version 2 adds ``generator_sha256``; version 1 states (saved before it) are read without that check
FORMAT, FORMAT_VERSION = "nnbcd.mcnc", 2
_REQUIRED = ("format", "format_version", "spec", "layout", "alpha", "beta", "dense")


def _dense_leftovers(model: nn.Module) -> Dict[str, torch.Tensor]:
    """State entries that are not reparameterised (BatchNorm, buffers, uncompressed parameters)."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("mcnc_") or ".parametrizations." in key:
            continue
        out[key] = value
    return out


def _generator_digest(generator: MCNCGenerator) -> str:
    # SHA-256 of the float32 weights: PCG64 draws scaled by correctly rounded constants, the same bytes on
    # every platform, so a different seed, width or drawing rule shows as a different digest
    return _digest(list(generator.buffers()))


def compressed_state_dict(model: nn.Module) -> Dict[str, Any]:
    """What rebuilds the model exactly: the spec, the layout, α, β and the dense leftovers, nothing else.

    In residual / LoRA mode the frozen base is not stored: its SHA-256 is, and :func:`load_compressed`
    checks it against the model it is given. The generator is not stored either (its seed rebuilds it);
    the SHA-256 of its weights is, so that an edited spec or another drawing rule is refused on load.
    The dict holds tensors and plain Python values (str, int, float, bool, None, lists, tuples, dicts)
    only, so ``torch.load(..., weights_only=True)`` (torch's default since 2.6) reads it.

    Parameters
    ----------
    model : torch.nn.Module
        Wrapped by :func:`wrap`.

    Returns
    -------
    dict
        ``format`` (``"nnbcd.mcnc"``), ``format_version`` (int), ``torch_version`` (str), ``spec`` (the
        MCNCSpec as a dict), ``layout`` ([name, shape] per reparameterised tensor), ``generator_sha256``,
        ``alpha`` (n·m × k), ``beta`` (n × m), ``dense`` (the state entries that are not
        reparameterised) and ``base_sha256`` (None in scratch mode).

    Raises
    ------
    ValueError
        ``model`` is not wrapped.
    """
    st = _store(model)
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "torch_version": str(torch.__version__),  # a plain str: TorchVersion is refused by weights_only
            "spec": asdict(st.spec), "layout": [[name, list(shape)] for name, shape in st.layout],
            "generator_sha256": _generator_digest(st.generator), "alpha": st.alpha.detach().clone(),
            "beta": st.beta.detach().clone(), "dense": _dense_leftovers(model), "base_sha256": st.base_digest}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_tensor(value: Any, what: str, shape: Optional[tuple] = None, floating: bool = True) -> None:
    """Refuse a non-tensor, a tensor of another kind (floating or not) or shape, or NaN/Inf values."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(value).__name__}")
    if value.is_floating_point() != floating or value.is_complex():
        raise TypeError(f"{what} must be a {'floating' if floating else 'non-floating'} real tensor, got "
                        f"dtype {value.dtype}")
    if shape is not None and tuple(value.shape) != shape:
        raise ValueError(f"{what} has shape {tuple(value.shape)}, expected {shape}")
    if floating and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{what} holds NaN or Inf")


def _read_header(state: Any) -> Tuple[MCNCSpec, List[Tuple[str, tuple]]]:
    """The spec and layout of a compressed state, after checking its format, spec, generator and layout."""
    if not isinstance(state, dict) or any(k not in state for k in _REQUIRED):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"not an nnbcd MCNC compressed state dict (needs {_REQUIRED}; got {got})")
    version = state["format_version"]
    if state["format"] != FORMAT:
        raise ValueError(f"state format {state['format']!r} is not {FORMAT!r}")
    if not _is_int(version):
        raise TypeError(f"state['format_version'] must be an int, got {version!r}")
    if not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"state format version {version} is not one this nnbcd reads (1..{FORMAT_VERSION})")
    if not isinstance(state["spec"], dict):
        raise TypeError(f"state['spec'] must be a dict, got {type(state['spec']).__name__}")
    try:
        spec = MCNCSpec(**state["spec"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"state['spec'] does not fit this nnbcd's MCNCSpec: {exc}") from None
    if version >= 2:
        digest = state.get("generator_sha256")
        if not isinstance(digest, str):
            raise TypeError(f"state['generator_sha256'] must be a str, got {type(digest).__name__}")
        if _generator_digest(MCNCGenerator(spec)) != digest:
            raise ValueError(f"state['generator_sha256']: the generator rebuilt from state['spec'] (seed = "
                             f"{spec.seed}) is not the one α and β were trained with (an edited spec, or "
                             "another drawing rule)")
    layout = state["layout"]
    if not (isinstance(layout, (list, tuple)) and all(
            isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[0], str)
            and isinstance(e[1], (list, tuple)) and all(_is_int(n) and n >= 0 for n in e[1]) for e in layout)):
        raise ValueError(f"state['layout'] must be a list of [name, shape] pairs, got {str(layout)[:200]}")
    return spec, [(name, tuple(shape)) for name, shape in layout]


def load_compressed(model: nn.Module, state: Dict[str, Any]) -> nn.Module:
    """Wrap a fresh ``model`` with a compressed state's spec and load its α, β and dense leftovers.

    Parameters
    ----------
    model : torch.nn.Module
        Not wrapped, of the architecture the state was saved from (holding the same frozen base in
        residual / LoRA mode). Its current values are not used otherwise: every reparameterised and
        dense entry is overwritten.
    state : dict
        From :func:`compressed_state_dict` (format version 1 or 2).

    Returns
    -------
    torch.nn.Module
        ``model``, wrapped; its outputs equal the saved model's.

    Raises
    ------
    TypeError
        ``model`` is not a module; an entry of the wrong type (named): a format version that is not an
        int, a spec that is not a dict, α / β / dense values that are not torch tensors or not of the
        model entry's kind (α and β floating: an int64 α is refused).
    ValueError
        ``model`` already wrapped; not a compressed state dict, another format or a newer version; a spec
        this version cannot read; a generator whose weights differ from the stored SHA-256 (an edited
        seed); a malformed or another parameter layout; another frozen base (SHA-256); α, β or dense
        entries of other shapes or keys, or holding NaN/Inf. Everything is checked before the model is
        touched: on any refusal ``model`` is left as it was.
    """
    _check_unwrapped(model)
    spec, layout = _read_header(state)
    sel, planned, init = _plan(model, spec)
    if planned != layout:
        raise ValueError("state['layout']: the state dict was saved from another architecture or spec (parameter "
                         "layout differs)")
    if spec.mode != "scratch" and _digest([p for _, _, _, p in sel]) != state.get("base_sha256"):
        raise ValueError("state['base_sha256']: the model's frozen base weights differ from those the state was "
                         "trained on (SHA-256)")
    n = _chunks(layout, spec.d)[1]
    _check_tensor(state["alpha"], "state['alpha']", (n * spec.m, spec.k))
    _check_tensor(state["beta"], "state['beta']", (n, spec.m))
    reparam = {name for name, _, _, _ in sel}
    own = {k: v for k, v in model.state_dict().items() if k not in reparam}
    dense = state["dense"]
    if not isinstance(dense, dict):
        raise TypeError(f"state['dense'] must be a dict, got {type(dense).__name__}")
    if set(own) != set(dense):
        raise ValueError(f"state['dense']: dense entries differ: the state lacks {sorted(set(own) - set(dense))[:5]}, "
                         f"the model lacks {sorted(set(dense) - set(own), key=str)[:5]}")
    for key, value in dense.items():
        _check_tensor(value, f"state['dense'][{key!r}]", tuple(own[key].shape), own[key].is_floating_point())
    _attach(model, spec, sel, layout, init)
    st = _store(model)
    with torch.no_grad():
        st.alpha.copy_(state["alpha"])
        st.beta.copy_(state["beta"])
    model.load_state_dict(dense, strict=False)
    st.clear()
    return model
