r"""Orthogonal regularisers for training before low-rank compression (Bansal et al. 2018 forms).

A weight's matrix view is :math:`W` (out×in) for Linear and :math:`\mathrm{reshape}(W, (out, in\cdot k_h k_w))`
for Conv2d; :math:`G = WW^T` if out ≤ in else :math:`W^TW` (the smaller side, size k), gain g:

* ``"so"``: :math:`\lambda\|G - g^2I_k\|_F^2`
* ``"dso"``: :math:`\lambda(\|W^TW - g^2I\|_F^2 + \|WW^T - g^2I\|_F^2)`
* ``"srip"``: :math:`\lambda\,\sigma_{\max}(G - g^2I)` by power iteration (differentiable through the
  final Rayleigh quotient)
* ``"offdiag"``: :math:`\lambda\|G\odot(1-I)\|_F^2`
* ``"factor"``: :math:`\lambda\|G - I_k\|_F^2/k^2`, for the factor matrices of decomposed layers (the Tucker-2
  1×1 factors are orthonormal after decomposition; the penalty keeps them so while fine-tuning); ``gain`` unused

A strong ``"so"`` penalty on full weights flattens the spectrum EVBMF relies on: keep λ small.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from .._validation import check_bool, check_choice, check_int, check_positive

__all__ = ["PENALTIES", "orthogonal_penalty", "regularised_layers", "train_epochs"]


def _matrix(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0], -1)


def _gram(m: torch.Tensor) -> torch.Tensor:
    return m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m


def _so(m: torch.Tensor, g: float, n_iter: int) -> torch.Tensor:
    gm = _gram(m)
    return (gm - g * g * torch.eye(gm.shape[0], dtype=m.dtype, device=m.device)).square().sum()


def _dso(m: torch.Tensor, g: float, n_iter: int) -> torch.Tensor:
    eye = lambda n: torch.eye(n, dtype=m.dtype, device=m.device)
    return ((m.T @ m - g * g * eye(m.shape[1])).square().sum() + (m @ m.T - g * g * eye(m.shape[0])).square().sum())


def _srip(m: torch.Tensor, g: float, n_iter: int) -> torch.Tensor:
    gm = _gram(m)
    a = gm - g * g * torch.eye(gm.shape[0], dtype=m.dtype, device=m.device)
    v = torch.randn(a.shape[0], dtype=m.dtype, device=m.device)
    with torch.no_grad():
        for _ in range(n_iter):
            v = a @ v
            v = v / v.norm().clamp_min(1e-30)
    return (a @ v).norm()


def _offdiag(m: torch.Tensor, g: float, n_iter: int) -> torch.Tensor:
    gm = _gram(m)
    return (gm - torch.diag(torch.diagonal(gm))).square().sum()


def _factor(m: torch.Tensor, g: float, n_iter: int) -> torch.Tensor:
    k = min(m.shape)
    return _so(m, 1.0, n_iter) / (k * k)


#: kind -> penalty of one matrix view ``(m, gain, n_power_iter) -> scalar tensor`` (the module docstring's forms)
PENALTIES: dict = {"so": _so, "dso": _dso, "srip": _srip, "offdiag": _offdiag, "factor": _factor}


def regularised_layers(model: nn.Module, exclude_last_linear: bool = True) -> list[tuple[str, nn.Module]]:
    """Every groups-1 Conv2d and every Linear except (by default) the last one, the classifier.

    Parameters
    ----------
    model : torch.nn.Module
    exclude_last_linear : bool
        Leave out the last Linear in ``named_modules`` order.

    Returns
    -------
    list of (str, torch.nn.Module)
        ``(name, module)`` pairs in ``named_modules`` order.

    Raises
    ------
    TypeError
        ``model`` is not a module or ``exclude_last_linear`` not a bool.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_bool(exclude_last_linear, "exclude_last_linear")
    layers = [(n, m) for n, m in model.named_modules()
              if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)]
    linear = [n for n, m in layers if isinstance(m, nn.Linear)]
    if exclude_last_linear and linear:
        layers = [(n, m) for n, m in layers if n != linear[-1]]
    return layers


def orthogonal_penalty(weights: Iterable[torch.Tensor], kind: str = "so", lam: float = 1e-4, gain: float = 1.0,
                       n_power_iter: int = 2) -> torch.Tensor:
    r"""λ times the sum over ``weights`` of the chosen penalty (add it to the training loss).

    Each weight is viewed as a matrix W (out × in·k_h·k_w for a convolution); the forms are the module
    docstring's (Bansal et al. 2018, "Can we gain more from orthogonality regularizations?").

    Parameters
    ----------
    weights : iterable of torch.Tensor
        Floating weights of shape (out, ...) (at least one axis); at least one.
    kind : {"so", "dso", "srip", "offdiag", "factor"}
    lam : float ≥ 0
        λ, finite.
    gain : float ≥ 0
        g in :math:`G - g^2I`, finite (unused by ``"offdiag"`` and ``"factor"``).
    n_power_iter : int ≥ 1
        Power iterations of ``"srip"``'s :math:`\sigma_{\max}` estimate.

    Returns
    -------
    torch.Tensor
        A scalar in the weights' dtype, differentiable in the weights.

    Raises
    ------
    TypeError
        ``lam`` or ``gain`` not a real number; ``weights`` one tensor (not an iterable of them); a weight
        that is not a floating tensor (named by its index).
    ValueError
        An unknown ``kind``; ``lam`` or ``gain`` negative, NaN or infinite; ``n_power_iter`` not an int ≥ 1;
        a 0-d weight; no weights.
    """
    fn = PENALTIES[check_choice(kind, tuple(PENALTIES), "kind")]
    lam = check_positive(lam, "lam", allow_zero=True)  # NaN or a negative λ would not regularise: refused
    gain = check_positive(gain, "gain", allow_zero=True)
    n_power_iter = check_int(n_power_iter, "n_power_iter", minimum=1)
    if isinstance(weights, torch.Tensor):  # iterating one tensor would penalise its rows one by one
        raise TypeError("weights must be an iterable of tensors, got one tensor: pass [weight]")
    terms = []
    for i, w in enumerate(weights):
        if not isinstance(w, torch.Tensor) or not w.is_floating_point():
            raise TypeError(f"weights[{i}] must be a floating torch.Tensor, got "
                            f"{getattr(w, 'dtype', type(w).__name__)}")
        if w.ndim == 0:
            raise ValueError(f"weights[{i}] is 0-d: a weight has shape (out, ...)")
        terms.append(fn(_matrix(w), gain, n_power_iter))
    if not terms:
        raise ValueError("weights is empty: nothing to regularise")
    return lam * torch.stack(terms).sum()


def train_epochs(model: nn.Module, loader: Iterable, epochs: int, lr: float = 1e-3,
                 penalty: Callable[[nn.Module], torch.Tensor] | None = None,
                 on_epoch: Callable[[int, float], None] | None = None) -> nn.Module:
    """A small Adam training loop: cross entropy plus an optional penalty, the runners' trainer.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place.
    loader : iterable of (x, y)
        Batches of inputs and integer class labels.
    epochs : int
        Passes over ``loader`` (0: nothing is done).
    lr : float
        Adam's learning rate.
    penalty : callable ``model -> scalar tensor``, optional
        Added to every batch's loss.
    on_epoch : callable ``(epoch, summed loss) -> None``, optional
        Called after each epoch.

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    TypeError
        ``model`` is not a module, ``penalty`` or ``on_epoch`` not callable, ``lr`` not a real number.
    ValueError
        ``epochs`` not an int ≥ 0; ``lr`` not finite and > 0.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    epochs = check_int(epochs, "epochs", minimum=0)
    lr = check_positive(lr, "lr")
    for name, fn in (("penalty", penalty), ("on_epoch", on_epoch)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            if penalty is not None:
                loss = loss + penalty(model)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        if on_epoch is not None:
            on_epoch(epoch, total)
    return model
