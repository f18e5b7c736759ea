r"""Hyperparameter schedules: a value per sweep for τ, γ, ρ, rank caps and sparsities.

A fixed coupling :math:`\tfrac\tau2\|W - \tilde W\|^2` either ignores the compressed copy (τ small) or
freezes W on it (τ large). The LC algorithm (M. Á. Carreira-Perpiñán, *Model compression as constrained
optimization, with application to neural nets. Part I: general framework*, arXiv 1707.01209, 2017)
drives the penalty weight up on a schedule, :math:`\mu_k = \mu_0 a^k` with :math:`a > 1`, so that the
iterates reach the feasible set only as the weight grows. :class:`Geometric` is that schedule, with a
ceiling so that the weight (and with it the objective) stops changing after finitely many sweeps.

The convergence guarantee of NN-BCD (Li et al., arXiv 2303.06815) is for fixed hyperparameters: it
applies to the iterates from :attr:`Schedule.constant_from` on, the first sweep after which no
scheduled value changes any more; a schedule that never becomes constant (``constant_from is None``)
voids it.

Sweeps are numbered from 1, as the solver's ``n_iter_``: ``value(1)`` is the value of the first sweep.
Integer quantities (rank caps, kept counts) use ``integer=True`` schedules, whose values are ``int``.
"""
from __future__ import annotations

import math
import numbers
import sys
from abc import ABC, abstractmethod
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

Number = Union[int, float]

__all__ = ["Constant", "Geometric", "Piecewise", "Schedule", "as_schedule", "check_within_run"]


def _round_half_up(x: float) -> int:
    """``floor(x + 1/2)``: the rounding of integer schedules (no banker's rounding: 20.5 -> 21)."""
    return int(math.floor(x + 0.5))


def _positive(value: Any, name: str, what: str, integer: bool = False) -> Number:
    """A finite number > 0 (an integral one when ``integer``), or a ValueError/TypeError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: {what} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: {what} must be finite and > 0, got {value!r}")
    if integer:
        if v != math.floor(v):
            raise ValueError(f"{name}: {what} must be an integer, got {value!r}")
        return int(v)
    return v


def _sweep(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"sweep numbers start at 1, got {k!r}")
    return int(k)


class Schedule(ABC):
    """A hyperparameter as a function of the sweep number k = 1, 2, ...

    Attributes
    ----------
    integer : bool
        Values are ``int`` (rank caps, kept counts).
    """

    integer: bool = False

    @abstractmethod
    def value(self, k: int) -> Number:
        """The value used in sweep ``k`` (1-based).

        Raises
        ------
        ValueError
            If ``k`` is not an integer ≥ 1.
        """

    @property
    @abstractmethod
    def constant_from(self) -> Optional[int]:
        """The first sweep from which the value no longer changes, or ``None`` if it never settles."""

    @abstractmethod
    def bounds(self) -> Tuple[Number, Number]:
        """``(lowest, highest)`` value over all sweeps (an infimum of 0 or a supremum of ``inf`` for
        unbounded geometric schedules), for range checks by the caller (e.g. a sparsity below 1)."""

    @abstractmethod
    def to_dict(self) -> Dict[str, Any]:
        """A TOML-ready description; ``as_schedule(s.to_dict(), name, integer=s.integer) == s``."""

    @abstractmethod
    def bounds_until(self, last: int) -> Tuple[Number, Number]:
        """``(lowest, highest)`` value over sweeps ``1..last``: where an unbounded geometric schedule has
        overflowed to ``inf`` or underflowed to 0 within a run of ``last`` sweeps, the bound says so."""

    def is_constant_from(self, k: int) -> bool:
        """Whether the value is constant from sweep ``k`` on (``k ≥ constant_from``)."""
        k = _sweep(k)
        return self.constant_from is not None and k >= self.constant_from

    def _out(self, x: float) -> Number:
        return _round_half_up(x) if self.integer else x

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Schedule) and self.integer == other.integer
                and self.to_dict() == other.to_dict())

    def __hash__(self) -> int:
        return hash((self.integer, repr(sorted(self.to_dict().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "type")
        extra = ", integer=True" if self.integer else ""
        return f"{type(self).__name__}({args}{extra})"


class Constant(Schedule):
    """The same value in every sweep (what a plain number means).

    Parameters
    ----------
    value : float or int
        Finite and > 0 (an integer when ``integer``).
    integer : bool
        The quantity is an integer (rank cap, kept count).
    name : str
        The hyperparameter's name, for error messages.
    """

    def __init__(self, value: Number, *, integer: bool = False, name: str = "schedule") -> None:
        self.integer = bool(integer)
        self._value = _positive(value, name, "value", self.integer)

    def value(self, k: int) -> Number:
        _sweep(k)
        return self._value

    @property
    def constant_from(self) -> Optional[int]:
        return 1

    def bounds(self) -> Tuple[Number, Number]:
        return self._value, self._value

    def bounds_until(self, last: int) -> Tuple[Number, Number]:
        _sweep(last)
        return self._value, self._value

    def to_dict(self) -> Dict[str, Any]:
        return {"type": "constant", "value": self._value}


class Geometric(Schedule):
    r"""A geometric schedule with a bound, as the LC algorithm's :math:`\mu_k = \mu_0 a^k`.

    .. math:: v_k = \mathrm{clip}\big(\text{start}\cdot\text{factor}^{\lfloor (k-1)/\text{every}\rfloor},\
              \text{floor},\ \text{ceiling}\big)

    so the value changes every ``every`` sweeps. ``factor > 1`` grows towards ``ceiling`` (e.g. τ);
    ``factor < 1`` decays towards ``floor`` (e.g. a rank cap lowered from full to a target). Integer
    schedules round each value half up, :math:`\lfloor v_k + 1/2\rfloor`; since rounding is monotone they
    stay monotone, and they may settle before the unrounded value reaches the bound.

    Parameters
    ----------
    start : float or int
        :math:`v_1`, finite and > 0 (an integer when ``integer``).
    factor : float
        Finite and > 0. ``1`` gives a constant schedule.
    ceiling : float or int, optional
        Upper bound, ``≥ start``; only with ``factor > 1``. Without it a growing schedule never settles.
    every : int
        Sweeps per factor (≥ 1).
    floor : float or int, optional
        Lower bound, ``≤ start``; only with ``factor < 1``. Without it a decaying schedule never settles
        (its values stay > 0, or for integer schedules reach and keep 0 — not allowed: give a floor).
    integer : bool
        The quantity is an integer; ``start``, ``ceiling`` and ``floor`` must be integers.
    name : str
        The hyperparameter's name, for error messages.

    Raises
    ------
    ValueError, TypeError
        Naming ``name``, for non-positive / non-finite values, a bound on the wrong side of ``start`` or
        of the wrong kind for ``factor``, or an integer decaying schedule without a floor.
    """

    def __init__(self, start: Number, factor: float, ceiling: Optional[Number] = None, every: int = 1, *,
                 floor: Optional[Number] = None, integer: bool = False, name: str = "schedule") -> None:
        self.integer = bool(integer)
        self.start = _positive(start, name, "start", self.integer)
        self.factor = _positive(factor, name, "factor")
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(f"{name}: every must be an integer ≥ 1, got {every!r}")
        self.every = int(every)
        self.ceiling = None if ceiling is None else _positive(ceiling, name, "ceiling", self.integer)
        self.floor = None if floor is None else _positive(floor, name, "floor", self.integer)
        if self.ceiling is not None and (self.factor <= 1 or self.ceiling < self.start):
            raise ValueError(f"{name}: a ceiling needs factor > 1 and ceiling ≥ start, got factor="
                             f"{factor!r}, start={start!r}, ceiling={ceiling!r}")
        if self.floor is not None and (self.factor >= 1 or self.floor > self.start):
            raise ValueError(f"{name}: a floor needs factor < 1 and floor ≤ start, got factor="
                             f"{factor!r}, start={start!r}, floor={floor!r}")
        if self.integer and self.factor < 1 and self.floor is None:
            raise ValueError(f"{name}: an integer schedule with factor < 1 needs a floor (≥ 1)")
        self._settle = self._settling_step()

    def _raw(self, j: int) -> float:
        """The clipped value after ``j`` factor steps (before integer rounding)."""
        try:
            v = self.start * self.factor ** j
        except OverflowError:  # an unbounded growing schedule run for very many sweeps
            v = math.inf
        if self.ceiling is not None:
            v = min(v, self.ceiling)
        if self.floor is not None:
            v = max(v, self.floor)
        return v

    def _settling_step(self) -> Optional[int]:
        """The first number of factor steps j from which the (rounded) value stays put, or None."""
        if self.factor == 1:
            return 0
        bound = self.ceiling if self.factor > 1 else self.floor
        if bound is None:
            return None
        # j* = first j with start·factor^j beyond the bound; found from the logarithm, then corrected
        # for its rounding by stepping the same expression value() evaluates
        j = max(0, math.ceil(math.log(bound / self.start) / math.log(self.factor)))
        while j > 0 and self._raw(j - 1) == bound:
            j -= 1
        while self._raw(j) != bound:
            j += 1
        if self.integer:  # rounding is monotone: the rounded values settle no later than j*
            target = self._out(bound)
            while j > 0 and self._out(self._raw(j - 1)) == target:
                j -= 1
        return j

    def value(self, k: int) -> Number:
        k = _sweep(k)
        j = (k - 1) // self.every
        if self._settle is not None:
            j = min(j, self._settle)  # beyond it the value is the bound; avoids overflow of factor**j
        return self._out(self._raw(j))

    @property
    def constant_from(self) -> Optional[int]:
        return None if self._settle is None else self._settle * self.every + 1

    def bounds(self) -> Tuple[Number, Number]:
        if self.factor == 1:
            return self._out(self.start), self._out(self.start)
        if self.factor > 1:
            return self._out(self.start), (math.inf if self.ceiling is None else self._out(self.ceiling))
        return (0.0 if self.floor is None else self._out(self.floor)), self._out(self.start)

    def bounds_until(self, last: int) -> Tuple[Number, Number]:
        first, end = self.value(1), self.value(last)  # monotone: the extremes are the ends
        return min(first, end), max(first, end)

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"type": "geometric", "start": self.start, "factor": self.factor}
        if self.ceiling is not None:
            d["ceiling"] = self.ceiling
        if self.floor is not None:
            d["floor"] = self.floor
        if self.every != 1:
            d["every"] = self.every
        return d


class Piecewise(Schedule):
    """A piecewise constant schedule: ``[(1, v_1), (k_2, v_2), ...]`` means v_1 from sweep 1, v_2 from k_2...

    Parameters
    ----------
    pieces : sequence of (int, number)
        ``(from_sweep, value)`` pairs, the first from sweep 1, sweeps strictly increasing, values finite
        and > 0 (integers when ``integer``).
    integer : bool
        The quantity is an integer.
    name : str
        The hyperparameter's name, for error messages.

    Raises
    ------
    ValueError, TypeError
        Naming ``name``, for an empty list, a first piece not at sweep 1, unordered or repeated sweeps,
        malformed pairs or bad values.
    """

    def __init__(self, pieces: Sequence[Sequence[Any]], *, integer: bool = False,
                 name: str = "schedule") -> None:
        self.integer = bool(integer)
        if isinstance(pieces, (str, bytes)) or not isinstance(pieces, Sequence) or len(pieces) == 0:
            raise TypeError(f"{name}: pieces must be a non-empty list of (from_sweep, value) pairs, "
                            f"got {pieces!r}")
        parsed: List[Tuple[int, Number]] = []
        for piece in pieces:
            if isinstance(piece, (str, bytes)) or not isinstance(piece, Sequence) or len(piece) != 2:
                raise TypeError(f"{name}: each piece must be a (from_sweep, value) pair, got {piece!r}")
            start, value = piece
            if isinstance(start, bool) or not isinstance(start, numbers.Integral) or start < 1:
                raise ValueError(f"{name}: a piece's from_sweep must be an integer ≥ 1, got {start!r}")
            if parsed and start <= parsed[-1][0]:
                raise ValueError(f"{name}: pieces must be ordered by strictly increasing from_sweep, got "
                                 f"{parsed[-1][0]} then {start}")
            parsed.append((int(start), _positive(value, name, f"the value from sweep {start}", self.integer)))
        if parsed[0][0] != 1:
            raise ValueError(f"{name}: the first piece must start at sweep 1, got {parsed[0][0]}")
        self.pieces = tuple(parsed)

    def value(self, k: int) -> Number:
        k = _sweep(k)
        current = self.pieces[0][1]
        for start, v in self.pieces:
            if start > k:
                break
            current = v
        return current

    @property
    def constant_from(self) -> Optional[int]:
        last = len(self.pieces) - 1
        while last > 0 and self.pieces[last - 1][1] == self.pieces[last][1]:
            last -= 1
        return self.pieces[last][0]

    def bounds(self) -> Tuple[Number, Number]:
        values = [v for _, v in self.pieces]
        return min(values), max(values)

    def bounds_until(self, last: int) -> Tuple[Number, Number]:
        values = [v for start, v in self.pieces if start <= _sweep(last)]
        return min(values), max(values)

    def to_dict(self) -> Dict[str, Any]:
        return {"type": "piecewise", "pieces": [[s, v] for s, v in self.pieces]}


def check_within_run(value: Any, name: str, last: int, allow_zero: bool = False) -> None:
    """Raise a ValueError naming ``name`` if a schedule's value leaves the finite, > 0 (≥ 0 with
    ``allow_zero``) range within sweeps ``1..last``; a number passes (it was checked when given).

    A geometric schedule without a ceiling (floor) grows (decays) without end: run long enough, its value
    overflows to ``inf`` or underflows to 0, which would stop the run deep inside a block. Checked before
    the first sweep instead, for the run's ``max_iter``.
    """
    if not isinstance(value, Schedule) or last < 1:
        return
    lo, hi = value.bounds_until(last)
    # a subnormal value (below the smallest normal float) counts as underflowed: 1/γ and the like overflow
    if not (math.isfinite(hi) and (lo >= sys.float_info.min or (allow_zero and lo == 0))):
        bad = hi if not math.isfinite(hi) else lo
        bound = "a ceiling" if not math.isfinite(hi) else "a floor"
        raise ValueError(f"{name}: the schedule {value!r} reaches {bad!r} within the {last} sweeps of this run "
                         f"(max_iter); give it {bound}, a smaller factor or fewer sweeps")


_KEYS = {
    "constant": ({"value"}, set()),
    "geometric": ({"start", "factor"}, {"ceiling", "floor", "every"}),
    "piecewise": ({"pieces"}, set()),
}


def as_schedule(value: Any, name: str, *, integer: bool = False) -> Schedule:
    """A :class:`Schedule` from what a user writes for a hyperparameter.

    Parameters
    ----------
    value : number, Schedule or dict
        A number (a :class:`Constant`), a schedule, or a TOML-style table:
        ``{"type": "constant", "value": v}``,
        ``{"type": "geometric", "start": s, "factor": a, "ceiling": c, "floor": f, "every": e}``
        (``ceiling``, ``floor``, ``every`` optional) or
        ``{"type": "piecewise", "pieces": [[1, v1], [k2, v2], ...]}``.
    name : str
        The hyperparameter's name (e.g. ``"tau[0]"``, ``"rank"``), used in every error message.
    integer : bool
        The quantity is an integer (rank cap, kept count): numbers and schedule parameters must be
        integers and values are ``int``. A float schedule passed here is rebuilt as an integer one.

    Returns
    -------
    Schedule

    Raises
    ------
    TypeError
        Naming ``name``, for a value of another type (booleans included) or a malformed table.
    ValueError
        Naming ``name``, for non-positive, non-finite or non-integral values, an unknown ``type``,
        unknown or missing keys, or unordered pieces.
    """
    if isinstance(value, Schedule):
        if value.integer == integer:
            return value
        return as_schedule(value.to_dict(), name, integer=integer)
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, a Schedule or a schedule table, got {value!r}")
    if isinstance(value, numbers.Real):
        return Constant(value, integer=integer, name=name)
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a number, a Schedule or a schedule table, got {value!r}")
    kind = value.get("type")
    if kind not in _KEYS:
        raise ValueError(f"{name}: schedule type {kind!r} is not one of {tuple(_KEYS)}")
    required, optional = _KEYS[kind]
    keys = set(value) - {"type"}
    if keys - required - optional:
        raise ValueError(f"{name}: unknown key(s) {sorted(keys - required - optional)} in a {kind} schedule; "
                         f"allowed: {sorted(required | optional)}")
    if required - keys:
        raise ValueError(f"{name}: a {kind} schedule needs {sorted(required - keys)}")
    args = {k: v for k, v in value.items() if k != "type"}
    if kind == "constant":
        return Constant(args["value"], integer=integer, name=name)
    if kind == "geometric":
        return Geometric(integer=integer, name=name, **args)
    return Piecewise(args["pieces"], integer=integer, name=name)
