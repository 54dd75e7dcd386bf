"""Keras 3 layers around the engine: ``MDLSTM`` and ``MultiDirectionalMDLSTM`` in
``keras.Sequential`` and functional models, trained by ``model.fit``, saved in ``.keras``
files. Needs the ``keras`` extra (``pip install "mdlstm_np[keras]"``) and one Keras backend:
torch or JAX (``KERAS_BACKEND=torch`` or ``jax``; TensorFlow where it is installed).

    import keras
    from mdlstm_np.keras import MDLSTM
    model = keras.Sequential([keras.Input((8, 8, 1)), MDLSTM(16, ln=True),
                              keras.layers.Dense(1, activation="sigmoid")])   # the seed's MD_LSTM

Keras's convention: the layer takes ``units`` (H, per direction) and finds its input channels
C when it is built; every other option is the engine layer's (``cell``, ``peepholes``, ``ln``,
``forget_bias``, ``ndim``; ``combine``, ``directions`` for the multi-directional layer). The
weights are the engine's parameters under the engine's names, "." written "_" as in
``mdlstm_np.torch`` ("W", "U", "b", "d0_W", ...; the same shapes and gate order), drawn by the
engine's ``init_params`` from ``seed``; ``layer.engine_weights`` maps the engine's own names.

How a call runs: the engine's own forward and hand-derived backward, never Keras's autodiff of
the MD-LSTM. On the torch backend through the torch bridge's autograd Function
(``mdlstm_np.torch``), on JAX through ``mdlstm_np.jax.as_jax`` (``jax.custom_vjp``), on
TensorFlow through ``tf.numpy_function`` inside ``tf.custom_gradient``. The engine runs on the
CPU ("numba" when installed, else "numpy"; ``engine_backend`` to choose), in the layer's
compute dtype (float32 or float64). Inputs (B, *S, C), outputs (B, *S, H) or (B, *S, 2ⁿ·H).
"""

from __future__ import annotations

import numpy as np

try:
    import keras
except ImportError as e:  # the one module of the package that needs Keras
    raise ImportError('mdlstm_np.keras needs Keras 3, which is not installed: '
                      'pip install "mdlstm_np[keras]"') from e

from .backends import get_backend, numba_available
from .mdlstm import MDLSTM as EngineMDLSTM
from .multidir import MultiDirectionalMDLSTM as EngineMultiDir

__all__ = ["MDLSTM", "MultiDirectionalMDLSTM"]

ENGINE_BACKENDS = ("auto", "numpy", "numba")


class _EngineLayer(keras.layers.Layer):
    """What both layers share: build from the input's channels, the engine's weights, and the
    per-backend call (see the module docstring)."""

    engine_class = None

    def __init__(self, units, ndim=2, *, engine_backend="auto", seed=0, **options):
        self._engine_options = dict(options)
        layer_kwargs = {k: options.pop(k) for k in list(options)
                        if k in ("name", "dtype", "trainable", "autocast")}
        self._engine_options = options
        super().__init__(**layer_kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"units: expected an integer >= 1, got {units!r}")
        if engine_backend not in ENGINE_BACKENDS:
            raise ValueError(f"engine_backend: expected one of {', '.join(ENGINE_BACKENDS)}, "
                             f"got {engine_backend!r}")
        self.units, self.ndim, self.engine_backend, self.seed = units, ndim, engine_backend, seed
        self.engine = None

    def _engine(self, channels):
        backend = self.engine_backend
        if backend == "auto":
            backend = "numba" if numba_available() else "numpy"
        return self.engine_class(channels, self.units, self.ndim, **self._engine_options,
                                 backend=get_backend(backend), dtype=self.compute_dtype)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("input_shape: the channel axis (last) must be known to build the "
                             "layer")
        if len(input_shape) != self.ndim + 2:
            raise ValueError(f"input_shape: expected (batch, {self.ndim} grid axes, channels), "
                             f"got {tuple(input_shape)}")
        self.engine = self._engine(int(channels))
        values = self.engine.init_params(np.random.default_rng(self.seed))
        self.engine_weights = {}
        for name, value in values.items():
            self.engine_weights[name] = self.add_weight(
                name=name.replace(".", "_"), shape=tuple(value.shape), dtype=self.compute_dtype,
                initializer=keras.initializers.Constant(np.asarray(value)))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self._out_features())

    def _out_features(self):
        if self.engine is not None:
            return int(getattr(self.engine, "out_features", None) or self.units)
        return self.units

    def call(self, x):
        backend = keras.backend.backend()
        names = list(self.engine.param_shapes())
        weights = [self.engine_weights[k] for k in names]
        if backend == "torch":
            from .torch import CPUBridge, EngineFunction

            params = [w.value for w in weights]
            return EngineFunction.apply(self.engine, CPUBridge(), names, None, x, *params)
        if backend == "jax":
            if not hasattr(self, "_jax_fn"):
                from .jax import as_jax

                self._jax_fn = as_jax(self.engine)
            return self._jax_fn({k: w.value for k, w in zip(names, weights)}, x)
        if backend == "tensorflow":
            return _tensorflow_call(self.engine, names, x, [w.value for w in weights])
        raise ValueError(f"KERAS_BACKEND: expected torch, jax or tensorflow, got {backend!r}")

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, ndim=self.ndim, engine_backend=self.engine_backend,
                      seed=self.seed, **self._engine_options)
        return config


def _tensorflow_call(engine, names, x, params):
    """The engine's passes as a TensorFlow op: tf.numpy_function in tf.custom_gradient."""
    import tensorflow as tf

    dtype = x.dtype
    caches = {}

    @tf.custom_gradient
    def op(x, *params):
        def forward(xv, *pv):
            out, cache = engine.forward(dict(zip(names, pv)), xv)
            caches["last"] = cache
            return np.ascontiguousarray(out)

        out = tf.numpy_function(forward, [x, *params], dtype)
        out.set_shape((*x.shape[:-1], int(getattr(engine, "out_features", None) or
                                          engine.hidden)))

        def grad(dout):
            def backward(dv):
                dx, grads = engine.backward(np.ascontiguousarray(dv), caches.pop("last"))
                return (np.ascontiguousarray(dx), *(np.ascontiguousarray(grads[k])
                                                    for k in names))

            outs = tf.numpy_function(backward, [dout], [dtype] * (1 + len(names)))
            return outs[0], outs[1:]

        return out, grad

    return op(x, *params)


@keras.saving.register_keras_serializable(package="mdlstm_np")
class MDLSTM(_EngineLayer):
    """``mdlstm_np.MDLSTM`` as a Keras layer: (B, *S, C) -> (B, *S, units).

    units: H; ndim: grid axes (2); options: the engine layer's (cell, peepholes, ln,
    forget_bias); engine_backend: "auto" (numba, else numpy), "numpy" or "numba"; seed: the
    initial weights' (the engine's init_params). Raises ValueError naming a bad argument.
    """

    engine_class = EngineMDLSTM


@keras.saving.register_keras_serializable(package="mdlstm_np")
class MultiDirectionalMDLSTM(_EngineLayer):
    """``mdlstm_np.MultiDirectionalMDLSTM`` as a Keras layer: (B, *S, C) -> (B, *S, 2ⁿ·units)
    (combine="concat") or (B, *S, units) (combine="sum"). Options as for :class:`MDLSTM`, plus
    combine and directions."""

    engine_class = EngineMultiDir

    def _out_features(self):
        if self.engine is not None:
            return int(self.engine.out_features)
        combine = self._engine_options.get("combine", "concat")
        return self.units * (2 ** self.ndim if combine == "concat" else 1)
