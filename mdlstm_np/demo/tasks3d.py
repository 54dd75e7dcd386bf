"""A volumetric random diagonal: the seed's task (``tasks.py``) lifted to size³ volumes.

Each sample, a volume of shape (depth, rows, columns) = (size, size, size):
    background  x ~ uniform[0, 0.1)                           every cell
    two ones    x[z, r, c] = 1 and x[z+1, r+1, c+1] = 1        z, r, c uniform in [1, size−2]
    target      t = np.roll(x, −1, axis=3)                     shifted one column left (axis 3
                                                               of (B, D, H, W, C) is the width)
    relevant    pos = (z+1, r+1, c)                            where t holds the second one

Why it separates a 3-D MD-LSTM from a 2-D one. The relevant target t[z+1, r+1, c] is the input
x[z+1, r+1, c+1], one column ahead of the cell being predicted. A 3-D MD-LSTM scanning from the
origin corner has, at (z+1, r+1, c), already seen every cell q ≤ (z+1, r+1, c) — including the
first one at (z, r, c) — so it can learn "a one diagonally behind me in the previous slice
means a one to my right". A 2-D MD-LSTM run slice by slice sees only slice z+1, where nothing
before (r+1, c+1) is special: it cannot predict the one and its relevant loss stays near
(1 − background)². As in 2-D, the first one's target (z, r, c−1) is unpredictable for both.

The bounds keep everything on the grid: z+1, r+1, c+1 ≤ size−1, and c−1 ≥ 0, so the roll never
wraps a one round to the last column. Host-side numpy, one ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np

from ..validate import check_positive_int, check_rng


def random_diagonal_3d(batch: int, size: int, rng: np.random.Generator):
    """A batch of the volumetric random-diagonal task.

    Returns
    -------
    x   : float64 (batch, size, size, size, 1), the input
    y   : float64 (batch, size, size, size, 1), the target, ``np.roll(x, -1, axis=3)``
    pos : int64 (batch, 3), the (depth, row, column) of each sample's second one in ``y``
    """
    batch, size = check_positive_int(batch, "batch"), check_positive_int(size, "size", 3)
    check_rng(rng)
    x = rng.uniform(0.0, 0.1, size=(batch, size, size, size, 1))  # background
    z, r, c = (rng.integers(1, size - 1, size=batch) for _ in range(3))  # [1, size−2] each
    b = np.arange(batch)
    x[b, z, r, c, 0] = 1.0                                           # first one
    x[b, z + 1, r + 1, c + 1, 0] = 1.0                               # second one, one step
    y = np.roll(x, -1, axis=3)                                       # along every axis
    pos = np.stack([z + 1, r + 1, c], axis=1).astype(np.int64)       # second one after the roll
    return x, y, pos


def relevant_index(pos: np.ndarray, shape) -> np.ndarray:
    """(B, n) positions in grids of ``shape`` -> (B,) indices into the flattened (B·N) cells.

    Use with ``be.take(xp.reshape(y, (-1,)), be.index(relevant_index(pos, S)))`` to read each
    sample's relevant prediction (a 1-channel output of shape (B, *S, 1)).
    """
    pos = np.asarray(pos)
    shape = tuple(int(s) for s in shape)
    if pos.ndim != 2 or pos.shape[1] != len(shape) or not np.issubdtype(pos.dtype, np.integer):
        raise ValueError(f"pos: expected an integer array of shape (B, {len(shape)}), got "
                         f"{pos.dtype} {pos.shape}")
    if (pos < 0).any() or (pos >= np.asarray(shape)).any():
        raise ValueError(f"pos: expected 0 <= pos[:, d] < {shape}[d], got {pos.tolist()}")
    N = int(np.prod(shape))
    return np.ravel_multi_index(tuple(pos.T), shape) + N * np.arange(pos.shape[0])
