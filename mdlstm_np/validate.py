"""Input checks shared by every public entry point.

Each error names the argument, what was expected and what came in, e.g.
``x: expected 4 dimensions (batch, *grid(2), channels), got shape (8, 8)``.
"""

from __future__ import annotations

import numbers

import numpy as np

DTYPES = ("float32", "float64")
DEFAULT_DTYPE = "float32"   # every layer's default: any two layers at their defaults compose


class NonFiniteError(FloatingPointError, ValueError):
    """NaN or inf where the engine needs finite numbers: an input (x, a params entry, h0, c0)
    given to a layer, or a layer's forward state or backward gradient (``MDLSTM.forward`` /
    ``backward`` check after the sweep: one reduction per pass, never a host synchronisation
    inside the sweep; the message names the layer, the cell, the first wavefront where it
    happened and what to do).

    A ValueError (a bad value came in) and a FloatingPointError (the arithmetic left the
    range), so one ``except NonFiniteError`` catches every case, e.g. a training loop that
    stops on divergence.
    """


def check_dtype_name(dtype, name="dtype") -> str:
    """``dtype`` as "float32" or "float64"; anything else is a TypeError."""
    s = str(getattr(dtype, "name", dtype))
    if s not in DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got {dtype!r}")
    return s


def check_positive_int(value, name, minimum=1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def check_grid_input(be, x, *, name="x", ndim, channels, dtype):
    """Check that ``x`` is a backend float array of shape (batch, *grid(ndim), channels).

    Returns ``x`` unchanged. Raises TypeError for a non-array or a wrong/non-float dtype and
    ValueError for a wrong shape or non-finite values.
    """
    if not be.is_array(x):
        raise TypeError(f"{name}: expected a {be.name} array, got {type(x).__name__}")
    got = be.dtype_name(x)
    if got not in DTYPES:
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {got}")
    if got != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the layer's dtype; no silent casts), "
                        f"got {got}")
    shape = tuple(x.shape)
    if len(shape) != ndim + 2:
        raise ValueError(f"{name}: expected {ndim + 2} dimensions (batch, *grid({ndim}), "
                         f"channels), got shape {shape}")
    if shape[-1] != channels:
        raise ValueError(f"{name}: expected {channels} channel(s) in the last axis, got shape "
                         f"{shape}")
    if any(s < 1 for s in shape):
        raise ValueError(f"{name}: expected every axis to have length >= 1, got shape {shape}")
    if not be.all_finite(x):
        raise NonFiniteError(f"{name}: expected finite values, got NaN or inf")
    return x


def check_array(be, a, *, name, shape, dtype):
    """Check that ``a`` is a backend array of exactly ``shape`` and ``dtype`` (no casts).

    Raises TypeError for a non-array or another dtype, ValueError for another shape.
    """
    if not be.is_array(a):
        raise TypeError(f"{name}: expected a {be.name} array, got {type(a).__name__}")
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(a.shape)}")
    if be.dtype_name(a) != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {be.dtype_name(a)}")
    return a


def check_finite(be, a, *, name):
    """NonFiniteError (a ValueError) naming ``name`` unless every element of ``a`` is finite
    (one reduction)."""
    if not be.all_finite(a):
        raise NonFiniteError(f"{name}: expected finite values, got NaN or inf")
    return a


def check_state(be, s, *, name, batch, hidden, dtype):
    """Check an initial state array of shape (batch, hidden), finite (None: no state given)."""
    if s is None:
        return None
    check_array(be, s, name=name, shape=(batch, hidden), dtype=dtype)
    return check_finite(be, s, name=name)


def check_finite_number(value, name) -> float:
    """A real, finite number (not a bool, not a string) -> float; else TypeError/ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a finite real number, got {type(value).__name__} "
                        f"{value!r}")
    if not np.isfinite(float(value)):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    return float(value)


def check_bool(value, name) -> bool:
    """True or False (numpy's bool too); anything else (1, "yes", None) is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_params(be, params, expected_shapes: dict, dtype, name="params"):
    """Check a parameter dict: same keys, and each entry a backend array of the shape and dtype
    ``init_params`` makes, with finite values (one reduction per array).

    Raises TypeError (not a dict, an entry that is not an array — a Python list — or of another
    dtype) and ValueError (missing or unexpected keys, another shape, NaN or inf), each naming
    the entry, what was expected and what came in.
    """
    if not isinstance(params, dict):
        raise TypeError(f"{name}: expected a dict of arrays, got {type(params).__name__}")
    missing = sorted(set(expected_shapes) - set(params))
    extra = sorted(set(params) - set(expected_shapes))
    if missing or extra:
        raise ValueError(f"{name}: expected keys {sorted(expected_shapes)}, missing {missing}, "
                         f"unexpected {extra}")
    for key, shape in expected_shapes.items():
        value = params[key]
        if not be.is_array(value):
            raise TypeError(f"{name}[{key!r}]: expected a {be.name} array of shape "
                            f"{tuple(shape)}, got {type(value).__name__}")
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"{name}[{key!r}]: expected shape {tuple(shape)}, got "
                             f"{tuple(value.shape)}")
        if be.dtype_name(value) != dtype:
            raise TypeError(f"{name}[{key!r}]: expected dtype {dtype}, got {be.dtype_name(value)}")
        check_finite(be, value, name=f"{name}[{key!r}]")
    return params


def check_sizes(sizes, batch: int, shape) -> np.ndarray:
    """Per-sample extents ``sizes`` (B, n) ints with 1 ≤ sizes[:, d] ≤ S_d -> host int64 array."""
    n = len(shape)
    host = np.asarray(sizes)
    if host.shape != (batch, n) or not np.issubdtype(host.dtype, np.integer):
        raise ValueError(f"sizes: expected an integer array of shape {(batch, n)}, got "
                         f"{host.dtype} {host.shape}")
    if (host < 1).any() or (host > np.asarray(shape)).any():
        raise ValueError(f"sizes: expected 1 <= sizes[:, d] <= {tuple(shape)}[d], got "
                         f"{host.min(axis=0).tolist()}..{host.max(axis=0).tolist()}")
    return host.astype(np.int64)


def check_rng(rng, name="rng"):
    """``rng`` must be a numpy.random.Generator (seeded by the caller, for reproducibility)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name}: expected a numpy.random.Generator, got {type(rng).__name__}")
    return rng



def check_lr(lr, name="lr") -> float:
    """A learning rate: a finite real > 0 (Python or numpy), returned as a Python float.
    Raises ValueError naming ``name`` otherwise."""
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not np.isfinite(lr) \
            or not lr > 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {lr!r}")
    return float(lr)
