"""Classification read-outs: a recurrent layer's output grid -> one class-score vector per sample,
and the softmax cross-entropy loss that trains them.

Notation
--------
h (B, S_1, …, S_n, F) is the recurrent output; its N = S_1·…·S_n cells are taken in raster
order, so h_bq (F,) is sample b's output at cell q. K is the number of classes, V (F, K) and
a (K,) the read-out's dense weights. Sample b may occupy only the box [0, L_b1) × … × [0, L_bn)
at the origin corner (``sizes[b] = L_b``, as for the layers): M_bq = 1 inside that box and 0 on
the padding, |b| = Σ_q M_bq = L_b1·…·L_bn its number of cells. Without ``sizes``, L_b = S and
M ≡ 1. z (B, K) are the logits.

The three read-outs (forward steps numbered; each backward mirrors them, 2' then 1')
-------------------------------------------------------------------------------------
(a) ``LastCellReadout``, the seed's: the output at the last cell of the scan, q*(b) =
    (L_b1 − 1, …, L_bn − 1), the one cell whose (single-direction) past is the whole box:
        1.  e_b = h_{b q*(b)}                    (B, F)   a gather
        2.  z_b = e_b V + a                      (B, K)
        2'. dV = eᵀ dz     da = Σ_b dz_b     de = dz Vᵀ
        1'. dh_bq = [q = q*(b)] de_b             the gather's adjoint: de put back at q*(b)

(b) ``SumScoresReadout``, after Graves, Fernández & Schmidhuber 2007 (arXiv 0705.2011, its
    MNIST experiment): class scores at every cell, one dense layer shared by all cells, summed
    over the sample's cells:
        1.  u_bq = h_bq V + a                    (B, N, K)  per-cell scores
        2.  z_b = Σ_q M_bq u_bq                  (B, K)
        2'. du_bq = M_bq dz_b                    every cell of the box gets the whole dz_b
        1'. dV = Σ_bq h_bqᵀ du_bq   da = Σ_bq du_bq = Σ_b |b| dz_b   dh_bq = du_bq Vᵀ

(c) ``MeanPoolReadout``: the mean of the outputs over the sample's own box, then dense:
        1.  m_b = (1/|b|) Σ_q M_bq h_bq          (B, F)
        2.  z_b = m_b V + a                      (B, K)
        2'. dV = mᵀ dz     da = Σ_b dz_b     dm = dz Vᵀ
        1'. dh_bq = (M_bq / |b|) dm_b

(b) and (c) are linear in h, so by swapping the sum and the matmul (b) is z_b = (Σ_q M_bq h_bq)
V + |b| a = |b|·(c)'s logits with the same V, a: the two differ in how the logits scale with the
image size (a sum grows with it), which changes the softmax's sharpness and the effective step
size, not what the model can express. ``tests/test_readout.py`` pins the identity. (b) is still
computed per cell, as written, so ``scores`` exposes the per-cell map u.

Softmax cross-entropy (labels y_b ∈ {0, …, K−1}, mean over the batch)
-----------------------------------------------------------------------
        1.  μ_b = max_k z_bk                     a shift: it cancels in step 3 (no gradient)
        2.  ℓ_b = log Σ_k exp(z_bk − μ_b)        every exponent ≤ 0: no overflow
        3.  log p_bk = z_bk − μ_b − ℓ_b          log-softmax; p = exp(log p)
        4.  L = −(1/B) Σ_b log p_{b y_b}
        4'. ∂L/∂log p_bk = −[k = y_b] / B
        3'-1'. −log p_{b y} = log Σ_k exp z_bk − z_by, and ∂/∂z_bk log Σ exp z = p_bk, so
            dz_bk = (p_bk − [k = y_b]) / B       (μ and ℓ need no separate backward)

Initialisation: V ~ Glorot-uniform U(−L, L), L = √(6 / (F + K)), a = 0, as ``dense.py``.

Array code uses only array-API-standard calls on ``be.xp`` (no numpy import): the read-outs run
on numpy, cupy and a strict array-API namespace alike. Index arrays (the last cells, the labels)
are built on the host from host integers and handed to ``be.index``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Tuple

from .backends import get_backend
from .validate import DEFAULT_DTYPE, check_dtype_name, check_params, check_positive_int, check_sizes


# --------------------------------------------------------------------------- the loss
def _host_labels(be, labels, B: int, K: int):
    """``labels`` (host or backend integer array, (B,)) -> host integer array, checked."""
    host = be.to_numpy(labels) if be.is_array(labels) else labels
    if not (hasattr(host, "dtype") and hasattr(host, "shape")):
        raise TypeError(f"labels: expected an integer array of shape ({B},), got "
                        f"{type(labels).__name__}")
    if getattr(host.dtype, "kind", "") not in "iu":
        raise TypeError(f"labels: expected an integer array (class indices), got dtype "
                        f"{host.dtype}")
    if tuple(host.shape) != (B,):
        raise ValueError(f"labels: expected shape ({B},) (one label per row of logits), got "
                         f"{tuple(host.shape)}")
    lo, hi = int(host.min()), int(host.max())
    if lo < 0 or hi >= K:
        raise ValueError(f"labels: expected class indices in [0, {K - 1}] (logits have {K} "
                         f"columns), got values in [{lo}, {hi}]")
    return host


def softmax_cross_entropy(be, logits, labels) -> Tuple[Any, Any]:
    """Mean softmax cross-entropy of integer labels; equations in the module docstring.

    be     : a backend (``get_backend(...)``) or its name.
    logits : backend float array (B, K), B ≥ 1, K ≥ 1.
    labels : integer array (B,), values in [0, K−1]; a host (numpy) array or a backend array
             (a backend array is copied to the host once for the range check).
    Returns (loss, dlogits): ``loss`` a 0-d backend array of the logits' dtype (not synced to
    the host), ``dlogits`` = ∂loss/∂logits (B, K).
    Raises TypeError for a non-array or non-float logits / non-integer labels, ValueError for
    wrong shapes or labels out of range.
    """
    be = get_backend(be)
    xp = be.xp
    if not be.is_array(logits):
        raise TypeError(f"logits: expected a {be.name} array, got {type(logits).__name__}")
    dtype = check_dtype_name(be.dtype_name(logits), "logits")
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 1:
        raise ValueError(f"logits: expected shape (B, K) with B, K >= 1, got "
                         f"{tuple(logits.shape)}")
    B, K = logits.shape
    y = be.index(_host_labels(be, labels, B, K))                         # (B,) int64 on device
    onehot = xp.astype(xp.reshape(y, (B, 1)) == xp.reshape(xp.arange(K), (1, K)),
                       be.dtype(dtype))                                  # (B, K) [k = y_b]
    mu = xp.max(logits, axis=1, keepdims=True)                           # 1. (B, 1) shift
    s = logits - mu                                                      # 1. every entry ≤ 0
    lse = xp.log(xp.sum(xp.exp(s), axis=1, keepdims=True))               # 2. (B, 1), ≥ 0
    logp = s - lse                                                       # 3. (B, K) log-softmax
    loss = -xp.sum(onehot * logp) / B                                    # 4. mean over the batch
    dlogits = (xp.exp(logp) - onehot) / B                                # 4'-1'. (p − onehot) / B
    return loss, dlogits


# --------------------------------------------------------------------------- shared parts
class _Readout:
    """Dense weights, their initialisation and the input checks shared by the read-outs.

    Parameters
    ----------
    in_features : int
        F, the last axis of h (e.g. a multi-directional layer's ``out_features``).
    num_classes : int
        K, the number of classes (columns of the logits).
    backend : str or Backend
        "numpy", "numba", "cupy" or "auto".
    dtype : "float32" or "float64"; h and the parameters must have it (no silent casts).
    """

    def __init__(self, in_features: int, num_classes: int, *, backend="numpy",
                 dtype=DEFAULT_DTYPE):
        self.in_features = check_positive_int(in_features, "in_features")
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.be = get_backend(backend)
        self.dtype = check_dtype_name(dtype)

    def param_shapes(self) -> dict:
        """``{"V": (F, K), "a": (K,)}``."""
        return {"V": (self.in_features, self.num_classes), "a": (self.num_classes,)}

    def init_params(self, rng) -> dict:
        """Glorot-uniform V, zero a. ``rng``: a ``numpy.random.Generator``.

        Returns ``{"V": (F, K), "a": (K,)}`` as backend arrays of ``self.dtype``.
        """
        if not hasattr(rng, "uniform"):
            raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
        F, K = self.in_features, self.num_classes
        limit = math.sqrt(6.0 / (F + K))
        V = rng.uniform(-limit, limit, size=(F, K))                      # host, float64
        return {"V": self.be.asarray(V, self.dtype),
                "a": self.be.xp.zeros((K,), dtype=self.be.dtype(self.dtype))}

    def _check(self, params, h, sizes):
        """Check params, h (B, *S, F) and sizes; returns (B, S, host sizes (B, n) or None)."""
        be = self.be
        check_params(be, params, self.param_shapes(), self.dtype)
        if not be.is_array(h):
            raise TypeError(f"h: expected a {be.name} array, got {type(h).__name__}")
        if be.dtype_name(h) != self.dtype:
            raise TypeError(f"h: expected dtype {self.dtype} (the read-out's dtype; no silent "
                            f"casts), got {be.dtype_name(h)}")
        shape = tuple(h.shape)
        if len(shape) < 3 or shape[-1] != self.in_features or min(shape) < 1:
            raise ValueError(f"h: expected shape (B, *grid, {self.in_features}) with at least "
                             f"one grid axis and no empty axis, got {shape}")
        B, S = shape[0], shape[1:-1]
        if sizes is not None:
            sizes = check_sizes(be.to_numpy(sizes) if be.is_array(sizes) else sizes, B, S)
        return B, S, sizes

    def _mask(self, B, S, sizes):
        """M (B, N) in the read-out's dtype: 1 where cell q lies inside sample b's box."""
        be, xp = self.be, self.be.xp
        n, N = len(S), math.prod(S)
        if sizes is None:
            return xp.ones((B, N), dtype=be.dtype(self.dtype))
        L = be.index(sizes)                                              # (B, n) int64
        inside = None
        for d in range(n):  # inside along axis d: coordinate j_d < L_bd, broadcast over the grid
            axis_shape = tuple(S[d] if e == d else 1 for e in range(n))
            coord = xp.reshape(xp.arange(S[d]), (1,) + axis_shape)       # (1, 1.., S_d, ..1)
            lim = xp.reshape(L[:, d], (B,) + (1,) * n)                   # (B, 1, …, 1)
            ok = coord < lim                                             # (B, 1.., S_d, ..1)
            inside = ok if inside is None else xp.logical_and(inside, ok)
        inside = xp.broadcast_to(inside, (B,) + tuple(S))                # (B, *S)
        return xp.astype(xp.reshape(inside, (B, N)), be.dtype(self.dtype))

    def _check_dlogits(self, dlogits, B):
        if tuple(dlogits.shape) != (B, self.num_classes):
            raise ValueError(f"dlogits: expected shape {(B, self.num_classes)}, got "
                             f"{tuple(dlogits.shape)}")

    def _t(self, a):
        """The transpose of a 2-D array (array-API ``permute_dims``)."""
        return self.be.xp.permute_dims(a, (1, 0))


# --------------------------------------------------------------------------- (a) last cell
class LastCellCache(NamedTuple):
    e: Any             # (B, F) the gathered last-cell outputs
    select: Any        # (B, N) one-hot of q*(b) over the raster cells
    V: Any             # (F, K)
    h_shape: tuple     # (B, *S, F)


class LastCellReadout(_Readout):
    """(a) The seed's read-out: logits = h(last cell of the sample's box) V + a.

    With a multi-directional layer only the direction that starts at the origin corner has seen
    the whole box at the last cell; the others have seen only part of it there.
    """

    def forward(self, params, h, *, sizes=None) -> Tuple[Any, LastCellCache]:
        """h (B, *S, F) -> logits (B, K), cache. sizes (B, n) ints, optional: per-sample boxes."""
        be, xp = self.be, self.be.xp
        B, S, sizes = self._check(params, h, sizes)
        n, N, F = len(S), math.prod(S), self.in_features
        last = [[s - 1 for s in S]] * B if sizes is None else (sizes - 1).tolist()
        q = []                                    # raster index of (L_b1 − 1, …, L_bn − 1)
        for coords in last:
            r = 0
            for d in range(n):
                r = r * S[d] + int(coords[d])
            q.append(r)
        rows = be.index([b * N + q[b] for b in range(B)])                # (B,) into (B·N,)
        e = be.take(xp.reshape(h, (B * N, F)), rows)                     # 1. (B, F) gather
        logits = e @ params["V"] + params["a"]                           # 2. (B, K)
        q_dev = xp.reshape(be.index(q), (B, 1))
        select = xp.astype(q_dev == xp.reshape(xp.arange(N), (1, N)), be.dtype(self.dtype))
        return logits, LastCellCache(e, select, params["V"], tuple(h.shape))

    def backward(self, dlogits, cache: LastCellCache) -> Tuple[Any, dict]:
        """dlogits (B, K) -> dh (B, *S, F) (zero except at each last cell), grads {"V", "a"}."""
        xp = self.be.xp
        B, F = cache.h_shape[0], cache.h_shape[-1]
        self._check_dlogits(dlogits, B)
        dV = self._t(cache.e) @ dlogits                                  # 2'. (F, K) = eᵀ dz
        da = xp.sum(dlogits, axis=0)                                     # 2'. (K,)
        de = dlogits @ self._t(cache.V)                                  # 2'. (B, F) = dz Vᵀ
        N = cache.select.shape[1]
        dh = xp.reshape(cache.select, (B, N, 1)) * xp.reshape(de, (B, 1, F))  # 1'. de at q*(b)
        return xp.reshape(dh, cache.h_shape), {"V": dV, "a": da}


# --------------------------------------------------------------------------- (b) summed scores
class SumScoresCache(NamedTuple):
    h2: Any            # (B·N, F) the input, cells flattened
    mask: Any          # (B, N) M
    V: Any             # (F, K)
    h_shape: tuple     # (B, *S, F)


class SumScoresReadout(_Readout):
    """(b) Graves et al. 2007: per-cell class scores u = h V + a, summed over each sample's box."""

    def scores(self, params, h):
        """The per-cell score map u (B, *S, K) (step 1 alone, e.g. to plot where a class is)."""
        xp = self.be.xp
        self._check(params, h, None)
        u = xp.reshape(h, (-1, self.in_features)) @ params["V"] + params["a"]
        return xp.reshape(u, tuple(h.shape[:-1]) + (self.num_classes,))

    def forward(self, params, h, *, sizes=None) -> Tuple[Any, SumScoresCache]:
        """h (B, *S, F) -> logits (B, K), cache. sizes (B, n) ints, optional: per-sample boxes."""
        xp = self.be.xp
        B, S, sizes = self._check(params, h, sizes)
        N, F, K = math.prod(S), self.in_features, self.num_classes
        h2 = xp.reshape(h, (B * N, F))                                   # (B·N, F)
        u = xp.reshape(h2 @ params["V"] + params["a"], (B, N, K))        # 1. per-cell scores
        mask = self._mask(B, S, sizes)                                   # (B, N)
        logits = xp.sum(xp.reshape(mask, (B, N, 1)) * u, axis=1)         # 2. (B, K) masked sum
        return logits, SumScoresCache(h2, mask, params["V"], tuple(h.shape))

    def backward(self, dlogits, cache: SumScoresCache) -> Tuple[Any, dict]:
        """dlogits (B, K) -> dh (B, *S, F) (zero on padding), grads {"V", "a"}."""
        xp = self.be.xp
        B, N = cache.mask.shape
        K = self.num_classes
        self._check_dlogits(dlogits, B)
        du = xp.reshape(cache.mask, (B, N, 1)) * xp.reshape(dlogits, (B, 1, K))  # 2'. M dz
        du2 = xp.reshape(du, (B * N, K))
        dV = self._t(cache.h2) @ du2                                     # 1'. (F, K) = Σ hᵀ du
        da = xp.sum(du2, axis=0)                                         # 1'. (K,) = Σ_b |b| dz_b
        dh = du2 @ self._t(cache.V)                                      # 1'. (B·N, F) = du Vᵀ
        return xp.reshape(dh, cache.h_shape), {"V": dV, "a": da}


# --------------------------------------------------------------------------- (c) mean pooling
class MeanPoolCache(NamedTuple):
    m: Any             # (B, F) the pooled outputs
    weight: Any        # (B, N) M_bq / |b|
    V: Any             # (F, K)
    h_shape: tuple     # (B, *S, F)


class MeanPoolReadout(_Readout):
    """(c) logits = (mean of h over each sample's own box) V + a."""

    def forward(self, params, h, *, sizes=None) -> Tuple[Any, MeanPoolCache]:
        """h (B, *S, F) -> logits (B, K), cache. sizes (B, n) ints, optional: per-sample boxes."""
        xp = self.be.xp
        B, S, sizes = self._check(params, h, sizes)
        N, F = math.prod(S), self.in_features
        mask = self._mask(B, S, sizes)                                   # (B, N)
        count = xp.sum(mask, axis=1, keepdims=True)                      # (B, 1) |b| ≥ 1
        weight = mask / count                                            # (B, N) M / |b|
        m = xp.sum(xp.reshape(weight, (B, N, 1)) * xp.reshape(h, (B, N, F)), axis=1)  # 1. (B, F)
        logits = m @ params["V"] + params["a"]                           # 2. (B, K)
        return logits, MeanPoolCache(m, weight, params["V"], tuple(h.shape))

    def backward(self, dlogits, cache: MeanPoolCache) -> Tuple[Any, dict]:
        """dlogits (B, K) -> dh (B, *S, F) (zero on padding), grads {"V", "a"}."""
        xp = self.be.xp
        B, N = cache.weight.shape
        F = cache.h_shape[-1]
        self._check_dlogits(dlogits, B)
        dV = self._t(cache.m) @ dlogits                                  # 2'. (F, K) = mᵀ dz
        da = xp.sum(dlogits, axis=0)                                     # 2'. (K,)
        dm = dlogits @ self._t(cache.V)                                  # 2'. (B, F) = dz Vᵀ
        dh = xp.reshape(cache.weight, (B, N, 1)) * xp.reshape(dm, (B, 1, F))  # 1'. (M/|b|) dm
        return xp.reshape(dh, cache.h_shape), {"V": dV, "a": da}


READOUTS = {"last": LastCellReadout, "sum": SumScoresReadout, "mean": MeanPoolReadout}
"""Read-out classes by short name (the ``--readout`` choices of ``examples/digits.py``)."""
