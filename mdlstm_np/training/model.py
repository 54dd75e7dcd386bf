"""A model is layers composed in order, over one flat parameter dict.

    x ──layer 1──▶ h₁ ──layer 2──▶ h₂ ⋯ ──layer L──▶ y
    forward:  h_ℓ, cache_ℓ = layer_ℓ.forward(θ_ℓ, h_{ℓ−1} [, sizes_ℓ])        ℓ = 1 … L
    backward: dh_{ℓ−1}, dθ_ℓ = layer_ℓ.backward(dh_ℓ, cache_ℓ)               ℓ = L … 1

Every model of the package is one: the seed's three (a recurrent layer and a per-cell sigmoid
``Dense``), the grid models of :func:`~mdlstm_np.fit` (a recurrent layer and a linear ``Dense``
or a read-out) and the hierarchical MDRNN of the lines task (subsampling, two MD-LSTM levels,
a tanh ``Dense``, the vertical collapse and a linear ``Dense``).

Parameter names: ``"<layer name>.<key>"`` for every layer's ``init_params`` key, e.g.
``"rnn.W"``, ``"head.V"`` or ``"rnn1.d0.U"``; a layer without parameters adds none. Names are
given with ``names=``; two layers default to ("rnn", "head"), more to ("l0", "l1", …).

Variable sizes: ``sizes`` (B, n) host ints, the samples' extents, are handed to every layer
whose ``forward`` takes ``sizes`` and carried through each layer's ``out_sizes`` (a block
subsampling divides them, a read-out ends them); a model whose first layer cannot take them
refuses them (ValueError).
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple, Tuple

import numpy as np


class ModelCache(NamedTuple):
    caches: tuple     # one cache per layer, in forward order
    sizes: tuple      # the sizes each layer was given (None where it got none)


def _takes_sizes(method) -> bool:
    try:
        return "sizes" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def in_width(layer):
    """The width of a layer's input's last axis, or None when it takes any."""
    for name in ("in_features", "in_channels"):
        if isinstance(getattr(layer, name, None), int):
            return getattr(layer, name)
    return None


def out_width(layer):
    """The width of a layer's output's last axis (class scores for a read-out), or None when
    it depends on the input (a block subsampling, the collapse)."""
    for name in ("num_classes", "out_features", "hidden"):
        if isinstance(getattr(layer, name, None), int):
            return getattr(layer, name)
    return None


def _default_names(n):
    return ("rnn", "head") if n == 2 else tuple(f"l{i}" for i in range(n))


class Model:
    """Layers composed in order (see the module docstring).

    layers : the layers, each with ``init_params(rng)``, ``forward(params, x[, sizes])``,
             ``backward(dout, cache) -> (dx, grads)``, ``be`` and ``dtype`` (every layer of the
             package; all default to float32 on numpy, so layers at their defaults compose)
    names  : one distinct name per layer without "." (default: see the module docstring)
    name   : the model's name in messages, progress bars and checkpoints

    Attributes: ``layers`` (tuple), ``names``, ``name``, ``be``, ``dtype``, ``per_image`` (the
    last layer is a read-out giving (B, K) class scores), ``out_features`` (K), and each layer
    as an attribute of its name (``model.rnn``, ``model.head``).
    Raises ValueError when a layer's input width is not its predecessor's output width, or
    when the layers' backends or dtypes differ; TypeError for something that is not a layer.
    """

    def __init__(self, *layers, names=None, name: str = "model"):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("layers: expected at least one layer, got none")
        for i, layer in enumerate(layers):
            missing = [a for a in ("init_params", "forward", "backward", "be", "dtype")
                       if not hasattr(layer, a)]
            if missing:
                raise TypeError(f"layers[{i}]: expected a layer (init_params, forward, "
                                f"backward, be, dtype), got {type(layer).__name__} without "
                                f"{', '.join(missing)}")
        names = _default_names(len(layers)) if names is None else tuple(names)
        if len(names) != len(layers) or len(set(names)) != len(names) or not all(
                isinstance(n, str) and n and "." not in n for n in names):
            raise ValueError(f"names: expected {len(layers)} distinct non-empty strings "
                             f"without '.', got {names!r}")
        first = layers[0]
        for i in range(1, len(layers)):
            prev, layer = layers[i - 1], layers[i]
            what = "the recurrent layer's" if hasattr(prev, "hidden") else f"{names[i - 1]}'s"
            want, got = out_width(prev), in_width(layer)
            if want is not None and got is not None and want != got:
                raise ValueError(f"{names[i]}: expected in_features == {what} output width "
                                 f"({want}), got {got}")
            if layer.dtype != prev.dtype or layer.be.name != prev.be.name:
                raise ValueError(f"{names[i]}: expected {what} backend/dtype "
                                 f"({prev.be.name}/{prev.dtype}), got "
                                 f"{layer.be.name}/{layer.dtype}")
        self.layers, self.names, self.name = tuple(layers), names, name
        self.takes_sizes = tuple(_takes_sizes(layer.forward) for layer in layers)  # once
        self.be, self.dtype = first.be, first.dtype
        last = layers[-1]
        self.per_image = hasattr(last, "num_classes")
        self.out_features = out_width(last)

    def __getattr__(self, key):
        names = self.__dict__.get("names", ())
        if key in names:
            return self.__dict__["layers"][names.index(key)]
        raise AttributeError(f"{type(self).__name__} has no attribute or layer {key!r}")

    def __repr__(self):
        inner = ", ".join(f"{n}={type(l).__name__}" for n, l in zip(self.names, self.layers))
        return f"Model({inner}, name={self.name!r})"

    # ------------------------------------------------------------------ parameters
    def part(self, params: dict, name: str) -> dict:
        """The parameters of layer ``name``, its prefix removed."""
        pre = name + "."
        return {k[len(pre):]: v for k, v in params.items() if k.startswith(pre)}

    def param_shapes(self) -> dict:
        return {f"{n}.{k}": s for n, layer in zip(self.names, self.layers)
                for k, s in (layer.param_shapes() if hasattr(layer, "param_shapes")
                             else {}).items()}

    def init_params(self, rng) -> dict:
        """Each layer's own initialisation, in layer order, from one ``numpy.random.Generator``."""
        params = {}
        for n, layer in zip(self.names, self.layers):
            params.update({f"{n}.{k}": v for k, v in layer.init_params(rng).items()})
        return params

    # ------------------------------------------------------------------ sizes
    def layer_sizes(self, sizes):
        """The sizes each layer gets (a tuple, None where none) and those of the output."""
        if sizes is not None and not self.takes_sizes[0]:
            raise ValueError(f"sizes: {type(self.layers[0]).__name__} does not take per-sample "
                             f"sizes; pass sizes=None")
        out = []
        s = None if sizes is None else np.asarray(sizes)
        for layer, takes in zip(self.layers, self.takes_sizes):
            out.append(s if takes else None)
            if s is not None:
                if hasattr(layer, "num_classes"):
                    s = None                                 # a read-out: no grid left
                elif hasattr(layer, "out_sizes"):
                    s = np.asarray(layer.out_sizes(s))
        return tuple(out), s

    def out_sizes(self, sizes):
        """The output's sizes for input ``sizes`` (e.g. the sequence lengths after a collapse)."""
        return self.layer_sizes(sizes)[1]

    # ------------------------------------------------------------------ forward, backward
    def forward(self, params: dict, x, sizes=None) -> Tuple[Any, ModelCache]:
        """x (B, *S, C) backend array -> the last layer's output, cache. ``sizes`` (B, n) ints
        or None (see the module docstring)."""
        per_layer, _ = self.layer_sizes(sizes)
        caches = []
        h = x
        for n, layer, s in zip(self.names, self.layers, per_layer):
            kw = {} if s is None else {"sizes": s}
            h, c = layer.forward(self.part(params, n), h, **kw)         # ℓ.
            caches.append(c)
        return h, ModelCache(tuple(caches), per_layer)

    def backward(self, dy, cache: ModelCache):
        """dy (like the output) -> dx (like x), grads (keys like params)."""
        if not isinstance(cache, ModelCache) or len(cache.caches) != len(self.layers):
            raise TypeError(f"cache: expected the ModelCache of this model's forward, got "
                            f"{type(cache).__name__}")
        parts = []
        d = dy
        for n, layer, c in zip(reversed(self.names), reversed(self.layers),
                               reversed(cache.caches)):
            d, g = layer.backward(d, c)                                  # ℓ'.
            parts.append({f"{n}.{k}": v for k, v in g.items()})
        grads = {}
        for g in reversed(parts):                                        # in parameter order
            grads.update(g)
        return d, grads


    def predict(self, params: dict, X, sizes=None, *, batch: int = 256):
        """Outputs of ``X`` in minibatches of ``batch`` samples, as a host numpy array.

        params : {name: array}, host or backend arrays (moved to the model's backend and dtype)
        X      : (N, *S, C) host or backend array; sizes (N, n) host ints or None
        Returns (N, *S, K) per-cell outputs, (N, K) class scores, or what the last layer gives
        (the lines model: (T, N, K) log-probabilities, batches joined on the N axis).
        """
        be = self.be
        if not hasattr(X, "shape") or len(X.shape) < 2:
            raise ValueError(f"X: expected an array (N, *S, C), got "
                             f"{getattr(X, 'shape', type(X).__name__)}")
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ValueError(f"batch: expected a positive int, got {batch!r}")
        device = {k: be.asarray(v, self.dtype) for k, v in params.items()}
        axis = getattr(self.layers[-1], "batch_axis", 0)   # time-first outputs say 1
        outs = []
        for i in range(0, X.shape[0], batch):
            kw = {} if sizes is None else {"sizes": np.asarray(sizes)[i:i + batch]}
            y, _ = self.forward(device, be.asarray(X[i:i + batch], self.dtype), **kw)
            outs.append(be.to_numpy(y))
        return np.concatenate(outs, axis=axis)


def _inner_layer(rnn):
    """The MDLSTM doing the work: the SD baselines wrap one (``.lstm``), the multi-directional
    layer shares one (``.layer``)."""
    return getattr(rnn, "lstm", None) or getattr(rnn, "layer", None) or rnn


def recurrent_layer(model):
    """The model's first recurrent layer (one with a ``hidden`` size), or None."""
    return next((layer for layer in model.layers if hasattr(layer, "hidden")), None)


def model_settings(model) -> dict:
    """What identifies a model in a checkpoint: its name, its first recurrent layer's class,
    sizes and cell, its head's class and its dtype (JSON-able)."""
    rnn = recurrent_layer(model)
    layer = _inner_layer(rnn) if rnn is not None else None
    cell = getattr(layer, "cell", None)
    return {"model": getattr(model, "name", "model"), "layer": type(rnn).__name__,
            "in_channels": getattr(rnn, "in_channels", None),
            "hidden": getattr(rnn, "hidden", None), "ndim": getattr(layer, "ndim", None),
            "cell": getattr(cell, "name", type(cell).__name__ if cell is not None else None),
            "head": type(model.layers[-1]).__name__, "dtype": model.dtype}


def sweep_name(model) -> str:
    """Which sweep runs the model's recurrent layer on its backend: "reference" or a fast one
    ("numba-graves", "cupy-graves", ...)."""
    rnn = recurrent_layer(model)
    cell = getattr(_inner_layer(rnn), "cell", None) if rnn is not None else None
    if cell is None:
        return "unknown"
    return getattr(model.be.sweep_for(cell), "name", "unknown")
