"""The preset schema every runner shares: top-level keys, the ``[data]``/``[model]``/``[fit]`` tables.

A preset is a TOML file::

    method = "nnbcd" | "lowrank" | "mcnc"      # which runner (default "nnbcd")
    name = "..."                                # a label for the summary (default: the method)
    description = "..."
    [data]       name, path, test_size, seed, dtype, fraction    -> nnbcd.data.load_dataset
    [model]      what the network is (the runner's own keys)
    [fit]        how it is trained (the runner's own keys; every runner accepts ``verbose``)
    [[compress]] compression specs (``method = "nnbcd"`` only)

Every table is checked before anything is loaded or trained: a key no runner knows, a table given as a
number or a string, or a value of the wrong kind raises ``ValueError`` naming the key and its table.
"""
from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

from ..data import load_dataset
from .._validation import writable_dir
from ..result import write_json_atomic

__all__ = ["DATA_FIELDS", "Field", "Preset", "TOP_KEYS", "apply_overrides", "boolean", "check_keys", "ensure_out_dir",
           "int_list", "load_data", "load_preset", "non_negative_int", "non_negative_number", "one_of",
           "parse_preset", "positive_int", "positive_number", "seed", "write_json"]

#: Top-level keys of a preset; ``compress`` only where the runner takes ``[[compress]]`` tables.
TOP_KEYS = ("method", "name", "description", "data", "model", "fit", "compress")

Check = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Field:
    """One key of a table: its default and the check its value must pass.

    Parameters
    ----------
    default : Any, optional
        Filled in when the preset leaves the key out; :data:`Field.NONE` (the default) leaves it out.
    check : callable ``(value, where) -> value``, optional
        Raises ``ValueError`` naming ``where`` (``"[fit] epochs"``) for a bad value; returns the value,
        possibly normalised (a TOML integer for a float key becomes a float). ``None``: the value is
        passed on unchecked (the object it configures validates it).
    """

    NONE = object()  # sentinel: no default

    default: Any = NONE
    check: Optional[Check] = None


def check_keys(table: Mapping[str, Any], allowed: "set[str] | Sequence[str]", where: str) -> None:
    """Raise ``ValueError`` naming every key of ``table`` that is not allowed.

    Parameters
    ----------
    table : mapping
        A preset table.
    allowed : set or sequence of str
        The keys the table may hold.
    where : str
        The table's name in the message, e.g. ``"fit"`` gives ``[fit]``.

    Raises
    ------
    ValueError
        ``unknown key(s) ['maxiter'] in [fit]; allowed: [...]``.
    """
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in [{where}]; allowed: {sorted(allowed)}")


# ---- value checks: (value, where) -> value, raising ValueError that names `where` ----------------------
_CHECK_DOC = """{what}

    Parameters
    ----------
    value : Any
        A value read from a preset.
    where : str
        How the message names it, e.g. ``"[fit] epochs"``.

    Returns
    -------
    {returns}

    Raises
    ------
    ValueError
        ``value`` is not {what_not}; the message names ``where`` and the value.
    """


def _check_doc(what: str, returns: str, what_not: str) -> Callable[[Check], Check]:
    def decorate(fn: Check) -> Check:
        fn.__doc__ = _CHECK_DOC.format(what=what, returns=returns, what_not=what_not)
        return fn
    return decorate


@_check_doc("An integer ≥ 1 (booleans refused).", "int", "an integer ≥ 1")
def positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where} must be a positive integer, got {value!r}")
    return int(value)


@_check_doc("An integer ≥ 0 (booleans refused).", "int", "an integer ≥ 0")
def non_negative_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{where} must be a non-negative integer, got {value!r}")
    return int(value)


@_check_doc("A seed: an integer in [0, 2**64 − 1], the range torch.manual_seed takes (booleans refused).", "int",
            "an integer in [0, 2**64 − 1]")
def seed(value: Any, where: str) -> int:
    if non_negative_int(value, where) > 2**64 - 1:
        raise ValueError(f"{where} must be a seed in [0, 2**64 - 1], got {value!r}")
    return int(value)


@_check_doc("A finite real number > 0 (booleans refused).", "float", "a finite number > 0")
def positive_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (np.isfinite(value) and value > 0):
        raise ValueError(f"{where} must be a finite positive number, got {value!r}")
    return float(value)


@_check_doc("A finite real number ≥ 0 (booleans refused).", "float", "a finite number ≥ 0")
def non_negative_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{where} must be a finite non-negative number, got {value!r}")
    return float(value)


@_check_doc("``True`` or ``False`` (TOML ``true`` / ``false``).", "bool", "a boolean")
def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where} must be true or false, got {value!r}")
    return value


@_check_doc("A non-empty list of seeds (each as :func:`seed` checks it).", "list of int",
            "a non-empty list of integers in [0, 2**64 − 1]")
def int_list(value: Any, where: str) -> List[int]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where} must be a non-empty list of non-negative integers, got {value!r}")
    return [seed(v, f"{where}[{i}]") for i, v in enumerate(value)]


def one_of(*choices: str) -> Check:
    """A check accepting exactly the given strings.

    Parameters
    ----------
    *choices : str

    Returns
    -------
    callable ``(value, where) -> str``
        Returns ``value`` if it is one of ``choices``, else raises ``ValueError`` naming ``where``,
        the value and the choices.
    """

    def check(value: Any, where: str) -> str:
        if value not in choices:
            raise ValueError(f"{where} = {value!r} is not one of {list(choices)}")
        return value

    return check


def _table(config: Mapping[str, Any], key: str) -> Dict[str, Any]:
    value = config.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be a table ([{key}] with key = value lines), got {value!r}")
    return dict(value)


def _fill(table: Dict[str, Any], fields: Mapping[str, Field], where: str) -> Dict[str, Any]:
    check_keys(table, set(fields), where)
    out = {}
    for key, spec in fields.items():
        if key in table:
            value = table[key]
            out[key] = spec.check(value, f"[{where}] {key}") if spec.check is not None else value
        elif spec.default is not Field.NONE:
            out[key] = copy.deepcopy(spec.default)  # a list default (seeds) must not be shared
    return out


#: ``[data]``: the keyword arguments of :func:`nnbcd.data.load_dataset` (which checks their values).
DATA_FIELDS: Dict[str, Field] = {"name": Field("digits"), "path": Field(), "test_size": Field(), "seed": Field(),
                                 "dtype": Field(), "fraction": Field(), "augment_shifts": Field()}


@dataclass(frozen=True)
class Preset:
    """A preset after its tables were checked and their defaults filled in.

    Attributes
    ----------
    method, name, description : str
    data : dict
        Keyword arguments of :func:`nnbcd.data.load_dataset`.
    model, fit : dict
        The runner's ``[model]`` and ``[fit]`` tables with defaults filled in.
    compress : list of dict
        The ``[[compress]]`` tables as written (empty unless the runner takes them).
    """

    method: str
    name: str
    description: str
    data: Dict[str, Any]
    model: Dict[str, Any]
    fit: Dict[str, Any]
    compress: List[Dict[str, Any]] = field(default_factory=list)


def parse_preset(config: Mapping[str, Any], method: str, *, model: Mapping[str, Field],
                 fit: Mapping[str, Field], data_defaults: Optional[Mapping[str, Any]] = None,
                 compress: bool = False) -> Preset:
    """Check a loaded preset against one runner's tables and fill in the defaults.

    Parameters
    ----------
    config : mapping
        The preset as :func:`load_preset` returns it.
    method : str
        The runner's method name; ``config["method"]``, when given, must equal it.
    model, fit : mapping of str to Field
        The keys ``[model]`` and ``[fit]`` may hold. A ``verbose`` key (default ``True``) is added to
        ``[fit]`` for every runner.
    data_defaults : mapping, optional
        Defaults for ``[data]`` beyond ``name = "digits"`` (the torch runners train in float32).
    compress : bool
        Whether ``[[compress]]`` tables are allowed.

    Returns
    -------
    Preset

    Raises
    ------
    ValueError
        A key that is not allowed (named with its table), a table that is not a table, a value that
        fails its check, or ``[[compress]]`` entries that are not tables.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"a preset is a table of keys, got {type(config).__name__}")
    check_keys(config, [k for k in TOP_KEYS if compress or k != "compress"], "top level")
    if config.get("method", method) != method:
        raise ValueError(f"method = {config['method']!r}, but this is the {method!r} runner")
    for key in ("name", "description"):
        if not isinstance(config.get(key, ""), str):
            raise ValueError(f"{key} must be a string, got {config[key]!r}")
    data_fields = {k: Field((data_defaults or {}).get(k, f.default), f.check) for k, f in DATA_FIELDS.items()}
    fit_fields = {"verbose": Field(True, boolean), **fit}
    entries = config.get("compress", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"compress must be an array of tables ([[compress]] entries), got {entries!r}")
    return Preset(method=method, name=config.get("name", method), description=config.get("description", ""),
                  data=_fill(_table(config, "data"), data_fields, "data"),
                  model=_fill(_table(config, "model"), model, "model"),
                  fit=_fill(_table(config, "fit"), fit_fields, "fit"),
                  compress=[dict(e) for e in entries])


def load_data(data: Mapping[str, Any]) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the ``[data]`` table's data set.

    Parameters
    ----------
    data : mapping
        ``name`` and the keyword arguments of :func:`nnbcd.data.load_dataset`.

    Returns
    -------
    X_train : ndarray, shape (n_train, n_features)
    y_train : ndarray, shape (n_train,)
    X_test : ndarray, shape (n_test, n_features)
    y_test : ndarray, shape (n_test,)

    Raises
    ------
    ValueError, TypeError, FileNotFoundError
        From the loader: an unknown data set, a bad argument, a local copy that is not there.
    """
    kwargs = dict(data)
    return load_dataset(kwargs.pop("name"), **kwargs)


def load_preset(path: "str | Path", overrides: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Read a TOML preset and apply ``table.key=value`` overrides.

    Parameters
    ----------
    path : str or Path
        The TOML file.
    overrides : sequence of str, optional
        ``"fit.max_iter=10"``, as :func:`apply_overrides` takes them.

    Returns
    -------
    dict
        The preset with the overrides applied (not yet checked against a runner).

    Raises
    ------
    FileNotFoundError
        ``path`` is not a file.
    ValueError
        Not valid TOML, or an override :func:`apply_overrides` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"preset file {str(path)!r} does not exist")
    with open(path, "rb") as fh:
        try:
            cfg = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
    return apply_overrides(cfg, overrides)


def apply_overrides(cfg: Dict[str, Any], overrides: Optional[Sequence[str]]) -> Dict[str, Any]:
    """Apply ``table.key=value`` overrides to a preset, in place.

    Parameters
    ----------
    cfg : dict
        A preset (read from TOML, or a run's stored ``preset.json``).
    overrides : sequence of str, optional
        ``"fit.max_iter=10"``: the value is parsed as TOML (a bare word that is not TOML is a string,
        ``data.name=mnist5k``); the dotted key's tables are created when missing. The key is read as a
        TOML key (a quoted segment is one segment: ``model.tau."0".ceiling``), and a segment after an
        array of tables is an index into it: ``compress.0.sparsity`` is the first ``[[compress]]``
        entry's ``sparsity``.

    Returns
    -------
    dict
        ``cfg``.

    Raises
    ------
    ValueError
        An override without ``=``, a value that starts as an array, inline table or quoted string
        (``[``, ``{``, ``"``, ``'``) but is not valid TOML, a key that is not a dotted key, one whose path
        crosses a non-table, or an index that is not one of an array of tables.
    """
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected table.key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError as exc:
            # an array, inline table or quoted string that does not parse is a typo, not a string: taken as
            # one it would fail later with a confusing message, or be accepted where a string is allowed
            if raw.lstrip()[:1] in ("[", "{", '"', "'"):
                raise ValueError(f"--set {item!r}: {raw.strip()!r} is not valid TOML ({exc})") from None
            value = raw.strip()  # a bare word is a string (the spaces around it are not part of it)
        parts = _key_path(item, key)
        node: Any = cfg
        for i, part in enumerate(parts[:-1]):
            # an array of tables ([[compress]]) is entered by index: compress.0 is its first entry
            node = node[_list_index(item, parts[:i], node, part)] if isinstance(node, list) else \
                node.setdefault(part, {})
            if not isinstance(node, dict) and not (isinstance(node, list) and all(isinstance(e, dict) for e in node)):
                raise ValueError(f"--set {item!r}: {part!r} is not a table")
        if isinstance(node, list):
            node[_list_index(item, parts[:-1], node, parts[-1])] = value
        else:
            node[parts[-1]] = value
    return cfg


def _key_path(item: str, key: str) -> List[str]:
    """The segments of an override's dotted key, read as TOML reads a key: ``model.tau."0".ceiling`` is
    ``["model", "tau", "0", "ceiling"]`` (a quoted segment may hold dots or spaces)."""
    try:
        node = tomllib.loads(f"{key} = 0") if "\n" not in key else None
    except tomllib.TOMLDecodeError:
        node = None
    if node is None:
        raise ValueError(f"--set {item!r}: {key.strip()!r} is not a dotted key (table.key; quote a segment that "
                         "holds other characters than letters, digits, - and _: model.tau.\"0\".ceiling)")
    parts = []
    while isinstance(node, dict):
        (part, node), = node.items()
        parts.append(part)
    return parts


def _list_index(item: str, path: List[str], entries: list, part: str) -> int:
    """``part`` as an index into the array of tables ``entries`` (0-based), which it must be."""
    name = ".".join(path)
    if not part.isdecimal() or int(part) >= len(entries):
        raise ValueError(f"--set {item!r}: {name} is an array of {len(entries)} tables ([[{name}]] entries); "
                         f"address one by its index, {name}.0 to {name}.{len(entries) - 1}" if entries else
                         f"--set {item!r}: {name} is an empty array; set it whole with {name}=[{{...}}]")
    return int(part)


def ensure_out_dir(out_dir: "str | Path", stale: Sequence[str] = ()) -> Path:
    """:func:`nnbcd._validation.writable_dir` for a run's results directory, before any training (the
    ``OSError`` names it as the results directory), with the files ``stale`` of an earlier run removed:
    whatever a run leaves in the directory is its own, and a missing result means it has not ended."""
    out = writable_dir(out_dir, f"results directory {str(out_dir)!r}")
    for name in stale:
        (out / name).unlink(missing_ok=True)
    return out


def write_json(path: "str | Path", payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically (:func:`nnbcd.result.write_json_atomic`: the previous file
    survives a failed write); objects JSON cannot hold are written as their ``str``."""
    write_json_atomic(path, payload, default=str)
