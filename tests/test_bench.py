"""``nnbcd bench``: a short run through the command line, checked against hand counts and its own JSON's
independent relations; the comparison table; bad options; the BLAS thread policy."""
from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from nnbcd.backend import BackendUnavailableError, get_backend
from nnbcd.backend.threads import MIN_FLOPS_PER_THREAD, blas_thread_limit, blas_threads, usable_cores
from nnbcd.bcd.conv import InputConv2d
from nnbcd.bench import compare
from nnbcd.bench.flops import block_flops, largest_gemm, sweep_flops
from nnbcd.cli import main

N_DIGITS = 1347


def _digits_flops_by_hand(n: int) -> float:
    """One sweep of 64-256-256-10 (spec §9 conventions), term by term."""
    # layer 0, W 256×64: U product; W block: UV^T and two solves (its Gram and Cholesky are cached)
    layer0 = 2 * 256 * 64 * n + 2 * 256 * 64 * n + 2 * 64 ** 2 * 256
    # V_0 with W_1 (256×256): 2·256 < 3·256, push-through with a 256×256 system: M, then two GEMMs
    v0 = 256 ** 3 + 256 ** 3 / 3 + 2 * 256 ** 3 + 4 * 256 * 256 * n
    # layer 1, W 256×256: U product; W block: Gram, Cholesky, UV^T, solves
    layer1 = 2 * 256 * 256 * n + (256 ** 2 * n + 256 ** 3 / 3 + 2 * 256 * 256 * n + 2 * 256 ** 2 * 256)
    # V_1 with W_2 (10×256): 2·10 < 3·256, push-through with a 10×10 system
    v1 = 10 ** 2 * 256 + 10 ** 3 / 3 + 2 * 10 ** 2 * 256 + 4 * 10 * 256 * n
    # layer 2, W 10×256
    layer2 = 2 * 10 * 256 * n + (256 ** 2 * n + 256 ** 3 / 3 + 2 * 10 * 256 * n + 2 * 256 ** 2 * 10)
    return layer0 + v0 + layer1 + v1 + layer2


def test_sweep_flops_hand_counts():
    assert sweep_flops((64, 256, 256, 10), N_DIGITS) == pytest.approx(_digits_flops_by_hand(N_DIGITS), rel=1e-12)
    n = N_DIGITS  # per block: the three U products; the W blocks; the two V blocks (push-through)
    by_block = block_flops((64, 256, 256, 10), n)
    assert by_block["U"] == pytest.approx(2 * n * (256 * 64 + 256 * 256 + 10 * 256), rel=1e-12)
    assert by_block["V"] == pytest.approx(256 ** 3 * (3 + 1 / 3) + 4 * 256 * 256 * n
                                          + 10 ** 2 * 256 * 3 + 10 ** 3 / 3 + 4 * 10 * 256 * n, rel=1e-12)
    assert by_block["W"] == pytest.approx(_digits_flops_by_hand(n) - by_block["U"] - by_block["V"], rel=1e-12)
    # a conv first layer: 2 filters of 3×3 on 1×5×5, stride 2 → 2×2 positions, P = 9; then 8-6-3, N = 10
    conv = InputConv2d(in_shape=(1, 5, 5), filters=2, kernel=3, stride=2)
    n, cols = 10, 40  # the conv layer's products have N·H'W' columns
    layer0 = 2 * 2 * 9 * cols + 2 * 2 * 9 * cols + 2 * 81 * 2
    v0 = 36 * 8 + 216 / 3 + 2 * 36 * 8 + 4 * 6 * 8 * n  # W_1 is 6×8: 12 < 24, push-through, 6×6 system
    layer1 = 2 * 6 * 8 * n + (64 * n + 512 / 3 + 2 * 6 * 8 * n + 2 * 64 * 6)
    v1 = 9 * 6 + 27 / 3 + 2 * 9 * 6 + 4 * 3 * 6 * n  # W_2 is 3×6: push-through, 3×3 system
    layer2 = 2 * 3 * 6 * n + (36 * n + 216 / 3 + 2 * 3 * 6 * n + 2 * 36 * 3)
    assert sweep_flops((25, 8, 6, 3), n, conv) == pytest.approx(layer0 + v0 + layer1 + v1 + layer2, rel=1e-12)
    assert largest_gemm((25, 8, 6, 3), n, conv) == (2, 9, 40)  # 720 > 6·8·10 = 480
    assert largest_gemm((64, 256, 256, 10), N_DIGITS) == (256, 256, N_DIGITS)
    with pytest.raises(ValueError, match="n=100 is below layer 1's input width 256"):
        sweep_flops((64, 256, 256, 10), 100)


def test_thread_policy_by_size():
    cores = usable_cores()
    assert cores == len(os.sched_getaffinity(0))
    assert blas_threads(2 * 256 * 256 * N_DIGITS) == 1  # 1.8e8 FLOPs: below one thread's share
    assert blas_threads(2 * 1024 * 1024 * 7352) == min(cores, 15)  # 1.54e10 // 1e9
    assert blas_threads(0.0) == 1
    assert blas_threads(1e18) == cores
    assert blas_threads(1.0, n_jobs=3) == 3 and blas_threads(1e18, n_jobs=-1) == cores
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="n_jobs"):
            blas_threads(1.0, n_jobs=bad)
    with pytest.raises(ValueError, match="gemm_flops"):
        blas_threads(-1.0)
    assert MIN_FLOPS_PER_THREAD == 1e9


def test_thread_limit_is_scoped():
    def blas():
        return {p["filepath"]: p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    before = blas()
    with blas_thread_limit(1.0) as n:
        assert n == 1 and set(blas().values()) == {1}
    assert blas() == before


@pytest.fixture(scope="module")
def short_report(tmp_path_factory):
    """``nnbcd bench`` restricted to the digits sweeps, numpy (and cupy: absent without a GPU), one repeat."""
    out = tmp_path_factory.mktemp("bench") / "report"
    code = main(["bench", "--size", "small", "--repeats", "1", "--backends", "numpy,cupy", "--only", "digits",
                 "--out", str(out), "--quiet"])
    return code, out


def test_short_run_writes_the_report(short_report):
    code, out = short_report
    assert code == 0
    report = json.loads((out / "bench.json").read_text())
    assert report["schema"] == "nnbcd-bench/1"
    assert report["options"] == {"backends": ["numpy", "cupy"], "size": "small", "repeats": 1, "only": ["digits"]}
    for name in report["files"]:
        assert (out / name).stat().st_size > 0
    assert {"bench.json", "report.md", "blocks.png", "floor_ratio.png"} <= set(report["files"])
    assert report["failed"] == []
    # the machine: what threadpoolctl and the OS say in this process
    machine = report["machine"]
    assert machine["cpu"]["logical_cores"] == os.cpu_count()
    assert {p["internal_api"] for p in machine["blas"]} >= {p["internal_api"] for p in threadpool_info()
                                                           if p["user_api"] == "blas"}
    assert report["run"]["wall_s"] > 0 and report["run"]["cpu_s"] > 0
    # cupy: absent with the backend's own reason, or measured
    try:
        get_backend("cupy")
        reason = None
    except BackendUnavailableError as exc:
        reason = str(exc)
    assert report["backends"]["cupy"] == {"available": reason is None, "reason": reason}
    if reason is not None:
        assert {"what": "backend cupy", "reason": reason} in report["absent"]
        assert "backend cupy: " + reason in (out / "report.md").read_text()


def test_short_run_values(short_report):
    _, out = short_report
    rows = [r for r in json.loads((out / "bench.json").read_text())["sweeps"] if r["backend"] in ("numpy", "naive")]
    expected = {(v, "numpy", d) for v in ("dense", "tt", "prune", "tt_cores", "prune_masked")
                for d in ("float32", "float64")}
    expected |= {("dense", "naive", d) for d in ("float32", "float64")}
    assert {(r["variant"], r["backend"], r["dtype"]) for r in rows} == expected
    numpy_dense = {r["dtype"]: r["sweep_s"] for r in rows if (r["backend"], r["variant"]) == ("numpy", "dense")}
    flops = _digits_flops_by_hand(N_DIGITS)
    for r in rows:
        assert r["widths"] == [64, 256, 256, 10] and r["n"] == N_DIGITS
        assert r["sweep_flops"] == pytest.approx(flops, rel=1e-12)
        assert r["gemm_shape"] == [256, 256, N_DIGITS]
        assert r["floor_s"] == pytest.approx(flops / (r["gemm_gflops"] * 1e9), rel=1e-9)
        assert r["time_over_floor"] == pytest.approx(r["sweep_s"] / r["floor_s"], rel=1e-9)
        assert r["blas_threads"] == 1  # 2·256·256·1347 = 1.8e8 FLOPs < 1e9 per thread
        if r["variant"] == "dense":
            assert r["speedup_vs_numpy"] == pytest.approx(numpy_dense[r["dtype"]] / r["sweep_s"], rel=1e-9)
        if r["variant"] in ("tt_cores", "prune_masked"):  # over the projection variant it replaces
            twin = next(t for t in rows if (t["variant"], t["backend"], t["dtype"]) == (
                r["variant"].split("_")[0], r["backend"], r["dtype"]))
            assert r["vs_projection"] == pytest.approx(r["sweep_s"] / twin["sweep_s"], rel=1e-9)
        else:
            assert "vs_projection" not in r
        if r["backend"] == "numpy":
            blocks = r["blocks_s"]
            assert set(blocks) >= {"time_V", "time_U", "time_W", "time_comp"}
            # one timed sweep: its blocks ran inside it
            assert sum(blocks.values()) <= r["sweep_s"] * (1 + 1e-9)
            # the exact blocks have no projection step: their W-block is the compressed form's solve
            assert (blocks["time_comp"] > 0) == (r["variant"] in ("tt", "prune"))
    md = (out / "report.md").read_text()
    assert "; one timed repeat each; " in md
    assert "| digits | tt | numpy | float32 | 1347 |" in md and "![blocks](blocks.png)" in md
    assert "| vs projection |" in md and "| digits | tt_cores | numpy | float32 | 1347 |" in md


def test_compare_ratios(short_report, tmp_path, capsys):
    _, out = short_report
    a = json.loads((out / "bench.json").read_text())
    b = json.loads(json.dumps(a))
    b["sweeps"][0]["seconds"] *= 2.0  # a slower B row, one row B lacks
    dropped = b["sweeps"].pop()
    (tmp_path / "b.json").write_text(json.dumps(b))
    capsys.readouterr()
    assert main(["bench", "--compare", str(out), str(tmp_path / "b.json")]) == 0
    text = capsys.readouterr().out
    rows = compare(a, b)
    by_name = {r["name"]: r for r in rows}
    assert dropped["name"] not in by_name and len(rows) == len(a["sweeps"]) - 1
    for ra in a["sweeps"][:-1]:
        rb = next(r for r in b["sweeps"] if r["name"] == ra["name"])
        assert by_name[ra["name"]]["b_over_a"] == pytest.approx(rb["seconds"] / ra["seconds"], rel=1e-12)
        line = next(ln for ln in text.splitlines() if ln.strip().startswith("sweeps") and f" {ra['name']} " in ln)
        shown = float(re.split(r"\s{2,}", line.strip())[4])  # section, row, A s, B s, B/A
        assert shown == pytest.approx(rb["seconds"] / ra["seconds"], rel=1e-3)
    assert by_name[a["sweeps"][0]["name"]]["b_over_a"] == pytest.approx(2.0)
    assert "(1 rows are in one report only)" in text


@pytest.mark.parametrize("args,option", [
    (["--backends", "numpy,tpu"], "--backends"),
    (["--only", "digits,everything"], "--only"),
    (["--repeats", "0"], "--repeats"),
    (["--only", ""], "--only"),  # nothing to run is a mistake, not an empty report
    (["--backends", ""], "--backends"),
    (["--compare", "/nonexistent/a", "/nonexistent/b"], "--compare"),
])
def test_bad_options_are_named(tmp_path, capsys, args, option):
    assert main(["bench", "--out", str(tmp_path / "r")] + args) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnbcd: error: ") and option in err
    assert not (tmp_path / "r" / "bench.json").exists()


def test_unknown_size_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--size", "huge"])
    assert exc.value.code == 2 and "--size" in capsys.readouterr().err


def test_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["bench", "--only", "digits", "--out", str(blocker / "report")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and str(blocker / "report") in err


def test_not_a_report(tmp_path, capsys):
    (tmp_path / "x.json").write_text(json.dumps({"rows": []}))
    assert main(["bench", "--compare", str(tmp_path / "x.json"), str(tmp_path / "x.json")]) == 2
    assert "is not an nnbcd bench report" in capsys.readouterr().err


def test_incomplete_report_is_named(short_report, tmp_path, capsys):
    _, out = short_report
    report = json.loads((out / "bench.json").read_text())
    del report["machine"]  # a hand-edited report
    (tmp_path / "b.json").write_text(json.dumps(report))
    assert main(["bench", "--compare", str(out), str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnbcd: error: --compare: ") and str(tmp_path / "b.json") in err and "'machine'" in err


def test_ctrl_c_stops_the_run_and_keeps_the_report(tmp_path, monkeypatch, capsys):
    """Ctrl-C in a fit: the solver catches it and returns status INTERRUPTED; the bench stops there, writes what
    finished and exits 130. Simulated by the sweeps' callback raising KeyboardInterrupt in the second fit, as
    the signal would inside it."""
    from nnbcd.bench import sweeps

    fits, stop = [], sweeps._StopAfter.__call__

    def call(self, result):
        if self not in fits:
            fits.append(self)
        if len(fits) == 2:
            raise KeyboardInterrupt
        return stop(self, result)

    monkeypatch.setattr(sweeps._StopAfter, "__call__", call)
    out = tmp_path / "r"
    assert main(["bench", "--backends", "numpy", "--only", "digits", "--repeats", "1", "--quiet",
                 "--out", str(out)]) == 130
    report = json.loads((out / "bench.json").read_text())
    # the naive row and the first fit finished; the second fit was cut; nothing after it ran
    assert report["interrupted"] == "digits/tt numpy float32"
    assert [r["name"] for r in report["sweeps"]] == ["digits/dense naive float32", "digits/dense numpy float32"]
    assert [t["what"] for t in report["tasks"]] == ["digits/dense naive float32", "digits/dense numpy float32"]
    assert report["failed"] == [] and all(math.isfinite(r["sweep_s"]) for r in report["sweeps"])
    assert {"blocks.png", "floor_ratio.png"} <= set(report["files"])
    assert "**Interrupted (Ctrl-C) during digits/tt numpy float32: " in (out / "report.md").read_text()
    assert "nnbcd: interrupted during digits/tt numpy float32" in capsys.readouterr().err


@pytest.mark.parametrize("only,plots", [("digits", ["floor_ratio.png"]), ("topk", [])])
def test_every_backend_absent(tmp_path, only, plots):
    """No available backend among those asked: a report listing them absent (exit 0), with the measurements
    that need none (the naive rows) and only the plots that have rows."""
    try:
        get_backend("cupy")
        pytest.skip("CuPy is usable here")
    except BackendUnavailableError as exc:
        reason = str(exc)
    out = tmp_path / "r"
    assert main(["bench", "--backends", "cupy", "--only", only, "--repeats", "1", "--quiet", "--out", str(out)]) == 0
    report = json.loads((out / "bench.json").read_text())
    assert report["absent"] == [{"what": "backend cupy", "reason": reason}] and report["failed"] == []
    assert report["files"] == ["bench.json", "report.md"] + plots
    assert sorted(p.name for p in out.iterdir()) == sorted(report["files"])
    assert {r["backend"] for r in report.get("sweeps", [])} <= {"naive"}
    assert "## Absent\n\n- backend cupy: " + reason in (out / "report.md").read_text()


def test_internal_failure_is_not_a_bad_option(tmp_path, monkeypatch):
    """A ValueError from inside the run is the bench's failure (a traceback, exit status 1), not rc 2."""
    from nnbcd.bench import suite

    def broken(report, out):
        raise ValueError("a bug")

    monkeypatch.setattr(suite, "plot_report", broken)
    with pytest.raises(RuntimeError, match="nnbcd bench failed: ValueError: a bug") as exc:
        main(["bench", "--backends", "numpy", "--only", "topk", "--repeats", "1", "--quiet",
              "--out", str(tmp_path / "r")])
    assert isinstance(exc.value.__cause__, ValueError)


@pytest.mark.slow
def test_small_run_everything(tmp_path):
    """The whole ``--size small`` run (about a minute on 2 idle cores): every part present."""
    out = tmp_path / "small"
    assert main(["bench", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "bench.json").read_text())
    assert {r["workload"] for r in report["sweeps"]} == {"digits", "har", "cnn"}
    assert {r["axis"] for r in report["scaling"]} == {"n", "width"}
    for section in ("evbmf", "topk"):
        assert report[section]
    assert all(r["same"] for r in report["topk"])
    assert all(r["rank_ours"] == r["rank_straightforward"] for r in report["evbmf"] if r["scale"] == 1.0)
    conc = report["concurrency"]
    assert conc["with_policy"]["blas_threads"] == 1 and conc["without_policy"]["blas_threads"] is None
    for key in ("without_policy", "with_policy"):
        c = conc[key]
        assert c["ratio"] == pytest.approx(np.mean(c["two_at_once_s"]) / c["alone_s"])
    assert {"scaling.png", "blocks.png"} <= set(report["files"])
    assert math.isfinite(report["run"]["cpu_s"])


def test_cupy_path_on_the_numpy_standin(tmp_path):
    """The GPU rows and the GPU's machine entry, through test_cupy_standin's numpy stand-in for CuPy (plus the
    device-property calls the report makes), with the numba-cuda kernel made unusable: its array-expression
    fallback runs instead of the CUDA simulator, which would take minutes at the digits size."""
    pytest.importorskip("numba.cuda")
    import subprocess
    import sys

    from test_cupy_standin import SCRIPT

    standin = SCRIPT[:SCRIPT.index("import nnbcd\n")]
    script = standin + f"""
cupy.__version__ = "13.0.0-standin"
cupy.linalg.qr, cupy.linalg.solve = np.linalg.qr, np.linalg.solve  # the exact blocks' (tt_cores, prune_masked)
cupy.cuda.runtime.getDeviceProperties = lambda i: {{"name": b"Stand-in GPU", "totalGlobalMem": 80 * 2 ** 30,
                                                    "major": 9, "minor": 0}}
cupy.cuda.runtime.driverGetVersion = lambda: 12040
cupy.cuda.runtime.runtimeGetVersion = lambda: 12020
import nnbcd.backend.cuda_kernels as ck
def broken(*args):
    raise RuntimeError("kernel disabled by the test")
ck.relu_prox_update = broken
from nnbcd.cli import main
sys.exit(main(["bench", "--backends", "numpy,cupy", "--only", "digits,topk", "--repeats", "1", "--quiet",
               "--out", {str(tmp_path)!r}]))
"""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    res = subprocess.run([sys.executable, "-W", "ignore::RuntimeWarning", "-c", script], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["backends"]["cupy"] == {"available": True, "reason": None}
    gpu = report["machine"]["gpu"]
    assert (gpu["name"], gpu["memory_gib"], gpu["compute_capability"], gpu["driver"], gpu["runtime"]) == (
        "Stand-in GPU", 80.0, "9.0", "12.4", "12.2")
    assert gpu["relu_prox_kernel"] == "RuntimeError: kernel disabled by the test"
    cupy_rows = [r for r in report["sweeps"] if r["backend"] == "cupy"]
    assert len(cupy_rows) == 10 and all(r["sweep_s"] > 0 and "speedup_vs_numpy" in r for r in cupy_rows)
    assert {r["backend"] for r in report["topk"]} == {"numpy", "cupy"} and all(r["same"] for r in report["topk"])
    assert "GPU: Stand-in GPU (80.0 GiB, compute 9.0), driver CUDA 12.4, runtime CUDA 12.2" in (
        tmp_path / "report.md").read_text()
