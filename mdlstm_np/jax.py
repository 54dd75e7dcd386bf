"""JAX: an engine layer as a JAX function whose forward and backward are the engine's own
hand-derived passes. Needs the ``jax`` extra (``pip install "mdlstm_np[jax]"``).

    from mdlstm_np.jax import as_jax
    f = as_jax(MDLSTM(1, 8, dtype="float64"))          # also MultiDirectionalMDLSTM, SD layers
    out = f(params, x)                                  # params: the layer's dict, as jax arrays
    grads = jax.grad(lambda p: f(p, x).sum())(params)   # the engine's backward, not JAX's AD

How it runs. ``f`` is a ``jax.custom_vjp`` function. Its forward calls the layer's ``forward``
on the host through ``jax.pure_callback``; its backward calls the layer's ``backward`` the same
way, from the cache the forward kept (the cotangent of the output in, the gradients of x and of
every parameter out). Nothing of the MD-LSTM is differentiated by JAX, so ``jax.grad``,
``jax.vjp`` and ``jax.jit`` work and give the engine's gradients exactly (float64: equal to the
engine's to rounding, checked against finite differences by ``jax.test_util.check_grads``).
Higher-order derivatives are not available (the backward is not itself differentiable).

Caches. The forward keeps its cache (the layer's activations) host-side under an integer key
that travels to the backward as a residual; the last ``CACHE_SLOTS`` caches are kept, and a
backward whose cache is gone runs the forward once more: slower, never wrong.

Shapes and dtypes: x (B, *S, C) of the layer's dtype (float64 needs
``jax.config.update("jax_enable_x64", True)``), out (B, *S, H') of the same dtype; ``sizes``
(B, n) integers, a concrete host array (under ``jax.jit`` pass it as a static argument or
close over it). The layer must run on the CPU (backend "numpy" or "numba"): the callbacks
hand host arrays to the engine. Raises TypeError / ValueError naming the argument.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Callable

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError as e:  # the one module of the package that needs JAX
    raise ImportError('mdlstm_np.jax needs JAX, which is not installed: '
                      'pip install "mdlstm_np[jax]"') from e

__all__ = ["as_jax", "CACHE_SLOTS"]

CACHE_SLOTS = 8
_CACHES: "OrderedDict[int, object]" = OrderedDict()
_KEYS = itertools.count(1)


def _out_features(layer) -> int:
    return int(getattr(layer, "out_features", None) or layer.hidden)


def as_jax(layer) -> Callable:
    """``f(params, x, sizes=None) -> out`` running ``layer``'s forward and backward (see the
    module docstring). ``layer``: an engine layer on a CPU backend (MDLSTM,
    MultiDirectionalMDLSTM, HorizontalSDLSTM, SnakeSDLSTM, or anything with ``param_shapes``,
    ``forward(params, x, sizes=)`` and ``backward(dout, cache)``)."""
    if getattr(layer.be, "name", None) not in ("numpy", "numba"):
        raise ValueError(f"layer: expected a layer on a CPU backend (numpy or numba), got one on "
                         f"{getattr(layer.be, 'name', layer.be)!r}: the JAX callbacks hand host "
                         f"arrays to the engine")
    names = list(layer.param_shapes())
    dtype = np.dtype(layer.dtype)
    H = _out_features(layer)

    def host_forward(x, *params, sizes=None):
        kw = {} if sizes is None else {"sizes": sizes}  # the SD baselines take no sizes
        out, cache = layer.forward(dict(zip(names, (np.asarray(p) for p in params))),
                                   np.asarray(x), **kw)
        key = next(_KEYS)
        _CACHES[key] = cache
        while len(_CACHES) > CACHE_SLOTS:
            _CACHES.popitem(last=False)
        return np.ascontiguousarray(out, dtype=dtype), np.int32(key % 2 ** 31)

    def host_backward(dout, key, x, *params, sizes=None):
        cache = _CACHES.pop(int(key), None)
        if cache is None:  # more than CACHE_SLOTS forward calls since: recompute
            _, key = host_forward(x, *params, sizes=sizes)
            cache = _CACHES.pop(int(key))
        dx, grads = layer.backward(np.ascontiguousarray(dout, dtype=dtype), cache)
        return (np.ascontiguousarray(dx, dtype=dtype),
                *(np.ascontiguousarray(grads[k], dtype=dtype) for k in names))

    def shapes(x):
        out = jax.ShapeDtypeStruct((*x.shape[:-1], H), dtype)
        return out, jax.ShapeDtypeStruct((), np.int32)

    def call_forward(params, x, sizes):
        ps = [params[k] for k in names]
        return jax.pure_callback(lambda *a: host_forward(*a, sizes=sizes), shapes(x), x, *ps)

    def primal(params, x, sizes_key):
        return call_forward(params, x, _SIZES[sizes_key])[0]

    def apply_fwd(params, x, sizes_key):
        out, key = call_forward(params, x, _SIZES[sizes_key])
        return out, (key, params, x)

    def apply_bwd(sizes_key, residuals, dout):
        key, params, x = residuals
        ps = [params[k] for k in names]
        spec = (jax.ShapeDtypeStruct(x.shape, dtype),
                *(jax.ShapeDtypeStruct(tuple(params[k].shape), dtype) for k in names))
        dx, *dps = jax.pure_callback(
            lambda *a: host_backward(*a, sizes=_SIZES[sizes_key]), spec, dout, key, x, *ps)
        return dict(zip(names, dps)), dx

    apply = jax.custom_vjp(primal, nondiff_argnums=(2,))  # sizes: static, not differentiated
    apply.defvjp(apply_fwd, apply_bwd)

    def f(params, x, sizes=None):
        """out (B, *S, H') = the layer's forward; gradients by the layer's backward."""
        if not isinstance(params, dict) or sorted(params) != sorted(names):
            raise ValueError(f"params: expected a dict with keys {sorted(names)}, got "
                             f"{sorted(params) if isinstance(params, dict) else type(params)}")
        if jnp.result_type(x) != dtype:
            raise TypeError(f"x: expected dtype {dtype} (the layer's; no silent casts), got "
                            f"{jnp.result_type(x)}")
        for k in names:
            if jnp.result_type(params[k]) != dtype:
                raise TypeError(f"params[{k!r}]: expected dtype {dtype}, got "
                                f"{jnp.result_type(params[k])}")
        return apply(params, x, _sizes_key(sizes))

    f.layer = layer
    return f


# sizes travel as a hashable key (a static argument of the custom_vjp): concrete host values
_SIZES = {None: None}


def _sizes_key(sizes):
    if sizes is None:
        return None
    try:
        host = np.asarray(sizes)
    except Exception as e:  # a traced array under jit
        raise TypeError("sizes: expected a concrete host array (under jax.jit pass it as a "
                        "static argument or close over it), got a traced value") from e
    if not np.issubdtype(host.dtype, np.integer):
        raise TypeError(f"sizes: expected integers, got {host.dtype}")
    key = (host.shape, tuple(host.reshape(-1).tolist()))
    _SIZES.setdefault(key, host.astype(np.int64))
    return key
