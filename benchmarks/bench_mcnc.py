"""Cost of one MCNC training step against the dense step on the digits MLP (64-256-256-10).

    python benchmarks/bench_mcnc.py [--steps 200] [--batches 64,256,1347]

Times forward + backward + Adam step, median over ``--steps`` steps after warm-up, for the dense model,
MCNC (sine generator, k = 8, d = 1024, width 256) and PRANC (linear generator), at several batch sizes,
and prints ``MCNC step / dense step``. Writes JSON.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nnbcd.torch.mcnc import MCNCSpec, wrap
from nnbcd.torch.mcnc_example import make_mlp


def step_time(model: nn.Module, batch: int, steps: int) -> float:
    x, y = torch.randn(batch, 64), torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    ts = []
    for i in range(steps + 20):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        if i >= 20:
            ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batches", default="64,256,1347")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_mcnc.json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    print(f"digits MLP training step, median of {args.steps} (torch threads: {torch.get_num_threads()})")
    print(f"{'batch':>6} {'dense ms':>9} {'mcnc ms':>8} {'pranc ms':>9} {'mcnc/dense':>10} {'pranc/dense':>11}")
    for batch in (int(b) for b in args.batches.split(",")):
        t = {"dense": step_time(make_mlp(256), batch, args.steps)}
        for gen in ("mcnc", "pranc"):
            t[gen] = step_time(wrap(make_mlp(256), MCNCSpec(k=8, d=1024, width=256, generator=gen)), batch, args.steps)
        row = dict(batch=batch, **{f"{k}_ms": 1e3 * v for k, v in t.items()},
                   mcnc_over_dense=t["mcnc"] / t["dense"], pranc_over_dense=t["pranc"] / t["dense"])
        rows.append(row)
        print(f"{batch:>6} {1e3 * t['dense']:9.3f} {1e3 * t['mcnc']:8.3f} {1e3 * t['pranc']:9.3f} "
              f"{row['mcnc_over_dense']:10.2f} {row['pranc_over_dense']:11.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
