"""numba kernels for the Graves MD-LSTM sweep: the whole wavefront loop in one jitted function.

These are ``sweep_forward`` / ``sweep_backward`` (``mdlstm.py``) with ``GravesCell``
(``cells/graves.py``) written out as scalar loops. The numbered comments are the reference's,
so the two can be read side by side:

    forward, per wavefront s, per cell p of it, per sample:
        1b.  z = zx(p) + Σ_d h(p⁻_d) U_d
        2.   i, f_d, o = σ(z_i, z_fd, z_o)      g = tanh(z_g)
        3.   c = i ⊙ g + Σ_d f_d ⊙ c(p⁻_d)
        4.   h = o ⊙ tanh(c)
        5.   h, c = m ⊙ h, m ⊙ c                 (m = 1 without a sizes mask)
    backward, s = last … 0, pulling from the successors p⁺_d (no scatter):
        1b-b. dh = dout(p) + Σ_d [dz(p⁺_d) Uᵀ]_d      dc = Σ_d dc(p⁺_d) ⊙ f_d(p⁺_d)
        5b.  dh, dc = m ⊙ dh, m ⊙ dc
        4b.  do = dh ⊙ tanh(c)      dc += dh ⊙ o ⊙ (1 − tanh²(c))
        3b.  di = dc ⊙ g   dg = dc ⊙ i   df_d = dc ⊙ c(p⁻_d)   (dc(p⁻_d) = dc ⊙ f_d: pulled)
        2b.  dz_{i,f,o} = d{i,f,o} ⊙ σ(1 − σ)      dz_g = dg ⊙ (1 − g²)

Why one function for the whole sweep: at 8×8 a wavefront holds ≤ 8 cells, and any Python
work per wavefront (a BLAS call, a dispatch) costs more than its arithmetic. The recurrent
products are written as loops (``z[:] += h_k · U[k, :]``, contiguous, auto-vectorised): numba's
``np.dot`` would need SciPy, and these matrices are small (U is (n·H, G), ≤ 40 kB at H = 32).

Why not pull the dh share as a matrix product in a separate pass: the reference computes
dh_prev = dz Uᵀ for a whole wavefront and gathers it at s − 1. Here each cell pulls
Σ_g dz(p⁺_d)[g] Uᵀ[g, d-block] directly, the same sum, so no (N, B, n·H) buffer is needed.

Parallelism: samples are independent, so the batch is split into ``nparts`` chunks and each
thread runs the whole sweep for its chunk (``prange`` over chunks, nothing shared but reads).

tanh. libm's scalar tanh costs ~30 ns here and is not vectorised; the gates need (n + 3)·H
of them per cell and sample. ``_tanh`` below is exact to a few ulp in both float32 and float64
(tested against numpy): an odd Taylor series for |x| < 1/8, else (E − 1)/(E + 1) with
E = e^{2|x|} = 2^k · e^r (Cody–Waite reduction, |r| ≤ ln2/2, degree-13 Taylor polynomial).
Only arithmetic and a select, so LLVM vectorises the gate loops. σ(x) = tanh(x/2)/2 + 1/2 as
in ``Backend.sigmoid``. Every constant goes through ``_like`` so float32 stays float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import overload


def _like(x, v):
    """The number ``v`` in the float type of ``x`` (pure Python; jitted through the overload)."""
    return type(x)(v)


@overload(_like)
def _like_jit(x, v):
    if x == types.float32:
        return lambda x, v: np.float32(v)
    return lambda x, v: np.float64(v)


# tanh x = x − x³/3 + 2x⁵/15 − 17x⁷/315 + 62x⁹/2835 − 1382x¹¹/155925 + 21844x¹³/6081075 − …
_T3, _T5, _T7 = -1.0 / 3.0, 2.0 / 15.0, -17.0 / 315.0
_T9, _T11, _T13, _T15 = 62.0 / 2835.0, -1382.0 / 155925.0, 21844.0 / 6081075.0, \
    -929569.0 / 638512875.0
_LN2_HI, _LN2_LO = 0.693359375, -2.12194440054690582768e-4   # ln 2 = HI + LO, k·HI exact
_INV_LN2 = 1.4426950408889634
_AMAX = 40.0    # 2|x| clamp: tanh = ±1 in float64 beyond |x| ≈ 19.1


@njit(cache=True, inline="always", error_model="numpy")
def _tanh(x):
    """tanh(x) in the float type of x, a few ulp from libm's (see the module docstring)."""
    one = _like(x, 1.0)
    ax = abs(x)
    x2 = ax * ax
    small = ax * (one + x2 * (_like(x, _T3) + x2 * (_like(x, _T5) + x2 * (
        _like(x, _T7) + x2 * (_like(x, _T9) + x2 * (_like(x, _T11) + x2 * (
            _like(x, _T13) + x2 * _like(x, _T15))))))))
    a = min(ax + ax, _like(x, _AMAX))
    kf = np.floor(a * _like(x, _INV_LN2) + _like(x, 0.5))
    r = (a - kf * _like(x, _LN2_HI)) - kf * _like(x, _LN2_LO)  # e^a = 2^k e^r, |r| ≤ ln2/2
    p = one + r * (one + r * (_like(x, 1 / 2) + r * (_like(x, 1 / 6) + r * (
        _like(x, 1 / 24) + r * (_like(x, 1 / 120) + r * (_like(x, 1 / 720) + r * (
            _like(x, 1 / 5040) + r * (_like(x, 1 / 40320) + r * (
                _like(x, 1 / 362880) + r * (_like(x, 1 / 3628800) + r * (
                    _like(x, 1 / 39916800) + r * (_like(x, 1 / 479001600) + r * _like(
                        x, 1 / 6227020800)))))))))))))
    two_k = one  # 2^k by its binary digits (k ≤ 58): selects only, so it vectorises
    for bit in (32.0, 16.0, 8.0, 4.0, 2.0, 1.0):
        take = kf >= _like(x, bit)
        kf = kf - _like(x, bit) if take else kf
        two_k = two_k * _like(x, 2.0 ** bit) if take else two_k
    E = p * two_k
    big = (E - one) / (E + one)
    y = small if ax < _like(x, 0.125) else big
    return -y if x < 0 else y


@njit(cache=True, parallel=True, error_model="numpy")
def forward_sweep(zx, U, h, c, act, tanh_c, bounds, pred_all, mask, nparts):
    """Steps 1b-5 over all wavefronts, in place.

    zx (N, B, G); U (n·H, G); h, c (N+1, B, H), row N = boundary state (read), rows < N written;
    act (N, B, G) written: [σ(z_i) | σ(z_f1..fn) | σ(z_o) | tanh(z_g)]; tanh_c (N, B, H) written;
    bounds (S, 2) wavefront [start, stop); pred_all (n, N) position of p⁻_d (N: boundary);
    mask (N, B) 1/0; nparts: batch chunks run in parallel.
    """
    N, B, G = zx.shape
    H = h.shape[2]
    n = pred_all.shape[0]
    nsig = (n + 2) * H
    half = _like(zx[0, 0, 0], 0.5)
    for part in prange(nparts):
        b_lo, b_hi = part * B // nparts, (part + 1) * B // nparts
        z = np.empty(G, dtype=zx.dtype)
        for s in range(bounds.shape[0]):
            for j in range(bounds[s, 0], bounds[s, 1]):
                for bb in range(b_lo, b_hi):
                    for gi in range(G):  # 1b. z = zx(p) + Σ_d h(p⁻_d) U_d
                        z[gi] = zx[j, bb, gi]
                    for d in range(n):
                        q = pred_all[d, j]
                        for k in range(H):
                            hk = h[q, bb, k]
                            for gi in range(G):
                                z[gi] += hk * U[d * H + k, gi]
                    a = act[j, bb]
                    for gi in range(nsig):  # 2. i, f_1..f_n, o = σ(z)
                        a[gi] = _tanh(z[gi] * half) * half + half
                    for gi in range(nsig, G):  # 2. g = tanh(z_g)
                        a[gi] = _tanh(z[gi])
                    m = mask[j, bb]
                    for k in range(H):
                        ck = a[k] * a[nsig + k]  # 3. c = i ⊙ g + Σ_d f_d ⊙ c(p⁻_d)
                        for d in range(n):
                            ck = ck + a[(1 + d) * H + k] * c[pred_all[d, j], bb, k]
                        tc = _tanh(ck)  # 4. h = o ⊙ tanh(c)
                        tanh_c[j, bb, k] = tc
                        h[j, bb, k] = a[(n + 1) * H + k] * tc * m  # 5. masked cells: zero
                        c[j, bb, k] = ck * m


@njit(cache=True, parallel=True, error_model="numpy")
def backward_sweep(dout, UT, c, act, tanh_c, bounds, pred_all, succ_all, mask, dZ, dcs,
                   dh0, dc0, want_state, nparts):
    """Mirror of ``forward_sweep``: fills dZ (N, B, G) and, with want_state, dh0, dc0 (B, H).

    dout (N, B, H) ∂L/∂h from the layer's output; UT (G, n·H) = Uᵀ contiguous; c, act, tanh_c
    from the forward sweep; succ_all (n, N) position of p⁺_d (N: outside the grid);
    dcs (N, B, H) scratch: ∂L/∂c(p) after step 4b, pulled by the predecessors.
    """
    N, B, G = dZ.shape
    H = dout.shape[2]
    n = pred_all.shape[0]
    nsig = (n + 2) * H
    one = _like(dout[0, 0, 0], 1.0)
    for part in prange(nparts):
        b_lo, b_hi = part * B // nparts, (part + 1) * B // nparts
        dh = np.empty(H, dtype=dout.dtype)
        dc = np.empty(H, dtype=dout.dtype)
        for s in range(bounds.shape[0] - 1, -1, -1):
            for j in range(bounds[s, 0], bounds[s, 1]):
                for bb in range(b_lo, b_hi):
                    for k in range(H):
                        dh[k] = dout[j, bb, k]
                        dc[k] = 0
                    for d in range(n):  # 1b-b. pull from the successors p⁺_d
                        q = succ_all[d, j]
                        if q < N:
                            for gi in range(G):  # dh += [dz(p⁺_d) Uᵀ]_d
                                v = dZ[q, bb, gi]
                                for k in range(H):
                                    dh[k] += v * UT[gi, d * H + k]
                            for k in range(H):  # dc += dc(p⁺_d) ⊙ f_d(p⁺_d)
                                dc[k] += dcs[q, bb, k] * act[q, bb, (1 + d) * H + k]
                    m = mask[j, bb]
                    a = act[j, bb]
                    dz = dZ[j, bb]
                    for k in range(H):
                        dhk = dh[k] * m  # 5b. masked cells pass no gradient
                        tc = tanh_c[j, bb, k]
                        o = a[(n + 1) * H + k]
                        dz[(n + 1) * H + k] = dhk * tc * o * (one - o)  # 4b. do; 2b. σ'
                        dck = dc[k] * m + dhk * o * (one - tc * tc)  # 4b. dc += dh ⊙ o ⊙ tanh'
                        dcs[j, bb, k] = dck
                        i, g = a[k], a[nsig + k]
                        dz[k] = dck * g * i * (one - i)  # 3b. di = dc ⊙ g; 2b. σ'
                        dz[nsig + k] = dck * i * (one - g * g)  # 3b. dg = dc ⊙ i; 2b. tanh'
                        for d in range(n):  # 3b. df_d = dc ⊙ c(p⁻_d); 2b. σ'
                            f = a[(1 + d) * H + k]
                            dz[(1 + d) * H + k] = dck * c[pred_all[d, j], bb, k] * f * (one - f)
                    if want_state:  # shares of predecessors outside the grid: initial state
                        for d in range(n):
                            if pred_all[d, j] == N:
                                for gi in range(G):
                                    v = dz[gi]
                                    for k in range(H):
                                        dh0[bb, k] += v * UT[gi, d * H + k]
                                for k in range(H):
                                    dc0[bb, k] += dcs[j, bb, k] * a[(1 + d) * H + k]
