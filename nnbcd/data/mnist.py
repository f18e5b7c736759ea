"""MNIST from a local copy of the IDX files (optionally gzipped), with the reference's 10 % subset.

The NN-BCD reference trains its CNN on a random 10 % of MNIST (shuffle seed 10): 6,000 training and
1,000 test images (the spec quotes 999 test images, which looks like an off-by-one in the reference's
slicing). Pixels are scaled to [0, 1]; rows are the 784 pixels of one image."""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ._paths import find_dataset, open_maybe_gz

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
LAYOUT = "  <root>/mnist/" + "[.gz]\n  <root>/mnist/".join(FILES) + "[.gz]"


def read_idx(path: Any) -> np.ndarray:
    """Read one IDX file (the MNIST container: magic, dims, big-endian uint8 data)."""
    with open_maybe_gz(path) as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but the file holds {body.size} values")
    return body.reshape(dims)


def load_mnist(path: Optional[str] = None, fraction: float = 0.1, seed: int = 10,
               dtype: Any = "float32") -> Tuple[np.ndarray, ...]:
    """``(X_train, y_train, X_test, y_test)``: a random ``fraction`` of each split (seeded)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    root = find_dataset("MNIST", ["mnist", "MNIST/raw"], FILES, path, LAYOUT)
    xtr, ytr, xte, yte = (read_idx(root / f) for f in FILES)
    rng = np.random.default_rng(seed)
    out = []
    for x, y in ((xtr, ytr), (xte, yte)):
        if len(x) != len(y):
            raise ValueError(f"{root}: {len(x)} images but {len(y)} labels")
        idx = rng.permutation(len(y))[: int(round(fraction * len(y)))]
        out += [(x[idx].reshape(len(idx), -1) / 255.0).astype(dtype), y[idx].astype(np.int64)]
    return tuple(out)
