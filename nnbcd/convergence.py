r"""Convergence checks any user can run on a solver's history, and the plots of it.

NN-BCD's analysis (arXiv 2303.06815) rests on two facts that a history can confirm or refute:

* **sufficient decrease**: :math:`\Phi^k - \Phi^{k+1} \ge \tfrac\alpha2\|\Delta_{\text{prox}}\|^2`,
  where :math:`\Delta_{\text{prox}}` collects the changes of the prox blocks (V_L, U_i, W_i);
* **rate**: :math:`\min_{j\le k}\|\Delta^j\|^2 \le C/k` (the O(1/k) theorem), i.e. :math:`k\cdot m_k`
  stays bounded, with :math:`m_k = \min_{j\le k}` ``step_sq``:sub:`j`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ._validation import check_int, check_positive


def _history(obj: Any) -> Mapping[str, np.ndarray]:
    """The history of a SolveResult, or ``obj`` itself when it is a mapping of columns."""
    h = obj["history"] if isinstance(obj, Mapping) and "history" in obj else obj
    if not isinstance(h, Mapping):
        raise TypeError(f"history must be a History, a SolveResult or a mapping of columns, got {type(obj).__name__}")
    return h


def _columns(obj: Any, *keys: str) -> tuple:
    """The columns ``keys`` of ``obj``'s history as equal-length float arrays (new copies).

    Raises
    ------
    ValueError
        When a column is missing (a history of another solver, or one written before every NN-BCD run had
        these columns from its start): the message says which, and the run's status when it has one.
    """
    h = _history(obj)
    missing = [k for k in keys if k not in h]
    if missing:
        status = f" (the run stopped with status {obj['status']}: {obj.get('message', '')})" \
            if isinstance(obj, Mapping) and "status" in obj else ""
        raise ValueError(f"history has no {', '.join(map(repr, missing))} records{status}; nothing to check "
                         f"(columns present: {sorted(h)})")
    cols = tuple(np.array(h[k], dtype=float) for k in keys)  # copies: callers mask entries
    if any(c.ndim != 1 or c.shape != cols[0].shape for c in cols):
        raise ValueError(f"history columns {keys} must be 1-D of equal length, got shapes {[c.shape for c in cols]}")
    return cols


def _start(obj: Any, start: Optional[int]) -> int:
    """The first sweep a check covers: ``start``, else a result's ``constant_from`` (the sweep from which
    no schedule or compressed structure changes: the guarantee's premise), else 1.

    Raises
    ------
    ValueError
        If the result's schedules never became constant (``constant_from`` is None).
    """
    if start is not None:
        return int(check_int(start, "start"))  # type: ignore[arg-type]
    if isinstance(obj, dict) and "history" in obj and "constant_from" in obj:
        if obj["constant_from"] is None:
            raise ValueError("the run's schedules never became constant (constant_from is None): the "
                             "convergence guarantee does not apply; pass start= to check a tail anyway")
        return int(obj["constant_from"])
    return 1


@dataclass
class DecreaseCheck:
    """Result of :func:`sufficient_decrease`.

    Attributes
    ----------
    ok : bool
        Every checked pair satisfies the inequality.
    margins : ndarray, shape (max(n_iter - 1, 0),)
        :math:`\\Phi^k - \\Phi^{k+1} - \\frac\\alpha2\\|\\Delta_{prox}^{k+1}\\|^2 + rtol|\\Phi^{k+1}|` (≥ 0 when
        satisfied; NaN for pairs not both monitored).
    worst_iteration : int
        1-based iteration of the smallest margin (-1 when nothing was checked).
    n_checked : int
        Pairs checked.
    """

    ok: bool
    margins: np.ndarray
    worst_iteration: int
    n_checked: int


def sufficient_decrease(history: Any, alpha: float, rtol: float = 1e-9, start: Optional[int] = None) -> DecreaseCheck:
    r"""Check :math:`\Phi^k - \Phi^{k+1} \ge \frac\alpha2 \|\Delta_{\text{prox}}^{k+1}\|^2` on consecutive
    monitored iterations, up to ``rtol``·|Φ|.

    Holds for exact block minimisation (no compression, m = 2 TT, split pruning, κ = 1, α_W = α); spec
    §11.6.

    Parameters
    ----------
    history : History, mapping or SolveResult
        With the columns ``objective`` and ``prox_step_sq`` (``monitor_every=1`` checks every step).
    alpha : float ≥ 0
        The prox weight α of the run (0 checks plain monotone decrease).
    rtol : float ≥ 0
        Relative slack for rounding.
    start : int ≥ 1, optional
        The first sweep whose record starts a checked pair. Default: a result's ``constant_from`` (the
        guarantee holds from the sweep where every schedule is constant and no compressed structure is
        re-chosen any more), 1 for a bare history. Margins before it are NaN.

    Returns
    -------
    DecreaseCheck
        ``n_checked`` pairs of consecutive monitored iterations; with none (fewer than two monitored
        iterations) ``ok`` is vacuously True and ``worst_iteration`` is -1.

    Raises
    ------
    ValueError
        For a result whose ``constant_from`` is None and no ``start``; a negative or non-finite
        ``alpha``/``rtol``; a history without ``objective``/``prox_step_sq`` columns (the message says
        which). A run that ran no sweep or failed in its first has them, empty or NaN: nothing is checked.
    TypeError
        If ``history`` is not a History, SolveResult or mapping, or ``alpha``/``rtol`` not a number.
    """
    alpha = check_positive(alpha, "alpha", allow_zero=True)
    rtol = check_positive(rtol, "rtol", allow_zero=True)
    phi, step = _columns(history, "objective", "prox_step_sq")
    first = _start(history, start) - 1
    phi[:first] = np.nan
    ok_pairs = ~np.isnan(phi[:-1]) & ~np.isnan(phi[1:]) & ~np.isnan(step[1:])
    margins = np.full(max(len(phi) - 1, 0), np.nan)  # a run that ran no sweep has no pair (and no row)
    margins[ok_pairs] = (phi[:-1] - phi[1:] - 0.5 * alpha * step[1:])[ok_pairs] + rtol * np.abs(phi[1:])[ok_pairs]
    checked = margins[ok_pairs]
    worst = int(np.nanargmin(margins)) + 1 if checked.size else -1
    return DecreaseCheck(ok=bool(np.all(checked >= 0)), margins=margins, worst_iteration=worst,
                         n_checked=int(checked.size))


@dataclass
class RateCheck:
    r"""Result of :func:`rate`.

    Attributes
    ----------
    k : int ndarray
        1-based iterations with a recorded ``step_sq``.
    min_step : ndarray
        Running minimum :math:`m_k = \min_{j\le k}` ``step_sq``.
    c_k : ndarray
        :math:`C_k = k\,m_k`.
    slope : float
        Fitted log-log slope of :math:`m_k` against :math:`k` over the second half of the run (−1 is O(1/k)).
    bounded : bool
        :math:`C_k` over the second half never exceeds ``growth`` times its value at the half-way point.
    """

    k: np.ndarray
    min_step: np.ndarray
    c_k: np.ndarray
    slope: float
    bounded: bool


def rate(history: Any, growth: float = 10.0, start: Optional[int] = None) -> RateCheck:
    r"""Empirical rate of :math:`\min_{j\le k}` ``step_sq`` (the O(1/k) theorem, a practical test).

    Parameters
    ----------
    history : History, mapping or SolveResult
        With the column ``step_sq``.
    growth : float
        Allowed growth of :math:`C_k` over the second half.
    start : int, optional
        The first sweep counted (as :func:`sufficient_decrease`'s ``start``); the rate is that of the
        iteration restarted there, :math:`C_k = (k - \text{start} + 1)\,m_k`.

    Returns
    -------
    RateCheck

    Raises
    ------
    ValueError
        With fewer than 4 recorded ``step_sq`` values from ``start`` on (or no such column), a ``growth``
        that is not a positive finite number, or for a result whose ``constant_from`` is None and no
        ``start``.
    TypeError
        If ``history`` is not a History, SolveResult or mapping.
    """
    growth = check_positive(growth, "growth")
    (step,) = _columns(history, "step_sq")
    first = _start(history, start)
    k = np.flatnonzero(~np.isnan(step)) + 1
    k = k[k >= first]
    if k.size < 4:
        raise ValueError("rate needs at least 4 recorded step_sq values (use monitor_every=1)")
    m = np.minimum.accumulate(step[k - 1])
    n = k - first + 1  # sweeps since the iteration's objective stopped changing
    c = n * m
    half = k.size // 2
    pos = m[half:] > 0
    slope = float(np.polyfit(np.log(n[half:][pos]), np.log(m[half:][pos]), 1)[0]) if pos.sum() > 1 else -np.inf
    return RateCheck(k=k, min_step=m, c_k=c, slope=slope, bounded=bool(np.all(c[half:] <= growth * c[half])))


def plot_history(result: Any, keys: Optional[Sequence[str]] = None, ax: Any = None, logy: bool = True) -> Any:
    """Plot history columns against the iteration.

    Parameters
    ----------
    result : SolveResult, History or mapping
    keys : sequence of str, optional
        Columns to plot; default the objective and its terms (``objective``, ``data``, ``out``,
        ``relu_i``, ``lin_i``, ``comp_i``).
    ax : matplotlib Axes, optional
    logy : bool
        Logarithmic y axis.

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    ValueError
        If ``keys`` names a column the history does not have.
    """
    import matplotlib.pyplot as plt

    h = _history(result)
    if keys is None:
        keys = [k for k in h if k in ("objective", "data", "out") or k.startswith(("relu_", "lin_", "comp_"))]
    elif isinstance(keys, str) or any(k not in h for k in keys):
        raise ValueError(f"keys must be a list of history columns {sorted(h)}, got {keys!r}")
    if ax is None:
        _, ax = plt.subplots()
    for key in keys:
        y = np.asarray(h[key])
        it = np.flatnonzero(~np.isnan(y)) + 1
        ax.plot(it, y[it - 1], label=key)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    if keys:  # no columns (a run without monitored sweeps has no accuracy): a legend of nothing warns
        ax.legend(fontsize="small")
    return ax


def plot_rate(result: Any, ax: Any = None) -> Any:
    r"""Plot :math:`\min_{j\le k}` ``step_sq`` with the reference line :math:`C/k`.

    Parameters
    ----------
    result : SolveResult, History or mapping
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt

    r = rate(result)
    if ax is None:
        _, ax = plt.subplots()
    ax.loglog(r.k, r.min_step, label=r"$\min_{j\leq k}\|\Delta^j\|^2$")
    c = r.c_k[r.k.size // 2:].max()  # smallest C with m_k <= C/k over the second half
    ax.loglog(r.k, c / r.k, "--", label=f"C/k (slope fit {r.slope:.2f})")
    ax.set_xlabel("iteration k")
    ax.legend(fontsize="small")
    return ax


def plot_convergence(result: Any, path: Optional[str] = None) -> Any:
    """Three panels: objective terms, train/val accuracy, step rate.

    Parameters
    ----------
    result : SolveResult, History or mapping
    path : str, optional
        Save the figure there (and close it).

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    h = _history(result)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    plot_history(h, ax=axes[0])
    axes[0].set_title("objective terms")
    plot_history(h, keys=[k for k in ("acc", "val_acc") if k in h], ax=axes[1], logy=False)
    axes[1].set_title("accuracy (deployed network)")
    try:
        plot_rate(h, ax=axes[2])
        axes[2].set_title("rate of the squared step")
    except ValueError:
        axes[2].set_visible(False)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
