"""The command line, the preset schema and the NN-BCD runner."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnbcd.cli import main
from nnbcd.runners import METHODS, get_runner
from nnbcd.runners.schema import load_preset

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.name for p in (ROOT / "solvers").glob("*.toml"))


def _solve(preset, out, *overrides):
    args = ["solve", str(ROOT / "solvers" / preset), "--out", str(out), "--quiet"]
    for item in overrides:
        args += ["--set", item]
    return main(args)


def test_solve_default_preset_writes_results(tmp_path, capsys):
    assert _solve("digits.toml", tmp_path, "fit.max_iter=2") == 0
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["nit"] == 2 and len(res["history"]["objective"]) == 2
    assert (tmp_path / "convergence.png").stat().st_size > 1000
    summary = json.loads(capsys.readouterr().out.split("results written")[0])
    assert summary["preset"] == "digits" and summary["nit"] == 2 and 0 <= summary["test_acc"] <= 1


@pytest.mark.parametrize("override,match", [
    ("model.gama=1", "'gama'] in [model]"), ("fit.maxiter=3", "'maxiter'] in [fit]"),
    ("data.nme='digits'", "'nme'] in [data]"), ("data.name='cifar'", "cifar"), ("method='sgd'", "sgd"),
    ("extra=1", "'extra'] in [top level]"),
    # the training parameters live in [fit], the model's in [model]
    ("model.max_iter=3", "'max_iter'] in [model]"), ("fit.gamma=1.0", "'gamma'] in [fit]"),
])
def test_unknown_keys_are_named_with_their_table(tmp_path, capsys, override, match):
    assert _solve("digits.toml", tmp_path / "out", override) == 2
    assert match in capsys.readouterr().err


TORCH_PRESETS = {"digits_lowrank.toml", "digits_mcnc.toml", "digits_mcnc_full.toml"}


@pytest.mark.parametrize("preset,override,match", [
    ("digits.toml", "fit=3", "fit must be a table"),
    ("digits.toml", "compress=5", "compress must be an array of tables"),
    ("digits.toml", 'data="digits"', "data must be a table"),
    ("digits.toml", "fit.verbose=3", "[fit] verbose must be true or false"),
    ("digits.toml", "name=3", "name must be a string"),
    ("digits_tt.toml", "compress=[{type='tt', rank=3}]", "[compress #1] needs layers"),
    ("digits_tt.toml", "compress=[{type='svd', layers=[0]}]", "[compress #1] type = 'svd'"),
    ("digits_tt.toml", "compress=[{type='tt', layers=[0], rnak=3}]", "'rnak'] in [compress #1]"),
    ("digits_tt.toml", "compress=[{type='prune', layers=[0, 0]}]", "layer 0 is compressed twice"),
    ("digits_tt.toml", "model.tau={a=1.0}", "[model] tau"),
    ("mnist_cnn.toml", "model.conv=3", "[model] conv must be a table"),
    ("mnist_cnn.toml", "model.conv.filter=3", "'filter'] in [model.conv]"),
    ("digits_mcnc.toml", "fit.epochs=0", "[fit] epochs must be a positive integer, got 0"),
    ("digits_mcnc.toml", "fit.seeds=[]", "[fit] seeds must be a non-empty list"),
    ("digits_mcnc.toml", "fit.seeds=[0, -1]", "[fit] seeds[1]"),
    ("digits_mcnc.toml", "fit.lr_mcnc=-1", "[fit] lr_mcnc must be a finite positive number"),
    ("digits_mcnc.toml", "model.k=4096", "[model] k must be smaller"),
    ("digits_mcnc.toml", "model.generator='pranc'", "'generator'] in [model]"),
    ("digits_mcnc.toml", "compress=[]", "'compress'] in [top level]"),
    ("digits_lowrank.toml", "fit.epochs=0", "[fit] epochs must be a positive integer"),
    ("digits_lowrank.toml", "fit.penalty='l2'", "[fit] penalty = 'l2' is not one of"),
    ("digits_lowrank.toml", "model.channels=2.5", "[model] channels must be a positive integer"),
    ("digits_lowrank.toml", "fit=[1]", "fit must be a table"),
])
def test_bad_tables_are_named_before_anything_runs(tmp_path, capsys, preset, override, match):
    if preset in TORCH_PRESETS:
        pytest.importorskip("torch")
    assert _solve(preset, tmp_path / "out", override) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnbcd: error:") and match in err
    assert not (tmp_path / "out").exists()  # checked before the output directory, the data or training


def test_fit_verbose_is_accepted_and_quiet_forces_it_off(tmp_path):
    from nnbcd.runners import nnbcd as runner

    cfg = load_preset(ROOT / "solvers" / "digits.toml", ["fit.verbose=true", "fit.max_iter=2"])
    preset = runner.check(cfg)
    assert preset.fit["verbose"] is True
    assert runner.make_estimator(preset).verbose is True
    assert runner.make_estimator(preset, quiet=True).verbose is False
    assert _solve("digits.toml", tmp_path, "fit.verbose=false", "fit.max_iter=2") == 0


def test_torch_runner_prints_unless_quiet(tmp_path, capsys):
    pytest.importorskip("torch")
    from nnbcd.runners import mcnc

    cfg = load_preset(ROOT / "solvers" / "digits_mcnc.toml",
                      ["fit.seeds=[0]", "fit.epochs=1", "model.hidden=8", "model.d=64", "model.width=8"])
    mcnc.run(cfg, tmp_path, quiet=True)
    assert capsys.readouterr().out == ""
    mcnc.run(cfg, tmp_path)  # [fit] verbose defaults to true
    assert "test accuracy" in capsys.readouterr().out


def test_unwritable_out_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert _solve("digits.toml", blocker / "out", "fit.max_iter=2") == 2
    err = capsys.readouterr().err
    assert err.startswith("nnbcd: error: results directory") and str(blocker / "out") in err
    assert "Traceback" not in err


def test_missing_preset_file(tmp_path, capsys):
    assert main(["solve", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_override_parsing(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text("[model]\nhidden_layer_sizes = [4, 2]\n")
    cfg = load_preset(p, ["model.gamma=0.25", "model.backend=numba", "fit.max_iter=7", "model.conv.filters=3"])
    assert cfg["model"] == {"hidden_layer_sizes": [4, 2], "gamma": 0.25, "backend": "numba", "conv": {"filters": 3}}
    assert cfg["fit"] == {"max_iter": 7}
    with pytest.raises(ValueError, match="'max_iter' is not a table"):
        load_preset(p, ["fit.max_iter=7", "fit.max_iter.x=1"])
    with pytest.raises(ValueError, match="expected table.key=value"):
        load_preset(p, ["fit.max_iter"])


def test_override_keys_are_toml_keys_and_index_compress_entries(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[model]\ntau = {"0" = {type = "geometric", start = 0.1, factor = 2.0, ceiling = 1.0}}\n'
                 '[[compress]]\ntype = "prune"\nlayers = [0]\nsparsity = 0.5\n'
                 '[[compress]]\ntype = "tt"\nlayers = [1]\nrank = 4\n')
    cfg = load_preset(p, ['model.tau."0".ceiling=3.0', "compress.0.sparsity=0.9", "compress.1.rank=8",
                          " fit.max_iter = 4"])
    assert cfg["model"]["tau"] == {"0": {"type": "geometric", "start": 0.1, "factor": 2.0, "ceiling": 3.0}}
    assert [e.get("sparsity", e.get("rank")) for e in cfg["compress"]] == [0.9, 8]
    assert cfg["fit"] == {"max_iter": 4}
    assert load_preset(p, ["compress.1={type='prune', layers=[1]}"])["compress"][1] == {"type": "prune", "layers": [1]}
    for item, match in [("compress.2.rank=3", r"array of 2 tables .*compress\.0 to compress\.1"),
                        ("compress.rank=3", r"compress\.0 to compress\.1"),
                        ('model.tau."0.ceiling=1', "not a dotted key"), ("fit..max_iter=1", "not a dotted key"),
                        ("compress.0.layers.0=1", "'layers' is not a table")]:
        with pytest.raises(ValueError, match=match):
            load_preset(p, [item])


@pytest.mark.parametrize("item", ["model.gamma=[1,2", 'model.alpha={type="piecewise"', 'model.gamma="abc',
                                  "data.name='digits", "model.gamma= [1,,2]"])
def test_override_that_starts_as_toml_but_is_malformed_is_an_error(tmp_path, capsys, item):
    # a malformed array / inline table / quoted string used to fall back to a plain string
    p = tmp_path / "p.toml"
    p.write_text("[model]\nhidden_layer_sizes = [4]\n")
    with pytest.raises(ValueError, match=r"--set .*is not valid TOML \(.+\)") as err:
        load_preset(p, [item])
    assert repr(item) in str(err.value)
    # the command line reports it as a bad input (status 2, one line naming the --set item), before anything runs
    assert _solve("digits.toml", tmp_path / "out", item) == 2
    msg = capsys.readouterr().err
    assert msg.startswith("nnbcd: error: --set") and "not valid TOML" in msg and "Traceback" not in msg
    assert not (tmp_path / "out").exists()
    # bare words (and well-formed TOML) are unchanged
    cfg = load_preset(p, ["data.name= mnist5k ", "model.gamma=[1, 2]", "model.alpha={type='constant'}",
                          "model.backend='numba'"])
    assert cfg["data"] == {"name": "mnist5k"}
    assert cfg["model"]["gamma"] == [1, 2] and cfg["model"]["alpha"] == {"type": "constant"}
    assert cfg["model"]["backend"] == "numba"


def test_unknown_method_and_missing_torch_message(monkeypatch):
    with pytest.raises(ValueError, match="method = 'sgd' is not known"):
        get_runner("sgd")
    assert set(METHODS) == {"nnbcd", "lowrank", "mcnc"}
    # as if torch were not installed: `import torch` raises ModuleNotFoundError
    monkeypatch.setitem(sys.modules, "torch", None)
    for method in ("lowrank", "mcnc"):
        monkeypatch.delitem(sys.modules, f"nnbcd.runners.{method}", raising=False)
        with pytest.raises(ImportError, match=f"method = '{method}' needs PyTorch"):
            get_runner(method)
    assert get_runner("nnbcd").__name__ == "nnbcd.runners.nnbcd"  # NN-BCD needs no torch


def test_module_entry_point_info():
    out = subprocess.run([sys.executable, "-m", "nnbcd", "info"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "numpy" in out.stdout and "backends available" in out.stdout


# (n_features, n_classes) of each data set, and the networks the paper's presets describe (spec §7)
DATA_WIDTHS = {"digits": (64, 10), "har": (561, 6), "flare": (40, 2), "mnist": (784, 10), "mnist5k": (784, 10)}
NETWORKS = {"digits.toml": (64, 256, 256, 10), "digits_dense.toml": (64, 256, 256, 10), "digits_tt.toml": (64, 256, 256, 10),
            "digits_tt_cr10.toml": (64, 256, 256, 10), "digits_prune90.toml": (64, 256, 256, 10),
            "flare_prune.toml": (40, 300, 100, 2), "har_tt.toml": (561, 1024, 1024, 1024, 512, 6),
            "har5_tt.toml": (561, 1024, 1024, 1024, 512, 512, 6), "mnist_cnn.toml": (784, 5408, 1024, 1024, 10),
            "mnist5k_cnn.toml": (784, 5408, 1024, 1024, 10), "mnist5k_cnn_tt.toml": (784, 5408, 1024, 1024, 10)}


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_passes_its_runners_checks(preset):
    """Dry: each preset's tables are valid for its runner, and (NN-BCD) each compression spec fits its layer.

    No data is loaded and nothing is trained (HAR, flare and MNIST are not on the test machines): the
    widths come from the table above, the conv output from (H − k)//stride + 1 per side.
    """
    cfg = load_preset(ROOT / "solvers" / preset)
    method = cfg.get("method", "nnbcd")
    assert method in METHODS and cfg.get("name") == Path(preset).stem
    if method != "nnbcd":
        pytest.importorskip("torch")
    checked = get_runner(method).check(cfg)
    assert checked.fit["verbose"] is True
    if method != "nnbcd":
        return
    from nnbcd.runners.nnbcd import build_compression

    d_in, n_classes = DATA_WIDTHS[checked.data["name"]]
    conv = checked.model.get("conv")
    first = []
    if conv is not None:
        c, h, w = conv.in_shape
        assert c * h * w == d_in
        (kh, kw), s = conv.kernel, conv.stride
        first = [conv.filters * ((h - kh) // s + 1) * ((w - kw) // s + 1)]
    widths = (d_in, *first, *checked.model["hidden_layer_sizes"], n_classes)
    assert widths == NETWORKS[preset]
    compress = build_compression(checked.compress)
    assert all(0 <= i < len(widths) - 1 for i in compress)
    assert conv is None or 0 not in compress  # the conv kernel is not compressed
    for i, spec in compress.items():
        spec.validate((widths[i + 1], widths[i]), f"compress[{i}]")


def test_digits_tt_preset_runs(tmp_path):
    assert _solve("digits_tt.toml", tmp_path, "fit.max_iter=5") == 0
    res = json.loads((tmp_path / "result.json").read_text())
    assert set(res["compression"]) == {"0", "1"}  # 0-based layer keys
    assert res["compression"]["0"]["ranks"][0] == 1 and res["history"]["cr_1"][-1] < 0.3


@pytest.mark.parametrize("at", [1, 3])
def test_interrupted_solve_writes_a_valid_result(tmp_path, monkeypatch, capsys, at):
    from nnbcd.bcd import loop

    sweep, calls = loop.sweep, []

    def interrupted(*args, **kwargs):  # Ctrl-C during sweep ``at``
        calls.append(1)
        if len(calls) == at:
            raise KeyboardInterrupt
        return sweep(*args, **kwargs)

    monkeypatch.setattr(loop, "sweep", interrupted)
    assert _solve("digits.toml", tmp_path, "fit.max_iter=5") == 130  # a shell's status for Ctrl-C
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["status"] == 4 and res["nit"] == at - 1 and not res["success"]
    assert res["message"] == "Interrupted (KeyboardInterrupt); the last complete iterate is returned."
    assert len(res["history"].get("objective", [])) == at - 1
    assert json.loads(capsys.readouterr().out.split("results written")[0])["status"] == 4


@pytest.mark.parametrize("writer", ["SolveResult.to_json", "schema.write_json"])
def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch, writer):
    from nnbcd.result import History, SolveResult, Status
    from nnbcd.runners import schema

    history = History()
    history.append({"objective": 1.5})
    result = SolveResult.finished(Status.MAX_ITER, nit=1, fun=1.5, time=0.1, history=history)
    write = {"SolveResult.to_json": lambda path: result.to_json(str(path)),
             "schema.write_json": lambda path: schema.write_json(path, {"nit": 1, "fun": 1.5})}[writer]
    path = tmp_path / "result.json"
    write(path)
    before = path.read_text()

    def disk_full(obj, fh, **kwargs):  # half the document, then the disk is full
        fh.write('{"nit": ')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", disk_full)
    with pytest.raises(OSError, match="No space"):
        write(path)
    assert path.read_text() == before and json.loads(before)["nit"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind


def _interrupt_sweep(monkeypatch, at):
    """Ctrl-C during the ``at``-th sweep of the next run."""
    from nnbcd.bcd import loop

    sweep, calls = loop.sweep, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            raise KeyboardInterrupt
        return sweep(*args, **kwargs)

    monkeypatch.setattr(loop, "sweep", interrupted)


def _without_times(result):
    result = dict(result, history={k: v for k, v in result["history"].items() if not k.startswith("time")})
    result.pop("time")
    return result


@pytest.mark.parametrize("preset", ["digits.toml", "digits_tt.toml"])
def test_resumed_solve_writes_the_uninterrupted_result(tmp_path, monkeypatch, capsys, preset):
    settings = ("fit.max_iter=6", "fit.checkpoint_every=2", "model.hidden_layer_sizes=[32]")
    assert _solve(preset, tmp_path / "whole", *settings) == 0
    whole = json.loads((tmp_path / "whole" / "result.json").read_text())
    with monkeypatch.context() as patch:
        _interrupt_sweep(patch, 6)  # after 5 complete sweeps; the last checkpoint holds 4
        assert _solve(preset, tmp_path / "cut", *settings) == 130
    cut = json.loads((tmp_path / "cut" / "result.json").read_text())
    assert cut["status"] == 4 and cut["nit"] == 5  # a valid result for the last complete iterate
    assert main(["solve", "--resume", str(tmp_path / "cut"), "--quiet"]) == 0
    resumed = json.loads((tmp_path / "cut" / "result.json").read_text())
    assert resumed["nit"] == 6 and _without_times(resumed) == _without_times(whole)
    assert capsys.readouterr().err.count("interrupted") == 1



def test_resume_with_set_runs_longer_and_refuses_other_changes(tmp_path, capsys):
    settings = ("fit.checkpoint_every=2", "model.hidden_layer_sizes=[32]")
    assert _solve("digits.toml", tmp_path / "whole", "fit.max_iter=6", *settings) == 0
    whole = json.loads((tmp_path / "whole" / "result.json").read_text())
    assert _solve("digits.toml", tmp_path / "short", "fit.max_iter=4", *settings) == 0
    stored = (tmp_path / "short" / "preset.json").read_bytes()
    # a change the checkpoint does not allow is refused by name, and the stored preset is kept
    before = {p.name: p.read_bytes() for p in (tmp_path / "short").iterdir()}
    for change, match in [("model.gamma=0.7", "gamma"),
                          ("data.seed=3", "other data (X, y, X_val or y_val differ from the checkpointed run's); the "
                                          "[data] table differs from the checkpointed run's: data.seed: checkpoint 0, "
                                          "now 3")]:
        assert main(["solve", "--resume", str(tmp_path / "short"), "--set", change, "--quiet"]) == 2
        assert match in capsys.readouterr().err
        # refused before anything is touched: the run's results, checkpoint and stored preset are kept
        assert {p.name: p.read_bytes() for p in (tmp_path / "short").iterdir()} == before
    assert (tmp_path / "short" / "preset.json").read_bytes() == stored
    # a [data] value that reads the same data (the default written out) is no change
    assert main(["solve", "--resume", str(tmp_path / "short"), "--set", "fit.max_iter=6", "--quiet",
                 "--set", "data.augment_shifts=0"]) == 0
    resumed = json.loads((tmp_path / "short" / "result.json").read_text())
    assert resumed["nit"] == 6 and _without_times(resumed) == _without_times(whole)
    assert json.loads((tmp_path / "short" / "preset.json").read_text())["fit"]["max_iter"] == 6

def test_a_rerun_into_a_used_out_leaves_nothing_stale(tmp_path, monkeypatch):
    assert _solve("digits.toml", tmp_path, "fit.max_iter=2", "fit.checkpoint_every=1") == 0
    assert {p.name for p in tmp_path.iterdir()} == {"preset.json", "checkpoint.npz", "result.json", "convergence.png"}
    from nnbcd.runners import nnbcd as runner

    def ctrl_c(data):
        raise KeyboardInterrupt

    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with monkeypatch.context() as patch:
        patch.setattr(runner, "load_data", ctrl_c)  # Ctrl-C while the new run loads its data: not started yet
        assert _solve("digits.toml", tmp_path, "fit.max_iter=3") == 130
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.setattr(runner.NNBCD, "fit", lambda *args, **kwargs: ctrl_c(None))  # Ctrl-C as the run starts
    assert _solve("digits.toml", tmp_path, "fit.max_iter=3") == 130
    assert {p.name for p in tmp_path.iterdir()} == {"preset.json"}  # the new run's, nothing of the old one
    assert json.loads((tmp_path / "preset.json").read_text())["fit"]["max_iter"] == 3


@pytest.mark.parametrize("typo,match", [
    ("fit.max_iter=-1", "max_iter"), ("model.gamma=-1", "gamma"), ("model.hidden_layer_sizes=[0]", "[0]"),
    # refused by the data loader, by fit's checks of compression and tau against the layers, by a schedule
    ('data.name="digitz"', "'digitz'"), ("data.test_size=2.0", "2.0"),
    ('model.tau={"1"=1.0}', "tau has keys [1]"), ('model.tau={"0"=-1.0}', "tau has keys [0]"),
    ('model.tau={type="geometric", start=1.0, factor=2.0, ceiling=0.5}', "ceiling=0.5"),
    ("compress=[{type='prune', layers=[5]}]", "compress has key 5"),
    ('data={name="mnist", path="{tmp}/no-data"}', "MNIST data not found; searched: {tmp}/no-data"),
])
def test_a_refused_rerun_keeps_the_earlier_run(tmp_path, capsys, typo, match):
    out = tmp_path / "out"
    assert _solve("digits.toml", out, "fit.max_iter=2", "fit.checkpoint_every=1") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"result.json", "checkpoint.npz"} < set(before)
    capsys.readouterr()
    (tmp_path / "no-data").mkdir()
    assert _solve("digits.toml", out, typo.replace("{tmp}", str(tmp_path))) == 2
    assert match.replace("{tmp}", str(tmp_path)) in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("argv,match", [
    (["--resume", "{tmp}"], "preset.json"),
    (["solvers/digits.toml", "--resume", "{tmp}"], "--resume"),
    (["--resume", "{tmp}", "--out", "{tmp}"], "--resume"),
    ([], "PRESET"),
])
def test_resume_arguments_are_checked(tmp_path, capsys, argv, match, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["solve", *[a.format(tmp=tmp_path) for a in argv], "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnbcd: error:") and match in err, err


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert _solve("digits.toml", tmp_path, "fit.max_iter=1") == 0  # no checkpoint_every: no checkpoint
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(["solve", "--resume", str(tmp_path), "--quiet"]) == 2
    assert "resume: no checkpoint" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # the finished run's results stay


def test_summary_reports_unchecked_convergence_as_none(tmp_path, capsys):
    from nnbcd.runners import nnbcd as runner

    def summary(last_piece):
        cfg = load_preset(ROOT / "solvers" / "digits.toml", [
            "fit.max_iter=8", "model.hidden_layer_sizes=[32]",
            f"model.alpha={{type='piecewise', pieces=[[1, 1.0], [{last_piece}, 0.5]]}}"])
        return runner.run(cfg, tmp_path, quiet=True)

    # constant from sweep 30 of 8: nothing to check, which is not a pass
    s = summary(30)
    assert s["constant_from"] == 30 and s["sufficient_decrease"] is None and s["rate_slope"] is None
    assert "constant_from = 30" in s["not_checked"]["sufficient_decrease"]
    assert "constant_from = 30" in s["not_checked"]["rate_slope"]
    s = summary(3)  # sweeps 3..8 checked
    assert s["constant_from"] == 3 and s["sufficient_decrease"] is True and s["rate_slope"] < 0
    assert "not_checked" not in s


def test_max_iter_zero_runs_no_sweep_and_writes_a_valid_result(tmp_path):
    # a run with no sweep left an empty history (history["objective"] a KeyError) and warned in its plot
    import warnings

    from nnbcd.result import Status
    from nnbcd.runners import nnbcd as runner

    cfg = load_preset(ROOT / "solvers" / "digits.toml", ["fit.max_iter=0", "model.hidden_layer_sizes=[16]"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = runner.run(cfg, tmp_path, quiet=True)
    assert s["status"] == Status.MAX_ITER and s["nit"] == 0 and s["message"] == Status.MAX_ITER.message
    assert s["sufficient_decrease"] is None and s["rate_slope"] is None
    assert all("ended at sweep 0" in why for why in s["not_checked"].values())
    assert 0 <= s["train_acc"] <= 1 and s["sweep_seconds"] == 0
    assert s["objective"] is None
    # strict JSON: NaN is not JSON, the objective never computed is null
    res = json.loads((tmp_path / "result.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert res["nit"] == 0 and res["fun"] is None
    assert res["history"]["objective"] == [] and res["history"]["step_sq"] == []
    assert (tmp_path / "convergence.png").stat().st_size > 1000


def test_fit_checkpoint_every_is_checked_before_loading(tmp_path, capsys):
    assert _solve("digits.toml", tmp_path, "fit.checkpoint_every=0") == 2
    assert "[fit] checkpoint_every" in capsys.readouterr().err
    assert _solve("digits.toml", tmp_path, "model.checkpoint_dir='x'") == 2
    assert "'checkpoint_dir'] in [model]" in capsys.readouterr().err


@pytest.mark.parametrize("preset,module,outputs", [
    ("digits_lowrank.toml", "lowrank", ("lowrank.json", "spectra.png")),
    ("digits_mcnc.toml", "mcnc", ("mcnc.json", "curves.png")),
])
def test_torch_runners_leave_nothing_stale(tmp_path, monkeypatch, preset, module, outputs):
    pytest.importorskip("torch")
    import importlib
    runner = importlib.import_module(f"nnbcd.runners.{module}")
    for name in outputs:
        (tmp_path / name).write_text("an earlier run's")

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    load = runner.load_data
    monkeypatch.setattr(runner, "load_data", ctrl_c)  # Ctrl-C while the new run loads its data: nothing started
    assert _solve(preset, tmp_path) == 130
    assert all((tmp_path / name).read_text() == "an earlier run's" for name in outputs)
    monkeypatch.setattr(runner, "load_data", load)
    monkeypatch.setattr(runner, "make_cnn" if module == "lowrank" else "make_mlp", ctrl_c)  # once it has started
    assert _solve(preset, tmp_path) == 130
    assert not any((tmp_path / name).exists() for name in outputs)
