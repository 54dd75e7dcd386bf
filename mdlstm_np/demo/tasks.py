"""The seed's task: a random short diagonal on a size × size grid (host-side numpy).

Each sample:
    background  x ~ uniform[0, 0.1)                     every cell
    two ones    x[r, c] = 1 and x[r+1, c+1] = 1         r, c uniform integers in [1, size−2]
    target      t = np.roll(x, −1, axis=2)               the input shifted one column left
                                                        (axis 2 of (B, H, W, C) is the width)
    relevant    pos = (r+1, c)                           where the target holds the second one

Reading of the seed's sampling: it draws ``np.random.randint(low=1, high=w−1)``, whose upper
bound is exclusive, so r and c take the values 1 … size−2 inclusive. Then r+1 ≤ size−1 and
c+1 ≤ size−1 (the second one stays on the grid) and c−1 ≥ 0 (the roll never wraps a one round
to the last column). A model scanning from the top-left corner cannot predict the first one in
the target (its input is one column to the right, not yet seen), but it can predict the second:
the target at (r+1, c) is the input at (r+1, c+1), which always follows a one at (r, c).

Differences from the seed, on purpose: one ``numpy.random.Generator`` for reproducibility
(the seed uses the global legacy RNG, so the exact draws differ); ``pos`` is returned as
(row, column), computed from r, c rather than searched for with ``np.where(y == 1)``. The seed
indexes ``m[x, y]`` with the column draw as the row, which is the same thing on square grids,
the only grids it (and this function) makes.
"""

from __future__ import annotations

import numpy as np

from ..validate import check_positive_int, check_rng


def random_diagonal(batch: int, size: int, rng: np.random.Generator):
    """A batch of the random-diagonal task.

    Returns
    -------
    x   : float64 (batch, size, size, 1), the input
    y   : float64 (batch, size, size, 1), the target, ``np.roll(x, -1, axis=2)``
    pos : int64 (batch, 2), the (row, column) of each sample's second one in ``y``
    """
    batch, size = check_positive_int(batch, "batch"), check_positive_int(size, "size", 3)
    check_rng(rng)
    x = rng.uniform(0.0, 0.1, size=(batch, size, size, 1))      # background
    r = rng.integers(1, size - 1, size=batch)                    # [1, size−2], high exclusive
    c = rng.integers(1, size - 1, size=batch)
    b = np.arange(batch)
    x[b, r, c, 0] = 1.0                                          # first one
    x[b, r + 1, c + 1, 0] = 1.0                                  # second one, down-right
    y = np.roll(x, -1, axis=2)                                   # shift one column left
    pos = np.stack([r + 1, c], axis=1).astype(np.int64)          # second one after the roll
    return x, y, pos
