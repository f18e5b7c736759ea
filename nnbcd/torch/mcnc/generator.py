r"""The frozen generator :math:`\phi:\mathbb R^k\to S^{d-1}` and its fused autograd Function."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .spec import _ACTS, MCNCSpec, _uniform


class MCNCGenerator(nn.Module):
    r"""The frozen map :math:`\phi:\mathbb R^k\to\mathbb R^d` of an :class:`MCNCSpec` (spec §2).

    Weights are drawn from ``numpy.random.PCG64(spec.seed)`` (identical on every device and process):
    A = √(6/fan_in)(2u−1), c = (2u−1)/√fan_in, layer by layer. ``"mcnc"``: hidden layers
    :math:`h_i = \sigma(A_i h_{i-1} + c_i)`, :math:`h_0 = \omega\alpha`, then
    :math:`\phi(\alpha) = y/\lVert y\rVert` with the linear output :math:`y = A_o h_H + c_o`, evaluated
    (and differentiated) by :class:`_Generate`. ``"pranc"``: :math:`\phi(\alpha) = A\alpha/\sqrt k`.
    Named ``MCNCGenerator`` (not ``Generator``) so it never shadows ``torch.Generator``.

    Parameters
    ----------
    spec : MCNCSpec

    Raises
    ------
    ValueError
        The weights are too many to allocate (a huge ``d`` or ``width``); the message gives the count.

    Attributes
    ----------
    spec : MCNCSpec
    w0, b0, ..., w{H}, b{H} : torch.Tensor, float32
        Non-persistent buffers: layer i's weight (fan_out × fan_in) and bias (zeros for ``"pranc"``).
    n_layers : int
    """

    def __init__(self, spec: MCNCSpec) -> None:
        super().__init__()
        self.spec = spec
        rng = np.random.Generator(np.random.PCG64(spec.seed))
        if spec.generator == "pranc":
            dims = [(spec.d, spec.k)]
        else:
            dims = [(spec.width, spec.k)] + [(spec.width, spec.width)] * (spec.depth - 1) + [(spec.d, spec.width)]
        for i, (fo, fi) in enumerate(dims):
            try:
                w = _uniform(rng, (fo, fi), math.sqrt(6.0 / fi))
            except (MemoryError, ValueError) as exc:  # numpy's "cannot allocate" / "dimension exceeded"
                size = sum(o * (j + 1) for o, j in dims)
                raise ValueError(f"the generator's {size} weights (k = {spec.k}, width = {spec.width}, depth = "
                                 f"{spec.depth}, d = {spec.d}) cannot be allocated ({exc}): choose a smaller "
                                 "d or width") from None
            b = _uniform(rng, (fo,), 1.0 / math.sqrt(fi))
            self.register_buffer(f"w{i}", torch.tensor(w, dtype=torch.float32), persistent=False)
            self.register_buffer(f"b{i}", torch.tensor(b if spec.generator == "mcnc" else 0 * b,
                                                       dtype=torch.float32), persistent=False)
        self.n_layers = len(dims)
        self._cast: Dict[tuple, Tuple[torch.Tensor, ...]] = {}

    def weights(self, like: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        r"""The generator's weights in ``like``'s dtype and device, built once per dtype and device.

        Parameters
        ----------
        like : torch.Tensor
            Any tensor of the wanted dtype and device.

        Returns
        -------
        tuple of torch.Tensor
            ``(Ã, K, A_1, c_1, …, A_H, c_H)``: :math:`\tilde A = [A_o\ c_o]` (d × (h+1); for ``"pranc"``
            A/√k, d × k, no bias column), its Gram matrix :math:`K = \tilde A^T\tilde A` (formed in
            float64), and the hidden layers' weights and biases.
        """
        cast = self._cast.get((like.dtype, like.device))
        return cast if cast is not None else self._build(like.dtype, like.device)

    @torch.compiler.disable
    def _build(self, dtype: torch.dtype, device: torch.device) -> Tuple[torch.Tensor, ...]:
        # always run eagerly: under torch.compile(mode="reduce-overhead") a tensor made inside the
        # compiled region lives in a CUDA graph's pool and is overwritten by the next replay
        last = self.n_layers - 1
        if self.spec.generator == "pranc":
            a = self.w0.to(torch.float64) / math.sqrt(self.spec.k)
        else:
            a = torch.cat([getattr(self, f"w{last}"), getattr(self, f"b{last}")[:, None]], 1).to(torch.float64)
        hidden = [getattr(self, f"{x}{i}") for i in range(last) for x in "wb"]
        cast = tuple(t.to(device, dtype).contiguous() for t in [a, a.T @ a] + hidden)
        self._cast[(dtype, device)] = cast
        return cast

    def _apply(self, fn, recurse=True):  # .to()/.cuda()/.double() move the buffers: drop the casts
        self._cast = {}
        return super()._apply(fn, recurse)

    def combine(self, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        r"""The chunks :math:`\theta_t = \sum_j \beta_{t,j}\phi(\alpha_{t,j})`.

        Parameters
        ----------
        alpha : torch.Tensor, shape (n·m, k)
            Rows t·m + j hold :math:`\alpha_{t,j}`.
        beta : torch.Tensor, shape (n, m)

        Returns
        -------
        torch.Tensor, shape (n, d)
            In α's dtype and device; differentiable in α and β.
        """
        n, m = beta.shape
        if self.spec.generator == "pranc":
            phi = alpha @ self.weights(alpha)[0].T
            return (beta.reshape(n, m, 1) * phi.view(n, m, -1)).sum(1) if m > 1 else beta * phi
        return _Generate.apply(alpha, beta, self)

    def forward(self, alpha: torch.Tensor) -> torch.Tensor:
        r"""ϕ(α) row by row.

        Parameters
        ----------
        alpha : torch.Tensor, shape (rows, k)

        Returns
        -------
        torch.Tensor, shape (rows, d)
            Unit rows for ``"mcnc"``; :math:`A\alpha/\sqrt k` for ``"pranc"``.
        """
        return self.combine(alpha, alpha.new_ones(alpha.shape[0], 1))


def _hidden_layers(alpha: torch.Tensor, spec: MCNCSpec, hidden: List[torch.Tensor],
                   slopes: Optional[List[torch.Tensor]] = None) -> torch.Tensor:
    r"""The generator's hidden layers :math:`h_i = \sigma(A_i h_{i-1} + c_i)`, :math:`h_0 = \omega\alpha`,
    for ``hidden = [A_1, c_1, …]``; appends :math:`\sigma'(z_i)` to ``slopes`` when one is given."""
    act, slope = _ACTS[spec.activation]
    h = alpha if spec.omega == 1.0 else alpha * spec.omega  # ×1 is exact: one kernel fewer
    for i in range(0, len(hidden), 2):
        z = torch.addmm(hidden[i + 1], h, hidden[i].T)
        if slopes is not None:
            slopes.append(slope(z))
        h = act(z)
    return h


class _Generate(torch.autograd.Function):
    r"""Rows :math:`\theta_t = \sum_j \beta_{t,j}\, y_{tj}/r_{tj}` with :math:`y_{tj} = \tilde A\tilde h_{tj}`,
    :math:`\tilde h = [h_H; 1]`, :math:`r_{tj} = \lVert y_{tj}\rVert`: one GEMM over n × d forward and one
    backward, everything else on n × h.

    With :math:`G_t = \partial L/\partial\theta_t`, :math:`M_t = \tilde A^T G_t` (the backward GEMM) and
    :math:`q_{tj} = \langle G_t, y_{tj}\rangle = \langle M_t, \tilde h_{tj}\rangle`:

    .. math:: \frac{\partial L}{\partial\beta_{tj}} = \frac{q_{tj}}{r_{tj}},\qquad
       \frac{\partial L}{\partial\tilde h_{tj}} = \tilde A^T\frac{\beta_{tj}}{r_{tj}}\Big(G_t -
       \frac{q_{tj}}{r_{tj}^2}y_{tj}\Big) = \frac{\beta_{tj}}{r_{tj}}\Big(M_t - \frac{q_{tj}}{r_{tj}^2}
       K\tilde h_{tj}\Big),

    then back through the hidden layers with the saved slopes :math:`\sigma'(z_i)`. Neither y nor the
    n × d gradient with respect to it is formed: autograd's graph of ``β·normalize(A h + c)`` makes about
    ten passes over n × d. The guard :math:`r\ge 10^{-12}` acts in the forward pass only (a random sine
    generator never comes near it).
    """

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, beta: torch.Tensor, gen: "MCNCGenerator") -> torch.Tensor:
        spec = gen.spec
        a, gram, *hidden = gen.weights(alpha)
        slopes: List[torch.Tensor] = []
        h = _hidden_layers(alpha, spec, hidden, slopes)
        n, m = beta.shape
        ht = torch.cat([h, h.new_ones(h.shape[0], 1)], 1)
        y = ht @ a.T
        rinv = torch.linalg.vector_norm(y, dim=1).clamp_min_(1e-12).reciprocal_()
        s = beta.reshape(-1) * rinv
        theta = y.mul_(s[:, None]) if m == 1 else torch.bmm(s.view(n, 1, m), y.view(n, m, -1)).view(n, -1)
        # constants (the generator's weights) ride on ctx; what depends on alpha/beta is saved
        ctx.consts, ctx.omega, ctx.m = (a, gram, hidden[0::2]), spec.omega, m
        ctx.save_for_backward(ht, rinv, s, *slopes)
        return theta

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor) -> tuple:
        ht, rinv, s, *slopes = ctx.saved_tensors
        a, gram, ws = ctx.consts
        mt = g @ a
        if ctx.m > 1:
            mt = mt.repeat_interleave(ctx.m, 0)
        q = torch.linalg.vecdot(mt, ht)
        dbeta = q * rinv
        dh = torch.addcmul(mt * s[:, None], ht @ gram, (dbeta * s * rinv)[:, None], value=-1.0)[:, :-1]
        for sl, w in zip(reversed(slopes), reversed(ws)):
            dh = (dh * sl) @ w
        return (dh if ctx.omega == 1.0 else dh * ctx.omega), dbeta.view(-1, ctx.m), None
