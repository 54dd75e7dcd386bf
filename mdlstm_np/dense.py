"""The per-cell dense layer: one affine map and an activation, the same weights at every cell.

It is the seed's output head (``slim.fully_connected(num_outputs=1, activation_fn=sigmoid)``),
the real-valued head of the regression tasks (no activation), and the hierarchy's feed-forward
layer that mixes a subsampled block down to a few features (tanh; Graves & Schmidhuber 2009).

Equations (one cell; N = B·S_1⋯S_n cells of a batch, every leading axis flattened into rows)
----------------------------------------------------------------------------------------
    1. z = h V + a                h: (N, F) the cells' input vectors, V: (F, K), a: (K,)
    2. y = m ⊙ φ(z)               φ: "linear" (identity), "sigmoid" σ(z) = 1/(1 + e^{−z})
                                  (overflow-free, by the backend) or "tanh"; m(b, p) = 1 inside
                                  sample b's box (``sizes``, as in ``hierarchy.py``), else 0

Backward (the numbers mirror the forward steps, in reverse)
-----------------------------------------------------------
    2'. dz = (m ⊙ dy) ⊙ φ'(y)     φ' written with the stored output y: 1, y(1 − y), 1 − y²
    1'. dV = hᵀ dz     da = Σ_rows dz     dh = dz Vᵀ
Cells outside a sample's box have dz = 0: zero output, zero dh, nothing added to dV and da.

Initialisation: V ~ Glorot-uniform U(−L, L), L = √(6 / (F + K)), a = 0 (the seed's
``slim.fully_connected`` defaults: xavier_initializer, zero bias).

Array code uses only array-API-standard calls on ``be.xp``, so the layer runs unchanged on
numpy, cupy and a strict array-API namespace.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Tuple

from .backends import get_backend
from .hierarchy import box_mask
from .validate import DEFAULT_DTYPE, check_dtype_name, check_params, check_positive_int

ACTIVATIONS = ("linear", "sigmoid", "tanh")


class DenseCache(NamedTuple):
    """What :meth:`Dense.backward` needs from the forward pass."""

    h2: Any            # (N, F) the input, leading axes flattened
    y2: Any            # (N, K) the output m ⊙ φ(z), flattened the same way
    m2: Any            # (N, 1) the mask, or None (no sizes)
    V: Any             # (F, K) the weight used in the forward pass
    lead_shape: tuple  # the leading shape of h, e.g. (B, H, W)


class Dense:
    """y = φ(h V + a) at every cell; see the module docstring for the equations.

    in_features  : F, the size of the input's last axis.
    out_features : K, outputs per cell (default 1, the seed's).
    activation   : "linear" (default), "sigmoid" or "tanh".
    backend      : "numpy" (default), "numba", "cupy", "auto" or a Backend.
    dtype        : "float32" (default, every layer's) or "float64"; h and the parameters must
                   have it (no silent casts).
    Parameters (``init_params``): V (F, K), a (K,).
    forward(params, h (*lead, F), sizes=None) -> y (*lead, K), cache; ``sizes`` (B, n) masks
    the cells outside each sample's box (lead = (B, S_1..S_n)).
    backward(dy (*lead, K), cache) -> (dh (*lead, F), {"V": (F, K), "a": (K,)}).
    Raises TypeError/ValueError naming the argument (wrong dtype, shape, activation, ...).
    """

    def __init__(self, in_features: int, out_features: int = 1, activation: str = "linear", *,
                 backend="numpy", dtype=DEFAULT_DTYPE):
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)}, got "
                             f"{activation!r}")
        self.activation = activation
        self.be = get_backend(backend)
        self.dtype = check_dtype_name(dtype)

    def __repr__(self):
        return (f"Dense({self.in_features}, {self.out_features}, {self.activation!r}, "
                f"dtype={self.dtype!r}, backend={self.be.name!r})")

    def config(self) -> dict:
        """The constructor's arguments (JSON-able), for ``mdlstm_np.save``."""
        return {"in_features": self.in_features, "out_features": self.out_features,
                "activation": self.activation}

    def param_shapes(self) -> dict:
        """``{"V": (F, K), "a": (K,)}``."""
        return {"V": (self.in_features, self.out_features), "a": (self.out_features,)}

    def out_sizes(self, sizes):
        """A per-cell map keeps every sample's extent."""
        return sizes

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
            raise TypeError(f"{name}: expected dtype {self.dtype} (the layer's dtype; no silent "
                            f"casts), got {be.dtype_name(h)}")
        if h.ndim < 1 or h.shape[-1] != self.in_features:
            raise ValueError(f"{name}: expected shape (..., {self.in_features}), got "
                             f"{tuple(h.shape)}")

    def forward(self, params: dict, h, sizes=None) -> Tuple[Any, DenseCache]:
        """h: (*lead, F) -> y: (*lead, K), cache (see the class docstring)."""
        be, xp = self.be, self.be.xp
        check_params(be, params, self.param_shapes(), self.dtype)
        self._check_input(h)
        lead = tuple(h.shape[:-1])
        h2 = xp.reshape(h, (-1, self.in_features))                  # (N, F)
        z = h2 @ params["V"] + params["a"]                           # 1. (N, K) affine map
        if self.activation == "sigmoid":
            y2 = be.sigmoid(z)                                       # 2. squash to (0, 1)
        elif self.activation == "tanh":
            y2 = xp.tanh(z)                                          # 2. squash to (−1, 1)
        else:
            y2 = z                                                   # 2. identity
        m2 = None
        if sizes is not None:
            m2 = xp.reshape(box_mask(be, sizes, lead[0], lead[1:], self.dtype), (-1, 1))
            y2 = y2 * m2                                             # 2. padding -> 0
        y = xp.reshape(y2, lead + (self.out_features,))             # (*lead, K)
        return y, DenseCache(h2=h2, y2=y2, m2=m2, V=params["V"], lead_shape=lead)

    def backward(self, dy, cache: DenseCache) -> Tuple[Any, dict]:
        """dy: (*lead, K) = ∂loss/∂y -> dh: (*lead, F), dparams {"V": (F, K), "a": (K,)}."""
        xp = self.be.xp
        expected = cache.lead_shape + (self.out_features,)
        if tuple(dy.shape) != expected:
            raise ValueError(f"dy: expected shape {expected}, got {tuple(dy.shape)}")
        dy2 = xp.reshape(dy, (-1, self.out_features))                # (N, K)
        if cache.m2 is not None:
            dy2 = dy2 * cache.m2                                     # 2'. padding gets 0
        y2 = cache.y2
        if self.activation == "sigmoid":
            dz = dy2 * (y2 * (1.0 - y2))                             # 2'. σ' = y(1 − y)
        elif self.activation == "tanh":
            dz = dy2 * (1.0 - y2 * y2)                               # 2'. tanh' = 1 − y²
        else:
            dz = dy2                                                 # 2'. identity
        dV = xp.permute_dims(cache.h2, (1, 0)) @ dz                  # 1'. (F, K) = hᵀ dz
        da = xp.sum(dz, axis=0)                                      # 1'. (K,) shared bias
        dh2 = dz @ xp.permute_dims(cache.V, (1, 0))                  # 1'. (N, F) = dz Vᵀ
        dh = xp.reshape(dh2, cache.lead_shape + (self.in_features,))
        return dh, {"V": dV, "a": da}
