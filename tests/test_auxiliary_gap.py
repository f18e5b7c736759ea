"""benchmarks/auxiliary_gap.py, the checkpoint diagnosis docs/compression.md quotes, against the package's own
runs of the same iterate (the deployed accuracy, the output-layer refit) and numpy."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from nnbcd.bcd import checkpoint as ckpt
from nnbcd.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def auxiliary_gap():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the script imports its sibling _timing
    try:
        spec = importlib.util.spec_from_file_location("auxiliary_gap", ROOT / "benchmarks" / "auxiliary_gap.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def _summary(capsys):
    return json.loads(capsys.readouterr().out.split("results written")[0])


def test_diagnosis_matches_the_runs_of_the_same_iterate(tmp_path, capsys, auxiliary_gap):
    out = tmp_path / "run"
    settings = ["--set", "model.hidden_layer_sizes=[16]", "--set", "model.backend='numpy'", "--set", "model.bias=true",
                "--set", "fit.max_iter=3", "--set", "fit.checkpoint_every=3"]
    assert main(["solve", str(ROOT / "solvers" / "digits.toml"), "--out", str(out), "--quiet", *settings]) == 0
    plain = _summary(capsys)
    diag = auxiliary_gap.diagnose(out)
    assert diag["sweep"] == 3
    assert round(diag["deployed_acc"], 4) == plain["train_acc"]  # the checkpoint is the final iterate
    it = ckpt.load(out).iterate
    for row, w, v in zip(diag["layers"], it.W, it.V):
        assert row["weight_norm"] == pytest.approx(np.linalg.norm(w.astype(np.float64), 2), rel=1e-12)
        assert row["v_rms"] == pytest.approx(float(np.sqrt(np.mean(v.astype(np.float64) ** 2))), rel=1e-12)
    # the readout's plain row is the package's refit of this iterate
    assert main(["solve", "--resume", str(out), "--quiet", "--set", "model.refit_output=true"]) == 0
    capsys.readouterr()
    refit = json.loads((out / "result.json").read_text())["output_refit"]
    plain_row = [row for row in diag["readout"] if row["ridge"] == 0.0][0]
    assert plain_row["test_acc"] == pytest.approx(refit["val_acc"], abs=1e-12)
