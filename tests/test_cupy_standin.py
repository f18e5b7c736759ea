"""The CuPy backend's code paths, run without a GPU.

A stand-in ``cupy`` module maps CuPy's API onto numpy/scipy (same names and signatures for what the
backend uses), and the numba-cuda kernels run under the CUDA simulator. This catches wrong calls and
layout mistakes in ``cupy_backend.py``; the real-GPU run is in ``test_gpu.py`` (skipped without CuPy).
"""
import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys, types
import numpy as np, scipy.linalg

cupy = types.ModuleType("cupy")
cupy.__dict__.update({k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
cupy.asnumpy = np.asarray
cupy.linalg = types.SimpleNamespace(cholesky=np.linalg.cholesky, eigh=np.linalg.eigh, qr=np.linalg.qr,
                                    svd=lambda a, full_matrices=True, compute_uv=True:
                                    np.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv))
class CUDARuntimeError(RuntimeError): pass
stream = types.SimpleNamespace(synchronize=lambda: None)
cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1,
                                                                CUDARuntimeError=CUDARuntimeError),
                                  get_current_stream=lambda: stream)
cupyx = types.ModuleType("cupyx"); cupyx_scipy = types.ModuleType("cupyx.scipy")
cupyx.errstate = lambda **kw: __import__("contextlib").nullcontext()
cupyx_scipy.linalg = scipy.linalg; cupyx.scipy = cupyx_scipy
sys.modules.update({"cupy": cupy, "cupyx": cupyx, "cupyx.scipy": cupyx_scipy,
                    "cupyx.scipy.linalg": scipy.linalg})

import nnbcd
from nnbcd.backend import get_backend
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
X, y = X[:150] / 16.0, y[:150]
out = {"available": "cupy" in nnbcd.available_backends()}
for form in ("direct", "woodbury"):
    w = {}
    for name in ("numpy", "cupy"):
        m = nnbcd.NNBCD((20, 12), backend=name, dtype="float64", random_state=2, bias=True,
                        v_solve=form, max_iter=3).fit(X, y)
        w[name] = m.coefs_
    out[form] = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(w["cupy"], w["numpy"]))
try:
    get_backend("cupy").cho_factor(np.array([[1.0, 2.0], [2.0, 1.0]]))
except np.linalg.LinAlgError as exc:
    out["indefinite"] = str(exc)
# a numba-cuda that cannot compile: the same formula as array expressions, with a warning
import warnings
import nnbcd.backend.cuda_kernels as ck
relu_prox_update = ck.relu_prox_update
def broken(*args):
    raise AttributeError("module 'numpy' has no attribute 'row_stack'")
ck.relu_prox_update = broken
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    m = nnbcd.NNBCD((20, 12), backend="cupy", dtype="float64", random_state=2, bias=True, max_iter=3).fit(X, y)
out["fallback_warning"] = [str(c.message) for c in caught if "row_stack" in str(c.message)]
out["fallback"] = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(m.coefs_, w["numpy"]))
ck.relu_prox_update = relu_prox_update
# DaskNNBCD with cupy shards and a cupy client (workers in this process, where the stand-in is imported)
try:
    from distributed import Client, LocalCluster
except ImportError:
    pass
else:
    from nnbcd import TT
    from nnbcd.dask import DaskNNBCD
    params = dict(hidden_layer_sizes=(20, 12), dtype="float64", random_state=2, bias=True, max_iter=3,
                  compress={1: TT(rank=3, block="cores")})
    ref = nnbcd.NNBCD(backend="numpy", **params).fit(X, y).coefs_
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        m = DaskNNBCD(client=client, backend="cupy", n_shards=3, **params).fit(X, y)
    out["dask"] = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(m.coefs_, ref))
print(json.dumps(out))
"""


def test_cupy_backend_paths_on_a_numpy_standin():
    pytest.importorskip("numba.cuda")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["available"]
    assert out["direct"] < 1e-10 and out["woodbury"] < 1e-10, out
    assert "not positive definite" in out["indefinite"]
    assert len(out["fallback_warning"]) == 1 and out["fallback"] < 1e-10, out
    if "dask" in out:  # the [dask] extra is installed (it is in [test])
        assert out["dask"] < 1e-10, out
