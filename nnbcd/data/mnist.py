"""MNIST from a local copy of the IDX files (optionally gzipped), with the reference's 10 % subset.

The NN-BCD reference trains its CNN on a random 10 % of MNIST (shuffle seed 10): 6,000 training and
1,000 test images (the spec quotes 999 test images, which looks like an off-by-one in the reference's
slicing). Pixels are scaled to [0, 1]; rows are the 784 pixels of one image."""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ._checks import check_dtype, check_fraction, check_seed
from ._paths import find_dataset, open_maybe_gz

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
LAYOUT = "  <root>/mnist/" + "[.gz]\n  <root>/mnist/".join(FILES) + "[.gz]"


def read_idx(path: Any) -> np.ndarray:
    """Read one IDX file (the MNIST container).

    Parameters
    ----------
    path : path-like
        The file, or its name without the ``.gz`` of a gzipped copy.

    Returns
    -------
    ndarray of uint8
        Shape from the header: bytes 0-1 zero, byte 2 the type (0x08 = unsigned byte), byte 3 the number
        of dimensions, then one big-endian uint32 per dimension, then the data in C order
        (LeCun et al., "THE MNIST DATABASE", file formats section).

    Raises
    ------
    ValueError
        Not an unsigned-byte IDX file, or a size that disagrees with the header.
    """
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
    """A random ``fraction`` of each MNIST split, as ``(X_train, y_train, X_test, y_test)``.

    Parameters
    ----------
    path : str, optional
        Directory holding the four IDX files (or ``mnist/`` or ``MNIST/raw/`` with them); default
        ``$NNBCD_DATA``, then the cache directory.
    fraction : float in (0, 1]
        Share of each split kept: the first ``round(fraction · n)`` of one seeded permutation per split.
    seed : int ≥ 0
        Seed of ``numpy.random.default_rng`` drawing the permutations (training split first).
    dtype : real floating dtype
        Dtype of the features.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Features ``(n, rows·cols)`` = pixel / 255, labels ``(n,)`` int64.

    Raises
    ------
    FileNotFoundError
        No copy found (the message lists the paths searched and the layout).
    ValueError
        Images that are not 3-D or labels that are not 1-D (e.g. swapped files), unequal counts, a
        ``fraction`` that keeps no image, or a bad ``fraction`` / ``seed``.
    TypeError
        A non-floating ``dtype``.
    """
    frac, rng_seed, dt = check_fraction(fraction), check_seed(seed), check_dtype(dtype)
    root = find_dataset("MNIST", ["mnist", "MNIST/raw"], FILES, path, LAYOUT)
    xtr, ytr, xte, yte = (read_idx(root / f) for f in FILES)
    rng = np.random.default_rng(rng_seed)
    out = []
    for x, y, (fx, fy) in ((xtr, ytr, FILES[:2]), (xte, yte, FILES[2:])):
        if x.ndim != 3 or y.ndim != 1:
            raise ValueError(f"{root}: {fx} must hold images (3-D) and {fy} labels (1-D); "
                             f"got {x.ndim}-D and {y.ndim}-D")
        if len(x) != len(y):
            raise ValueError(f"{root}: {len(x)} images but {len(y)} labels")
        n_keep = int(round(frac * len(y)))
        if n_keep == 0:
            raise ValueError(f"fraction={fraction!r} keeps no image of the {len(y)} in {fx}")
        idx = rng.permutation(len(y))[:n_keep]
        out += [(x[idx].reshape(len(idx), -1) / 255.0).astype(dt), y[idx].astype(np.int64)]
    return tuple(out)
