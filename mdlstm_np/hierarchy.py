"""Hierarchical subsampling between MD-LSTM levels: the pieces that turn an image of a line of
handwriting into a sequence for CTC (Graves & Schmidhuber 2009, "Offline Handwriting Recognition
with Multidimensional Recurrent Neural Networks", NIPS 21, the network hierarchy of Sec. 2 and
Fig. 2; Graves 2012, "Supervised Sequence Labelling with Recurrent Neural Networks", Ch. 9
"Hierarchical Subsampling Networks"; RNNLIB's block, feed-forward and collapse layers).

A level is: an MD-LSTM over the grid, then ``BlockSubsample`` (gather non-overlapping blocks of
cells into one cell's channels: the grid shrinks, the features grow), then ``FeedForwardTanh``
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

FeedForwardTanh, F -> K features per cell (weights W (F, K), bias b (K,))
-------------------------------------------------------------------------
    1. z = x W + b
    2. y = m ⊙ tanh(z)
    2'. dz = (m ⊙ dy) ⊙ (1 - y²)          tanh' written with the stored output y
    1'. dW = Σ_cells xᵀ dz,  db = Σ_cells dz,  dx = dz Wᵀ
Cells outside a sample's box have dz = 0, so they get zero output, zero dx, and add nothing to
dW and db, whatever values the padding holds.

CollapseVertical, (B, H, W, C) -> (B, W, C)
-------------------------------------------
    1. y[b, w, c] = Σ_h m(b, h, w) x[b, h, w, c]      (sum over the rows of the sample's box)
    1'. dx[b, h, w, c] = m(b, h, w) dy[b, w, c]        (each summed cell receives dy unchanged)
Sample b's sequence has length L_b1 (its width, ``out_sizes``); columns beyond it are zero.

Initialisation of FeedForwardTanh: W ~ Glorot-uniform U(-√(6/(F+K)), √(6/(F+K))), b = 0. The
array code uses only array-API calls on ``be.xp`` (no numpy on device arrays); masks are built on
the host with numpy from ``sizes``, like ``multidir.py`` builds its flips.
"""

from __future__ import annotations

import math
from typing import Any, List, NamedTuple, Sequence, Tuple

import numpy as np

from . import get_backend
from .validate import (check_dtype_name, check_grid_input, check_params, check_positive_int,
                       check_sizes)


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

    def __init__(self, block=(2, 2), *, backend="numpy", dtype="float64"):
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


# --------------------------------------------------------------------------- FeedForwardTanh
class FeedForwardCache(NamedTuple):
    x2: Any               # (N, F) the input, leading axes flattened
    y2: Any               # (N, K) the masked output m ⊙ tanh(z)
    m2: Any               # (N, 1) the mask, or None
    W: Any                # (F, K) the weight of the forward pass
    lead: tuple           # (B, S_1..S_n)


class FeedForwardTanh(_Layer):
    """y = m ⊙ tanh(x W + b) at every cell (module docstring).

    in_features F, out_features K. Parameters {"W": (F, K), "b": (K,)}.
    forward(params, x (B, S_1..S_n, F), sizes=None (B, n)) -> y (B, S_1..S_n, K), cache;
    n >= 0 grid axes (x (B, F) is an ordinary dense layer).
    backward(dy, cache) -> (dx, {"W": dW, "b": db}). ``out_sizes(sizes)`` = sizes.
    """

    def __init__(self, in_features, out_features, *, backend="numpy", dtype="float64"):
        super().__init__(backend, dtype)
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")

    def param_shapes(self) -> dict:
        return {"W": (self.in_features, self.out_features), "b": (self.out_features,)}

    def init_params(self, rng) -> dict:
        """Glorot-uniform W, zero b; ``rng`` a numpy.random.Generator."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
        F, K = self.in_features, self.out_features
        limit = math.sqrt(6.0 / (F + K))
        return {"W": self.be.asarray(rng.uniform(-limit, limit, (F, K)), self.dtype),
                "b": self.be.xp.zeros((K,), dtype=self.be.dtype(self.dtype))}

    def out_sizes(self, sizes) -> np.ndarray:
        return np.asarray(sizes).astype(np.int64)

    def forward(self, params, x, sizes=None):
        be, xp = self.be, self.be.xp
        check_params(be, params, self.param_shapes(), self.dtype)
        ndim = x.ndim - 2 if be.is_array(x) else 0
        _check_x(be, x, max(ndim, 0), self.in_features, self.dtype)
        lead = tuple(x.shape[:-1])
        mask = box_mask(be, sizes, lead[0], lead[1:], self.dtype)
        x2 = xp.reshape(x, (-1, self.in_features))                        # (N, F)
        z = x2 @ params["W"] + params["b"]                                # 1. (N, K)
        y2 = xp.tanh(z)                                                   # 2. (N, K)
        m2 = None if mask is None else xp.reshape(mask, (-1, 1))          # (N, 1)
        if m2 is not None:
            y2 = y2 * m2                                                  # 2. padding -> 0
        y = xp.reshape(y2, lead + (self.out_features,))
        return y, FeedForwardCache(x2, y2, m2, params["W"], lead)

    def backward(self, dy, cache: FeedForwardCache):
        xp = self.be.xp
        _check_grad(dy, cache.lead + (self.out_features,))
        dy2 = xp.reshape(dy, (-1, self.out_features))                     # (N, K)
        if cache.m2 is not None:
            dy2 = dy2 * cache.m2                                          # 2'. padding gets 0
        dz = dy2 * (1.0 - cache.y2 * cache.y2)                            # 2'. tanh' = 1 - y²
        dW = xp.permute_dims(cache.x2, (1, 0)) @ dz                       # 1'. (F, K)
        db = xp.sum(dz, axis=0)                                           # 1'. (K,)
        dx2 = dz @ xp.permute_dims(cache.W, (1, 0))                       # 1'. (N, F)
        return xp.reshape(dx2, cache.lead + (self.in_features,)), {"W": dW, "b": db}


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

    def __init__(self, *, backend="numpy", dtype="float64"):
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
