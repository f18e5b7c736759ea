r"""Objective terms of NN-BCD (spec §2) and the deployed network's loss and accuracy (spec §6).

.. math::

    \Phi = \kappa\Big[\tfrac12\|V_L-Y\|^2 + \tfrac\gamma2\|V_L-U_L\|^2
           + \sum_{i<L}\tfrac\gamma2\|V_i-\sigma(U_i)\|^2
           + \sum_{i\le L}\tfrac\rho2\|U_i-W_iV_{i-1}-b_i1^T\|^2\Big]
           + \sum_{i\in C}\tfrac\tau2\|W_i-\tilde W_i\|^2
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..backend import Backend
from .state import BCDState, Hyper


def objective_terms(st: BCDState, hp: Hyper, be: Backend, work: List[Any]) -> Dict[str, float]:
    """All terms of Φ (each already weighted), ``phi`` and ``phi_ref`` (data term weighted γ/2).

    ``work`` holds one d_i×N buffer per layer for the products :math:`W_iV_{i-1}`.
    """
    L = st.n_layers
    k = hp.kappa
    data = 0.5 * be.sq_dist(st.V[L - 1], st.Y)
    terms = {"data": k * data, "out": k * 0.5 * hp.gamma * be.sq_dist(st.V[L - 1], st.U[L - 1])}
    for i in range(L):
        if i < L - 1:
            terms[f"relu_{i + 1}"] = k * 0.5 * hp.gamma * be.relu_gap_sq(st.V[i], st.U[i])
        p = st.linear(i, be, out=work[i])
        terms[f"lin_{i + 1}"] = k * 0.5 * hp.rho * be.lin_gap_sq(st.U[i], p, st.bias_rows(i, be))
    for i, tau in st.tau.items():
        terms[f"comp_{i + 1}"] = 0.5 * tau * be.sq_dist(st.W[i], st.Wt[i].dense)
    phi = sum(terms.values())
    terms["phi"] = phi
    terms["phi_ref"] = phi + k * (hp.gamma - 1.0) * data
    return terms


def forward(weights: List[Any], biases: List[Optional[Any]], x: Any, be: Backend,
            conv: Any = None, patches: Any = None) -> Any:
    r"""Network output :math:`f(X)` for column-sample input ``x`` (ReLU on hidden layers).

    With a conv first layer, ``patches`` (its :math:`\hat X^T`) is used when given, else built from ``x``.
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
    """``loss`` = κ·½‖f(X) − Y‖², ``acc`` (argmax) and ``bacc`` (mean per-class recall)."""
    xp = be.xp
    pred = xp.argmax(out, axis=0)
    correct = pred == labels
    recalls = []
    for c in range(y_onehot.shape[0]):
        mask = labels == c
        cnt = int(mask.sum())
        if cnt:
            recalls.append(float(correct[mask].sum()) / cnt)
    return {
        "loss": kappa * 0.5 * be.sq_dist(out, y_onehot),
        "acc": float(correct.mean()),
        "bacc": float(sum(recalls) / len(recalls)),
    }
