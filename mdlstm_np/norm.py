"""Layer normalisation over the last axis, forward and hand-derived backward (Ba et al. 2016).

Notation. a is one vector of H numbers (the last axis); every leading axis is a batch of
independent vectors. gain and shift are (…, H) and broadcast against the trailing axes of a,
so one call normalises, e.g., all n + 3 gate blocks of a wavefront, each with its own gain row.

Forward:

    1.  μ = mean(a)                       (…, 1)
    2.  u = a − μ                         (…, H)  centred
    3.  v = mean(u²)                      (…, 1)  variance, as mean((a − μ)²), never E[a²] − μ²
    4.  s = sqrt(v + κ)                   (…, 1)  κ > 0 inside the square root
    5.  â = u / s                         (…, H)
    6.  y = â ⊙ gain + shift              (…, H)

κ is the seed's ε = 1e-5 in the seed's cell, and τ² = 1 in our fixed cell (``cells/layernorm.py``
explains why that is the whole fix).

Backward. Given dy = ∂L/∂y:

    6'. dgain = Σ_batch dy ⊙ â      dshift = Σ_batch dy      dâ = dy ⊙ gain
    5'. du  = dâ / s                ds = −Σ_H dâ ⊙ u / s² = −H · mean(dâ ⊙ â) / s
    4'. dv  = ds / (2 s)
    3'. du += dv · 2u / H
    2'. da  = du − mean(du)         (centring: shifting all of a by a constant changes nothing)
    1'. (μ has no other use; folded into 2b)

Collecting: du = (dâ − â · mean(dâ ⊙ â)) / s, and since mean(â) = 0,

    da = (dâ − mean(dâ) − â · mean(dâ ⊙ â)) / s                                    (★)

As a matrix, ∂â/∂a = (1/s) (P − â âᵀ / H) with P = I − 11ᵀ/H the centring projection. It is
symmetric; its eigenvalues are 0 (along 1), 1/s (on 1⊥ ∩ â⊥) and (1 − |â|²/H)/s (along â),
so its operator norm is exactly 1/s ≤ 1/√κ. That bound is the quantity that matters for the
zero-input problem: a constant (zero-variance) vector gets the full amplification 1/√κ.

Array code uses only array-API-standard calls on ``xp`` (no numpy import).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Tuple


class LNCache(NamedTuple):
    """What :func:`layer_norm_backward` needs (stored, never recomputed)."""

    a_hat: Any   # (…, H) the normalised vector â = (a − μ)/s
    inv_s: Any   # (…, 1) 1 / s
    gain: Any    # (…, H) the gain used in the forward pass (trailing axes of a)


def layer_norm(xp, a, gain, shift, kappa: float) -> Tuple[Any, LNCache]:
    """a (…, H) -> y (…, H) = (a − mean) / sqrt(var + κ) ⊙ gain + shift, cache.

    gain, shift : arrays broadcasting against the trailing axes of a, e.g. (H,) or (K, H).
    kappa       : κ > 0, added to the variance inside the square root.
    """
    mu = xp.mean(a, axis=-1, keepdims=True)  # 1.
    u = a - mu  # 2. (…, H)
    var = xp.mean(u * u, axis=-1, keepdims=True)  # 3. (…, 1)
    inv_s = 1.0 / xp.sqrt(var + kappa)  # 4.
    a_hat = u * inv_s  # 5.
    y = a_hat * gain + shift  # 6.
    return y, LNCache(a_hat, inv_s, gain)


def layer_norm_backward(xp, dy, cache: LNCache):
    """dy (…, H) -> da (…, H), dgain, dshift (shaped like gain, summed over the batch axes)."""
    a_hat, inv_s, gain = cache.a_hat, cache.inv_s, cache.gain
    lead = tuple(range(dy.ndim - gain.ndim))  # the axes gain was broadcast over
    dgain = xp.sum(dy * a_hat, axis=lead)  # 6'.
    dshift = xp.sum(dy, axis=lead)
    d_hat = dy * gain  # 6'. dâ
    mean_d = xp.mean(d_hat, axis=-1, keepdims=True)  # 2'. centring
    mean_dh = xp.mean(d_hat * a_hat, axis=-1, keepdims=True)  # 5'-3'. through s
    da = (d_hat - mean_d - a_hat * mean_dh) * inv_s  # (★)
    return da, dgain, dshift
