"""The wavefront schedule of an n-D grid: which cells can be computed together, and where
each cell's predecessors and successors are.

Notation. A cell p = (p_1, …, p_n) of a grid of shape S = (S_1, …, S_n). Its predecessor along
axis d is p⁻_d = p − e_d, its successor p⁺_d = p + e_d. Cell p depends only on its n
predecessors, so all cells on the hyperplane  p_1 + … + p_n = s  (the wavefront s) are
independent of each other: a 2-D H×W grid takes H + W − 1 sequential steps, not H·W.

Storage order. The engine stores per-cell arrays in *wavefront order*: cells sorted by index
sum s (ties in raster order). Then wavefront s is one contiguous slice [start_s, stop_s) of
the cell axis, writing a wavefront's result is a slice assignment, and reading predecessors is
one gather (``take``) per axis. Row N (one past the last cell) is the *boundary row*: every
predecessor outside the grid points there, and it holds the boundary state (zeros, or a given
initial state).

Backward pass without scatter. Instead of pushing gradients to predecessors (a scatter-add),
each cell *pulls* them from its successors: the successor of cell q along axis d lies in
wavefront s+1 at a known position, or nowhere (then the index points to an extra zero row).
Gathers only: deterministic, GPU friendly, and inside the array API standard.

Everything here is host-side numpy, computed once per grid shape and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Tuple

import numpy as np


@dataclass(frozen=True)
class WavefrontPlan:
    """Wavefront schedule of one grid shape (host numpy arrays).

    shape   : S, the grid shape (n axes).
    order   : (N,) raster index of the j-th cell in wavefront order.
    inverse : (N,) wavefront position of the raster cell r (order[inverse[r]] == r).
    bounds  : ((start_s, stop_s), ...) one per wavefront s = 0 … Σ(S_d − 1).
    pred    : per wavefront, (n, k_s) wavefront positions of p⁻_d, or N (boundary row).
    succ    : per wavefront, (n, k_s) position *within wavefront s+1* of p⁺_d, or k_{s+1}
              (a zero row appended there) when p⁺_d is outside the grid.
    pred_all: (n, N) pred for every cell in wavefront order (for whole-grid weight gradients).
    """

    shape: Tuple[int, ...]
    order: np.ndarray
    inverse: np.ndarray
    bounds: Tuple[Tuple[int, int], ...]
    pred: Tuple[np.ndarray, ...]
    succ: Tuple[np.ndarray, ...]
    pred_all: np.ndarray

    @property
    def ncells(self) -> int:
        return int(self.order.size)

    @property
    def ndim(self) -> int:
        return len(self.shape)


@lru_cache(maxsize=64)
def wavefront_plan(shape: Tuple[int, ...]) -> WavefrontPlan:
    """Build (and cache) the wavefront schedule of a grid of the given shape."""
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"shape: expected a non-empty tuple of positive ints, got {shape}")
    n, N = len(shape), int(np.prod(shape))
    coords = np.stack(np.unravel_index(np.arange(N), shape), axis=1)  # (N, n) raster order
    sums = coords.sum(axis=1)
    order = np.argsort(sums, kind="stable")  # wavefront order, raster order within a wavefront
    inverse = np.empty(N, dtype=np.int64)
    inverse[order] = np.arange(N)
    strides = np.array([int(np.prod(shape[d + 1:])) for d in range(n)])

    # Predecessors of every cell (wavefront positions), N where p⁻_d is outside the grid.
    c_w = coords[order]  # (N, n) coordinates in wavefront order
    raster_w = order
    pred_all = np.full((n, N), N, dtype=np.int64)
    succ_glob = np.full((n, N), -1, dtype=np.int64)  # wavefront position of p⁺_d, -1 if none
    for d in range(n):
        inside = c_w[:, d] > 0
        pred_all[d, inside] = inverse[raster_w[inside] - strides[d]]
        has_succ = c_w[:, d] < shape[d] - 1
        succ_glob[d, has_succ] = inverse[raster_w[has_succ] + strides[d]]

    counts = np.bincount(sums, minlength=sums.max() + 1)
    stops = np.cumsum(counts)
    bounds = tuple((int(b - k), int(b)) for b, k in zip(stops, counts))
    pred, succ = [], []
    for s, (a, b) in enumerate(bounds):
        pred.append(np.ascontiguousarray(pred_all[:, a:b]))
        if s + 1 < len(bounds):
            a1, b1 = bounds[s + 1]
            local = succ_glob[:, a:b] - a1
            local[succ_glob[:, a:b] < 0] = b1 - a1  # the appended zero row of wavefront s+1
        else:
            local = np.zeros((n, b - a), dtype=np.int64)  # last wavefront: no successors
        succ.append(np.ascontiguousarray(local))
    for arr in (order, inverse, pred_all, *pred, *succ):
        arr.setflags(write=False)
    return WavefrontPlan(shape, order, inverse, bounds, tuple(pred), tuple(succ), pred_all)
