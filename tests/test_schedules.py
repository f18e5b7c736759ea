"""Hyperparameter schedules: hand values, brute-force ``constant_from``, parsing and errors."""
from __future__ import annotations

import math
import tomllib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from nnbcd.schedules import Constant, Geometric, Piecewise, Schedule, as_schedule

HORIZON = 1000


def first_constant_sweep(s: Schedule, horizon: int = HORIZON):
    """Brute force: the first sweep k after which the values up to the horizon no longer change."""
    values = [s.value(k) for k in range(1, horizon + 1)]
    k = len(values)
    while k > 1 and values[k - 2] == values[-1]:
        k -= 1
    return k


def test_constant():
    s = Constant(0.5)
    assert [s.value(k) for k in (1, 2, 1000)] == [0.5] * 3
    assert s.constant_from == 1 and s.is_constant_from(1)
    assert s.bounds() == (0.5, 0.5)


def test_geometric_hand_values():
    s = Geometric(1.0, 2.0, ceiling=10.0)
    assert [s.value(k) for k in range(1, 8)] == [1, 2, 4, 8, 10, 10, 10]
    assert s.constant_from == 5 and not s.is_constant_from(4) and s.is_constant_from(5)
    s = Geometric(1.0, 2.0, ceiling=10.0, every=2)
    assert [s.value(k) for k in range(1, 11)] == [1, 1, 2, 2, 4, 4, 8, 8, 10, 10]
    assert s.constant_from == 9
    assert Geometric(3.0, 1.0).constant_from == 1
    assert Geometric(1.0, 1.1).constant_from is None  # grows for ever
    assert Geometric(1.0, 2.0, ceiling=10.0).bounds() == (1.0, 10.0)
    assert Geometric(1.0, 2.0).bounds() == (1.0, math.inf)


def test_geometric_reaches_the_ceiling_exactly():
    # the LC toolkit's mu_k = mu_0 a^k with a ceiling hit exactly at a power: no rounding surprise
    s = Geometric(1e-3, 10.0, ceiling=1.0)
    assert s.value(4) == 1.0 and s.constant_from == 4


def test_integer_rounds_half_up_and_settles_early():
    s = Geometric(5, 0.5, floor=1, integer=True)
    assert [s.value(k) for k in range(1, 5)] == [5, 3, 1, 1]  # 2.5 -> 3, 1.25 -> 1
    assert all(isinstance(s.value(k), int) for k in range(1, 5))
    assert s.constant_from == 3
    s = Geometric(256, 0.8, floor=21, integer=True)
    assert s.value(1) == 256 and s.value(2) == 205 and s.constant_from == first_constant_sweep(s)
    # rounding settles before the unrounded value reaches the floor: 100·0.95^30 = 21.46 -> 21 already
    s = Geometric(100, 0.95, floor=21, integer=True)
    assert s.constant_from == first_constant_sweep(s) == 31
    assert Geometric(100.0, 0.95, floor=21.0).constant_from == 32


@given(start=st.floats(1e-3, 1e3), factor=st.floats(1.05, 5.0), span=st.floats(1.0, 1e4),
       every=st.integers(1, 4))
def test_geometric_constant_from_matches_brute_force(start, factor, span, every):
    s = Geometric(start, factor, ceiling=start * span, every=every)
    assert s.constant_from == first_constant_sweep(s)
    values = [s.value(k) for k in range(1, HORIZON)]
    assert all(a <= b for a, b in zip(values, values[1:])) and max(values) == start * span


@given(start=st.integers(2, 2000), factor=st.floats(0.3, 0.99), floor=st.integers(1, 50),
       every=st.integers(1, 3))
@example(start=1211, factor=0.99, floor=1, every=3)
def test_integer_decay_constant_from_matches_brute_force(start, factor, floor, every):
    floor = min(floor, start)
    s = Geometric(start, factor, floor=floor, every=every, integer=True)
    # past the sweep where the unrounded start·factor^j reaches the floor, by the logarithm (a fixed horizon
    # was too short: start 1211, factor 0.99, every 3 settles at sweep 2002)
    horizon = every * (math.ceil(math.log(floor / start) / math.log(factor)) + 2) + 1
    assert s.constant_from == first_constant_sweep(s, horizon=horizon)
    assert s.value(horizon) == floor


def test_piecewise():
    s = Piecewise([(1, 5.0), (10, 20.0), (30, 20.0)])
    assert [s.value(k) for k in (1, 9, 10, 29, 30, 500)] == [5, 5, 20, 20, 20, 20]
    assert s.constant_from == 10 == first_constant_sweep(s)
    assert s.bounds() == (5.0, 20.0)
    assert Piecewise([(1, 3)], integer=True).value(7) == 3


@pytest.mark.parametrize("pieces, match", [
    ([], "non-empty"),
    ([(2, 1.0)], "sweep 1"),
    ([(1, 1.0), (5, 2.0), (5, 3.0)], "strictly increasing"),
    ([(1, 1.0), (5, 2.0), (3, 3.0)], "strictly increasing"),
    ([(1, 1.0, 2.0)], "pair"),
    ([(1, -1.0)], "> 0"),
    ([(0, 1.0)], "≥ 1"),
])
def test_piecewise_errors(pieces, match):
    with pytest.raises((ValueError, TypeError), match=match):
        as_schedule({"type": "piecewise", "pieces": pieces}, "tau[0]")


@pytest.mark.parametrize("value", [
    1.5,
    Geometric(0.1, 1.5, ceiling=100.0, every=3),
    Geometric(64, 0.8, floor=10),
    Piecewise([(1, 1.0), (50, 10.0)]),
    {"type": "geometric", "start": 1.0, "factor": 1.2, "ceiling": 50.0},
])
def test_to_dict_round_trip(value):
    s = as_schedule(value, "tau")
    assert as_schedule(s.to_dict(), "tau") == s
    assert repr(s).startswith(type(s).__name__)


def test_toml_tables():
    doc = tomllib.loads("""
        tau = {type = "geometric", start = 1.0, factor = 1.1, ceiling = 1000.0}
        rank = {type = "piecewise", pieces = [[1, 64], [20, 32], [40, 21]]}
        gamma = 0.5
    """)
    assert as_schedule(doc["tau"], "tau").constant_from == Geometric(1.0, 1.1, 1000.0).constant_from
    rank = as_schedule(doc["rank"], "rank", integer=True)
    assert [rank.value(k) for k in (1, 20, 45)] == [64, 32, 21] and rank.constant_from == 40
    assert as_schedule(doc["gamma"], "gamma") == Constant(0.5)


def test_integer_conversion():
    s = as_schedule(Geometric(64.0, 0.5, floor=8.0), "rank", integer=True)
    assert s.integer and s.value(2) == 32 and isinstance(s.value(2), int)
    with pytest.raises(ValueError, match="rank: start must be an integer"):
        as_schedule(Geometric(64.5, 0.5, floor=8.0), "rank", integer=True)
    with pytest.raises(ValueError, match="rank: value must be an integer"):
        as_schedule(20.5, "rank", integer=True)
    with pytest.raises(ValueError, match="needs a floor"):
        Geometric(64, 0.5, integer=True, name="rank")


@pytest.mark.parametrize("value, exc, match", [
    (float("nan"), ValueError, "tau: value must be finite and > 0"),
    (float("inf"), ValueError, "tau: value must be finite"),
    (0.0, ValueError, "tau: value must be finite and > 0"),
    (-1, ValueError, "tau: value"),
    (True, TypeError, "tau must be a number"),
    ("1.0", TypeError, "tau must be a number"),
    ([1.0], TypeError, "tau must be a number"),
    ({"type": "cosine", "start": 1.0}, ValueError, "tau: schedule type 'cosine' is not one of"),
    ({"start": 1.0}, ValueError, "tau: schedule type None"),
    ({"type": "geometric", "start": 1.0}, ValueError, r"tau: a geometric schedule needs \['factor'\]"),
    ({"type": "geometric", "start": 1.0, "factor": 2.0, "cap": 3.0}, ValueError,
     r"tau: unknown key\(s\) \['cap'\]"),
    ({"type": "geometric", "start": 1.0, "factor": float("nan")}, ValueError, "tau: factor must be finite"),
    ({"type": "geometric", "start": 1.0, "factor": 0.0}, ValueError, "tau: factor must be finite and > 0"),
    ({"type": "geometric", "start": 1.0, "factor": 2.0, "ceiling": 0.5}, ValueError, "tau: a ceiling needs"),
    ({"type": "geometric", "start": 1.0, "factor": 0.5, "ceiling": 5.0}, ValueError, "tau: a ceiling needs"),
    ({"type": "geometric", "start": 1.0, "factor": 2.0, "floor": 0.5}, ValueError, "tau: a floor needs"),
    ({"type": "geometric", "start": 1.0, "factor": 2.0, "every": 0}, ValueError, "tau: every must be"),
    ({"type": "geometric", "start": -1.0, "factor": 2.0}, ValueError, "tau: start must be finite and > 0"),
    ({"type": "constant", "value": float("inf")}, ValueError, "tau: value must be finite"),
])
def test_errors_name_the_argument(value, exc, match):
    with pytest.raises(exc, match=match):
        as_schedule(value, "tau")


def test_sweeps_start_at_one():
    with pytest.raises(ValueError, match="start at 1"):
        Constant(1.0).value(0)
    with pytest.raises(ValueError, match="start at 1"):
        Geometric(1.0, 2.0).is_constant_from(0)


# ---- a scheduled prox weight α in the solver (issue 11) ------------------------------------------------------

def _digits():
    import numpy as np
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))[:300]
    return X[idx] / 16.0, y[idx]


def _alpha_fit(alpha, max_iter=6, **kw):
    from nnbcd import NNBCD

    X, y = _digits()
    params = dict(hidden_layer_sizes=(24, 16), gamma=0.8, rho=0.6, alpha=alpha, bias=True, dtype="float64",
                  random_state=3, max_iter=max_iter)
    params.update(kw)
    return NNBCD(**params).fit(X, y)


def test_constant_alpha_schedule_is_the_number_bit_for_bit():
    import numpy as np

    a, b = _alpha_fit(0.7), _alpha_fit(Piecewise([(1, 0.7), (4, 0.7)]))
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.result_.history["objective"], b.result_.history["objective"])
    assert list(a.result_.history["alpha"]) == list(b.result_.history["alpha"]) == [0.7] * 6
    assert "alpha_w" not in b.result_.history and a.result_.constant_from == b.result_.constant_from == 1


def test_alpha_schedule_equals_hand_sweeps_with_the_values_of_each_sweep():
    """Oracle: the sweeps run by hand (nnbcd.bcd.sweep.sweep) from the same initial iterate, with a Hyper whose α
    (and α_W, α_b, which default to it) is 1.0 in sweeps 1-2 and 0.05 from sweep 3."""
    from dataclasses import replace

    import numpy as np

    from nnbcd.bcd.blocks import Workspace
    from nnbcd.bcd.state import Hyper
    from nnbcd.bcd.sweep import sweep

    alpha = Piecewise([(1, 1.0), (3, 0.05)])
    m = _alpha_fit(alpha)
    h = m.result_.history
    assert list(h["alpha"]) == [1.0, 1.0] + [0.05] * 4 and m.result_.constant_from == 3
    init = _alpha_fit(alpha, max_iter=0)
    st, be = init.state_, init.backend_
    ws = Workspace(st, be)
    base = Hyper(gamma=0.8, rho=0.6, alpha=1.0, alpha_w=1.0, alpha_b=1.0, kappa=1.0)
    for k in range(1, 7):
        st.sweep = k
        a = alpha.value(k)
        sweep(st, replace(base, alpha=a, alpha_w=a, alpha_b=a), be, ws, False)
    for w, ref in zip(m.coefs_ + m.intercepts_, st.W + st.b):
        np.testing.assert_array_equal(w, be.to_numpy(ref))
    # before the change, the run is the one with the first value; after it, it is not
    first = _alpha_fit(1.0, max_iter=2)
    for wa, wb in zip(first.coefs_, _alpha_fit(alpha, max_iter=2).coefs_):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(m.coefs_[0], _alpha_fit(1.0).coefs_[0])


def test_alpha_table_and_separate_alpha_w_schedule_are_recorded():
    import numpy as np

    m = _alpha_fit({"type": "geometric", "start": 1.0, "factor": 0.5, "floor": 0.25}, max_iter=5,
                   alpha_w=Piecewise([(1, 2.0), (5, 1.0)]), alpha_b=0.3)
    h = m.result_.history
    np.testing.assert_array_equal(h["alpha"], [1.0, 0.5, 0.25, 0.25, 0.25])
    np.testing.assert_array_equal(h["alpha_w"], [2.0] * 4 + [1.0])
    np.testing.assert_array_equal(h["alpha_b"], [0.3] * 5)
    assert m.result_.constant_from == 5


@pytest.mark.parametrize("alpha_b", [0.3, Piecewise([(1, 1.0), (3, 0.1)]),
                                     {"type": "geometric", "start": 1.0, "factor": 0.5, "floor": 0.25}],
                         ids=["number", "schedule", "table"])
def test_alpha_b_without_bias_warns_and_changes_no_iterate(alpha_b):
    # a scheduled alpha_b without bias was accepted silently; a number too
    import warnings

    import numpy as np

    with pytest.warns(UserWarning, match=r"alpha_b=.* has no effect without bias=True") as caught:
        m = _alpha_fit(0.7, max_iter=3, alpha_b=alpha_b, bias=False)
    assert [w.filename for w in caught if "alpha_b" in str(w.message)] == [__file__]  # points at the fit call
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = _alpha_fit(0.7, max_iter=3, bias=False)  # alpha_b=None: no warning
        _alpha_fit(0.7, max_iter=1, alpha_b=alpha_b, bias=True)  # with biases it acts: no warning
    for a, b in zip(m.coefs_, plain.coefs_):
        np.testing.assert_array_equal(a, b)
    # nor does it delay the sweep from which the run's values are constant, or fill a history column
    assert m.result_.constant_from == plain.result_.constant_from == 1
    assert "alpha_b" not in m.result_.history


def test_alpha_schedule_checkpoint_resume_equals_the_uninterrupted_run(tmp_path):
    import numpy as np

    alpha = {"type": "piecewise", "pieces": [[1, 1.0], [4, 0.1]]}
    full = _alpha_fit(alpha, max_iter=7)
    _alpha_fit(alpha, max_iter=3, checkpoint_every=1, checkpoint_dir=tmp_path)
    resumed = _alpha_fit(alpha, max_iter=7).fit(*_digits(), resume=tmp_path)
    for wa, wb in zip(full.coefs_ + full.intercepts_, resumed.coefs_ + resumed.intercepts_):
        np.testing.assert_array_equal(wa, wb)
    assert list(resumed.result_.history["alpha"]) == [1.0] * 3 + [0.1] * 4
    with pytest.raises(ValueError, match="alpha"):  # another schedule is another run
        _alpha_fit({"type": "piecewise", "pieces": [[1, 1.0], [5, 0.1]]}, max_iter=7).fit(*_digits(), resume=tmp_path)


def test_alpha_schedule_in_a_preset(tmp_path):
    import json

    from nnbcd.runners import nnbcd as runner

    config = tomllib.loads("""
method = "nnbcd"
name = "alpha_schedule"
[data]
name = "digits"
[model]
hidden_layer_sizes = [16]
dtype = "float64"
alpha = {type = "piecewise", pieces = [[1, 1.0], [3, 0.2]]}
[fit]
max_iter = 4
monitor_every = 1
""")
    summary = runner.run(config, tmp_path, quiet=True)
    h = json.loads((tmp_path / "result.json").read_text())["history"]
    assert h["alpha"] == [1.0, 1.0, 0.2, 0.2]
    assert summary["constant_from"] == 3 and summary["sufficient_decrease"] is True



def test_bounds_within_a_run_by_hand():
    assert Constant(2.0).bounds_until(5) == (2.0, 2.0)
    assert Geometric(1.0, 2.0).bounds_until(4) == (1.0, 8.0)            # 1, 2, 4, 8
    assert Geometric(8.0, 0.5, floor=2.0).bounds_until(10) == (2.0, 8.0)
    assert Geometric(1.0, 1e200).bounds_until(3) == (1.0, math.inf)      # 1e400 overflows
    assert Geometric(1.0, 1e-200).bounds_until(3) == (0.0, 1.0)          # 1e-400 underflows
    assert Piecewise([(1, 3.0), (5, 1.0), (9, 7.0)]).bounds_until(6) == (1.0, 3.0)


@pytest.mark.parametrize("param, table", [
    ("gamma", {"type": "geometric", "start": 1.0, "factor": 1e200}),
    ("rho", {"type": "geometric", "start": 1.0, "factor": 1e-200}),
    ("alpha", {"type": "geometric", "start": 1.0, "factor": 1e200}),
    ("gamma", {"type": "piecewise", "pieces": [[1, 1.0], [3, 1e-320]]}),  # subnormal: 1/γ overflows
])
def test_a_schedule_that_leaves_the_range_within_max_iter_is_refused_before_the_first_sweep(param, table):
    """An unbounded geometric schedule that overflows (underflows) within max_iter sweeps: a ValueError naming
    it before any sweep (it crashed deep in the ReLU prox after the sweeps before); a shorter run is fine."""
    from nnbcd import NNBCD

    X, y = _digits()
    with pytest.raises(ValueError, match=f"{param}: the schedule .* reaches (inf|0.0|1e-320) within the 3 sweeps"):
        NNBCD((8,), max_iter=3, **{param: table}).fit(X, y)
    assert NNBCD((8,), max_iter=2, **{param: table}).fit(X, y).n_iter_ == 2  # 1e200 (1e-200) is still a number


def test_a_tau_schedule_that_overflows_names_its_layer():
    import numpy as np

    from nnbcd import NNBCD, TT

    X, y = _digits()
    for max_iter in (3, np.int64(3)):  # a numpy integer max_iter is checked too
        with pytest.raises(ValueError, match=r"tau\[0\]: the schedule"):
            NNBCD((8,), max_iter=max_iter, compress={0: TT(rank=2)},
                  tau={0: {"type": "geometric", "start": 1.0, "factor": 1e200}}).fit(X, y)
