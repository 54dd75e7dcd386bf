"""Per-cell dense output head with a sigmoid: the seed's ``slim.fully_connected(num_outputs=1,
activation_fn=sigmoid)`` applied to the hidden vector of every grid cell.

Equations (one cell; the same weights at every cell of every sample)
--------------------------------------------------------------------
    z = h V + a          h: (F,) hidden vector,  V: (F, K),  a: (K,)
    y = σ(z)             σ(z) = 1 / (1 + e^{−z}), computed overflow-free by the backend

Notation: N is the number of cells in the batch (B · H · W for a 2-D grid). The head flattens
every leading axis into N rows, so it serves 1-D, 2-D or n-D grids alike.

Backward (the numbers mirror the forward steps, in reverse)
------------------------------------------------------------
    2. dz = dy ⊙ y ⊙ (1 − y)          σ' written in terms of the output y (stored, not recomputed)
    1. dV = hᵀ dz     da = Σ_rows dz     dh = dz Vᵀ

Initialisation: V ~ Glorot-uniform U(−L, L), L = √(6 / (F + K)), a = 0; the same as the
seed's ``slim.fully_connected`` defaults (xavier_initializer, zero bias).

Array code here uses only array-API-standard calls on ``be.xp`` (no numpy import), so the head
runs unchanged on numpy, cupy and a strict array-API namespace.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Tuple

from .backends import get_backend
from .validate import check_dtype_name, check_params, check_positive_int


class DenseSigmoidCache(NamedTuple):
    """What :meth:`DenseSigmoid.backward` needs from the forward pass."""

    h2: Any           # (N, F) the input, leading axes flattened
    y2: Any           # (N, K) the output σ(z), flattened the same way
    V: Any            # (F, K) the weight used in the forward pass
    lead_shape: tuple  # the leading shape of h, e.g. (B, H, W)


class DenseSigmoid:
    """y = σ(h V + a) at every cell; see the module docstring for the equations.

    Parameters
    ----------
    in_features : int
        F, the size of the last axis of the input (the recurrent layer's hidden size).
    out_features : int
        K, outputs per cell (1 in the seed).
    backend : str or Backend
        "numpy", "numba", "cupy" or "auto" (see :func:`mdlstm_np.backends.get_backend`).
    dtype : "float32" or "float64"
    """

    def __init__(self, in_features: int, out_features: int = 1, *, backend="numpy",
                 dtype="float64"):
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.be = get_backend(backend)
        self.dtype = check_dtype_name(dtype)

    def param_shapes(self) -> dict:
        """``{"V": (F, K), "a": (K,)}``."""
        return {"V": (self.in_features, self.out_features), "a": (self.out_features,)}

    def init_params(self, rng) -> dict:
        """Glorot-uniform V, zero a. ``rng``: a ``numpy.random.Generator``.

        Returns ``{"V": (F, K), "a": (K,)}`` as backend arrays of ``self.dtype``.
        """
        if not hasattr(rng, "uniform"):
            raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
        F, K = self.in_features, self.out_features
        limit = math.sqrt(6.0 / (F + K))
        V = rng.uniform(-limit, limit, size=(F, K))   # host numpy, float64
        return {"V": self.be.asarray(V, self.dtype),
                "a": self.be.xp.zeros((K,), dtype=self.be.dtype(self.dtype))}

    def _check_input(self, h, name="h"):
        be = self.be
        if not be.is_array(h):
            raise TypeError(f"{name}: expected a {be.name} array, got {type(h).__name__}")
        if be.dtype_name(h) != self.dtype:
            raise TypeError(f"{name}: expected dtype {self.dtype} (the head's dtype; no silent "
                            f"casts), got {be.dtype_name(h)}")
        if h.ndim < 1 or h.shape[-1] != self.in_features:
            raise ValueError(f"{name}: expected shape (..., {self.in_features}), got "
                             f"{tuple(h.shape)}")

    def forward(self, params: dict, h) -> Tuple[Any, DenseSigmoidCache]:
        """h: (*lead, F) -> y: (*lead, K), cache.

        ``*lead`` is any leading shape, e.g. (B, H, W) for the output of a 2-D layer.
        """
        be, xp = self.be, self.be.xp
        check_params(be, params, self.param_shapes(), self.dtype)
        self._check_input(h)
        lead = tuple(h.shape[:-1])
        h2 = xp.reshape(h, (-1, self.in_features))                  # (N, F)
        z = h2 @ params["V"] + params["a"]                           # 1. (N, K) affine map
        y2 = be.sigmoid(z)                                           # 2. (N, K) squash to (0, 1)
        y = xp.reshape(y2, lead + (self.out_features,))             # (*lead, K)
        return y, DenseSigmoidCache(h2=h2, y2=y2, V=params["V"], lead_shape=lead)

    def backward(self, dy, cache: DenseSigmoidCache) -> Tuple[Any, dict]:
        """dy: (*lead, K) = ∂loss/∂y -> dh: (*lead, F), dparams {"V": (F, K), "a": (K,)}."""
        xp = self.be.xp
        expected = cache.lead_shape + (self.out_features,)
        if tuple(dy.shape) != expected:
            raise ValueError(f"dy: expected shape {expected}, got {tuple(dy.shape)}")
        dy2 = xp.reshape(dy, (-1, self.out_features))                # (N, K)
        y2 = cache.y2
        dz = dy2 * (y2 * (1.0 - y2))                                 # 2. backprop through σ: σ' = y(1−y)
        dV = xp.permute_dims(cache.h2, (1, 0)) @ dz                  # 1. (F, K) = hᵀ dz
        da = xp.sum(dz, axis=0)                                      # 1. (K,) the bias is shared by all rows
        dh2 = dz @ xp.permute_dims(cache.V, (1, 0))                  # 1. (N, F) = dz Vᵀ
        dh = xp.reshape(dh2, cache.lead_shape + (self.in_features,))
        return dh, {"V": dV, "a": da}
