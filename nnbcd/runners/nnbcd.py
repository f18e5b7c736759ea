"""The NN-BCD runner: train :class:`nnbcd.NNBCD` on a preset's data, write ``result.json`` and ``convergence.png``.

Tables of a ``method = "nnbcd"`` preset (layer indices are 0-based: layer i is the paper's W_{i+1})::

    [data]       name, path, test_size, seed, dtype, fraction
    [model]      the NNBCD constructor's model parameters: hidden_layer_sizes, gamma, rho, alpha, tau,
                 bias, loss_scale, init, init_scale, backend, dtype, random_state, v_solve, w_solve, ...
    [model.conv] in_shape, filters, kernel, stride          (optional convolutional first layer)
    [fit]        max_iter, tol, monitor_every, verbose, n_jobs (BLAS threads), checkpoint_every (sweeps between
                 checkpoints written to the output directory, which ``nnbcd solve --resume DIR`` continues)
    [[compress]] layers = [0, 1], type = "tt" | "prune", and the spec's own keys (rank, shape, sparsity,
                 block = "projection" | "cores" | "masked", reselect_every, freeze_after, ...)

``gamma``, ``rho``, ``alpha``, ``tau`` (or one layer's entry of a ``tau`` table), a TT ``rank`` and a Prune
``sparsity`` take a number or a schedule table (:func:`nnbcd.schedules.as_schedule`), e.g.
``tau = {type = "geometric", start = 1.0, factor = 1.1, ceiling = 100.0}``.

The input and output widths come from the data (``X.shape[1]`` or the conv's ``in_shape``, the number of
classes), as :class:`nnbcd.NNBCD` takes them.

Files in the output directory: ``preset.json`` (the checked preset with every override applied, written
before training: all a resumption needs), ``checkpoint.npz`` (with ``[fit] checkpoint_every``),
``result.json`` and ``convergence.png`` (written when the run ends, also after Ctrl-C). A run into a used
directory deletes the previous run's ``result.json`` and ``convergence.png`` (and, unless it resumes,
its ``checkpoint.npz``) right before it starts, so files that are there always belong to the run that wrote
``preset.json``, and a missing ``result.json`` means that run has not ended. A run refused before it starts
(a bad value of the preset or the data, a compression spec that does not fit its layer, a checkpoint that
is missing or was written with other parameters) leaves the directory as it was.
"""
from __future__ import annotations

import copy
import inspect
import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from ..bcd import NNBCD, InputConv2d
from ..bcd import checkpoint as ckpt
from ..compress import TT, Compression, Prune
from ..convergence import plot_convergence, rate, sufficient_decrease
from ..schedules import Schedule, as_schedule
from .schema import (Field, Preset, check_keys, ensure_out_dir, load_data, parse_preset, positive_int,
                     write_json)

__all__ = ["COMPRESSIONS", "FIT_KEYS", "OUTPUTS", "PRESET_FILE", "build_compression", "check", "load_resolved",
           "make_estimator", "run"]

#: NNBCD constructor parameters that say how the model is trained: they go in ``[fit]``, not ``[model]``.
FIT_KEYS = ("max_iter", "tol", "monitor_every", "verbose", "n_jobs", "checkpoint_every")

#: NNBCD constructor parameters a preset does not set: the runner sets ``checkpoint_dir`` (the output
#: directory), and a preset run never continues an earlier fit (``--resume`` continues a run).
RUNNER_KEYS = ("warm_start", "checkpoint_dir")

#: The files a run writes when it ends (deleted when a run into the same directory starts).
OUTPUTS = ("result.json", "convergence.png")

#: The resolved preset, written into the output directory before training.
PRESET_FILE = "preset.json"

#: ``[[compress]] type`` -> the compression spec class its other keys construct.
COMPRESSIONS = {"tt": TT, "prune": Prune}


def _conv(value: Any, where: str) -> InputConv2d:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a table ([model.conv] in_shape, filters, kernel, stride), got {value!r}")
    check_keys(value, set(inspect.signature(InputConv2d).parameters), "model.conv")
    return InputConv2d(**value)


def _tau(value: Any, where: str) -> Any:
    # a TOML inline table has string keys: {0 = 5.0} arrives as {"0": 5.0}; a schedule table
    # {type = "geometric", ...} is one schedule for every layer
    if not isinstance(value, dict) or "type" in value:
        return value
    try:
        return {int(k): v for k, v in value.items()}
    except ValueError:
        raise ValueError(f"{where}: the keys of a tau table are layer indices (0-based), got {sorted(value)}") from None


def _model_fields() -> Dict[str, Field]:
    special = {"conv": Field(check=_conv), "tau": Field(check=_tau)}
    return {name: special.get(name, Field()) for name in inspect.signature(NNBCD).parameters
            if name not in FIT_KEYS + RUNNER_KEYS and name != "compress"}


# values checked by NNBCD itself; ``verbose`` is added by parse_preset for every runner
_FIT_FIELDS = {**{key: Field() for key in FIT_KEYS if key != "verbose"},
               "checkpoint_every": Field(check=positive_int)}  # checked before the data are loaded


def build_compression(entries: List[Mapping[str, Any]]) -> Dict[int, Compression]:
    """``[[compress]]`` tables -> ``{layer: spec}``; the layers of one table share one spec object.

    Parameters
    ----------
    entries : list of mapping
        Each with ``type`` (a key of :data:`COMPRESSIONS`), ``layers`` (a non-empty list of 0-based layer
        indices) and the spec class's own keyword arguments.

    Returns
    -------
    dict of int to Compression
        The ``compress`` argument of :class:`nnbcd.NNBCD`.

    Raises
    ------
    ValueError
        An unknown ``type``, missing or empty ``layers``, a layer compressed twice, a key the spec class
        does not take (named with its table, ``[compress #1]``), or a value the spec rejects.
    """
    out: Dict[int, Compression] = {}
    for n, entry in enumerate(entries):
        entry = dict(entry)
        where = f"compress #{n + 1}"
        kind = entry.pop("type", None)
        layers = entry.pop("layers", None)
        if kind not in COMPRESSIONS:
            raise ValueError(f"[{where}] type = {kind!r}; choose one of {sorted(COMPRESSIONS)}")
        if not isinstance(layers, list) or not layers:
            raise ValueError(f"[{where}] needs layers = [i, ...] (0-based: layer 0 is the first weight matrix)")
        cls = COMPRESSIONS[kind]
        check_keys(entry, set(inspect.signature(cls).parameters), where)
        spec = cls(**entry)
        for layer in layers:
            if layer in out:
                raise ValueError(f"[{where}] layer {layer} is compressed twice")
            out[layer] = spec
    return out


def make_estimator(preset: Preset, *, quiet: bool = False, out_dir: "str | Path | None" = None) -> NNBCD:
    """The :class:`nnbcd.NNBCD` a checked preset describes (not fitted).

    Parameters
    ----------
    preset : Preset
        From :func:`check`.
    quiet : bool
        Force ``verbose`` off.
    out_dir : str or Path, optional
        The ``checkpoint_dir`` when ``[fit] checkpoint_every`` is set.

    Returns
    -------
    NNBCD
    """
    fit = dict(preset.fit, verbose=preset.fit["verbose"] and not quiet)
    if fit.get("checkpoint_every") is not None:
        fit["checkpoint_dir"] = out_dir
    return NNBCD(compress=build_compression(preset.compress), **preset.model, **fit)


def check(config: Mapping[str, Any]) -> Preset:
    """Check a ``method = "nnbcd"`` preset's tables and compression specs; load and train nothing.

    Parameters
    ----------
    config : mapping
        The preset (:func:`nnbcd.runners.schema.load_preset`).

    Returns
    -------
    Preset
        ``model`` holds NNBCD's model parameters (``conv`` as an :class:`nnbcd.InputConv2d`, ``tau``
        tables with int keys), ``fit`` its training parameters.

    Raises
    ------
    ValueError
        A bad table or key (named), or a compression spec that rejects its arguments.
    """
    preset = parse_preset(config, "nnbcd", model=_model_fields(), fit=_FIT_FIELDS, compress=True)
    make_estimator(preset)  # constructs every compression spec: their own checks run here
    return preset


def load_resolved(out_dir: "str | Path") -> Dict[str, Any]:
    """The preset a run into ``out_dir`` stored (``preset.json``), to resume it.

    Parameters
    ----------
    out_dir : str or Path
        The directory of a run started by :func:`run`.

    Returns
    -------
    dict
        The preset as :func:`run` received it (overrides applied).

    Raises
    ------
    FileNotFoundError
        ``out_dir`` holds no ``preset.json`` (no NN-BCD run was started there); the message names it.
    ValueError
        ``preset.json`` is not valid JSON.
    """
    path = Path(out_dir) / PRESET_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--resume {str(out_dir)!r}: no {PRESET_FILE} there (not the --out of an nnbcd "
                                "solve run)")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"--resume: {str(path)!r} is not valid JSON ({exc})") from None


def _check_fit(model: NNBCD, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
               resume: Optional[Path]) -> None:
    """Make the checks :meth:`nnbcd.NNBCD.fit` makes before its first sweep (its ``_prepare``), on a copy of
    ``model``, so that a run ``fit`` would refuse is refused before the earlier run's files are deleted (with
    ``resume``, the checkpoint is read without its ``U``, ``V``).

    Parameters
    ----------
    model : NNBCD
        From :func:`make_estimator` (not changed).
    X, y, X_val, y_val : ndarray
        The data :func:`run` fits on.
    resume : Path, optional
        The directory of the checkpoint the run continues.

    Raises
    ------
    ValueError, TypeError, FileNotFoundError
        As ``fit`` raises them.
    """
    model = copy.copy(model)  # the checks set fitted attributes (classes_, n_features_in_)
    log = logging.getLogger(NNBCD.__module__)
    disabled, log.disabled = log.disabled, True  # fit logs and warns the same again: say it once
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model._prepare(X, y, X_val, y_val, None, resume, columns=False)
    finally:
        log.disabled = disabled


def _with_data_changes(exc: ValueError, config: Mapping[str, Any], stored: Mapping[str, Any]) -> ValueError:
    """``exc`` (a refused resume), naming the ``[data]`` keys that differ from the stored preset's when the
    checkpoint refused the data: the fingerprint says that the data differ, the tables say which setting
    made them differ. (The tables are not compared otherwise: a moved ``path`` or a default written out
    reads the same data.)"""
    now, before = dict(config.get("data", {})), dict(stored.get("data", {}))
    changed = sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
    if "other data" not in str(exc) or not changed:
        return exc
    show = (lambda table, k: repr(table[k]) if k in table else "not set")  # TOML has no null
    detail = "; ".join(f"data.{k}: checkpoint {show(before, k)}, now {show(now, k)}" for k in changed)
    return ValueError(f"{exc}; the [data] table differs from the checkpointed run's: {detail}")


def _convergence(model: NNBCD) -> Dict[str, Any]:
    """The summary's ``sufficient_decrease`` and ``rate_slope`` of a fitted model.

    ``sufficient_decrease`` only for runs whose every block is an exact minimisation (the guarantee's
    premise). A check that was not made is ``None``, with the reason in ``not_checked``: with nothing to
    check from ``constant_from`` on, :func:`~nnbcd.convergence.sufficient_decrease` is vacuously ``ok``,
    which is not a pass.
    """
    res = model.result_
    start = res.constant_from
    exact_only = all(spec.exact for spec in model.state_.compress.values())
    out: Dict[str, Any] = {"sufficient_decrease": None} if exact_only else {}
    out["rate_slope"] = None
    why: Dict[str, str] = {}
    after = f"from constant_from = {start} on (the run ended at sweep {res.nit})"
    if start is None:
        never = "the schedules or compressed structures never became constant (constant_from is None)"
        why = {key: never for key in out}
    else:
        if exact_only:
            alpha = model.alpha  # a number or a schedule (its table): the α of the sweeps checked
            if isinstance(alpha, (Mapping, Schedule)):
                alpha = as_schedule(dict(alpha) if isinstance(alpha, Mapping) else alpha, "alpha").value(start)
            # a run stopped before its first sweep completed (max_iter = 0, Ctrl-C) has its columns, empty or
            # NaN: nothing is checked, and with none checked ok is vacuously True
            decrease = sufficient_decrease(res, alpha)
            if decrease.n_checked:
                out["sufficient_decrease"] = decrease.ok
            else:
                why["sufficient_decrease"] = f"no pair of consecutive monitored sweeps {after}"
        try:
            out["rate_slope"] = round(rate(res).slope, 3)
        except ValueError:  # too few monitored iterations to fit a slope
            why["rate_slope"] = f"fewer than 4 monitored sweeps {after}"
    return dict(out, not_checked=why) if why else out


def run(config: Mapping[str, Any], out_dir: "str | Path", *, quiet: bool = False,
        resume: bool = False) -> Dict[str, Any]:
    """Train the preset's network with NN-BCD; write ``result.json`` and ``convergence.png`` to ``out_dir``.

    Parameters
    ----------
    config : mapping
        The preset.
    out_dir : str or Path
        Created if missing. Receives ``preset.json`` first, then ``checkpoint.npz`` every ``[fit]
        checkpoint_every`` sweeps, and ``result.json`` / ``convergence.png`` when the run ends (also on
        Ctrl-C: the last complete iterate, status 4); the previous run's files are deleted once every check
        ``fit`` makes before its first sweep has passed (module docstring).
    quiet : bool
        Force ``[fit] verbose`` off.
    resume : bool
        Continue the run whose checkpoint is in ``out_dir`` (``config`` must be its ``preset.json``,
        :func:`load_resolved`): the result equals the uninterrupted run's.

    Returns
    -------
    dict
        ``preset``, ``status``, ``message``, ``nit``, ``train_acc``, ``test_acc``, ``objective``,
        ``sweep_seconds``, ``seconds_per_iteration``, ``constant_from`` (the sweep from which no
        schedule or compressed structure changes, ``None`` if never); ``sufficient_decrease`` (checked
        from ``constant_from`` on; only for runs whose every block is an exact minimisation — uncompressed,
        or compressed with exact blocks only) and ``rate_slope`` (fitted from ``constant_from`` on), each
        ``None`` when not checked, with the reason in ``not_checked`` (e.g. no monitored sweeps after
        ``constant_from``); ``output_refit`` with ``[model] refit_output = true`` (the losses and validation
        accuracy before and after it: ``test_acc`` is the refit network's); and the final ``cr_1``, ``cr_2``,
        ``cr_honest``, ``true_sparsity`` when compressed.

    Raises
    ------
    ValueError
        From :func:`check`, the data loader or the estimator; with ``resume``, a checkpoint written with
        other parameters or data (naming the ``[data]`` keys that differ from the stored preset's). Raised
        before the earlier run's files are touched.
    OSError
        ``out_dir`` cannot be written to.
    FileNotFoundError
        A local data set's files are missing, or ``resume`` and no checkpoint in ``out_dir``.
    """
    preset = check(config)
    out = ensure_out_dir(out_dir)
    model = make_estimator(preset, quiet=quiet, out_dir=out)
    model._checked_params()  # a mistyped value is refused before the data are loaded
    Xtr, ytr, Xte, yte = load_data(preset.data)
    # everything fit would refuse is refused before the earlier run's files are touched
    try:
        _check_fit(model, Xtr, ytr, Xte, yte, out if resume else None)
    except ValueError as exc:
        raise _with_data_changes(exc, config, load_resolved(out)) if resume else exc from None
    ensure_out_dir(out_dir, stale=OUTPUTS + (() if resume else (ckpt.FILENAME,)))
    if not resume:
        write_json(out / PRESET_FILE, dict(config))
    model.fit(Xtr, ytr, X_val=Xte, y_val=yte, resume=out if resume else None)
    if resume:  # the checkpoint accepted the run's --set changes (max_iter, ...): a later resume takes them
        write_json(out / PRESET_FILE, dict(config))
    res = model.result_
    res.to_json(str(out / "result.json"))
    plot_convergence(res, str(out / "convergence.png"))
    h = res.history
    summary: Dict[str, Any] = {
        "preset": preset.name,
        "status": res.status,
        "message": res.message,
        "nit": res.nit,
        "train_acc": round(model.score(Xtr, ytr), 4),
        "test_acc": round(model.score(Xte, yte), 4),
        "objective": None if math.isnan(res.fun) else float(res.fun),  # NaN: no sweep ran
        "sweep_seconds": round(res.time, 3),
        "seconds_per_iteration": round(res.time / max(res.nit, 1), 4),
        "constant_from": res.constant_from,
    }
    summary.update(_convergence(model))
    if res.output_refit is not None:  # test_acc is the refit network's; say what the sweeps alone gave
        summary["output_refit"] = {k: (round(v, 4) if math.isfinite(v) else None) if isinstance(v, float) else v
                                   for k, v in res.output_refit.items()}  # NaN and Inf are not JSON
    for key in ("cr_1", "cr_2", "cr_honest", "true_sparsity"):
        if key in h:
            summary[key] = float(h[key][-1])
    return summary
