"""The one place that fixes the block order of an NN-BCD iteration (spec §3): backward over layers.

Output layer: V_L, U_L, W_L (+ its compression block if any); then for each hidden layer
i = L-1 .. 1: V_i, U_i, W_i, then the compression block when i is compressed.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Tuple

from ..backend import Backend
from .blocks import (
    Workspace,
    update_hidden_u,
    update_hidden_v,
    update_output_u,
    update_output_v,
    update_weight,
)
from .state import BCDState, Hyper

#: block kinds, in the order their time and step are reported
BLOCK_KINDS = ("V", "U", "W", "comp")


def update_compression(st: BCDState, i: int, hp: Hyper, be: Backend, ws: Workspace, track: bool) -> float:
    r"""Compression block: :math:`\tilde W_i \leftarrow \Pi(W_i)` (no prox term; spec §3.3)."""
    spec = st.compress[i]
    shared = [w for j, w in enumerate(st.W) if st.compress.get(j) is spec]
    old = st.Wt[i].dense
    st.Wt[i] = spec.project(st.W[i], be, weights=shared if len(shared) > 1 else None)
    step = be.sq_dist(st.Wt[i].dense, old) if track else 0.0
    if spec.replaces_weight:
        st.W[i] = st.Wt[i].dense.copy()
    return step


def block_schedule(n_layers: int, compressed: Tuple[int, ...]) -> List[Tuple[str, int, Callable]]:
    """The ordered list ``(kind, layer, update)`` of one sweep."""
    last = n_layers - 1
    order = [("V", last, update_output_v), ("U", last, update_output_u), ("W", last, update_weight)]
    if last in compressed:
        order.append(("comp", last, update_compression))
    for i in range(last - 1, -1, -1):
        order += [("V", i, update_hidden_v), ("U", i, update_hidden_u), ("W", i, update_weight)]
        if i in compressed:
            order.append(("comp", i, update_compression))
    return order


def sweep(st: BCDState, hp: Hyper, be: Backend, ws: Workspace, track: bool) -> Dict[str, float]:
    """Run one iteration in place; return wall time and squared step per block kind."""
    out = {f"time_{k}": 0.0 for k in BLOCK_KINDS}
    out.update({f"step_{k}": 0.0 for k in BLOCK_KINDS})
    prox_step = 0.0
    for kind, i, update in block_schedule(st.n_layers, tuple(st.compress)):
        t0 = time.perf_counter()
        step = update(st, i, hp, be, ws, track)
        be.synchronize()
        out[f"time_{kind}"] += time.perf_counter() - t0
        out[f"step_{kind}"] += step
        # blocks carrying an α-prox term (spec §3): V_L, U_i (i<L) and every W_i
        if (kind == "V" and i == st.n_layers - 1) or (kind == "U" and i < st.n_layers - 1) or kind == "W":
            prox_step += step
    out["prox_step_sq"] = prox_step
    return out
