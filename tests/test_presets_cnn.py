"""The offline MNIST-5k CNN presets (dense and TT): they load their data and run, on a small stand-in.

The full presets take seconds per sweep (5408-wide layer, 4000 images); here the same tables run two sweeps
on 500 training images with narrower layers (4 filters, 64-64 hidden), which exercises the data section,
the conv layer and the TT-matrix core blocks of the preset itself.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from nnbcd import TT
from nnbcd.cli import main
from nnbcd.ops import tt_n_params, tt_ranks

pytest.importorskip("mlxtend")

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["data.test_size=0.9", "fit.max_iter=2", "fit.monitor_every=1", "model.conv.filters=4",
         "model.hidden_layer_sizes=[64, 64]"]


@pytest.mark.parametrize("preset", ["mnist5k_cnn.toml", "mnist5k_cnn_tt.toml"])
def test_mnist5k_cnn_presets_run_on_a_small_stand_in(tmp_path, preset):
    args = ["solve", str(ROOT / "solvers" / preset), "--out", str(tmp_path), "--quiet"]
    for item in SMALL:
        args += ["--set", item]
    assert main(args) == 0
    res = json.loads((tmp_path / "result.json").read_text())
    h = res["history"]
    assert res["nit"] == 2 and len(h["val_acc"]) == 2 and 0 <= h["val_acc"][-1] <= 1
    if preset == "mnist5k_cnn.toml":
        assert "cr_2" not in h
        return
    # layer 0 is the conv (4 filters x 13 x 13 = 676 features), layers 1 and 2 are TT-matrix at rank 40;
    # CR_2 from the TT parameter count of each layer's modes (an independent count)
    shapes = [(64, 676), (64, 64)]
    spec = TT(rank=40, layout="matrix", block="cores")
    stored = sum(tt_n_params(spec.modes(s), tt_ranks(spec.modes(s), 40)) for s in shapes)
    assert np.isclose(h["cr_2"][-1], stored / sum(math.prod(s) for s in shapes))
