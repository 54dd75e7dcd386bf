"""Losses of the seed's experiment.

``mse``            L = (1/M) Σ (y − t)²  over all M elements (the seed's ``reduce_mean(square(y − out))``)
                   dL/dy = 2 (y − t) / M
``relevant_loss``  the seed's diagnostic: the squared error at the target position of the
                   second one only, averaged over the batch (not differentiated; for logging).

Only array-API-standard calls on ``be.xp`` (no numpy import): these run on any backend.
"""

from __future__ import annotations

from typing import Any, Tuple


def _check_pair(be, y, t):
    for name, a in (("y", y), ("t", t)):
        if not be.is_array(a):
            raise TypeError(f"{name}: expected a {be.name} array, got {type(a).__name__}")
    if tuple(y.shape) != tuple(t.shape):
        raise ValueError(f"t: expected the shape of y {tuple(y.shape)}, got {tuple(t.shape)}")
    if be.dtype_name(y) != be.dtype_name(t):
        raise TypeError(f"t: expected the dtype of y ({be.dtype_name(y)}), got "
                        f"{be.dtype_name(t)}")


def mse(be, y, t) -> Tuple[Any, Any]:
    """Mean squared error over every element.

    y, t : backend arrays of the same shape and dtype, e.g. (B, H, W, 1).
    Returns (loss, dy): ``loss`` a 0-d backend array (not synced to the host), ``dy`` = ∂loss/∂y
    with the shape of y.
    """
    _check_pair(be, y, t)
    m = 1
    for s in y.shape:
        m *= s
    if m == 0:
        raise ValueError(f"y: expected at least one element, got shape {tuple(y.shape)}")
    diff = y - t                                     # 1. residual
    loss = be.xp.sum(diff * diff) / m                # 2. mean of the squares
    dy = diff * (2.0 / m)                            # 2→1. d/d(diff) of mean(diff²), diff = y − t
    return loss, dy


def relevant_loss(be, y, t, pos) -> Any:
    """Squared error at one position per sample, averaged over the batch (the seed's diagnostic).

    y, t : backend arrays (B, H, W, 1), prediction and target.
    pos  : host integer array (B, 2), the (row, column) of each sample's relevant cell
           (``tasks.random_diagonal`` returns it: the target position of the second one).
    Returns a 0-d backend array.
    """
    _check_pair(be, y, t)
    if y.ndim != 4 or y.shape[-1] != 1:
        raise ValueError(f"y: expected shape (B, H, W, 1), got {tuple(y.shape)}")
    B, H, W, _ = y.shape
    if tuple(getattr(pos, "shape", ())) != (B, 2):
        raise ValueError(f"pos: expected shape ({B}, 2), got {getattr(pos, 'shape', type(pos))}")
    rc = [(int(r), int(c)) for r, c in pos.tolist()]                # host (row, col) pairs
    if any(not (0 <= r < H and 0 <= c < W) for r, c in rc):
        raise ValueError(f"pos: expected rows in [0, {H - 1}] and columns in [0, {W - 1}], "
                         f"got {pos.tolist()}")
    flat = [(b * H + r) * W + c for b, (r, c) in enumerate(rc)]  # index of (b, r, c, 0) in (B·H·W,)
    idx = be.index(flat)
    yv = be.take(be.xp.reshape(y, (-1,)), idx)                   # (B,)
    tv = be.take(be.xp.reshape(t, (-1,)), idx)                   # (B,)
    d = yv - tv
    return be.xp.sum(d * d) / B

