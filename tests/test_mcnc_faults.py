"""Reliability of the MCNC bridge and the torch presets (issue 12): deep copies, storage, refusals, bad values.

Oracles: the original model itself (a deep copy must behave as it does, and an identical optimizer step on
the original must give what the step on the copy gave), exact Python types of the stored entries, the
model's state before a refused call, and hand-written bad values.
"""
import copy
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.utils import parametrize  # noqa: E402

from nnbcd.cli import main  # noqa: E402
from nnbcd.torch.mcnc import MCNCSpec, bake, compressed_state_dict, load_compressed, wrap  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
X = torch.randn(8, 20, generator=torch.Generator().manual_seed(5))


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 5))


def spec(mode="scratch", **kw):
    return MCNCSpec(k=4, d=64, width=32, seed=3, mode=mode, **kw)


def trained(mode="scratch"):
    """A wrapped MLP moved away from its start (β ≠ 0 in residual / LoRA mode too)."""
    model = wrap(mlp(), spec(mode))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(X).square().mean().backward()
        opt.step()
    return model


def out(model):
    model.eval()
    with torch.no_grad():
        return model(X)


def loss_grads(model):
    """α's and β's gradients of one training-mode loss (BatchNorm buffers saved and restored)."""
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    model.train()
    model.zero_grad()
    model(X).square().mean().backward()
    model.load_state_dict(buffers, strict=False)
    return model.mcnc_alpha.grad.clone(), model.mcnc_beta.grad.clone()


def unwrapped_state(model):
    assert "_mcnc_store" not in model.__dict__ and not any(parametrize.is_parametrized(m) for m in model.modules())
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_state(a, b):
    """Bit for bit (NaN included), dtype and shape too."""
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
                                        and a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a)


# ---- 1. deep copies -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["scratch", "residual", "lora"])
@pytest.mark.parametrize("after", ["backward", "no-grad forward"])
def test_deepcopy_is_an_independent_model(mode, after):
    model = trained(mode)
    if after == "backward":  # the store's cache then holds non-leaf tensors of the graph
        model.train()
        model(X).square().mean().backward()
    else:  # eval without gradients: the reconstruction stays cached
        out(model)
    expect = out(model)
    twin = copy.deepcopy(model)
    assert twin.mcnc_alpha is not model.mcnc_alpha and twin.mcnc_alpha.data_ptr() != model.mcnc_alpha.data_ptr()
    assert torch.equal(out(twin), expect)

    # the copy's gradients land on the copy's α / β, equal to the original's for the same loss
    ga, gb = loss_grads(model)
    model.zero_grad(set_to_none=True)
    ta, tb = loss_grads(twin)
    assert model.mcnc_alpha.grad is None and model.mcnc_beta.grad is None
    assert torch.equal(ta, ga) and torch.equal(tb, gb) and ga.abs().sum() > 0

    # a step on the copy changes the copy only; the same step on the original then gives the same model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.optim.SGD([twin.mcnc_alpha, twin.mcnc_beta], lr=0.5).step()
    assert same_state(model.state_dict(), before) and torch.equal(out(model), expect)
    stepped = out(twin)
    assert not torch.equal(stepped, expect)
    loss_grads(model)
    torch.optim.SGD([model.mcnc_alpha, model.mcnc_beta], lr=0.5).step()
    assert torch.equal(out(model), stepped)
    assert torch.equal(bake(twin)(X), out(twin))  # the copy bakes on its own


def test_deepcopy_of_a_copy_and_of_one_submodule():
    model = trained()
    twin = copy.deepcopy(copy.deepcopy(model))
    assert torch.equal(out(twin), out(model))
    layer = copy.deepcopy(model[0])  # alone, its parametrization still reads the model's α and β
    with torch.no_grad():
        assert torch.equal(layer.weight, model[0].weight)


# ---- 2. storage through torch.save / torch.load(weights_only=True) ----------------------------------------

def _leaf_types(value):
    if isinstance(value, dict):
        return set().union(*(_leaf_types(v) for v in value.values()), {type(k) for k in value})
    if isinstance(value, (list, tuple)):
        return set().union(*(_leaf_types(v) for v in value), set())
    return {type(value)}


@pytest.mark.parametrize("mode", ["scratch", "residual", "lora"])
def test_round_trip_through_a_file_with_weights_only(tmp_path, mode):
    model = trained(mode)
    state = compressed_state_dict(model)
    # plain types only (exact types: TorchVersion is a str subclass that weights_only refuses)
    assert _leaf_types(state) <= {str, int, float, bool, type(None), torch.Tensor}
    path = tmp_path / "mcnc.pt"
    torch.save(state, path)
    loaded = torch.load(path, weights_only=True)
    # scratch mode rebuilds everything from the state: start from other weights to show it
    fresh = load_compressed(mlp(seed=1) if mode == "scratch" else mlp(), loaded)
    assert torch.equal(out(fresh), out(model))


def test_a_version_1_state_is_still_read():
    model = trained()
    old = {k: v for k, v in compressed_state_dict(model).items() if k != "generator_sha256"}
    old["format_version"] = 1  # saved before the generator digest existed
    assert torch.equal(out(load_compressed(mlp(seed=1), old)), out(model))


# ---- 3. load_compressed refuses bad states before touching the model ---------------------------------------

def _edit(state, key, value):
    return {**state, key: value}


def _dense(state, key, value):
    return {**state, "dense": {**state["dense"], key: value}}


def _nan_at(t, index, value=float("nan")):
    t = t.clone()
    t[index] = value
    return t


BAD_STATES = {
    "NaN alpha": (ValueError, r"state\['alpha'\] holds NaN", lambda s: _edit(s, "alpha", _nan_at(s["alpha"], (0, 0)))),
    "Inf beta": (ValueError, r"state\['beta'\] holds NaN or Inf",
                 lambda s: _edit(s, "beta", _nan_at(s["beta"], (0, 0), math.inf))),
    "NaN dense weight": (ValueError, r"\['1.weight'\] holds NaN",
                         lambda s: _dense(s, "1.weight", _nan_at(s["dense"]["1.weight"], 3))),
    "Inf running var": (ValueError, r"\['1.running_var'\] holds NaN or Inf",
                        lambda s: _dense(s, "1.running_var", _nan_at(s["dense"]["1.running_var"], 0, math.inf))),
    "int64 alpha": (TypeError, r"state\['alpha'\] must be a floating", lambda s: _edit(s, "alpha", s["alpha"].long())),
    "complex beta": (TypeError, r"state\['beta'\] must be a floating", lambda s: _edit(s, "beta", s["beta"] + 0j)),
    "float step counter": (TypeError, r"\['1.num_batches_tracked'\] must be a non-floating",
                           lambda s: _dense(s, "1.num_batches_tracked", s["dense"]["1.num_batches_tracked"].float())),
    "numpy alpha": (TypeError, r"state\['alpha'\] must be a torch.Tensor, got ndarray",
                    lambda s: _edit(s, "alpha", s["alpha"].numpy())),
    "numpy dense": (TypeError, r"\['1.bias'\] must be a torch.Tensor",
                    lambda s: _dense(s, "1.bias", np.zeros(32, np.float32))),
    "changed seed": (ValueError, r"generator_sha256.*seed = 4",
                     lambda s: _edit(s, "spec", {**s["spec"], "seed": 4})),
    "changed width": (ValueError, r"generator_sha256", lambda s: _edit(s, "spec", {**s["spec"], "width": 16})),
    "no generator digest": (TypeError, r"generator_sha256", lambda s: {k: v for k, v in s.items()
                                                                       if k != "generator_sha256"}),
    "layout a string": (ValueError, r"state\['layout'\] must be a list", lambda s: _edit(s, "layout", "0.weight")),
    "layout entry short": (ValueError, r"state\['layout'\] must be", lambda s: _edit(s, "layout", [["0.weight"]])),
    "layout negative": (ValueError, r"state\['layout'\] must be",
                        lambda s: _edit(s, "layout", [["0.weight", [-32, 20]]] + s["layout"][1:])),
    "layout name int": (ValueError, r"state\['layout'\] must be",
                        lambda s: _edit(s, "layout", [[0, [32, 20]]] + s["layout"][1:])),
    "layout other": (ValueError, r"state\['layout'\]: .*another architecture",
                     lambda s: _edit(s, "layout", [["0.weight", [20, 32]]] + s["layout"][1:])),
    "format version str": (TypeError, r"format_version'\] must be an int", lambda s: _edit(s, "format_version", "2")),
    "format version bool": (TypeError, r"format_version'\] must be an int", lambda s: _edit(s, "format_version", True)),
    "format version newer": (ValueError, r"version 3 is not one", lambda s: _edit(s, "format_version", 3)),
    "format version zero": (ValueError, r"version 0 is not one", lambda s: _edit(s, "format_version", 0)),
    "spec a list": (TypeError, r"state\['spec'\] must be a dict", lambda s: _edit(s, "spec", [1, 2])),
    "spec bad value": (ValueError, r"state\['spec'\].*omega", lambda s: _edit(s, "spec", {**s["spec"], "omega": -1})),
    "dense a list": (TypeError, r"state\['dense'\] must be a dict", lambda s: _edit(s, "dense", [1])),
    "not a dict": (ValueError, "not an nnbcd MCNC", lambda s: list(s)),
}


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_load_compressed_refuses_before_touching_the_model(case):
    exc, match, corrupt = BAD_STATES[case]
    state = corrupt(compressed_state_dict(trained()))
    fresh = mlp(seed=1)
    before = unwrapped_state(fresh)
    with pytest.raises(exc, match=match):
        load_compressed(fresh, state)
    assert same_state(unwrapped_state(fresh), before)


def test_load_compressed_refuses_another_base_and_a_wrapped_or_odd_model():
    state = compressed_state_dict(trained("residual"))
    other = mlp(seed=1)  # residual mode: the base is the model's own weights, identified by SHA-256
    before = unwrapped_state(other)
    with pytest.raises(ValueError, match=r"base_sha256"):
        load_compressed(other, state)
    assert same_state(unwrapped_state(other), before)
    with pytest.raises(ValueError, match="already wrapped"):
        load_compressed(trained("residual"), state)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        load_compressed(state, state)


# ---- 4. wrap refuses non-finite weights and impossible generators --------------------------------------------

@pytest.mark.parametrize("name,value", [("0.weight", math.nan), ("3.bias", math.inf), ("1.weight", -math.inf)])
@pytest.mark.parametrize("mode", ["scratch", "residual", "lora"])
def test_wrap_refuses_non_finite_weights(name, value, mode):
    model = mlp()
    with torch.no_grad():
        dict(model.named_parameters())[name].view(-1)[1] = value
    before = unwrapped_state(model)
    with pytest.raises(ValueError, match=rf"parameter '{name}' holds NaN or Inf"):
        wrap(model, spec(mode))
    assert same_state(unwrapped_state(model), before) and "mcnc_alpha" not in dict(model.named_parameters())


def test_wrap_refuses_a_generator_too_large_to_allocate_and_a_bad_exclude():
    model = mlp()
    before = unwrapped_state(model)
    with pytest.raises(ValueError, match=r"d = 100000000000000000000\) cannot be allocated"):
        wrap(model, MCNCSpec(k=4, d=10**20, width=32))
    assert same_state(unwrapped_state(model), before)
    with pytest.raises(TypeError, match="exclude must be a list or tuple"):
        MCNCSpec(exclude=5)


# ---- 5. torch presets: every numeric key refuses bad values by name ---------------------------------------

LOWRANK_INT = ["model.channels", "model.hidden", "fit.random_state", "fit.epochs", "fit.finetune_epochs",
               "fit.batch_size"]
LOWRANK_REAL = ["fit.lr", "fit.finetune_lr", "fit.lam"]
MCNC_INT = ["model.hidden", "model.k", "model.d", "model.width", "model.depth", "model.lora_rank", "model.m",
            "fit.epochs", "fit.batch_size"]
MCNC_REAL = ["model.omega", "model.alpha_bound", "model.lora_alpha", "fit.lr_dense", "fit.lr_mcnc"]
BAD_REAL = ["-1", "nan", "inf", "-inf", "'x'", "true", "[1]"]
BAD_INT = BAD_REAL + ["2.5", "-0.0"]
CASES = ([("digits_lowrank.toml", k, v) for k in LOWRANK_INT for v in BAD_INT]
         + [("digits_lowrank.toml", k, v) for k in LOWRANK_REAL for v in BAD_REAL]
         + [("digits_mcnc.toml", k, v) for k in MCNC_INT for v in BAD_INT]
         + [("digits_mcnc.toml", k, v) for k in MCNC_REAL for v in BAD_REAL]
         + [("digits_mcnc.toml", "fit.seeds", v) for v in ("[-1]", "[0, 2.5]", "[true]", "['x']", "5", "[]")]
         + [("digits_mcnc.toml", "fit.seeds", "[18446744073709551616]"),
            ("digits_lowrank.toml", "fit.random_state", "18446744073709551616")])


@pytest.mark.parametrize("preset,key,value", CASES)
def test_torch_presets_name_every_bad_numeric_value(tmp_path, capsys, preset, key, value):
    table, name = key.split(".")
    rc = main(["solve", str(ROOT / "solvers" / preset), "--set", f"{key}={value}", "--out", str(tmp_path / "o"),
               "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("nnbcd: error:") and f"[{table}] {name}" in err, err
    assert not (tmp_path / "o").exists()  # refused before the data, the training or the output directory


def test_lowrank_lam_minus_one_is_refused_not_switched_off(tmp_path, capsys):
    rc = main(["solve", str(ROOT / "solvers" / "digits_lowrank.toml"), "--set", "fit.lam=-1",
               "--out", str(tmp_path)])
    assert rc == 2 and "[fit] lam must be a finite non-negative number, got -1" in capsys.readouterr().err


def test_lowrank_batch_larger_than_the_data_is_the_whole_set(tmp_path):
    rc = main(["solve", str(ROOT / "solvers" / "digits_lowrank.toml"), "--out", str(tmp_path), "--quiet",
               "--set", "fit.batch_size=100000000000000000000", "--set", "fit.epochs=1",
               "--set", "fit.finetune_epochs=0", "--set", "model.channels=2", "--set", "model.hidden=4"])
    assert rc == 0 and (tmp_path / "lowrank.json").is_file()
