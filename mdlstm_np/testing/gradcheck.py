"""Finite-difference gradient checks (float64), the way every backward pass here is verified.

Two checks, both central differences:

* ``numerical_gradient``: per element, with the fourth-order central stencil

      f'(x) ≈ [ -f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h) ] / (12 h)      error O(h⁴)

* ``directional_check``: for bigger cases, one random unit direction v through *all* arrays at
  once: the analytic  Σ ⟨∂f/∂θ, v_θ⟩  against the same stencil along v.

Choosing h. Two errors compete: truncation (≈ h⁴ |f⁽⁵⁾| / 30) and rounding (≈ 18 ε |f| / 12h,
ε = 2.2e-16). A bias b feeds every cell of the grid, so f⁽⁵⁾ along b can be large: at h = 1e-3
we measured truncation errors of 6e-4 on gradients of size 90 (3-D grid, 72 cells·samples).
At h = 1e-4 truncation is negligible and rounding is ~1e-10 for |f| ~ 100.

Relative error of one element: |a − n| / max(|a| + |n|, floor), where

    floor = max(1e-6, rel_floor · g_max),   g_max = the largest |analytic gradient| of the check,
    rel_floor = 1e-3 by default.

An element whose gradient is below a thousandth of the largest one is thus compared on that
scale rather than on its own: no double-precision difference quotient can resolve it better
(rounding alone is ~1e-10 absolute), and without the floor it would turn rounding noise into a
huge ratio. For every other element this is the plain relative error.

A vector output is turned into a scalar with a fixed random projection
``loss = Σ out ⊙ w`` (Karpathy's trick), so ``dout = w``.
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

STENCIL = ((-2, 1.0), (-1, -8.0), (1, 8.0), (2, -1.0))  # (offset in h, weight), / (12 h)


def _stencil(f: Callable[[], float], arr: np.ndarray, i, h: float) -> float:
    old = arr[i]
    total = 0.0
    for k, w in STENCIL:
        arr[i] = old + k * h
        total += w * f()
    arr[i] = old
    return total / (12.0 * h)


def numerical_gradient(f: Callable[[], float], arrays: Dict[str, np.ndarray], h=1e-4):
    """Per-element gradient of the scalar ``f()`` with respect to each numpy array in ``arrays``.

    ``f`` must read the arrays (they are perturbed in place and restored).
    Returns a dict of arrays shaped like ``arrays``.
    """
    out = {}
    for name, arr in arrays.items():
        if arr.dtype != np.float64:
            raise TypeError(f"arrays[{name!r}]: gradient checks need float64, got {arr.dtype}")
        g = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            g[i] = _stencil(f, arr, i, h)
        out[name] = g
    return out


def relative_error(analytic, numeric, floor=1e-6) -> float:
    """max |a − n| / max(|a| + |n|, floor) over all elements (0.0 for empty arrays)."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic: expected shape {n.shape}, got {a.shape}")
    if a.size == 0:
        return 0.0
    err = np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), floor)
    return float(err.max())


def check_gradients(f, arrays, analytic, h=1e-4, floor=1e-6, rel_floor=1e-3) -> Dict[str, float]:
    """Per-element check: ``{name: max relative error}`` for every array in ``arrays``.

    The floor is ``max(floor, rel_floor · g_max)`` (see the module docstring).
    """
    numeric = numerical_gradient(f, arrays, h)
    g_max = max((float(np.abs(np.asarray(analytic[k])).max(initial=0.0)) for k in arrays),
                default=0.0)
    floor = max(floor, rel_floor * g_max)
    return {k: relative_error(analytic[k], numeric[k], floor) for k in arrays}


def directional_check(f, arrays, analytic, rng: np.random.Generator, h=1e-4):
    """One random unit direction through all arrays: (analytic, numeric, relative error)."""
    dirs = {k: rng.standard_normal(a.shape) for k, a in arrays.items()}
    norm = np.sqrt(sum(float((d * d).sum()) for d in dirs.values())) or 1.0
    dirs = {k: d / norm for k, d in dirs.items()}
    originals = {k: a.copy() for k, a in arrays.items()}
    total = 0.0
    for k, w in STENCIL:
        for name, a in arrays.items():
            a[...] = originals[name] + k * h * dirs[name]
        total += w * f()
    for name, a in arrays.items():
        a[...] = originals[name]
    numeric = total / (12.0 * h)
    exact = float(sum((np.asarray(analytic[k]) * dirs[k]).sum() for k in arrays))
    rel = abs(exact - numeric) / max(abs(exact) + abs(numeric), 1e-6)
    return exact, numeric, rel


def check_layer(layer, params: dict, x, rng: np.random.Generator, *, mode="element",
                h=1e-4, floor=1e-6, rel_floor=1e-3, **forward_kwargs) -> Dict[str, float]:
    """Check ``layer.backward`` against finite differences of ``layer.forward``.

    Works for anything with ``forward(params, x, **kw) -> (out, cache)`` and
    ``backward(dout, cache) -> (dx, dparams)`` (layers, heads, models) on a float64 backend.
    The scalar is the random projection ``L = Σ out ⊙ w``.

    mode : "element" (every element of every parameter and of x; small cases) or
           "direction" (one random unit direction through all of them; larger cases).
    Returns ``{name: max relative error}`` ("x" for the input), or ``{"direction": err}``.
    """
    be = layer.be
    host = {k: np.array(be.to_numpy(v), dtype=np.float64) for k, v in params.items()}
    host["x"] = np.array(be.to_numpy(x), dtype=np.float64)

    def run(arrs):
        device_params = {k: be.asarray(arrs[k], dtype="float64") for k in params}
        x = be.asarray(arrs["x"], dtype="float64")
        return layer.forward(device_params, x, **forward_kwargs)

    out, cache = run(host)
    w_host = rng.standard_normal(tuple(out.shape))
    w = be.asarray(w_host, dtype="float64")
    dx, grads = layer.backward(w, cache)
    analytic = {k: be.to_numpy(v) for k, v in grads.items()}
    analytic["x"] = be.to_numpy(dx)

    def f():
        return float(np.sum(be.to_numpy(run(host)[0]) * w_host))

    if mode == "element":
        return check_gradients(f, host, analytic, h=h, floor=floor, rel_floor=rel_floor)
    if mode == "direction":
        return {"direction": directional_check(f, host, analytic, rng, h=h)[2]}
    raise ValueError(f"mode: expected 'element' or 'direction', got {mode!r}")
