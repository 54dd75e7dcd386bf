"""Cell-by-cell reference MD-LSTM (Graves' cell): the slowest, plainest possible forward pass.

It visits the cells one at a time in raster order (every predecessor p⁻_d comes before p) and
writes the equations of docs/equations.md literally, with no packing tricks, no wavefronts and no
backend: host numpy only. Tests compare the wavefront engine against it (≤ 1e-12 in float64);
the benchmark uses it as the "before" of the wavefront schedule.
"""

from __future__ import annotations

import itertools

import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def mdlstm_reference_forward(x, W, U, b, h0=None, c0=None):
    """x (B, S_1..S_n, C); W (C, G); U (n·H, G); b (G,), G = (n+3)H, order [i|f_1..f_n|o|g].

    Returns h (B, S_1..S_n, H) and c (B, S_1..S_n, H). h0, c0 (B, H): the boundary state.
    """
    x = np.asarray(x)
    B, S, n = x.shape[0], x.shape[1:-1], x.ndim - 2
    H = U.shape[0] // n
    h = np.zeros((B, *S, H), dtype=x.dtype)
    c = np.zeros((B, *S, H), dtype=x.dtype)
    zero = np.zeros((B, H), dtype=x.dtype)
    h0 = zero if h0 is None else np.asarray(h0)
    c0 = zero if c0 is None else np.asarray(c0)
    for p in itertools.product(*(range(s) for s in S)):  # raster order
        idx = (slice(None), *p)
        z = x[idx] @ W + b
        c_prev = []
        for d in range(n):
            if p[d] > 0:
                q = list(p)
                q[d] -= 1
                hq, cq = h[(slice(None), *q)], c[(slice(None), *q)]
            else:
                hq, cq = h0, c0
            z = z + hq @ U[d * H:(d + 1) * H]
            c_prev.append(cq)
        i = _sigmoid(z[:, 0:H])
        f = [_sigmoid(z[:, (1 + d) * H:(2 + d) * H]) for d in range(n)]
        o = _sigmoid(z[:, (n + 1) * H:(n + 2) * H])
        g = np.tanh(z[:, (n + 2) * H:(n + 3) * H])
        c[idx] = i * g + sum(f[d] * c_prev[d] for d in range(n))
        h[idx] = o * np.tanh(c[idx])
    return h, c
