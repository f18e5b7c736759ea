"""Cost of one MCNC training step against the dense step on the digits MLP (64-256-256-10).

    python benchmarks/bench_mcnc.py [--rounds 30] [--batches 64,256,1347] [--widths 64,32] [--device cpu]
                                    [--hidden 256] [--profile]

Times forward + backward + Adam step for the dense model, MCNC (sine generator, k = 8, d = 1024, hidden
widths ``--widths``), MCNC with the generator's head left to autograd (the naive formulation:
``β · normalize(A h + c)``, about ten passes over n × d) and PRANC (linear generator), at several batch
sizes. The variants are interleaved: each round times ``--steps`` steps of every variant in turn, and a
ratio is taken against the dense time of the same round, so a machine that slows down for a while
slows all of them alike; the table shows medians over rounds. Also printed: the FLOP ratio
(dense step 6·B·D, plus 4·D·(h+1) for the generator's output layer forward and backward), which is what
the step ratio tends to once per-call overheads are gone. Writes JSON.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import torch
from _timing import write_result  # benchmarks/ is on sys.path when this script runs
from torch import nn

from nnbcd.runners.mcnc import make_mlp
from nnbcd.torch.mcnc import MCNCSpec, wrap
from nnbcd.torch.mcnc.generator import _hidden_layers

D_FEATURES, K, CHUNK = 64, 8, 1024


def _naive_head(model: nn.Module) -> nn.Module:
    """MCNC in the reference formulation: autograd through β · normalize(A_o h + c_o), h the same hidden
    layers (plain torch ops, so autograd differentiates them)."""
    gen = model.__dict__["_mcnc_store"].generator

    def combine(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        a, _, *hidden = gen.weights(alpha)
        y = nn.functional.linear(_hidden_layers(alpha, gen.spec, hidden), a[:, :-1], a[:, -1])
        return beta * (y / y.norm(dim=1, keepdim=True).clamp_min(1e-12))

    gen.combine = combine
    return model


def _stepper(model: nn.Module, batch: int, device: str) -> Callable[[int], float]:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--steps", type=int, default=10, help="steps per variant per round")
    ap.add_argument("--batches", default="64,256,1347")
    ap.add_argument("--widths", default="64,32", help="generator hidden widths to time (MCNC)")
    ap.add_argument("--hidden", type=int, default=256, help="MLP hidden width (256: the digits example)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile(mode='reduce-overhead') every model, dense included (CUDA graphs on a GPU)")
    ap.add_argument("--profile", action="store_true", help="then print torch.profiler's top ops of the MCNC step")
    ap.add_argument("--out", default=None, help="JSON path (default: results/bench_mcnc[_DEVICE].json)")
    args = ap.parse_args()
    torch.manual_seed(0)
    hidden = args.hidden
    widths = [int(w) for w in args.widths.split(",")]
    n_weights = sum(p.numel() for p in make_mlp(hidden).parameters())
    n_chunks = -(-n_weights // CHUNK)
    builders: Dict[str, Callable[[], nn.Module]] = {"dense": lambda: make_mlp(hidden)}
    for w in widths:
        builders[f"mcnc_w{w}"] = lambda w=w: wrap(make_mlp(hidden), MCNCSpec(k=K, d=CHUNK, width=w))
    builders[f"naive_w{widths[0]}"] = lambda: _naive_head(wrap(make_mlp(hidden), MCNCSpec(k=K, d=CHUNK,
                                                                                        width=widths[0])))
    builders["pranc"] = lambda: wrap(make_mlp(hidden), MCNCSpec(k=K, d=CHUNK, generator="pranc"))
    threads = torch.get_num_threads()
    print(f"MLP 64-{hidden}-{hidden}-10 ({n_weights} weights, {n_chunks} chunks of {CHUNK}) training step on {args.device}; "
          f"median over {args.rounds} interleaved rounds of {args.steps} steps (torch threads: {threads})")
    names = [v for v in builders if v != "dense"]
    print(f"{'batch':>6} {'dense ms':>9} " + " ".join(f"{v + ' ms':>13}" for v in names) + "   "
          + " ".join(f"{v + '/dense':>17}" for v in names) + "  FLOP ratio w" + str(widths[0]))
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        models = {v: b() for v, b in builders.items()}
        if args.compile:
            models = {v: torch.compile(m.to(args.device), mode="reduce-overhead") for v, m in models.items()}
        runs = {v: _stepper(m, batch, args.device) for v, m in models.items()}
        for run in runs.values():
            run(20)
        times: Dict[str, list] = {v: [] for v in runs}
        for _ in range(args.rounds):
            for v, run in runs.items():
                times[v].append(run(args.steps))
        dense = np.array(times["dense"])
        med = {v: float(np.median(t)) for v, t in times.items()}
        ratio = {v: float(np.median(np.array(times[v]) / dense)) for v in names}
        flops = 1 + 4 * n_chunks * CHUNK * (widths[0] + 1) / (6 * batch * n_weights)
        rows.append(dict(batch=batch, **{f"{v}_ms": 1e3 * t for v, t in med.items()},
                         **{f"{v}_over_dense": r for v, r in ratio.items()}, flop_ratio=flops))
        print(f"{batch:>6} {1e3 * med['dense']:9.3f} " + " ".join(f"{1e3 * med[v]:13.3f}" for v in names)
              + "   " + " ".join(f"{ratio[v]:17.2f}" for v in names) + f"  {flops:12.2f}")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        run = _stepper(builders[f"mcnc_w{widths[0]}"](), int(args.batches.split(",")[0]), args.device)
        run(20)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
        with profile(activities=acts) as prof:
            run(50)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / (
        "bench_mcnc" + ("" if args.device == "cpu" else "_" + args.device.split(":")[0])
        + ("" if hidden == 256 else f"_h{hidden}") + ("_compiled" if args.compile else "") + ".json")
    write_result(out, {"compile": args.compile, "hidden": hidden, "n_weights": n_weights, "device": args.device,
                       "threads": threads, "rounds": args.rounds,
                       "steps": args.steps, "torch": torch.__version__, "rows": rows})


if __name__ == "__main__":
    main()
