"""Orthogonal penalties against NumPy oracles, finite differences and an eigendecomposition."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

from nnbcd.torch import orthogonal_penalty, regularised_layers, train_epochs

KINDS = ("so", "dso", "srip", "offdiag", "factor")


def _oracle(w: np.ndarray, kind: str, g: float) -> float:
    """The spec's table, written with NumPy on the matrix view (one row per filter)."""
    m = w.reshape(w.shape[0], -1)
    gm = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    k = gm.shape[0]
    if kind == "so":
        return float(np.sum((gm - g * g * np.eye(k)) ** 2))
    if kind == "dso":
        return float(np.sum((m.T @ m - g * g * np.eye(m.shape[1])) ** 2) + np.sum((m @ m.T - g * g * np.eye(m.shape[0])) ** 2))
    if kind == "srip":
        return float(np.abs(np.linalg.eigvalsh(gm - g * g * np.eye(k))).max())
    if kind == "offdiag":
        return float(np.sum((gm * (1 - np.eye(k))) ** 2))
    return float(np.sum((gm - np.eye(k)) ** 2)) / k ** 2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(6, 15), (15, 6), (4, 3, 2, 2)])
def test_values_match_numpy(kind, shape):
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal(shape), rng.standard_normal((5, 5))]
    got = float(orthogonal_penalty([torch.from_numpy(w) for w in ws], kind, lam=0.3, gain=1.3, n_power_iter=300))
    g = 1.0 if kind == "factor" else 1.3
    assert got == pytest.approx(0.3 * sum(_oracle(w, kind, g) for w in ws), rel=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_zero_on_orthonormal_rows_and_columns(kind):
    q = torch.linalg.qr(torch.randn(20, 8, dtype=torch.float64))[0]
    for w in (q, q.T.contiguous()):
        if kind == "dso":  # both Grams are identities only for a square orthogonal matrix
            w = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))[0]
        assert float(orthogonal_penalty([w], kind, lam=1.0, n_power_iter=50)) < 1e-10


@pytest.mark.parametrize("kind", ("so", "dso", "offdiag", "factor"))
def test_gradients_match_finite_differences(kind):
    w = torch.randn(5, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: orthogonal_penalty([x], kind, lam=0.7, gain=1.1), (w,),
                                    eps=1e-6, atol=1e-6)


def test_so_gradient_closed_form_and_srip_gradient():
    w = torch.randn(6, 15, dtype=torch.float64, requires_grad=True)
    orthogonal_penalty([w], "so", lam=0.5).backward()
    with torch.no_grad():
        expect = 4 * 0.5 * (w @ w.T - torch.eye(6, dtype=torch.float64)) @ w
    torch.testing.assert_close(w.grad, expect)
    # converged SRIP is |λ|max of G − I: its gradient is that of v^T(WW^T − I)v·sign for the top eigenvector
    a = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)
    orthogonal_penalty([a], "srip", lam=1.0, n_power_iter=500).backward()
    with torch.no_grad():
        lam, vec = torch.linalg.eigh(a @ a.T - torch.eye(4, dtype=torch.float64))
        i = int(lam.abs().argmax())
        v = vec[:, i]
        expect = torch.sign(lam[i]) * 2 * torch.outer(v, v) @ a
    torch.testing.assert_close(a.grad, expect, atol=1e-6, rtol=1e-6)


def test_bad_arguments():
    a = torch.randn(3, 4)
    with pytest.raises(ValueError, match="kind"):
        orthogonal_penalty([a], "l1")
    with pytest.raises(ValueError, match="lam"):
        orthogonal_penalty([a], "so", lam=-1.0)
    with pytest.raises(ValueError, match="weights"):
        orthogonal_penalty([], "so")
    # a NaN or infinite λ / gain would give a NaN loss or no regularisation, silently (issue 12)
    for kw, exc in [({"lam": float("nan")}, ValueError), ({"lam": float("inf")}, ValueError),
                    ({"lam": "0.1"}, TypeError), ({"lam": True}, TypeError), ({"gain": float("nan")}, ValueError),
                    ({"gain": -1.0}, ValueError), ({"n_power_iter": 0}, ValueError),
                    ({"n_power_iter": 2.5}, ValueError)]:
        with pytest.raises(exc, match=next(iter(kw))):
            orthogonal_penalty([a], "srip", **kw)
    with pytest.raises(ValueError, match="kind"):
        orthogonal_penalty([a], ["so"])
    with pytest.raises(TypeError, match="one tensor"):  # iterating it would penalise each row alone
        orthogonal_penalty(a, "so")
    with pytest.raises(TypeError, match=r"weights\[1\]"):
        orthogonal_penalty([a, torch.ones(3, 4, dtype=torch.int64)], "so")
    with pytest.raises(ValueError, match=r"weights\[0\] is 0-d"):
        orthogonal_penalty([torch.tensor(2.0)], "so")
    model = nn.Sequential(nn.Linear(4, 3))
    for kw, exc in [({"epochs": -1}, ValueError), ({"epochs": 1.5}, ValueError), ({"lr": 0.0}, ValueError),
                    ({"lr": float("nan")}, ValueError), ({"penalty": 3}, TypeError), ({"on_epoch": "x"}, TypeError)]:
        with pytest.raises(exc, match=next(iter(kw))):
            train_epochs(model, [], **{"epochs": 1, **kw})
    with pytest.raises(TypeError, match="exclude_last_linear"):
        regularised_layers(model, exclude_last_linear="no")


def test_layer_selection_and_training_loop():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, groups=2), nn.BatchNorm2d(4), nn.Flatten(),
                          nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    names = [n for n, _ in regularised_layers(model)]
    assert names == ["0", "4"]  # grouped conv, BatchNorm and the classifier are left out
    x, y = torch.randn(32, 1, 6, 6), torch.randint(0, 3, (32,))
    losses = []
    weights = lambda m: [mod.weight for _, mod in regularised_layers(m)]
    train_epochs(model, [(x, y)], epochs=30, lr=1e-2,
                 penalty=lambda m: orthogonal_penalty(weights(m), "so", lam=1e-2),
                 on_epoch=lambda e, loss: losses.append(loss))
    assert len(losses) == 30 and losses[-1] < losses[0]
