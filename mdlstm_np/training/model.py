"""A recurrent layer and a head as one model, for :func:`mdlstm_np.fit`.

    x (B, *S, C) ──recurrent──▶ h (B, *S, F) ──head──▶ y (B, *S, K)   per-cell head
                                             ──head──▶ z (B, K)       read-out (class scores)

recurrent : MDLSTM, MultiDirectionalMDLSTM, HorizontalSDLSTM, SnakeSDLSTM (anything with
            ``init_params``, ``forward(params, x)``, ``backward(dout, cache)``, ``be``, ``dtype``
            and ``hidden`` or ``out_features``)
head      : :class:`mdlstm_np.head.DenseSigmoid` (per-cell outputs in (0, 1)),
            :class:`DenseLinear` (per-cell real outputs) or a read-out of
            ``mdlstm_np/readout.py`` (per-image class scores, for softmax cross-entropy)

Parameters are one flat dict, ``"rnn.<key>"`` then ``"head.<key>"``, like
:class:`~mdlstm_np.demo.models.Model` (whose checkpoints therefore look the same).

``DenseLinear`` is the per-cell affine map without a squashing function, for real-valued
targets such as the normalised Gaussian fields (unit variance: a sigmoid cannot reach them):

    1.  z = h V + a            h: (N, F) the cells' hidden vectors, V: (F, K), a: (K,)
    1b. dV = hᵀ dz     da = Σ_rows dz     dh = dz Vᵀ
"""

from __future__ import annotations

import inspect
import math
from typing import Any, NamedTuple, Tuple

from ..backends import get_backend
from ..validate import check_dtype_name, check_params, check_positive_int


class DenseLinearCache(NamedTuple):
    h2: Any           # (N, F) the input, leading axes flattened
    V: Any            # (F, K) the weight used in the forward pass
    lead_shape: tuple  # the leading shape of h, e.g. (B, H, W)


class DenseLinear:
    """y = h V + a at every cell (no activation); Glorot-uniform V, zero a.

    in_features F, out_features K; backend, dtype as for ``DenseSigmoid``.
    forward: h (*lead, F) -> y (*lead, K); backward: dy (*lead, K) -> dh (*lead, F), grads.
    """

    def __init__(self, in_features: int, out_features: int = 1, *, backend="numpy",
                 dtype="float64"):
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.be = get_backend(backend)
        self.dtype = check_dtype_name(dtype)

    def param_shapes(self) -> dict:
        return {"V": (self.in_features, self.out_features), "a": (self.out_features,)}

    def init_params(self, rng) -> dict:
        F, K = self.in_features, self.out_features
        limit = math.sqrt(6.0 / (F + K))
        return {"V": self.be.asarray(rng.uniform(-limit, limit, size=(F, K)), self.dtype),
                "a": self.be.xp.zeros((K,), dtype=self.be.dtype(self.dtype))}

    def forward(self, params: dict, h) -> Tuple[Any, DenseLinearCache]:
        xp = self.be.xp
        check_params(self.be, params, self.param_shapes(), self.dtype)
        if h.ndim < 1 or h.shape[-1] != self.in_features:
            raise ValueError(f"h: expected shape (..., {self.in_features}), got "
                             f"{tuple(h.shape)}")
        lead = tuple(h.shape[:-1])
        h2 = xp.reshape(h, (-1, self.in_features))                   # (N, F)
        z = h2 @ params["V"] + params["a"]                            # 1. (N, K)
        return (xp.reshape(z, lead + (self.out_features,)),
                DenseLinearCache(h2=h2, V=params["V"], lead_shape=lead))

    def backward(self, dy, cache: DenseLinearCache) -> Tuple[Any, dict]:
        xp = self.be.xp
        expected = cache.lead_shape + (self.out_features,)
        if tuple(dy.shape) != expected:
            raise ValueError(f"dy: expected shape {expected}, got {tuple(dy.shape)}")
        dz = xp.reshape(dy, (-1, self.out_features))                  # (N, K)
        dV = xp.permute_dims(cache.h2, (1, 0)) @ dz                   # 1b. hᵀ dz
        da = xp.sum(dz, axis=0)                                       # 1b. shared bias
        dh = dz @ xp.permute_dims(cache.V, (1, 0))                    # 1b. dz Vᵀ
        return xp.reshape(dh, cache.lead_shape + (self.in_features,)), {"V": dV, "a": da}


class ModelCache(NamedTuple):
    rnn: Any    # the recurrent layer's cache
    head: Any   # the head's cache


def _split(params: dict, prefix: str) -> dict:
    n = len(prefix)
    return {k[n:]: v for k, v in params.items() if k.startswith(prefix)}


class Model:
    """``recurrent`` then ``head``; forward/backward over one flat parameter dict.

    recurrent : a layer with init_params/forward/backward (MDLSTM, HorizontalSDLSTM, ...)
    head      : a :class:`DenseSigmoid` whose in_features is the recurrent layer's hidden size
    name      : shown in messages and file names
    """

    def __init__(self, recurrent, head, name: str = "model"):
        width = getattr(recurrent, "out_features", recurrent.hidden)  # 2ⁿH for concat layers
        if head.in_features != width:
            raise ValueError(f"head: expected in_features == the recurrent layer's output "
                             f"width ({width}), got {head.in_features}")
        if recurrent.dtype != head.dtype or recurrent.be.name != head.be.name:
            raise ValueError(f"head: expected the recurrent layer's backend/dtype "
                             f"({recurrent.be.name}/{recurrent.dtype}), got "
                             f"{head.be.name}/{head.dtype}")
        self.rnn, self.head, self.name = recurrent, head, name
        self.be, self.dtype = recurrent.be, recurrent.dtype

    def init_params(self, rng) -> dict:
        """Recurrent parameters first, then the head's, from one ``numpy.random.Generator``."""
        params = {f"rnn.{k}": v for k, v in self.rnn.init_params(rng).items()}
        params.update({f"head.{k}": v for k, v in self.head.init_params(rng).items()})
        return params

    def forward(self, params: dict, x) -> Tuple[Any, ModelCache]:
        """x: (B, H, W, C) backend array -> y: (B, H, W, 1) in (0, 1), cache."""
        h, rnn_cache = self.rnn.forward(_split(params, "rnn."), x)        # 1. (B, H, W, hidden)
        y, head_cache = self.head.forward(_split(params, "head."), h)     # 2. (B, H, W, 1)
        return y, ModelCache(rnn=rnn_cache, head=head_cache)

    def backward(self, dy, cache: ModelCache) -> Tuple[Any, dict]:
        """dy: (B, H, W, 1) = ∂loss/∂y -> dx: (B, H, W, C), dparams (keys like params)."""
        dh, dhead = self.head.backward(dy, cache.head)                    # 2. (B, H, W, hidden)
        dx, drnn = self.rnn.backward(dh, cache.rnn)                       # 1. (B, H, W, C)
        grads = {f"rnn.{k}": v for k, v in drnn.items()}
        grads.update({f"head.{k}": v for k, v in dhead.items()})
        return dx, grads



class GridModelCache(NamedTuple):
    rnn: Any    # the recurrent layer's cache
    head: Any   # the head's cache


def _takes_sizes(method) -> bool:
    try:
        return "sizes" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


class GridModel:
    """``recurrent`` then ``head`` over one flat parameter dict (see the module docstring).

    Attributes: ``rnn``, ``head``, ``name``, ``be``, ``dtype``, ``per_image`` (True when the
    head is a read-out giving (B, K) class scores), ``out_features`` (K).
    Raises ValueError when the head's in_features is not the layer's output width or the
    backends/dtypes differ.
    """

    def __init__(self, recurrent, head, name: str = "model"):
        width = getattr(recurrent, "out_features", getattr(recurrent, "hidden", None))
        if head.in_features != width:
            raise ValueError(f"head: expected in_features == the recurrent layer's output "
                             f"width ({width}), got {head.in_features}")
        if recurrent.dtype != head.dtype or recurrent.be.name != head.be.name:
            raise ValueError(f"head: expected the recurrent layer's backend/dtype "
                             f"({recurrent.be.name}/{recurrent.dtype}), got "
                             f"{head.be.name}/{head.dtype}")
        self.rnn, self.head, self.name = recurrent, head, name
        self.be, self.dtype = recurrent.be, recurrent.dtype
        self.per_image = hasattr(head, "num_classes")
        self.out_features = head.num_classes if self.per_image else head.out_features

    def init_params(self, rng) -> dict:
        params = {f"rnn.{k}": v for k, v in self.rnn.init_params(rng).items()}
        params.update({f"head.{k}": v for k, v in self.head.init_params(rng).items()})
        return params

    @staticmethod
    def _part(params, prefix):
        return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

    def forward(self, params: dict, x, *, sizes=None):
        """x (B, *S, C) -> y (B, *S, K) or logits (B, K), cache. ``sizes`` (B, n) ints: the
        samples' extents (layers and read-outs that support it; ValueError otherwise)."""
        kw = {}
        if sizes is not None:
            if not _takes_sizes(self.rnn.forward):
                raise ValueError(f"sizes: {type(self.rnn).__name__} does not take per-sample "
                                 f"sizes; pass sizes=None")
            kw["sizes"] = sizes
        h, c_rnn = self.rnn.forward(self._part(params, "rnn."), x, **kw)        # 1. (B, *S, F)
        head_kw = kw if self.per_image else {}
        y, c_head = self.head.forward(self._part(params, "head."), h, **head_kw)  # 2.
        return y, GridModelCache(c_rnn, c_head)

    def backward(self, dy, cache: GridModelCache):
        """dy like y -> dx (B, *S, C), grads (keys like params)."""
        dh, g_head = self.head.backward(dy, cache.head)                          # 2b.
        dx, g_rnn = self.rnn.backward(dh, cache.rnn)                             # 1b.
        grads = {f"rnn.{k}": v for k, v in g_rnn.items()}
        grads.update({f"head.{k}": v for k, v in g_head.items()})
        return dx, grads
def _inner_layer(rnn):
    """The MDLSTM doing the work: the SD baselines wrap one (``.lstm``), the multi-directional
    layer shares one (``.layer``)."""
    return getattr(rnn, "lstm", None) or getattr(rnn, "layer", None) or rnn


def model_settings(model) -> dict:
    """What identifies a :class:`~mdlstm_np.demo.models.Model` in a checkpoint: its
    name, layer class, sizes, cell and dtype (JSON-able)."""
    rnn = model.rnn
    layer = _inner_layer(rnn)
    cell = getattr(layer, "cell", None)
    return {"model": getattr(model, "name", "model"), "layer": type(rnn).__name__,
            "in_channels": getattr(rnn, "in_channels", None), "hidden": rnn.hidden,
            "ndim": getattr(layer, "ndim", None),
            "cell": getattr(cell, "name", type(cell).__name__ if cell is not None else None),
            "head": type(model.head).__name__, "dtype": model.dtype}


def sweep_name(model) -> str:
    """Which sweep runs the model's recurrent layer on its backend: "reference" or a fast one
    ("numba-graves", "cupy-graves", ...)."""
    cell = getattr(_inner_layer(model.rnn), "cell", None)
    if cell is None:
        return "unknown"
    return getattr(model.be.sweep_for(cell), "name", "unknown")


