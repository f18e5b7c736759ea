r"""Objective terms of NN-BCD (spec §2) and the deployed network's loss and accuracy (spec §6).

.. math::

    \Phi = \kappa\Big[\tfrac12\|V_L-Y\|^2 + \tfrac\gamma2\|V_L-U_L\|^2
           + \sum_{i<L}\tfrac\gamma2\|V_i-\sigma(U_i)\|^2
           + \sum_{i\le L}\tfrac\rho2\|U_i-W_iV_{i-1}-b_i1^T\|^2\Big]
           + \sum_{i\in C}\tfrac\tau2\|W_i-\tilde W_i\|^2

(paper numbering; the terms are recorded under the layer numbers ``0..L-1``, ``relu_0`` being the
paper's :math:`\|V_1-\sigma(U_1)\|^2` term). C holds the layers with the projection block; a layer with an
exact block on its compressed form has no coupling term (``comp_i`` = 0). With schedules, τ, γ and ρ
are the values of the sweep just run.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from ..backend import Backend
from .state import BCDState, Hyper


def objective_terms(st: BCDState, hp: Hyper, be: Backend, work: List[Any]) -> Dict[str, float]:
    """Every term of Φ, already weighted, and their sum.

    Parameters
    ----------
    st : BCDState
    hp : Hyper
    be : Backend
    work : list of arrays, shape (d_{i+1}, N)
        One scratch buffer per layer for the products :math:`W_iV_{i-1}` (overwritten).

    Returns
    -------
    dict of str to float
        ``data``, ``out``, ``relu_i`` (layers ``0..L-2``), ``lin_i`` (``0..L-1``), ``comp_i``
        (compressed layers), ``objective`` (Φ) and ``objective_ref`` (Φ with the data term weighted γ/2,
        as the reference prints it).
    """
    return with_objective({**sample_terms(st, hp, be, work), **coupling_terms(st, be)}, hp)


def sample_terms(st: BCDState, hp: Hyper, be: Backend, work: List[Any]) -> Dict[str, float]:
    """The terms of Φ that are sums over samples (columns), already weighted: those of disjoint shards of
    the columns add up to those of the whole.

    Parameters
    ----------
    st, hp, be, work
        As :func:`objective_terms`.

    Returns
    -------
    dict of str to float
        ``data``, ``out``, ``relu_i`` (layers ``0..L-2``) and ``lin_i`` (``0..L-1``).
    """
    L = st.n_layers
    k = hp.kappa
    terms = {"data": k * 0.5 * be.sq_dist(st.V[L - 1], st.Y),
             "out": k * 0.5 * hp.gamma * be.sq_dist(st.V[L - 1], st.U[L - 1])}
    for i in range(L):
        if i < L - 1:
            terms[f"relu_{i}"] = k * 0.5 * hp.gamma * be.relu_gap_sq(st.V[i], st.U[i])
        p = st.linear(i, be, out=work[i])
        terms[f"lin_{i}"] = k * 0.5 * hp.rho * be.lin_gap_sq(st.U[i], p, st.bias_rows(i, be))
    return terms


def coupling_terms(st: BCDState, be: Backend) -> Dict[str, float]:
    r"""``comp_i`` = :math:`\tfrac\tau2\|W_i-\tilde W_i\|^2` of each compressed layer (0 for an exact block):
    the terms of Φ that read the weights only."""
    terms = {f"comp_{i}": 0.5 * tau * be.sq_dist(st.W[i], st.Wt[i].dense) for i, tau in st.tau.items()}
    for i in st.exact_layers:  # W_i is the compressed weight itself: no coupling term
        terms[f"comp_{i}"] = 0.0
    return terms


def with_objective(terms: Dict[str, float], hp: Hyper) -> Dict[str, float]:
    """``terms`` (every weighted term of Φ, ``data`` first) with ``objective`` (their sum) and ``objective_ref``
    (the data term weighted γ/2) added."""
    objective = sum(terms.values())
    return dict(terms, objective=objective, objective_ref=objective + (hp.gamma - 1.0) * terms["data"])


def forward(weights: List[Any], biases: List[Optional[Any]], x: Any, be: Backend,
            conv: Any = None, patches: Any = None) -> Any:
    r"""Network output :math:`f(X)` (ReLU on every layer but the last).

    Parameters
    ----------
    weights : list of arrays, shape (d_{i+1}, d_i)
        Layers ``0..L-1`` (a conv layer 0 as its kernel :math:`Z^T`).
    biases : list of (array or None)
    x : array, shape (d_0, N)
        Inputs as columns.
    be : Backend
    conv : InputConv2d, optional
        The convolutional first layer.
    patches : array, optional
        Its :math:`\hat X^T` for ``x``; built from ``x`` when not given.

    Returns
    -------
    array, shape (d_L, N)
    """
    h = x
    L = len(weights)
    for i, (w, b) in enumerate(zip(weights, biases)):
        if i == 0 and conv is not None:
            h = conv.to_features(be.matmul(w, conv.patches(x, be) if patches is None else patches))
            b = None if b is None else conv.bias_rows(b, be.xp)
        else:
            h = be.matmul(w, h)
        if b is not None:
            h += b[:, None]
        if i < L - 1:
            be.relu(h, out=h)
    return h


def net_metrics(out: Any, y_onehot: Any, labels: Any, kappa: float, be: Backend) -> Dict[str, float]:
    """Loss and accuracies of network outputs.

    Parameters
    ----------
    out : array, shape (K, N)
        Network outputs.
    y_onehot : array, shape (K, N)
    labels : int array, shape (N,)
        Class indices ``0..K-1``.
    kappa : float
        κ of the loss.
    be : Backend

    Returns
    -------
    dict of str to float
        ``loss`` = κ·½‖f(X) − Y‖², ``acc`` (argmax accuracy) and ``bacc`` (mean per-class recall over the
        classes present).
    """
    return metrics_from_sums(metric_sums(out, y_onehot, labels, be), kappa)


def metric_sums(out: Any, y_onehot: Any, labels: Any, be: Backend) -> Dict[str, Any]:
    """The sums over samples that :func:`net_metrics` is made of: those of disjoint shards add up.

    Parameters
    ----------
    out, y_onehot, labels, be
        As :func:`net_metrics`.

    Returns
    -------
    dict
        ``sq`` (‖f(X) − Y‖², float), ``correct`` and ``count`` (int64 numpy arrays of shape (K,): correct
        argmax predictions and samples per class).
    """
    xp = be.xp
    correct = xp.argmax(out, axis=0) == labels
    n_classes = y_onehot.shape[0]
    return {"sq": be.sq_dist(out, y_onehot),
            "correct": be.to_numpy(xp.bincount(labels[correct], minlength=n_classes)).astype(np.int64),
            "count": be.to_numpy(xp.bincount(labels, minlength=n_classes)).astype(np.int64)}


def metrics_from_sums(sums: Dict[str, Any], kappa: float) -> Dict[str, float]:
    """``loss``, ``acc`` and ``bacc`` (see :func:`net_metrics`) from :func:`metric_sums` (of one or several
    shards, added)."""
    present = sums["count"] > 0
    return {
        "loss": kappa * 0.5 * sums["sq"],
        "acc": float(sums["correct"].sum() / sums["count"].sum()),
        "bacc": float(sum(int(c) / int(n) for c, n in zip(sums["correct"][present], sums["count"][present]))
                      / int(present.sum())),
    }
