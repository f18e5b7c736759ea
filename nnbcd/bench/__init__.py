"""Benchmarks of the package on this machine: ``nnbcd bench`` and the scripts in ``benchmarks/``.

One implementation of each timing, used by the command and by the scripts:

* :mod:`.sweeps`: NN-BCD sweeps through the solver (time per block kind, GEMM floor, naive formulation,
  scaling with N and width), on the networks of :mod:`.workloads`; FLOP counts in :mod:`.flops`;
* :mod:`.tt` (TT-SVD against tensorly), :mod:`.vbmf` (EVBMF against the straightforward code),
  :mod:`.topk` (hard threshold against a full sort), :mod:`.mcnc` (MCNC training step, torch);
* :mod:`.concurrency`: two runs at once, without and with the BLAS thread policy;
* :mod:`.machine` (what the numbers depend on), :mod:`.timing` (medians, GEMM rate, clocks),
  :mod:`.report` (tables, markdown, ``--compare``), :mod:`.plots`, :mod:`.suite` (the command's run).

Modules needing optional libraries (tensorly, torch) import them only when their measurement runs.
"""
from __future__ import annotations

from .report import compare, compare_text, load
from .suite import PARTS, run_bench

__all__ = ["PARTS", "compare", "compare_text", "load", "run_bench"]
