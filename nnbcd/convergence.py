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


def _history(obj: Any) -> Mapping[str, np.ndarray]:
    return obj["history"] if isinstance(obj, dict) and "history" in obj else obj


@dataclass
class DecreaseCheck:
    """Result of :func:`sufficient_decrease`.

    Attributes
    ----------
    ok : bool
        Every checked pair satisfies the inequality.
    margins : ndarray, shape (n_iter - 1,)
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


def sufficient_decrease(history: Any, alpha: float, rtol: float = 1e-9) -> DecreaseCheck:
    r"""Check :math:`\Phi^k - \Phi^{k+1} \ge \frac\alpha2 \|\Delta_{\text{prox}}^{k+1}\|^2` on consecutive
    monitored iterations, up to ``rtol``·|Φ|.

    Holds for exact block minimisation (no compression, m = 2 TT, split pruning, κ = 1, α_W = α); spec
    §11.6.

    Parameters
    ----------
    history : History, mapping or SolveResult
        With the columns ``objective`` and ``prox_step_sq`` (``monitor_every=1`` checks every step).
    alpha : float
        The prox weight α of the run.
    rtol : float
        Relative slack for rounding.

    Returns
    -------
    DecreaseCheck
    """
    h = _history(history)
    phi, step = np.asarray(h["objective"]), np.asarray(h["prox_step_sq"])
    ok_pairs = ~np.isnan(phi[:-1]) & ~np.isnan(phi[1:]) & ~np.isnan(step[1:])
    margins = np.full(len(phi) - 1, np.nan)
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


def rate(history: Any, growth: float = 10.0) -> RateCheck:
    r"""Empirical rate of :math:`\min_{j\le k}` ``step_sq`` (the O(1/k) theorem, a practical test).

    Parameters
    ----------
    history : History, mapping or SolveResult
        With the column ``step_sq``.
    growth : float
        Allowed growth of :math:`C_k` over the second half.

    Returns
    -------
    RateCheck

    Raises
    ------
    ValueError
        With fewer than 4 recorded ``step_sq`` values.
    """
    h = _history(history)
    step = np.asarray(h["step_sq"])
    k = np.flatnonzero(~np.isnan(step)) + 1
    if k.size < 4:
        raise ValueError("rate needs at least 4 recorded step_sq values (use monitor_every=1)")
    m = np.minimum.accumulate(step[k - 1])
    c = k * m
    half = k.size // 2
    pos = m[half:] > 0
    slope = float(np.polyfit(np.log(k[half:][pos]), np.log(m[half:][pos]), 1)[0]) if pos.sum() > 1 else -np.inf
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
    """
    import matplotlib.pyplot as plt

    h = _history(result)
    if keys is None:
        keys = [k for k in h if k in ("objective", "data", "out") or k.startswith(("relu_", "lin_", "comp_"))]
    if ax is None:
        _, ax = plt.subplots()
    for key in keys:
        y = np.asarray(h[key])
        it = np.flatnonzero(~np.isnan(y)) + 1
        ax.plot(it, y[it - 1], label=key)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
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
