"""The command line and the NN-BCD preset runner."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnbcd.cli import load_preset, main

ROOT = Path(__file__).resolve().parents[1]


def test_solve_default_preset_writes_results(tmp_path, capsys):
    rc = main(["solve", str(ROOT / "solvers" / "digits.toml"), "--out", str(tmp_path), "--quiet",
               "--set", "fit.max_iter=4"])
    assert rc == 0
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["nit"] == 4 and len(res["history"]["phi"]) == 4
    assert (tmp_path / "convergence.png").stat().st_size > 1000
    summary = json.loads(capsys.readouterr().out.split("results written")[0])
    assert summary["nit"] == 4 and 0 <= summary["test_acc"] <= 1


@pytest.mark.parametrize("override,match", [
    ("model.gama=1", "gama"), ("fit.maxiter=3", "maxiter"), ("data.name='cifar'", "cifar"),
    ("method='sgd'", "sgd"), ("extra=1", "extra"),
])
def test_unknown_keys_are_named(tmp_path, capsys, override, match):
    rc = main(["solve", str(ROOT / "solvers" / "digits.toml"), "--out", str(tmp_path), "--quiet",
               "--set", override])
    assert rc == 2 and match in capsys.readouterr().err


def test_missing_preset_file(tmp_path, capsys):
    assert main(["solve", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_override_parsing(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text("[model]\nlayers = [4, 2]\n")
    cfg = load_preset(p, ["model.gamma=0.25", "model.backend=numba", "fit.max_iter=7"])
    assert cfg["model"] == {"layers": [4, 2], "gamma": 0.25, "backend": "numba"}
    assert cfg["fit"]["max_iter"] == 7


def test_module_entry_point_info():
    out = subprocess.run([sys.executable, "-m", "nnbcd", "info"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "numpy" in out.stdout and "backends available" in out.stdout


@pytest.mark.parametrize("preset", sorted(p.name for p in (ROOT / "solvers").glob("*.toml")))
def test_every_preset_parses_and_builds(preset):
    """Each preset's tables are valid for its runner (data files for HAR/flare/MNIST are not needed)."""
    import inspect

    from nnbcd.bcd.conv import Conv2d
    from nnbcd.bcd.solver import NNBCD
    from nnbcd.cli import RUNNERS
    from nnbcd.presets import build_compression

    cfg = load_preset(ROOT / "solvers" / preset)
    assert cfg.get("method", "nnbcd") in RUNNERS
    if cfg.get("method", "nnbcd") != "nnbcd":
        return
    model = dict(cfg["model"])
    conv = model.pop("conv", None)
    layers = ([Conv2d(**conv)] if conv else []) + list(model.pop("layers"))
    assert set(model) <= set(inspect.signature(NNBCD).parameters)
    m = NNBCD(layers, compress=build_compression(cfg.get("compress", [])), **model)
    cfgv = m._validated()  # validates every compression spec against its layer's shape
    assert len(cfgv["compress"]) == len({lay for c in cfg.get("compress", []) for lay in c["layers"]})


def test_digits_tt_preset_runs(tmp_path, capsys):
    rc = main(["solve", str(ROOT / "solvers" / "digits_tt.toml"), "--out", str(tmp_path), "--quiet",
               "--set", "fit.max_iter=5"])
    assert rc == 0
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["compression"]["1"]["ranks"][0] == 1 and res["history"]["cr_1"][-1] < 0.3
