"""Cost of one MCNC training step against the dense step on the digits MLP (64-h-h-10), with torch.

Times forward + backward + Adam step for the dense model, MCNC (sine generator, k = 8, d = 1024, the given
hidden widths), MCNC with the generator's head left to autograd (the naive formulation:
``β · normalize(A h + c)``, about ten passes over n × d) and PRANC (linear generator). The variants are
interleaved: each round times ``steps`` steps of every variant in turn, and a ratio is taken against the
dense time of the same round, so a machine that slows down for a while slows all of them alike; the
results are medians over rounds. The FLOP ratio (dense step 6·B·D, plus 4·D·(h+1) for the generator's
output layer forward and backward) is what the step ratio tends to once per-call overheads are gone.
torch is imported only when this module is.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..runners.mcnc import make_mlp
from ..torch.mcnc import MCNCSpec, wrap
from ..torch.mcnc.generator import _hidden_layers

D_FEATURES, K, CHUNK = 64, 8, 1024


def naive_head(model: nn.Module) -> nn.Module:
    """MCNC in the reference formulation: autograd through β · normalize(A_o h + c_o), h the same hidden
    layers (plain torch ops, so autograd differentiates them). Modifies and returns ``model``."""
    gen = model.__dict__["_mcnc_store"].generator

    def combine(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        a, _, *hidden = gen.weights(alpha)
        y = nn.functional.linear(_hidden_layers(alpha, gen.spec, hidden), a[:, :-1], a[:, -1])
        return beta * (y / y.norm(dim=1, keepdim=True).clamp_min(1e-12))

    gen.combine = combine
    return model


def builders(hidden: int, widths: Sequence[int]) -> Dict[str, Callable[[], nn.Module]]:
    """The variants: ``dense``, ``mcnc_w<width>`` per width, ``naive_w<widths[0]>``, ``pranc``."""
    out: Dict[str, Callable[[], nn.Module]] = {"dense": lambda: make_mlp(hidden)}
    for w in widths:
        out[f"mcnc_w{w}"] = lambda w=w: wrap(make_mlp(hidden), MCNCSpec(k=K, d=CHUNK, width=w))
    out[f"naive_w{widths[0]}"] = lambda: naive_head(wrap(make_mlp(hidden), MCNCSpec(k=K, d=CHUNK, width=widths[0])))
    out["pranc"] = lambda: wrap(make_mlp(hidden), MCNCSpec(k=K, d=CHUNK, generator="pranc"))
    return out


def stepper(model: nn.Module, batch: int, device: str) -> Callable[[int], float]:
    """A function running ``steps`` Adam steps of ``model`` on one random batch, returning seconds per step."""
    model.to(device)
    x = torch.randn(batch, D_FEATURES, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def run(steps: int) -> float:
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        sync()
        return (time.perf_counter() - t0) / steps

    return run


def n_weights(hidden: int) -> int:
    """Weights and biases of the MLP 64-``hidden``-``hidden``-10."""
    return sum(p.numel() for p in make_mlp(hidden).parameters())


def time_mcnc(hidden: int, batches: Sequence[int], widths: Sequence[int], rounds: int, steps: int,
              device: str = "cpu", compile: bool = False, warmup: int = 20,
              threads: Optional[int] = None) -> List[Dict[str, Any]]:
    """Interleaved step times of every variant of :func:`builders`, and their ratios to the dense step.

    Parameters
    ----------
    hidden : int
        MLP hidden width (256: the digits example).
    batches : sequence of int
        Batch sizes.
    widths : sequence of int
        Generator hidden widths (the first also for the naive variant and the FLOP ratio).
    rounds, steps : int
        Rounds of ``steps`` steps per variant.
    device : str
        A torch device ("cpu", "cuda").
    compile : bool
        ``torch.compile(mode="reduce-overhead")`` every model, dense included.
    warmup : int
        Untimed steps per variant first.
    threads : int, optional
        torch's intra-op threads during the run (restored after); ``None`` keeps torch's setting.

    Returns
    -------
    list of dict
        Per batch: ``<variant>_ms`` (median step), ``<variant>_over_dense`` (median of the per-round ratios),
        ``flop_ratio``; plus ``name``, ``device``, ``threads`` (torch's) and ``seconds`` (the
        ``mcnc_w<widths[0]>`` step).
    """
    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _time_mcnc(hidden, batches, widths, rounds, steps, device, compile, warmup)
    finally:
        torch.set_num_threads(saved)


def _time_mcnc(hidden: int, batches: Sequence[int], widths: Sequence[int], rounds: int, steps: int,
               device: str, compile: bool, warmup: int) -> List[Dict[str, Any]]:
    makers = builders(hidden, widths)
    names = [v for v in makers if v != "dense"]
    n_w = n_weights(hidden)
    n_chunks = -(-n_w // CHUNK)
    rows = []
    for batch in batches:
        models = {v: b() for v, b in makers.items()}
        if compile:
            models = {v: torch.compile(m.to(device), mode="reduce-overhead") for v, m in models.items()}
        runs = {v: stepper(m, batch, device) for v, m in models.items()}
        for run in runs.values():
            run(warmup)
        times: Dict[str, list] = {v: [] for v in runs}
        for _ in range(rounds):
            for v, run in runs.items():
                times[v].append(run(steps))
        dense = np.array(times["dense"])
        med = {v: float(np.median(t)) for v, t in times.items()}
        ratio = {v: float(np.median(np.array(times[v]) / dense)) for v in names}
        flops = 1 + 4 * n_chunks * CHUNK * (widths[0] + 1) / (6 * batch * n_w)
        rows.append(dict(name=f"MLP h{hidden} batch {batch} {device}", device=device, hidden=hidden, batch=batch,
                         threads=torch.get_num_threads(),
                         **{f"{v}_ms": 1e3 * t for v, t in med.items()},
                         **{f"{v}_over_dense": r for v, r in ratio.items()}, flop_ratio=flops,
                         seconds=med[f"mcnc_w{widths[0]}"]))
    return rows
