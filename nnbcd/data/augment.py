"""Training-set augmentation of image data by one-pixel shifts (the classic MNIST augmentation; LeCun et
al. 1998 report distorted copies as the cheapest gain on MNIST)."""
from __future__ import annotations

from typing import Any, Sequence, Tuple

import numpy as np

from .._validation import check_int_sequence

#: one-pixel moves (down, right): the four axis directions, then the four diagonals
SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1))

#: the shift counts :func:`shift_augment` takes
DIRECTIONS = (0, 4, 8)


def check_directions(value: Any, name: str) -> int:
    """``value`` as an int of :data:`DIRECTIONS` (a Python or numpy integer; 4.0, "4", True are refused).

    Raises
    ------
    ValueError
        Naming ``name``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value not in DIRECTIONS:
        raise ValueError(f"{name} must be one of the integers {DIRECTIONS}, got {value!r}")
    return int(value)


def shift_augment(X: Any, y: Any, image_shape: Sequence[int], directions: int = 4) -> Tuple[np.ndarray, np.ndarray]:
    r"""The images and their copies moved by one pixel in 4 or 8 directions, the vacated border zero-filled.

    Copy :math:`s` with move :math:`(\delta_y, \delta_x)` has pixel :math:`(h, w)` equal to the
    original's :math:`(h - \delta_y, w - \delta_x)`, and 0 where that falls outside the image (the
    background of pixel-scaled data such as MNIST and digits). Apply it to the training split only.

    Parameters
    ----------
    X : array_like, shape (n, C·H·W)
        Images as rows, each C×H×W in row-major order.
    y : array_like, shape (n,)
        Labels, repeated for every copy.
    image_shape : (H, W) or (C, H, W)
        Shape of one image.
    directions : {0, 4, 8}
        4: moves down, up, right, left; 8: also the four diagonals; 0: ``X, y`` unchanged.

    Returns
    -------
    X_aug : ndarray, shape ((1 + directions)·n, C·H·W), ``X``'s dtype
        The originals first, then one block of n per move in the order of :data:`SHIFTS`.
    y_aug : ndarray, shape ((1 + directions)·n,)

    Raises
    ------
    ValueError
        ``X`` not 2-d, its width not C·H·W, ``y`` not of length n, a bad ``image_shape`` or ``directions``
        (the message names the argument).
    """
    X, y = np.asarray(X), np.asarray(y)
    shape = check_int_sequence(image_shape, "image_shape")
    if len(shape) not in (2, 3):
        raise ValueError(f"image_shape must be (H, W) or (C, H, W), got {tuple(image_shape)!r}")
    directions = check_directions(directions, "directions")
    c, h, w = (1,) + shape if len(shape) == 2 else shape
    if X.ndim != 2 or X.shape[1] != c * h * w:
        raise ValueError(f"X must have shape (n, {c * h * w}) for images of shape {shape}, got {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) as X's rows, got {y.shape}")
    images = X.reshape(-1, c, h, w)
    out = np.zeros((1 + directions,) + images.shape, dtype=X.dtype)
    out[0] = images
    for k, (dy, dx) in enumerate(SHIFTS[:directions], start=1):
        out[k, :, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            images[:, :, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out.reshape(-1, c * h * w), np.tile(y, 1 + directions)
