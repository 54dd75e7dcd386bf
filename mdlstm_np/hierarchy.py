"""Hierarchical subsampling between MD-LSTM levels: the pieces that turn an image of a line of
handwriting into a sequence for CTC (Graves & Schmidhuber 2009, "Offline Handwriting Recognition
with Multidimensional Recurrent Neural Networks", NIPS 21, the network hierarchy of Sec. 2 and
Fig. 2; Graves 2012, "Supervised Sequence Labelling with Recurrent Neural Networks", Ch. 9
"Hierarchical Subsampling Networks"; RNNLIB's block, feed-forward and collapse layers).

A level is: an MD-LSTM over the grid, then ``BlockSubsample`` (gather non-overlapping blocks of
cells into one cell's channels: the grid shrinks, the features grow), then ``Dense(.., "tanh")``
(a per-cell dense layer that mixes the block back down to a few features). The top level's
output is ``CollapseVertical``-ed into a sequence along the width, one vector per column.

Notation. x: (B, S_1..S_n, C) a batch of grids; sample b occupies the box [0, L_bd) along each
axis d at the origin corner (``sizes[b] = L_b``, as in ``multidir.py``); m(b, p) = 1 for a cell
p inside the box, 0 outside (``box_mask``). Without ``sizes``, m = 1 everywhere.

BlockSubsample, block (k_1..k_n), S'_d = ⌈S_d / k_d⌉
----------------------------------------------------
    1. x̄ = m ⊙ x, zero-padded along each axis d to S'_d k_d          (B, S'_1 k_1 .. , C)
    2. y[b, q, (o, c)] = x̄[b, q ⊙ k + o, c]                           (B, S'_1..S'_n, k_1⋯k_n·C)
       q the output cell, o = (o_1..o_n) the offset inside the block (raster order, o_n fastest),
       c the channel (fastest): channel index (o_1 k_2⋯k_n + … + o_n)·C + c.
    New sizes: L'_bd = ⌈L_bd / k_d⌉ (``subsample_sizes``). A block cut by a sample's edge reads
    zeros beyond it (step 1), exactly as when the sample is run alone and zero-padded.
Step 2 is a permutation of cells (a reshape, a transpose, a reshape), so its adjoint is the
inverse permutation; step 1 multiplies by the 0/1 mask and pads, whose adjoint crops:
    2'. dx̄ = the inverse permutation of dy                            (B, S'_1 k_1 .., C)
    1'. dx = m ⊙ dx̄[:, :S_1, .., :S_n]       (zero at the padding of every sample)

The per-cell dense layer between them is ``dense.Dense(F, K, "tanh")``: y = m ⊙ tanh(x V + a),
masked by the same box (its equations are in ``dense.py``).

CollapseVertical, (B, H, W, C) -> (B, W, C)
-------------------------------------------
    1. y[b, w, c] = Σ_h m(b, h, w) x[b, h, w, c]      (sum over the rows of the sample's box)
    1'. dx[b, h, w, c] = m(b, h, w) dy[b, w, c]        (each summed cell receives dy unchanged)
Sample b's sequence has length L_b1 (its width, ``out_sizes``); columns beyond it are zero.

The array code uses only array-API calls on ``be.xp`` (no numpy on device arrays); masks are built on
the host with numpy from ``sizes``, like ``multidir.py`` builds its flips.
"""

from __future__ import annotations

import math
from typing import Any, List, NamedTuple, Sequence, Tuple

import numpy as np

from .backends import get_backend
from .validate import (DEFAULT_DTYPE, check_dtype_name, check_grid_input, check_params,
                       check_positive_int, check_sizes)


# --------------------------------------------------------------------------- sizes and masks
def _check_block(block) -> Tuple[int, ...]:
    try:
        k = tuple(block)
    except TypeError:
        raise ValueError(f"block: expected a tuple of integers >= 1, got {block!r}") from None
    if not k or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
                    for v in k):
        raise ValueError(f"block: expected a tuple of integers >= 1, got {block!r}")
    return tuple(int(v) for v in k)


def subsample_sizes(sizes, block) -> np.ndarray:
    """Per-sample extents (B, n) after a block subsampling: ⌈sizes / block⌉, host int64.

    sizes: integer array (B, n), every entry >= 1; block: n integers >= 1.
    """
    block = _check_block(block)
    host = np.asarray(sizes)
    if host.ndim != 2 or host.shape[1] != len(block) or not np.issubdtype(host.dtype, np.integer) \
            or (host < 1).any():
        raise ValueError(f"sizes: expected positive integers of shape (B, {len(block)}), got "
                         f"{host.dtype} {host.shape}")
    return -(-host.astype(np.int64) // np.asarray(block))                # ceiling division


def level_sizes(sizes, blocks: Sequence) -> List[np.ndarray]:
    """Sizes at every level of a hierarchy: [sizes, after blocks[0], after blocks[1], …]."""
    out = [np.asarray(sizes).astype(np.int64)]
    for block in blocks:
        out.append(subsample_sizes(out[-1], block))
    return out


def box_mask(be, sizes, batch: int, shape, dtype):
    """Mask (B, *shape, 1) of ``dtype``: 1 inside sample b's box [0, sizes[b]), 0 outside.

    sizes: host or backend integer array (B, n) with 1 <= sizes[:, d] <= shape[d] (checked by
    ``validate.check_sizes``), or None for no mask (returns None).
    """
    if sizes is None:
        return None
    host = check_sizes(be.to_numpy(sizes) if be.is_array(sizes) else sizes, batch, tuple(shape))
    inside = np.ones((batch,) + tuple(shape), dtype=bool)
    for d, s in enumerate(shape):                                         # all_d p_d < L_bd
        coord = np.arange(s).reshape((1,) * (1 + d) + (s,) + (1,) * (len(shape) - d - 1))
        inside &= coord < host[:, d].reshape((batch,) + (1,) * len(shape))
    return be.asarray(inside[..., None].astype(np.float64), dtype)


def _check_x(be, x, ndim, channels, dtype, name="x"):
    if not be.is_array(x):
        raise TypeError(f"{name}: expected a {be.name} array, got {type(x).__name__}")
    if channels is None:
        channels = x.shape[-1] if x.ndim else 0
    return check_grid_input(be, x, name=name, ndim=ndim, channels=channels, dtype=dtype)


def _check_grad(dy, expected, name="dy"):
    if tuple(dy.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}, got {tuple(dy.shape)}")


class _Layer:
    """Shared constructor bits: the backend and the dtype (no parameters unless overridden)."""

    def __init__(self, backend, dtype):
        self.be = get_backend(backend)
        self.dtype = check_dtype_name(dtype)

    def param_shapes(self) -> dict:
        return {}

    def init_params(self, rng) -> dict:
        return {}


# --------------------------------------------------------------------------- BlockSubsample
class BlockSubsampleCache(NamedTuple):
    in_shape: tuple       # (B, S_1..S_n, C)
    padded: tuple         # (B, S'_1 k_1, .., S'_n k_n, C)
    mask: Any             # (B, S_1..S_n, 1) or None


class BlockSubsample(_Layer):
    """Gather non-overlapping k_1×…×k_n blocks of cells into channels (module docstring).

    block : n integers >= 1, e.g. (bh, bw) for 2-D grids (n = len(block)).
    forward(params={}, x (B, S_1..S_n, C), sizes=None) -> y (B, ⌈S_1/k_1⌉.., k_1⋯k_n·C), cache
    backward(dy, cache) -> (dx (B, S_1..S_n, C), {}). ``out_sizes(sizes)`` = ⌈sizes / block⌉.
    """

    def __init__(self, block=(2, 2), *, backend="numpy", dtype=DEFAULT_DTYPE):
        super().__init__(backend, dtype)
        self.block = _check_block(block)
        self.ndim = len(self.block)

    def out_sizes(self, sizes) -> np.ndarray:
        return subsample_sizes(sizes, self.block)

    def _perm(self):
        """Axes of (B, S'_1, k_1, .., S'_n, k_n, C) -> (B, S'_1..S'_n, k_1..k_n, C)."""
        n = self.ndim
        return (0,) + tuple(1 + 2 * d for d in range(n)) + tuple(2 + 2 * d for d in range(n)) \
            + (2 * n + 1,)

    def forward(self, params, x, sizes=None):
        be, xp, n = self.be, self.be.xp, self.ndim
        check_params(be, params, {}, self.dtype)
        _check_x(be, x, n, None, self.dtype)
        B, S, C = x.shape[0], tuple(x.shape[1:-1]), x.shape[-1]
        mask = box_mask(be, sizes, B, S, self.dtype)
        xb = x if mask is None else x * mask                              # 1. zero the padding
        Sp = tuple(-(-s // k) for s, k in zip(S, self.block))             # S'_d = ⌈S_d / k_d⌉
        for d in range(n):                                                # 1. pad to S'_d k_d
            extra = Sp[d] * self.block[d] - S[d]
            if extra:
                shape = list(xb.shape)
                shape[1 + d] = extra
                xb = xp.concat([xb, xp.zeros(tuple(shape), dtype=xb.dtype)], axis=1 + d)
        split = (B,) + sum(((s, k) for s, k in zip(Sp, self.block)), ()) + (C,)
        y = xp.permute_dims(xp.reshape(xb, split), self._perm())         # 2. (B, S'.., k.., C)
        y = xp.reshape(y, (B,) + Sp + (math.prod(self.block) * C,))
        return y, BlockSubsampleCache(tuple(x.shape), tuple(xb.shape), mask)

    def backward(self, dy, cache: BlockSubsampleCache):
        xp = self.be.xp
        B, C = cache.in_shape[0], cache.in_shape[-1]
        Sp = tuple(p // k for p, k in zip(cache.padded[1:-1], self.block))
        _check_grad(dy, (B,) + Sp + (math.prod(self.block) * C,))
        d = xp.reshape(dy, (B,) + Sp + self.block + (C,))                # (B, S'.., k.., C)
        inverse = tuple(int(i) for i in np.argsort(self._perm()))
        d = xp.reshape(xp.permute_dims(d, inverse), cache.padded)        # 2'. undo the gather
        d = d[(slice(None),) + tuple(slice(0, s) for s in cache.in_shape[1:-1]) + (...,)]
        dx = d if cache.mask is None else d * cache.mask                 # 1'. crop, mask
        return dx, {}


# --------------------------------------------------------------------------- CollapseVertical
class CollapseCache(NamedTuple):
    in_shape: tuple       # (B, H, W, C)
    mask: Any             # (B, H, W, 1) or None


class CollapseVertical(_Layer):
    """Sum a 2-D grid over its rows: (B, H, W, C) -> a sequence (B, W, C) (module docstring).

    forward(params={}, x, sizes=None (B, 2)) -> y (B, W, C), cache; with sizes, only the rows and
    columns inside each sample's box are summed and columns beyond its width are zero.
    backward(dy (B, W, C), cache) -> (dx (B, H, W, C), {}).
    ``out_sizes(sizes)`` = sizes[:, 1:2], (B, 1): the sequence lengths (CTC's input_lengths).
    """

    def __init__(self, *, backend="numpy", dtype=DEFAULT_DTYPE):
        super().__init__(backend, dtype)

    def out_sizes(self, sizes) -> np.ndarray:
        host = np.asarray(sizes)
        if host.ndim != 2 or host.shape[1] != 2:
            raise ValueError(f"sizes: expected shape (B, 2), got {host.shape}")
        return host[:, 1:2].astype(np.int64)

    def forward(self, params, x, sizes=None):
        be, xp = self.be, self.be.xp
        check_params(be, params, {}, self.dtype)
        _check_x(be, x, 2, None, self.dtype)
        mask = box_mask(be, sizes, x.shape[0], tuple(x.shape[1:3]), self.dtype)
        xm = x if mask is None else x * mask                              # 1. rows in the box
        y = xp.sum(xm, axis=1)                                            # 1. (B, W, C)
        return y, CollapseCache(tuple(x.shape), mask)

    def backward(self, dy, cache: CollapseCache):
        xp = self.be.xp
        B, H, W, C = cache.in_shape
        _check_grad(dy, (B, W, C))
        dx = xp.broadcast_to(xp.reshape(dy, (B, 1, W, C)), (B, H, W, C))  # 1'. copy to every row
        dx = dx * cache.mask if cache.mask is not None else dx + 0.0      # (+ 0.0: own copy)
        return dx, {}


# --------------------------------------------------------------------------- SequenceLogSoftmax
class SequenceLogSoftmaxCache(NamedTuple):
    y: Any                # (T, B, K) the output, stored for the backward


class SequenceLogSoftmax(_Layer):
    """The scores of a sequence (B, T, K) as CTC's input: log-probabilities, time first.

    1. y = log_softmax(u) over the classes, (B, T, K) -> (T, B, K)    (``ctc.log_softmax``)
    1'. du = dy − e^{y} Σ_k dy_k, back to (B, T, K)                      (``ctc.log_softmax_backward``)
    No parameters. forward(params={}, u (B, T, K)) -> y (T, B, K), cache; backward(dy, cache) ->
    (du (B, T, K), {}).
    """

    batch_axis = 1        # its output is time first, (T, B, K)

    def __init__(self, *, backend="numpy", dtype=DEFAULT_DTYPE):
        super().__init__(backend, dtype)

    def forward(self, params, u):
        from .ctc import log_softmax

        xp = self.be.xp
        check_params(self.be, params, {}, self.dtype)
        _check_x(self.be, u, 1, None, self.dtype, name="u")
        y = log_softmax(self.be, xp.permute_dims(u, (1, 0, 2)), axis=-1)   # 1. (T, B, K)
        return y, SequenceLogSoftmaxCache(y)

    def backward(self, dy, cache: SequenceLogSoftmaxCache):
        from .ctc import log_softmax_backward

        _check_grad(dy, cache.y.shape)
        du = log_softmax_backward(self.be, dy, cache.y, axis=-1)            # 1'. (T, B, K)
        return self.be.xp.permute_dims(du, (1, 0, 2)), {}
