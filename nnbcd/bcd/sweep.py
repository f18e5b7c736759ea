"""One NN-BCD iteration: the block order, derived from :data:`~nnbcd.bcd.blocks.BLOCK_TABLE` (spec §3).

The sweep goes backward over the layers ``L-1 .. 0`` and, in each layer, updates the blocks of the table
that act on it, in table order: ``V_out, U_out, W`` (+ ``comp``) for the output layer, then
``V, U, W`` (+ ``comp``) for each hidden layer, the compression block after its layer's W; a layer
with an exact block on its compressed form has ``W_exact`` in place of ``W`` and ``comp``.
"""
from __future__ import annotations

import time
from typing import Collection, Dict, List, Tuple

from ..backend import Backend
from .blocks import BLOCK_TABLE, REPORTED_KINDS, Block, Workspace, layer_kind
from .state import BCDState, Hyper


def block_schedule(n_layers: int, compressed: Collection[int], exact: Collection[int] = ()) -> List[Tuple[Block, int]]:
    """The blocks of one sweep, in order.

    Parameters
    ----------
    n_layers : int
        L, the number of weight layers.
    compressed : collection of int
        The compressed layers (``0..L-1``).
    exact : collection of int
        The compressed layers whose W-block is an exact block on the compressed form.

    Returns
    -------
    list of (Block, int)
        Each block with the layer it updates.
    """
    return [(block, i) for i in range(n_layers - 1, -1, -1) for block in BLOCK_TABLE
            if block.acts_on(i, n_layers, layer_kind(i, compressed, exact))]


def new_record() -> Dict[str, float]:
    """A sweep's record before any block: ``time_<kind>``, ``step_<kind>`` per reported kind and
    ``prox_step_sq``, all 0."""
    rec = {f"time_{k}": 0.0 for k in REPORTED_KINDS}
    rec.update({f"step_{k}": 0.0 for k in REPORTED_KINDS})
    rec["prox_step_sq"] = 0.0
    return rec


def timed_update(block: Block, st: BCDState, i: int, hp: Hyper, be: Backend, ws: Workspace, track: bool,
                 rec: Dict[str, float]) -> None:
    """Run ``block`` on layer ``i`` and add its wall time (after the device finished), its squared step
    and, for a prox block, that step to ``prox_step_sq`` in ``rec`` (:func:`new_record`)."""
    t0 = time.perf_counter()
    step = block.update(st, i, hp, be, ws, track)
    be.synchronize()
    rec[f"time_{block.reports}"] += time.perf_counter() - t0
    rec[f"step_{block.reports}"] += step
    if block.prox:
        rec["prox_step_sq"] += step


def sweep(st: BCDState, hp: Hyper, be: Backend, ws: Workspace, track: bool) -> Dict[str, float]:
    """Run one iteration in place.

    Parameters
    ----------
    st : BCDState
        The iterate, updated in place.
    hp : Hyper
    be : Backend
    ws : Workspace
    track : bool
        Measure the squared steps (otherwise they are reported as 0).

    Returns
    -------
    dict of str to float
        ``time_<kind>`` (wall seconds) and ``step_<kind>`` (squared step) summed per reported kind
        (:data:`~nnbcd.bcd.blocks.REPORTED_KINDS`), and ``prox_step_sq``, the squared step of the
        blocks that carry the α-prox term.
    """
    rec = new_record()
    for block, i in block_schedule(st.n_layers, st.compress, st.exact_layers):
        timed_update(block, st, i, hp, be, ws, track, rec)
    return rec
