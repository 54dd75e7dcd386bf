"""scikit-learn's bundled handwritten digits: 1,797 real 8×8 images, a fixed train/test split.

The data (the UCI "Optical Recognition of Handwritten Digits" test set, as scikit-learn ships it
inside its wheel) holds 8×8 images whose pixels count the set bits of 4×4 blocks of a 32×32
bitmap: integers 0 … 16. Nothing is downloaded: ``sklearn.datasets.load_digits`` reads a file
installed with scikit-learn.

What ``load_digits`` returns
----------------------------
    x = images / 16            float (N, 8, 8, 1) in [0, 1]      (B, height, width, channels)
    y = labels                 int64 (N,) in 0 … 9
    train = samples 0 … 897    the first N // 2 = 898 in scikit-learn's order
    test  = samples 898 … 1796 the other 899

A fixed split by position, not a shuffled one, so every run and every model sees the same
test set (scikit-learn's order is already well mixed: each half holds 86–92 of every digit).

``random_shift`` is the one augmentation used with it: every image moved by its own random
(dy, dx) ∈ [−m, m]², the uncovered border filled with zeros (the background). With 898
training images a one-layer MD-LSTM overfits (training loss → 0.003); in ``examples/digits.py``
shifts of up to 2 pixels lift the 4-direction layer's test accuracy from 96.3 % to 97.4 %.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mdlstm_np.validate import check_dtype_name, check_positive_int, check_rng

N_IMAGES = 1797
N_TRAIN = N_IMAGES // 2         # 898: train = indices [0, 898), test = [898, 1797)


class DigitsSplit(NamedTuple):
    x_train: np.ndarray   # (898, 8, 8, 1) float in [0, 1]
    y_train: np.ndarray   # (898,) int64
    x_test: np.ndarray    # (899, 8, 8, 1) float in [0, 1]
    y_test: np.ndarray    # (899,) int64


def load_digits(dtype="float64") -> DigitsSplit:
    """The digits, scaled to [0, 1], split into the first 898 (train) and the last 899 (test).

    dtype : "float32" or "float64", the images' dtype.
    Returns a :class:`DigitsSplit` of host numpy arrays (see the module docstring).
    Raises ImportError when scikit-learn is not installed, TypeError for a bad dtype.
    """
    dtype = check_dtype_name(dtype)
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:
        raise ImportError("load_digits: needs scikit-learn, which ships the digits data set "
                          "(pip install scikit-learn)") from None
    bunch = _sk_load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)                 # (1797, 8, 8), 0 … 16
    labels = np.asarray(bunch.target, dtype=np.int64)                   # (1797,)
    if images.shape != (N_IMAGES, 8, 8) or labels.shape != (N_IMAGES,):
        raise ValueError(f"load_digits: expected scikit-learn's {N_IMAGES} images of 8×8, got "
                         f"images {images.shape}, labels {labels.shape}")
    x = (images / 16.0).astype(dtype)[..., None]                        # (1797, 8, 8, 1)
    return DigitsSplit(x[:N_TRAIN], labels[:N_TRAIN], x[N_TRAIN:], labels[N_TRAIN:])


def random_shift(x: np.ndarray, rng: np.random.Generator, max_shift: int = 1) -> np.ndarray:
    """Move each image by its own random offset, filling the uncovered border with zeros.

    x : host array (B, H, W, C).   rng : numpy.random.Generator.   max_shift : m ≥ 0.
    Returns a new array like x with out[b, r, c] = x[b, r − dy_b, c − dx_b] (0 outside the
    image), dy_b, dx_b uniform integers in [−m, m]. Raises ValueError / TypeError on bad input.
    """
    check_rng(rng)
    m = check_positive_int(max_shift, "max_shift", 0)
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x: expected shape (B, H, W, C), got {x.shape}")
    B, H, W, _ = x.shape
    if m == 0:
        return x.copy()
    padded = np.zeros((B, H + 2 * m, W + 2 * m, x.shape[3]), dtype=x.dtype)
    padded[:, m:m + H, m:m + W] = x                                     # x sits at offset (m, m)
    oy = rng.integers(0, 2 * m + 1, size=B)                             # window offset = m − dy
    ox = rng.integers(0, 2 * m + 1, size=B)
    rows = (oy[:, None] + np.arange(H))[:, :, None]                     # (B, H, 1)
    cols = (ox[:, None] + np.arange(W))[:, None, :]                     # (B, 1, W)
    return padded[np.arange(B)[:, None, None], rows, cols]              # (B, H, W, C)
