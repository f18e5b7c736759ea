"""Cost of one MCNC training step against the dense step on the digits MLP (64-256-256-10).

    python benchmarks/bench_mcnc.py [--rounds 30] [--batches 64,256,1347] [--widths 64,32] [--device cpu]
                                    [--hidden 256] [--profile]

Times forward + backward + Adam step for the dense model, MCNC (sine generator, k = 8, d = 1024, hidden
widths ``--widths``), MCNC with the generator's head left to autograd (the naive formulation:
``β · normalize(A h + c)``, about ten passes over n × d) and PRANC (linear generator), at several batch
sizes, interleaved round by round (:func:`nnbcd.bench.mcnc.time_mcnc`, what ``nnbcd bench`` runs; its
docstring says how). Also printed: the FLOP ratio (dense step 6·B·D, plus 4·D·(h+1) for the generator's
output layer forward and backward), which is what the step ratio tends to once per-call overheads are
gone. Writes JSON.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _timing import write_result  # benchmarks/ is on sys.path when this script runs

from nnbcd.bench.mcnc import CHUNK, builders, n_weights, stepper, time_mcnc


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
    batches = [int(b) for b in args.batches.split(",")]
    n_w = n_weights(hidden)
    threads = torch.get_num_threads()
    print(f"MLP 64-{hidden}-{hidden}-10 ({n_w} weights, {-(-n_w // CHUNK)} chunks of {CHUNK}) training step on "
          f"{args.device}; median over {args.rounds} interleaved rounds of {args.steps} steps "
          f"(torch threads: {threads})")
    rows = time_mcnc(hidden, batches, widths, args.rounds, args.steps, args.device, args.compile)
    names = [v for v in builders(hidden, widths) if v != "dense"]
    print(f"{'batch':>6} {'dense ms':>9} " + " ".join(f"{v + ' ms':>13}" for v in names) + "   "
          + " ".join(f"{v + '/dense':>17}" for v in names) + "  FLOP ratio w" + str(widths[0]))
    for r in rows:
        print(f"{r['batch']:>6} {r['dense_ms']:9.3f} " + " ".join(f"{r[v + '_ms']:13.3f}" for v in names)
              + "   " + " ".join(f"{r[v + '_over_dense']:17.2f}" for v in names) + f"  {r['flop_ratio']:12.2f}")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        run = stepper(builders(hidden, widths)[f"mcnc_w{widths[0]}"](), batches[0], args.device)
        run(20)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
        with profile(activities=acts) as prof:
            run(50)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / (
        "bench_mcnc" + ("" if args.device == "cpu" else "_" + args.device.split(":")[0])
        + ("" if hidden == 256 else f"_h{hidden}") + ("_compiled" if args.compile else "") + ".json")
    write_result(out, {"compile": args.compile, "hidden": hidden, "n_weights": n_w, "device": args.device,
                       "threads": threads, "rounds": args.rounds,
                       "steps": args.steps, "torch": torch.__version__, "rows": rows})


if __name__ == "__main__":
    main()
