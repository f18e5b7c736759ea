"""decompose / estimate_ranks / budget_ranks faults (issue 12): caller state untouched by MAC counting,
tied modules and shared parameters, the model as a single layer, and arguments refused with their name.

Oracles: hand-counted MACs, numpy's SVD truncation (Eckart–Young), ``model.parameters()`` (which counts a
shared parameter once)."""
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

from nnbcd.torch.lowrank import budget_ranks, decompose, estimate_ranks


def _n_params(model):
    return sum(p.numel() for p in model.parameters())  # parameters() yields a shared parameter once


def _truncated(w, r):
    u, s, vh = np.linalg.svd(w, full_matrices=False)
    return (u[:, :r] * s[:r]) @ vh[:r]


def _bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(),
                         nn.Linear(8 * 6 * 6, 10))


def test_mac_counting_leaves_batchnorm_state_and_modes_alone():
    model = _bn_model().train()
    model[3].eval()  # a submodule the caller put in eval mode stays so, the rest stays in train mode
    for _ in range(2):
        model(torch.randn(5, 3, 6, 6))
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    modes = {k: m.training for k, m in model.named_modules()}
    x = torch.randn(4, 3, 6, 6)
    new, rep = decompose(model, ranks={"0": (4, 2), "5": 3}, example_input=x)
    assert set(buffers) == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    for k, v in model.named_buffers():
        assert torch.equal(v, buffers[k]), k
    for k, v in new.named_buffers():  # the returned copy carries the caller's statistics too
        assert torch.equal(v, buffers[k]), k
    assert {k: m.training for k, m in model.named_modules()} == modes
    # MACs per example, by hand: conv 8·6·6 outputs × 3·3·3, linear 288 × 10
    assert rep.macs_before == 8 * 6 * 6 * 27 + 288 * 10
    assert rep.macs_after == 36 * (3 * 2 + 2 * 4 * 9 + 4 * 8) + 288 * 3 + 3 * 10


def test_a_failing_forward_names_example_input_and_restores_modes():
    model = _bn_model().train()
    with pytest.raises(ValueError, match="example_input"):
        decompose(model, ranks={"5": 3}, example_input=torch.randn(2, 3, 7, 7))
    assert all(m.training for m in model.modules())
    with pytest.raises(TypeError, match="example_input"):
        decompose(model, ranks={"5": 3}, example_input=np.zeros((2, 3, 6, 6)))


def test_a_module_under_two_names_keeps_its_tie():
    torch.manual_seed(0)
    lin = nn.Linear(40, 40, dtype=torch.float64)
    model = nn.Sequential(OrderedDict(enc=lin, act=nn.Tanh(), dec=lin))
    assert _n_params(model) == 1640
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    w5 = _truncated(w, 5)
    x = np.random.default_rng(0).standard_normal((7, 40))
    expected = np.tanh(x @ w5.T + b) @ w5.T + b
    for key in ("enc", "dec"):  # either name selects the module
        new, rep = decompose(model, ranks={key: 5})
        assert new.enc is new.dec and isinstance(new.enc, nn.Sequential)
        assert rep.params_before == 1640 and rep.params_after == _n_params(new) == 5 * 80 + 40
        assert [(r.name, r.aliases, r.action) for r in rep.layers] == [("enc", ("dec",), "svd split")]
        assert rep.params_before - rep.params_after == sum(r.params_before - r.params_after for r in rep.layers)
        with torch.no_grad():
            np.testing.assert_allclose(new(torch.from_numpy(x)).numpy(), expected, atol=1e-12)
    assert "enc=dec" in rep.table()
    with pytest.raises(ValueError, match="same module"):
        decompose(model, ranks={"enc": 5, "dec": 6})


def test_a_tied_low_rank_module_keeps_its_tie_at_evbmf_ranks():
    rng = np.random.default_rng(1)
    lin = nn.Linear(60, 60, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(rng.standard_normal((60, 4)) @ rng.standard_normal((4, 60))
                                          + 1e-3 * rng.standard_normal((60, 60))))
    model = nn.Sequential(OrderedDict(enc=lin, act=nn.ReLU(), dec=lin))
    assert list(estimate_ranks(model)) == ["enc"] and estimate_ranks(model)["enc"][0] == (4,)
    new, rep = decompose(model, example_input=torch.randn(3, 60, dtype=torch.float64))
    assert new.enc is new.dec and rep.params_after == _n_params(new) == 4 * 120 + 60
    assert rep.macs_before == 2 * 3600 and rep.macs_after == 2 * 4 * 120  # the module runs twice per input


def test_parameters_shared_between_modules_are_kept():
    emb = nn.Embedding(100, 40)
    head = nn.Linear(40, 100, bias=False)
    head.weight = emb.weight  # tied input/output embedding
    model = nn.ModuleDict({"emb": emb, "head": head})
    new, rep = decompose(model, ranks={"head": 5})
    assert [r.action for r in rep.layers] == ["kept (parameters shared with 'emb')"]
    assert new["head"].weight is new["emb"].weight and rep.params_after == rep.params_before == _n_params(model)
    assert estimate_ranks(model) == {} and budget_ranks(model, 0.5) == {}
    a, b = nn.Linear(30, 30), nn.Linear(30, 30)
    b.weight = a.weight
    _, rep = decompose(nn.Sequential(a, b), ranks={"0": 3, "1": 3})
    assert [r.action for r in rep.layers] == ["kept (parameters shared with '1')",
                                              "kept (parameters shared with '0')"]


def test_the_model_may_be_the_layer_itself():
    torch.manual_seed(2)
    lin = nn.Linear(60, 40, dtype=torch.float64)
    new, rep = decompose(lin, ranks={"": 5})
    assert isinstance(new, nn.Sequential) and rep.params_after == _n_params(new) == 5 * 100 + 40
    x = torch.randn(6, 60, dtype=torch.float64)
    expected = x.numpy() @ _truncated(lin.weight.detach().numpy(), 5).T + lin.bias.detach().numpy()
    with torch.no_grad():
        np.testing.assert_allclose(new(x).numpy(), expected, atol=1e-12)


def test_zero_weights_report_zero_error():
    lin, conv = nn.Linear(30, 30), nn.Conv2d(8, 8, 3)
    for m in (lin, conv):
        nn.init.zeros_(m.weight)
    _, rep = decompose(nn.Sequential(lin, conv), ranks={"0": 2, "1": (2, 2)})
    assert [(r.action, r.rel_error) for r in rep.layers] == [("svd split", 0.0), ("tucker2", 0.0)]


def test_complex_and_lazy_layers():
    model = nn.Sequential(nn.Linear(6, 6, dtype=torch.complex64))
    _, rep = decompose(model, ranks={"0": 2})
    assert rep.layers[0].action == "kept (complex weights)" and estimate_ranks(model) == {}
    with pytest.raises(ValueError, match="lazy"):
        decompose(nn.Sequential(nn.LazyLinear(5)))


def _small():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(ranks=[("3", 2)]), TypeError, "ranks must be a dict"),
    (dict(ranks={"3": 2.5}), TypeError, r"ranks\['3'\]"),
    (dict(ranks={"3": float("nan")}), TypeError, r"ranks\['3'\]"),
    (dict(ranks={"3": True}), TypeError, r"ranks\['3'\]"),
    (dict(ranks={"3": "2"}), TypeError, r"ranks\['3'\]"),
    (dict(ranks={"3": ()}), TypeError, r"ranks\['3'\]"),
    (dict(ranks={"0": (2.0, 3)}), TypeError, r"ranks\['0'\]"),
    (dict(ranks={"3": -1}), ValueError, r"ranks\['3'\].*≥ 0"),
    (dict(ranks={"0": (2, -3)}), ValueError, r"ranks\['0'\]"),
    (dict(ranks={"0": 3}), ValueError, r"ranks\['0'\].*\(r_out, r_in\)"),
    (dict(ranks={"nope": 3}), ValueError, r"ranks names 'nope'.*the layers are \['0', '3'\]"),
    (dict(ranks={"1": 3}), ValueError, "ranks names '1'"),
    (dict(ranks={3: 3}), ValueError, "ranks names 3"),
    (dict(skip="3"), TypeError, "skip"),
    (dict(skip=5), TypeError, "skip"),
    (dict(skip=("nope",)), ValueError, "skip names 'nope'"),
    (dict(skip=("3",), ranks={"3": 2}), ValueError, r"\['3'\] are in both ranks and skip"),
    (dict(budget=0), ValueError, "budget"),
    (dict(budget=1.5), ValueError, "budget"),
    (dict(budget=-0.1), ValueError, "budget"),
    (dict(budget=float("nan")), ValueError, "budget"),
    (dict(budget="0.3"), TypeError, "budget"),
    (dict(budget=True), TypeError, "budget"),
    (dict(budget=0.3, ranks={"3": 2}), ValueError, "ranks or budget"),
    (dict(r_min=0), ValueError, "r_min"),
    (dict(r_min=1.5), ValueError, "r_min"),
    (dict(weaken=1.5), ValueError, "weaken"),
    (dict(weaken="0.5"), TypeError, "weaken"),
    (dict(on_zero="drop"), ValueError, "on_zero"),
    (dict(hooi_iter=True), ValueError, "hooi_iter"),
    (dict(hooi_iter=1.5), ValueError, "hooi_iter"),
])
def test_decompose_refuses_bad_arguments(kwargs, exc, words):
    model = _small()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(exc, match=words):
        decompose(model, **kwargs)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("call,exc,words", [
    (lambda m: estimate_ranks("model"), TypeError, "model"),
    (lambda m: budget_ranks("model", 0.5), TypeError, "model"),
    (lambda m: estimate_ranks(m, tau_mode="bad"), ValueError, "tau_mode"),
    (lambda m: estimate_ranks(m, r_min=-1), ValueError, "r_min"),
    (lambda m: estimate_ranks(m, weaken=float("nan")), ValueError, "weaken"),
    (lambda m: budget_ranks(m, 0), ValueError, "budget"),
    (lambda m: budget_ranks(m, 0.5, skip="3"), TypeError, "skip"),
    (lambda m: budget_ranks(m, 0.5, skip=("x",)), ValueError, "skip names 'x'"),
])
def test_rank_helpers_refuse_bad_arguments(call, exc, words):
    with pytest.raises(exc, match=words):
        call(_small())


def test_budget_one_and_rank_zero_are_valid():
    model = _small()
    ranks = budget_ranks(model, 1.0)

    def cost(r):  # conv 3→8, 3×3 as Tucker-2 (r_out, r_in); Linear 128→10 as a rank-r split
        return 3 * r["0"][1] + r["0"][1] * r["0"][0] * 9 + r["0"][0] * 8 + r["3"][0] * (128 + 10)

    limit = 8 * 3 * 9 + 10 * 128
    assert cost(ranks) <= limit
    full = {"0": (8, 3), "3": (10,)}
    for name, k in (("0", 0), ("0", 1), ("3", 0)):  # greedy is maximal: no rank can grow within the budget
        grown = {n: list(r) for n, r in ranks.items()}
        grown[name][k] += 1
        assert grown[name][k] > full[name][k] or cost(grown) > limit
    new, rep = decompose(model, budget=1.0)
    conv_cost, lin_cost = cost({"0": ranks["0"], "3": (0,)}), cost({"0": (0, 0), "3": ranks["3"]})
    kept = "kept (no parameter saving)"
    assert {r.name: r.action for r in rep.layers} == {"0": "tucker2" if conv_cost < 8 * 3 * 9 else kept,
                                                      "3": "svd split" if lin_cost < 10 * 128 else kept}
    assert rep.params_after == _n_params(new) <= rep.params_before
    _, rep = decompose(model, ranks={"3": 0, "0": (0, 2)})
    assert [r.action for r in rep.layers] == ["kept (rank 0)", "kept (rank 0)"]
