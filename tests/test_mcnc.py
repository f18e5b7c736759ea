"""MCNC reparameterisation: sphere, seeds, exact storage, bake, gradients, modes, errors."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import sgd_gradients

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.utils import parametrize  # noqa: E402

from nnbcd.torch.mcnc import (  # noqa: E402
    MCNCGenerator,
    MCNCSpec,
    bake,
    compressed_state_dict,
    load_compressed,
    report,
    wrap,
)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 5))


def cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))


SPEC = MCNCSpec(k=4, d=64, width=32, seed=3)


def _train(model, x, steps=3):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()


def test_generator_on_the_sphere_and_pranc_linear():
    g = MCNCGenerator(SPEC)
    a = torch.rand(100, 4) * 2 - 1
    torch.testing.assert_close(g(a).norm(dim=1), torch.ones(100), atol=1e-6, rtol=0)
    p = MCNCGenerator(MCNCSpec(k=4, d=64, generator="pranc", seed=3))
    torch.testing.assert_close(p(2 * a), 2 * p(a))  # linear


def test_public_names_of_the_package_and_the_bridge():
    import nnbcd.torch
    import nnbcd.torch.mcnc as pkg

    for name in pkg.__all__:  # the mcnc package re-exports its modules' public names, the bridge finds them
        assert getattr(nnbcd.torch, name) is getattr(pkg, name)
    assert MCNCGenerator.__module__ == "nnbcd.torch.mcnc.generator"
    assert not hasattr(pkg, "Generator")  # renamed: it clashed with torch.Generator
    with pytest.raises(AttributeError):
        nnbcd.torch.Generator


def test_same_seed_same_generator_in_a_fresh_process():
    code = ("import torch, json; from nnbcd.torch.mcnc import MCNCGenerator, MCNCSpec; "
            "g = MCNCGenerator(MCNCSpec(k=4, d=64, width=32, seed=3)); "
            "print(json.dumps([float(getattr(g, n).double().sum()) for n in ('w0', 'w1', 'w2', 'b2')]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    g = MCNCGenerator(SPEC)
    assert json.loads(out.stdout) == [float(getattr(g, n).double().sum()) for n in ("w0", "w1", "w2", "b2")]
    assert not torch.equal(MCNCGenerator(MCNCSpec(k=4, d=64, width=32, seed=4)).w0, g.w0)


@pytest.mark.parametrize("make,x", [(mlp, torch.randn(8, 20)), (cnn, torch.randn(6, 1, 8, 8))])
def test_round_trip_bake_and_frozen_parts(make, x):
    model = wrap(make(), SPEC)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    _train(model, x)
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n  # nothing frozen moves
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"mcnc_alpha", "mcnc_beta"} <= trainable and all(".parametrizations." not in n for n in trainable)
    model.eval()
    rebuilt = load_compressed(make(), compressed_state_dict(model)).eval()
    assert torch.equal(rebuilt(x), model(x))  # bit for bit, BN statistics included
    baked = bake(model).eval()
    assert torch.equal(baked(x), model(x))
    assert not any(".parametrizations." in k for k in baked.state_dict())


def test_gradients_match_the_chain_rule():
    model = wrap(mlp(), SPEC)
    x = torch.randn(8, 20)
    model(x).square().mean().backward()
    dense = bake(model)
    dense(x).square().mean().backward()
    st = model.__dict__["_mcnc_store"]
    g = torch.cat([p.grad.reshape(-1) for n, p in dense.named_parameters() if n in dict(st.layout)])
    n = st.alpha.shape[0]
    g = torch.cat([g, torch.zeros(n * SPEC.d - g.numel())]).view(n, SPEC.d)
    with torch.no_grad():
        phi = st.generator(st.alpha)
    torch.testing.assert_close(model.mcnc_beta.grad[:, 0], (g * phi).sum(dim=1), rtol=1e-5, atol=1e-7)
    assert model.mcnc_alpha.grad.abs().sum() > 0


def test_report_counts_what_is_stored():
    model = wrap(mlp(), SPEC)
    rep = report(model)
    state = compressed_state_dict(model)
    tensors = [state["alpha"], state["beta"], *state["dense"].values()]
    assert rep["stored"] == sum(t.numel() for t in tensors)  # everything the state dict holds
    assert rep["stored_bytes"] == sum(t.numel() * t.element_size() for t in tensors)
    assert rep["compressed_params"] == 20 * 32 + 32 + 32 * 5 + 5
    assert rep["dense_leftovers"] == 2 * 32 and rep["dense_buffers"] == 2 * 32 + 1  # BN affine; stats, count
    assert rep["chunks"] == math.ceil(rep["compressed_params"] / 64)
    assert rep["paper_ratio"] == rep["compressed_params"] / (rep["chunks"] * 5)
    assert rep["honest_ratio"] < rep["paper_ratio"]
    assert rep["generator_params"] == (4 * 32 + 32) + (32 * 32 + 32) + (32 * 64 + 64)  # P_gen, spec §7
    entries = {t["name"]: t for t in rep["tensors"]}
    assert set(entries) == {n.replace(".parametrizations", "").replace(".original", "")
                            for n in mlp().state_dict()}
    assert entries["0.weight"]["chunks"] == [0, (640 - 1) // 64] and entries["3.bias"]["chunks"][1] == rep["chunks"] - 1


@pytest.mark.parametrize("spec", [MCNCSpec(k=4, d=64, width=32, depth=2), MCNCSpec(k=3, d=50, width=16, depth=3, m=2),
                                  MCNCSpec(k=4, d=64, generator="pranc")])
def test_reconstruction_flops_match_torch_flop_counter(spec):
    from torch.utils.flop_counter import FlopCounterMode

    from nnbcd.torch.mcnc import reconstruction_flops

    model = wrap(mlp(), spec)
    st = model.__dict__["_mcnc_store"]
    want = reconstruction_flops(spec, st.beta.shape[0])
    st.parts()  # the generator's weights in this dtype, and the head's Gram matrix, are formed once
    st.clear()
    with FlopCounterMode(display=False) as fwd:
        parts = st.parts()
    assert fwd.get_total_flops() == want["forward"]
    st.clear()
    with FlopCounterMode(display=False) as step:
        torch.autograd.backward(st.parts(), [torch.ones_like(p) for p in parts])
    assert step.get_total_flops() == want["train_step"]


def test_coverage_against_pairwise_cosines():
    from nnbcd.torch.mcnc import coverage

    spec = MCNCSpec(k=4, d=64, width=32, seed=3)
    cov = coverage(spec, samples=40, seed=5)
    rng = np.random.Generator(np.random.PCG64(5))
    alpha = torch.tensor(spec.alpha_bound * (2 * rng.random((40, 4)) - 1))
    phi = MCNCGenerator(spec).double()(alpha).numpy()
    cos = [phi[i] @ phi[j] for i in range(40) for j in range(i + 1, 40)]
    assert cov["cosine_mean"] == pytest.approx(np.mean(cos), abs=1e-12)
    assert cov["cosine_std"] == pytest.approx(np.std(cos, ddof=1), abs=1e-12)
    assert 0 < cov["norm_spread"] < 0.5 and cov["uniform_std"] == 1 / 8
    assert abs(coverage(MCNCSpec(k=4, d=64, generator="pranc"))["cosine_mean"]) < 0.05
    with pytest.raises(ValueError, match="samples"):
        coverage(spec, samples=1)


def test_residual_mode_starts_at_the_base():
    base = mlp().eval()
    x = torch.randn(8, 20)
    ref = base(x)
    model = wrap(mlp(), MCNCSpec(k=4, d=64, width=32, mode="residual")).eval()
    assert torch.equal(model(x), ref)
    model.train()
    _train(model, x)
    model.eval()
    assert not torch.equal(model(x), ref)
    rebuilt = load_compressed(mlp(), compressed_state_dict(model)).eval()
    assert torch.equal(rebuilt(x), model(x))


def test_eval_reconstruction_is_cached(monkeypatch):
    model = wrap(mlp(), SPEC)
    calls = []
    gen = model.__dict__["_mcnc_store"].generator
    orig = gen.combine
    monkeypatch.setattr(gen, "combine", lambda a, b: calls.append(1) or orig(a, b))
    x = torch.randn(4, 20)
    model(x)
    assert len(calls) == 1  # one batched generator call per forward, for all tensors
    model(x)
    assert len(calls) == 2  # training: fresh every forward
    model.eval()
    with torch.no_grad():
        model(x)
        n = len(calls)
        model(x)
    assert len(calls) == n <= 3  # eval without gradients: reused while alpha and beta are unchanged


@pytest.mark.parametrize("activation", ["sin", "tanh", "relu", "identity", "leaky_relu"])
@pytest.mark.parametrize("m", [1, 3])
def test_fused_generator_gradients(m, activation):
    """The fused generator's hand-written backward against gradcheck and against autograd of the plain
    formula sum_j beta_j normalize(A_o sigma(A_2 sigma(A_1 omega alpha + c_1) + c_2) + c_o)."""
    spec = MCNCSpec(k=3, d=7, width=5, depth=2, m=m, activation=activation, omega=1.7, seed=4)
    gen = MCNCGenerator(spec).double()
    n = 4
    torch.manual_seed(0)
    alpha = torch.randn(n * m, 3, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(n, m, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gen.combine, (alpha, beta))
    act = {"sin": torch.sin, "tanh": torch.tanh, "relu": torch.relu, "identity": lambda z: z,
           "leaky_relu": torch.nn.functional.leaky_relu}[activation]
    h = act(act(1.7 * alpha @ gen.w0.T + gen.b0) @ gen.w1.T + gen.b1)
    y = h @ gen.w2.T + gen.b2
    plain = (beta.reshape(n, m, 1) * (y / y.norm(dim=1, keepdim=True)).view(n, m, 7)).sum(1)
    torch.testing.assert_close(gen.combine(alpha, beta), plain, rtol=1e-13, atol=1e-13)
    g = torch.randn(n, 7, dtype=torch.float64)
    want = torch.autograd.grad(plain, (alpha, beta), g)
    got = torch.autograd.grad(gen.combine(alpha, beta), (alpha, beta), g)
    for u, v in zip(got, want):
        torch.testing.assert_close(u, v, rtol=1e-11, atol=1e-11)


def test_errors():
    with pytest.raises(ValueError, match="chunk size"):
        MCNCSpec(d=0)
    with pytest.raises(ValueError, match="k must be"):
        MCNCSpec(k=64, d=64)
    with pytest.raises(ValueError, match="generator"):
        MCNCSpec(generator="gan")
    for bad in ({"width": 64.5}, {"depth": 0}, {"omega": float("nan")}, {"alpha_bound": -1.0}, {"seed": -1},
                {"k": True}, {"lora_alpha": float("inf")}, {"compress_bias": "yes"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MCNCSpec(**bad)
    spec = MCNCSpec(k=np.int64(4), d=np.int32(64))  # numpy integers, as a config may give them: stored as int
    assert type(spec.k) is int and type(spec.d) is int
    model = wrap(mlp(), SPEC)
    with pytest.raises(ValueError, match="already wrapped"):
        wrap(model, SPEC)
    with pytest.raises(ValueError, match="nothing to compress"):
        wrap(nn.Sequential(nn.BatchNorm1d(4)), SPEC)
    with pytest.raises(ValueError, match="nothing to compress"):
        wrap(mlp(), MCNCSpec(k=4, d=64, exclude=("*",)))
    with pytest.raises(ValueError, match="'2.weight' matches none"):  # module 2 is the ReLU
        wrap(mlp(), MCNCSpec(k=4, d=64, exclude=("2.weight",)))
    with pytest.raises(TypeError, match="exclude"):
        MCNCSpec(exclude="0")
    with pytest.raises(ValueError, match="another architecture"):
        load_compressed(cnn(), compressed_state_dict(model))
    with pytest.raises(TypeError, match="MCNCSpec"):
        wrap(mlp(), {"k": 4})
    with pytest.raises(ValueError, match="not wrapped"):
        report(mlp())


def test_digits_runner_runs_small(tmp_path):
    from nnbcd.runners.mcnc import run

    cfg = {"method": "mcnc", "model": {"hidden": 16, "d": 128, "width": 16}, "fit": {"seeds": [0], "epochs": 1}}
    out = run(cfg, tmp_path, quiet=True)
    assert set(out) >= {"dense", "mcnc", "pranc"} and out["mcnc"]["ratio"] == out["pranc"]["ratio"]
    res = json.loads((tmp_path / "mcnc.json").read_text())["results"]
    assert res["mcnc"]["stored"] == res["pranc"]["stored"]  # the same budget for both
    assert (tmp_path / "curves.png").stat().st_size > 1000
    with pytest.raises(ValueError, match=r"'epoch'\] in \[fit\]"):
        run({"fit": {"epoch": 1}}, tmp_path)
    with pytest.raises(ValueError, match=r"'epochs'\] in \[top level\]"):  # the flat layout of old
        run({"epochs": 1}, tmp_path)


@pytest.mark.parametrize("make,x", [(mlp, torch.randn(8, 20)), (cnn, torch.randn(6, 1, 8, 8))])
def test_lora_mode(make, x):
    base = make().eval()
    ref = base(x)
    spec = MCNCSpec(k=4, d=64, width=32, mode="lora", lora_rank=2, lora_alpha=4.0, seed=1)
    model = wrap(make(), spec).eval()
    assert torch.equal(model(x), ref)  # B = 0 at the start: the frozen base exactly
    originals = {n: p.detach().clone() for n, p in model.named_parameters() if ".original" in n}
    model.train()
    _train(model, x)
    model.eval()
    assert not torch.equal(model(x), ref)
    for n, p in model.named_parameters():
        if n in originals:
            assert torch.equal(p, originals[n]) and not p.requires_grad
    rep = report(model)
    sizes = [(m.weight.shape[0], m.weight[0].numel()) for m in base if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert rep["compressed_params"] == sum(2 * (o + i) for o, i in sizes)
    assert rep["external_base"] == sum(o * i for o, i in sizes)
    state = compressed_state_dict(model)
    assert not any(".original" in k for k in state["dense"])
    assert torch.equal(load_compressed(make(), state).eval()(x), model(x))
    assert torch.equal(bake(model).eval()(x), model(x))
    other = make()
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    with pytest.raises(ValueError, match="frozen base"):
        load_compressed(other, state)


def test_span_form_sums_generator_terms():
    spec = MCNCSpec(k=4, d=64, width=32, m=3, seed=2)
    model = wrap(mlp(), spec)
    st = model.__dict__["_mcnc_store"]
    n = st.beta.shape[0]
    assert st.alpha.shape == (3 * n, 4) and st.beta.shape == (n, 3)
    with torch.no_grad():
        phi = MCNCGenerator(spec)(st.alpha).view(n, 3, 64)
        expect = sum(st.beta[:, j:j + 1] * phi[:, j] for j in range(3)).reshape(-1)[: st.total]
    torch.testing.assert_close(model[0].weight.detach().reshape(-1), expect[: 20 * 32])
    assert report(model)["alpha_beta"] == n * 3 * (4 + 1)
    with pytest.raises(ValueError, match="m \\(generator terms"):
        MCNCSpec(m=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", ["scratch", "residual", "lora"])
def test_cuda_matches_cpu_and_round_trips_exactly(mode):
    """Same spec and α, β on CPU and CUDA: weights within 1e-6 relative (spec §12); training on CUDA,
    then a CUDA rebuild from the compressed state dict is bitwise equal, and a CPU rebuild agrees."""
    spec = MCNCSpec(k=4, d=64, width=32, seed=3, mode=mode, lora_rank=2)
    x = torch.randn(8, 20)
    cpu = wrap(mlp(), spec)
    gpu = wrap(mlp().cuda(), spec)
    torch.testing.assert_close(gpu.mcnc_alpha.cpu(), cpu.mcnc_alpha)
    w_cpu = [p.detach() for p in bake(cpu).parameters()]
    w_gpu = [p.detach().cpu() for p in bake(gpu).parameters()]
    for a, b in zip(w_gpu, w_cpu):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    _train(gpu, x.cuda())
    assert gpu.mcnc_alpha.grad is not None and gpu.mcnc_alpha.grad.is_cuda
    state = compressed_state_dict(gpu)
    again = load_compressed(mlp().cuda(), state)
    gpu.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(again(x.cuda()), gpu(x.cuda()))
        on_cpu = load_compressed(mlp(), {**state, "alpha": state["alpha"].cpu(), "beta": state["beta"].cpu(),
                                         "dense": {k: v.cpu() for k, v in state["dense"].items()}}).eval()
        torch.testing.assert_close(on_cpu(x), gpu(x.cuda()).cpu(), rtol=1e-5, atol=1e-5)


def test_exclude_keeps_selected_parameters_dense():
    spec = MCNCSpec(k=4, d=64, width=32, seed=3, exclude=["0", "*.bias"])  # a list, as a stored spec has it
    model = wrap(mlp(), spec)
    assert model[0].weight.requires_grad and not parametrize.is_parametrized(model[0])
    assert parametrize.is_parametrized(model[3], "weight") and not parametrize.is_parametrized(model[3], "bias")
    x = torch.randn(16, 20)
    before = model[0].weight.detach().clone()
    _train(model, x)
    assert not torch.equal(model[0].weight, before)  # a dense leftover trains normally
    rep = report(model)
    assert rep["compressed_params"] == model[3].weight.numel()
    assert rep["dense_leftovers"] == sum(p.numel() for n, p in model.named_parameters()
                                         if not n.startswith("mcnc_") and ".parametrizations." not in n)
    state = compressed_state_dict(model)
    assert {"0.weight", "0.bias", "3.bias"} <= set(state["dense"])
    again = load_compressed(mlp(), state)
    model.eval(), again.eval()
    assert torch.equal(again(x), model(x))


@pytest.mark.parametrize("constraint", ["clamp", "wrap"])
def test_alpha_constraint(constraint):
    """The generator sees clamp(α) or α wrapped into [−L, L); α itself is stored as trained."""
    spec = MCNCSpec(k=4, d=64, width=32, seed=3, alpha_bound=0.5, alpha_constraint=constraint)
    model = wrap(mlp(), spec)
    st = model.__dict__["_mcnc_store"]
    with torch.no_grad():
        st.alpha.mul_(3.0)  # push most entries outside [−0.5, 0.5]
    st.clear()
    seen = st.alpha.clamp(-0.5, 0.5) if constraint == "clamp" else torch.remainder(st.alpha + 0.5, 1.0) - 0.5
    want = MCNCGenerator(spec).combine(seen.detach(), st.beta.detach()).reshape(-1)[: st.total]
    torch.testing.assert_close(torch.cat([p.reshape(-1) for p in st.parts()]), want, rtol=0, atol=0)
    calls = []
    orig = st.generator.combine
    st.generator.combine = lambda a, b: calls.append(1) or orig(a, b)
    model(torch.randn(8, 20)).square().sum().backward()
    assert len(calls) == 1  # the constraint does not defeat the one-call-per-forward cache
    del st.generator.combine
    outside = st.alpha.detach().abs() > 0.5
    if constraint == "clamp":
        assert torch.all(st.alpha.grad[outside] == 0) and torch.any(st.alpha.grad[~outside] != 0)
    else:
        assert torch.all(st.alpha.grad != 0)
    again = load_compressed(mlp(), compressed_state_dict(model))
    assert torch.equal(again.mcnc_alpha, st.alpha)
    with pytest.raises(ValueError, match="alpha_constraint"):
        MCNCSpec(alpha_constraint="tanh")


def test_bad_state_dicts_are_refused_before_touching_the_model():
    model = wrap(mlp(), SPEC)
    good = compressed_state_dict(model)
    assert good["format"] == "nnbcd.mcnc" and good["format_version"] == 2
    cases = {
        "not an nnbcd MCNC": {k: v for k, v in good.items() if k != "alpha"},
        "state format": {**good, "format": "something.else"},
        "does not fit": {**good, "spec": {**good["spec"], "frobnicate": 1}},
        "generator version": {**good, "spec": {**good["spec"], "version": "mcnc-gen/9"}},
        r"state\['alpha'\] has shape": {**good, "alpha": good["alpha"][:-1]},
        "dense entries differ": {**good, "dense": {k: v for k, v in good["dense"].items() if "running_mean" not in k}},
        r"\['1.weight'\] has shape \(7,\)": {**good, "dense": {**good["dense"], "1.weight": torch.ones(7)}},
    }
    for message, state in cases.items():
        fresh = mlp()
        before = {k: v.clone() for k, v in fresh.state_dict().items()}
        with pytest.raises(ValueError, match=message):
            load_compressed(fresh, state)
        assert not parametrize.is_parametrized(fresh[0]) and "_mcnc_store" not in fresh.__dict__
        assert all(torch.equal(v, before[k]) for k, v in fresh.state_dict().items())
    with pytest.raises(ValueError, match="not an nnbcd MCNC"):
        load_compressed(mlp(), mlp().state_dict())


def test_torch_compile_traces_the_fused_generator():
    """dynamo + AOT autograd through the parametrizations and the custom Function: at every step of
    an SGD run the gradients equal eager ones (the CUDA-graph variant runs in tests/test_gpu.py)."""
    x = torch.randn(16, 20)
    eager, compiled = wrap(mlp(), SPEC), wrap(mlp(), SPEC)
    for got, want in sgd_gradients(eager, compiled, torch.compile(compiled, backend="aot_eager"), x, 3):
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7 * float(b.abs().max()))


def test_double_backward_is_refused_not_wrong():
    """The hand-written backward is not itself differentiable: second derivatives raise instead of
    silently missing terms."""
    model = wrap(mlp(), SPEC)
    loss = model(torch.randn(8, 20)).square().sum()
    (g,) = torch.autograd.grad(loss, model.mcnc_alpha, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate"):
        g.sum().backward()


def test_functional_call_matches_the_module():
    """spec §15.6: the stateless call with the module's own parameters and buffers gives the same
    outputs, and swapping in other alpha/beta through it changes them like loading them would."""
    from torch.func import functional_call

    model = wrap(mlp(), SPEC).eval()
    x = torch.randn(8, 20)
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    with torch.no_grad():
        assert torch.equal(functional_call(model, state, (x,)), model(x))
        other = {**state, "mcnc_alpha": state["mcnc_alpha"] + 0.1}
        got = functional_call(model, other, (x,))
        twin = wrap(mlp(), SPEC).eval()
        twin.mcnc_alpha.copy_(other["mcnc_alpha"])
        torch.testing.assert_close(got, twin(x), rtol=0, atol=0)


def test_tied_and_mixed_tensors_are_refused_clearly():
    emb = nn.Embedding(10, 8)
    head = nn.Linear(8, 10, bias=False)
    head.weight = emb.weight  # tied, as in language models
    tied = nn.ModuleDict({"emb": emb, "head": head})
    for exclude in ((), ("head.weight",)):  # untying, or freezing the dense name: both refused
        with pytest.raises(ValueError, match=r"\['emb.weight', 'head.weight'\] are one tied tensor"):
            wrap(tied, MCNCSpec(k=4, d=64, exclude=exclude))
        assert not parametrize.is_parametrized(emb) and emb.weight.requires_grad
    tied["lin"] = nn.Linear(8, 8)
    wrap(tied, MCNCSpec(k=4, d=64, exclude=("emb.weight", "head.weight")))  # the suggested way out
    assert head.weight is emb.weight and emb.weight.requires_grad and parametrize.is_parametrized(tied["lin"])
    class Scale(nn.Module):  # not a compressible type, but holding a compressible layer's tensor
        def __init__(self, w):
            super().__init__()
            self.w = w

    shared = nn.ModuleDict({"lin": nn.Linear(4, 4)})
    shared["scale"] = Scale(shared["lin"].weight)
    with pytest.raises(ValueError, match=r"\['lin.weight', 'scale.w'\] are one tied tensor"):
        wrap(shared, SPEC)
    mixed = mlp()
    mixed[3].double()
    with pytest.raises(ValueError, match="one floating dtype and device"):
        wrap(mixed, SPEC)


def test_param_groups_partition_the_trainable_parameters():
    from nnbcd.torch.mcnc import param_groups

    model = wrap(mlp(), MCNCSpec(k=4, d=64, width=32, exclude=("3.bias",)))
    groups = param_groups(model, lr=0.1, dense_lr=0.01)
    assert [g["lr"] for g in groups] == [0.1, 0.01]
    assert groups[0]["params"][0] is model.mcnc_alpha and groups[0]["params"][1] is model.mcnc_beta
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters() if p.requires_grad)  # each exactly once
    assert any(p is model[3].bias for p in groups[1]["params"]) and any(p is model[1].weight for p in groups[1]["params"])
    torch.optim.Adam(groups)  # accepted as is
    only_ab = wrap(nn.Sequential(nn.Linear(4, 4)), MCNCSpec(k=2, d=8))
    assert len(param_groups(only_ab)) == 1
