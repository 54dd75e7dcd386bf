"""Each cell's pointwise forward and backward as small jitted functions of one (cell, sample)
row, and the drivers (``numba_driver.py``) specialised with them.

Every function here is its cell's ``forward``/``backward`` (``mdlstm_np/cells/*.py``) for one
row, with the same numbered steps; read them side by side. Conventions (the row interface is in
``numba_driver.py``): gate q of row r is Z[r, q, k] (the layout's blocks in units of H, offsets
read off the layout by the caller, ``CellKernels.gates``); cp[d] = c(p⁻_d); DZ[lr] receives
dz and DCP[r, d] the share dc(p⁻_d); parameter gradients accumulate in float64 (dP).
σ(x) = tanh(x/2)/2 + 1/2 and tanh are the module ``numba_kernels``'s (a few ulp from numpy's).

Writing row loops that vectorise (H = 16, float32, measured per row): a loop over k that
evaluates σ or tanh vectorises when it writes one row of one array and reads that same row
(``_sig_row``); writing several rows of Z in one loop, or reading one array and writing another,
fell back to scalar code, ~8× slower. So the functions below copy first and transform in place,
and split multi-output loops. The helpers are inlined into the cell functions
(``inline="always"``: the layer norm's row forward went from ~590 to ~370 ns); the cell
functions themselves are not (inlining them into the driver measured no faster, and compiles
longer). The layer norm's sums run in 8 interleaved partial sums (``_row_dot``), numpy's
pairwise order for H ≤ 128, instead of one dependent chain.

Caching: numba's cache cannot see edits to ``numba_kernels.py`` (tanh) from here; clear
``__pycache__`` after changing it (numba's documented limit for functions in other files).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Tuple

import numpy as np
from numba import njit

from ..cells.layernorm import LayerNormCell
from ..cells.leakylp import LeakyLPCell
from ..cells.peephole import GravesPeepholeCell
from ..cells.stable import StableCell
from .numba_driver import backward_template, forward_template, specialise
from .numba_kernels import scalar_like, scalar_tanh

JIT = dict(cache=True, nogil=True, error_model="numpy")


@njit(inline="always", **JIT)
def _sig(x):
    """σ(x) = tanh(x/2)/2 + 1/2, as ``Backend.sigmoid``."""
    half = scalar_like(x, 0.5)
    return scalar_tanh(x * half) * half + half


@njit(inline="always", **JIT)
def _activate(Z, r, GG, skip):
    """Gates of row r in place: tanh on block GG, σ on the others except block ``skip``."""
    for q in range(Z.shape[1]):
        if q == GG:
            for k in range(Z.shape[2]):
                Z[r, q, k] = scalar_tanh(Z[r, q, k])
        elif q != skip:
            for k in range(Z.shape[2]):
                Z[r, q, k] = _sig(Z[r, q, k])


@njit(inline="always", **JIT)
def _row_dot(A, ra, qa, B, rb, qb):
    """Σ_k A[ra, qa, k]·B[rb, qb, k] over the H entries, in 8 interleaved partial sums: the
    order of numpy's pairwise sum for H ≤ 128 (so xp.mean's rounding), and 8 independent add
    chains instead of one."""
    H = A.shape[2]
    z = A[ra, qa, 0] - A[ra, qa, 0]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    k = 0
    while k + 8 <= H:
        s0 += A[ra, qa, k] * B[rb, qb, k]
        s1 += A[ra, qa, k + 1] * B[rb, qb, k + 1]
        s2 += A[ra, qa, k + 2] * B[rb, qb, k + 2]
        s3 += A[ra, qa, k + 3] * B[rb, qb, k + 3]
        s4 += A[ra, qa, k + 4] * B[rb, qb, k + 4]
        s5 += A[ra, qa, k + 5] * B[rb, qb, k + 5]
        s6 += A[ra, qa, k + 6] * B[rb, qb, k + 6]
        s7 += A[ra, qa, k + 7] * B[rb, qb, k + 7]
        k += 8
    total = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    while k < H:
        total += A[ra, qa, k] * B[rb, qb, k]
        k += 1
    return total


@njit(inline="always", **JIT)
def _ln_row(A, r, q, gain, shift, gq, kappa, AH, ah, Sc, sq, ONE):
    """y = LN_κ(A[r, q]) ⊙ gain[gq] + shift[gq] in place; â into AH[r, ah], 1/s into
    Sc[r, sq] (``norm.layer_norm``, its steps 1-6). ONE (1, 1, H) holds ones (for the sums)."""
    H = A.shape[2]
    mu = _row_dot(A, r, q, ONE, 0, 0) / scalar_like(kappa, H)  # 1. μ (in the dtype, as xp.mean)
    for k in range(H):  # 2. u = a − μ
        AH[r, ah, k] = A[r, q, k] - mu
    v = _row_dot(AH, r, ah, AH, r, ah) / scalar_like(kappa, H)  # 3. v = mean(u²)
    inv_s = scalar_like(mu, 1.0) / np.sqrt(v + kappa)  # 4.
    Sc[r, sq] = inv_s
    for k in range(H):  # 5-6. â = u / s, y = â ⊙ gain + shift
        a_hat = AH[r, ah, k] * inv_s
        AH[r, ah, k] = a_hat
        A[r, q, k] = a_hat * gain[gq, k] + shift[gq, k]


@njit(inline="always", **JIT)
def _ln_row_backward(D, lr, q, gain, gq, AH, r, ah, inv_s, dgain, dshift, ONE):
    """D[lr, q] = ∂L/∂y in, ∂L/∂a out (``norm.layer_norm_backward``, (★)); adds into
    dgain[gq], dshift[gq]."""
    H = D.shape[2]
    for k in range(H):  # 6'. dgain, dshift, dâ = dy ⊙ gain
        dy = D[lr, q, k]
        dgain[gq, k] += dy * AH[r, ah, k]
        dshift[gq, k] += dy
        D[lr, q, k] = dy * gain[gq, k]
    md = _row_dot(D, lr, q, ONE, 0, 0) / scalar_like(inv_s, H)  # 2'. mean(dâ)
    mdh = _row_dot(D, lr, q, AH, r, ah) / scalar_like(inv_s, H)  # 5'-3'. mean(dâ ⊙ â)
    for k in range(H):  # 5'-2'. da = (dâ − mean(dâ) − â mean(dâ ⊙ â)) / s
        D[lr, q, k] = (D[lr, q, k] - md - AH[r, ah, k] * mdh) * inv_s


@njit(inline="always", **JIT)
def _sig_row(Z, r, q):
    """Z[r, q] = σ(Z[r, q]) (one row written per loop: the loop vectorises; a loop writing
    several rows of Z, or Z and another array, measured ~8× slower at H = 16)."""
    for k in range(Z.shape[2]):
        Z[r, q, k] = _sig(Z[r, q, k])


# ----------------------------------------------------------------- layer norm (cells/layernorm.py)
# P = (ln_gain (n+3, H), ln_shift (n+3, H), ln_c_gain (1, H), ln_c_shift (1, H), κ (1,),
# ones (1, 1, H));
# X rows: â of the n+3 gate blocks, â of c, tanh(ĉ); Sc: 1/s of the n+3 blocks and of c.
@njit(**JIT)
def ln_forward(Z, r, cp, P, gates, h, c, X, Sc):
    gain, shift, cgain, cshift, kap, ONE = P
    nb, H, n = Z.shape[1], Z.shape[2], cp.shape[0]
    I, F, O, GG = gates[0], gates[1], gates[2], gates[3]
    for q in range(nb):  # 2. a_j = LN_κ(z_j; gain_j, shift_j)
        _ln_row(Z, r, q, gain, shift, q, kap[0], X, q, Sc, q, ONE)
    _activate(Z, r, GG, -1)  # 3. i, f_d, o = σ(a), g = tanh(a_g)
    for k in range(H):  # 4. c = i ⊙ g + Σ_d f_d ⊙ c(p⁻_d)
        ck = Z[r, I, k] * Z[r, GG, k]
        for d in range(n):
            ck += Z[r, F + d, k] * cp[d, k]
        c[r, k] = ck
        X[r, nb + 1, k] = ck  # (ĉ is made in place from this row)
    _ln_row(X, r, nb + 1, cgain, cshift, 0, kap[0], X, nb, Sc, nb, ONE)  # 5. ĉ = LN_κ(c)
    for k in range(H):  # 6. h = o ⊙ tanh(ĉ)
        X[r, nb + 1, k] = scalar_tanh(X[r, nb + 1, k])
    for k in range(H):
        h[r, k] = Z[r, O, k] * X[r, nb + 1, k]


@njit(**JIT)
def ln_backward(Z, X, Sc, r, cp, h, c, dh, dc, P, gates, dP, DZ, lr, DCP):
    gain, shift, cgain, cshift, kap, ONE = P
    dgain, dshift, dcgain, dcshift = dP
    nb, H, n = Z.shape[1], Z.shape[2], cp.shape[0]
    I, F, O, GG = gates[0], gates[1], gates[2], gates[3]
    one = scalar_like(dh[0], 1.0)
    for k in range(H):  # 6'. do = dh ⊙ tanh(ĉ), dĉ = dh ⊙ o ⊙ (1 − tanh²(ĉ))
        tc, o = X[r, nb + 1, k], Z[r, O, k]
        DZ[lr, O, k] = dh[k] * tc
        DZ[lr, GG, k] = dh[k] * o * (one - tc * tc)  # (dĉ, parked in g's row)
    _ln_row_backward(DZ, lr, GG, cgain, 0, X, r, nb, Sc[r, nb], dcgain, dcshift, ONE)  # 5'.
    for k in range(H):
        dck = dc[k] + DZ[lr, GG, k]  # 5'. dc += LN_κ-backward(dĉ)
        i, g = Z[r, I, k], Z[r, GG, k]
        DZ[lr, I, k] = dck * g  # 4'. di = dc ⊙ g
        DZ[lr, GG, k] = dck * i  # 4'. dg = dc ⊙ i
        for d in range(n):
            DZ[lr, F + d, k] = dck * cp[d, k]  # 4'. df_d = dc ⊙ c(p⁻_d)
            DCP[r, d, k] = dck * Z[r, F + d, k]  # 4'. dc(p⁻_d) = dc ⊙ f_d
    for q in range(nb):  # 3'. da = d· ⊙ σ(1 − σ), da_g = dg ⊙ (1 − g²)
        for k in range(H):
            a = Z[r, q, k]
            DZ[lr, q, k] = DZ[lr, q, k] * (one - a * a if q == GG else a * (one - a))
    for q in range(nb):  # 2'. dz_j = LN_κ-backward(da_j)
        _ln_row_backward(DZ, lr, q, gain, q, X, r, q, Sc[r, q], dgain, dshift, ONE)


# ----------------------------------------------------------------- the λ-mixture (cells/stable.py)
@njit(**JIT)
def _mixture_rare(Z, r, L, n, X, floor):
    """3a. λ̂ of the entries k of row r where Σ_e λ_e < floor: the softmax of
    ℓ_d = log σ(z_λd) = min(z, 0) − log1p(exp(−|z|)) (z_λd in X[r, d], λ_d in Z[r, L + d],
    Σ_e λ_e in X[r, n]), shifted by the largest ℓ, as ``stable.mixture_forward``."""
    half = scalar_like(floor, 0.5)
    for k in range(X.shape[2]):
        if X[r, n, k] >= floor:
            for d in range(n):
                X[r, d, k] = Z[r, L + d, k] / X[r, n, k]
            continue
        top = half
        for d in range(n):
            z = X[r, d, k]
            ell = (z - abs(z)) * half - np.log1p(np.exp(-abs(z)))
            X[r, d, k] = ell
            top = ell if d == 0 or ell > top else top
        total = half - half
        for d in range(n):
            e = np.exp(X[r, d, k] - top)
            X[r, d, k] = e
            total += e
        for d in range(n):
            X[r, d, k] = X[r, d, k] / total


@njit(inline="always", **JIT)
def _mixture(Z, r, L, cp, X):
    """2, 3a-3b. λ_d = σ(z_λd) in place in Z[r, L + d], λ̂_d into X[r, d], c⁻ into X[r, n].

    λ̂_d = λ_d / Σ_e λ_e where Σ_e λ_e ≥ 1/16: σ = tanh(z/2)/2 + 1/2 is within a few ulp of 1
    of the true λ_d (absolute, not relative), so λ̂ is within 16 × that (1e-6 in float32, 4e-15
    in float64, far inside the tests' tolerances); elsewhere ``_mixture_rare``, the reference's
    softmax of log-sigmoids (no 0/0 when every λ_d rounds to 0). n = 1: λ̂_1 = 1,
    c⁻ = c(p⁻_1) (no λ block, L unused). The common case runs as short branch-free loops
    (they vectorise); a row with a rare entry costs ~0.5 µs more (measured, H = 16)."""
    n, H = cp.shape[0], cp.shape[1]
    floor = scalar_like(cp[0, 0], 1 / 16)
    if n == 1:
        for k in range(H):
            X[r, 0, k] = scalar_like(floor, 1.0)
    else:
        for d in range(n):  # 2. λ_d = σ(z_λd) (z_λd kept in X[r, d] for the rare case)
            for k in range(H):
                X[r, d, k] = Z[r, L + d, k]
            _sig_row(Z, r, L + d)
        for k in range(H):  # 3a. Σ_e λ_e (parked in c⁻'s row)
            X[r, n, k] = Z[r, L, k]
        for d in range(1, n):
            for k in range(H):
                X[r, n, k] += Z[r, L + d, k]
        rare = 0
        for k in range(H):
            rare += X[r, n, k] < floor
        if rare == 0:
            for d in range(n):  # 3a. λ̂_d = λ_d / Σ_e λ_e
                for k in range(H):
                    X[r, d, k] = Z[r, L + d, k] / X[r, n, k]
        else:
            _mixture_rare(Z, r, L, n, X, floor)  # 3a. (exactly the reference's way)
    for k in range(H):  # 3b. c⁻ = Σ_d λ̂_d ⊙ c(p⁻_d)
        X[r, n, k] = X[r, 0, k] * cp[0, k]
    for d in range(1, n):
        for k in range(H):
            X[r, n, k] += X[r, d, k] * cp[d, k]


@njit(inline="always", **JIT)
def _mixture_backward(Z, X, r, L, cp, dcm, DZ, lr, DCP):
    """3b'-3a'. dc⁻ (H,) -> DCP[r, d] = dc⁻ ⊙ λ̂_d, DZ[lr, L + d] = dz_λd (n > 1)."""
    n, H = cp.shape[0], cp.shape[1]
    one = scalar_like(dcm[0], 1.0)
    for d in range(n):
        for k in range(H):
            lh = X[r, d, k]
            DCP[r, d, k] = dcm[k] * lh  # 3b'. dc(p⁻_d) = dc⁻ ⊙ λ̂_d
            if n > 1:  # 3a'. dz_λd = λ̂_d ⊙ (1 − λ_d) ⊙ dc⁻ ⊙ (c(p⁻_d) − c⁻)
                DZ[lr, L + d, k] = lh * (one - Z[r, L + d, k]) * dcm[k] * (cp[d, k] - X[r, n, k])


# ----------------------------------------------------------------- stable (cells/stable.py)
# gates (i, f, o, λ, g) (λ = -1 for n = 1); X rows: λ̂_1..λ̂_n, c⁻, tanh(c).
@njit(**JIT)
def stable_forward(Z, r, cp, P, gates, h, c, X, Sc):
    I, F, O, L, GG = gates[0], gates[1], gates[2], gates[3], gates[4]
    n, H = cp.shape[0], cp.shape[1]
    _mixture(Z, r, L, cp, X)  # 2, 3a-3b. λ, λ̂, c⁻
    _sig_row(Z, r, I)  # 2. i, f, o = σ(z)
    _sig_row(Z, r, F)
    _sig_row(Z, r, O)
    for k in range(H):  # 2. g = tanh(z_g)
        Z[r, GG, k] = scalar_tanh(Z[r, GG, k])
    for k in range(H):  # 3c. c = i ⊙ g + f ⊙ c⁻
        c[r, k] = Z[r, I, k] * Z[r, GG, k] + Z[r, F, k] * X[r, n, k]
    for k in range(H):  # (tanh in place: a loop reading one array and writing another
        X[r, n + 1, k] = c[r, k]  # measured slower than a copy and an in-place loop)
    for k in range(H):
        X[r, n + 1, k] = scalar_tanh(X[r, n + 1, k])
    for k in range(H):  # 4. h = o ⊙ tanh(c)
        h[r, k] = Z[r, O, k] * X[r, n + 1, k]


@njit(**JIT)
def stable_backward(Z, X, Sc, r, cp, h, c, dh, dc, P, gates, dP, DZ, lr, DCP):
    I, F, O, L, GG = gates[0], gates[1], gates[2], gates[3], gates[4]
    n, H = cp.shape[0], cp.shape[1]
    one = scalar_like(dh[0], 1.0)
    for k in range(H):
        tc, i, f, o, g = X[r, n + 1, k], Z[r, I, k], Z[r, F, k], Z[r, O, k], Z[r, GG, k]
        d_o = dh[k] * tc  # 4'. do = dh ⊙ tanh(c)
        dck = dc[k] + dh[k] * o * (one - tc * tc)  # 4'. dc += dh ⊙ o ⊙ (1 − tanh²(c))
        DZ[lr, I, k] = dck * g * i * (one - i)  # 3c', 2'. di = dc ⊙ g; σ'
        DZ[lr, GG, k] = dck * i * (one - g * g)  # 3c', 2'. dg = dc ⊙ i; tanh'
        DZ[lr, F, k] = dck * X[r, n, k] * f * (one - f)  # 3c', 2'. df = dc ⊙ c⁻; σ'
        DZ[lr, O, k] = d_o * o * (one - o)  # 2'.
        dc[k] = dck * f  # 3c'. dc⁻ = dc ⊙ f
    _mixture_backward(Z, X, r, L, cp, dc, DZ, lr, DCP)  # 3b'-3a'.


# ----------------------------------------------------------------- LeakyLP (cells/leakylp.py)
# gates (f, ω₀, ω₁, λ, g); X rows: λ̂_1..λ̂_n, c⁻. Backward reads c(p) and h(p) from c, h.
@njit(**JIT)
def leakylp_forward(Z, r, cp, P, gates, h, c, X, Sc):
    F, W0, W1, L, GG = gates[0], gates[1], gates[2], gates[3], gates[4]
    n, H = cp.shape[0], cp.shape[1]
    one = scalar_like(cp[0, 0], 1.0)
    _mixture(Z, r, L, cp, X)  # 2, 3a-3b. λ, λ̂, c⁻
    _sig_row(Z, r, F)  # 2. f, ω₀, ω₁ = σ(z)
    _sig_row(Z, r, W0)
    _sig_row(Z, r, W1)
    for k in range(H):  # 2. g = tanh(z_g)
        Z[r, GG, k] = scalar_tanh(Z[r, GG, k])
    for k in range(H):  # 3c. c = (1 − f) ⊙ g + f ⊙ c⁻
        c[r, k] = (one - Z[r, F, k]) * Z[r, GG, k] + Z[r, F, k] * X[r, n, k]
    for k in range(H):  # 4a. a = ω₀ ⊙ c + ω₁ ⊙ c⁻
        h[r, k] = Z[r, W0, k] * c[r, k] + Z[r, W1, k] * X[r, n, k]
    for k in range(H):  # 4b. h = tanh(a)
        h[r, k] = scalar_tanh(h[r, k])


@njit(**JIT)
def leakylp_backward(Z, X, Sc, r, cp, h, c, dh, dc, P, gates, dP, DZ, lr, DCP):
    F, W0, W1, L, GG = gates[0], gates[1], gates[2], gates[3], gates[4]
    n, H = cp.shape[0], cp.shape[1]
    one = scalar_like(dh[0], 1.0)
    for k in range(H):
        f, w0, w1, g, cm = Z[r, F, k], Z[r, W0, k], Z[r, W1, k], Z[r, GG, k], X[r, n, k]
        hk = h[r, k]
        da = dh[k] * (one - hk * hk)  # 4b'. da = dh ⊙ (1 − h²)
        DZ[lr, W0, k] = da * c[r, k] * w0 * (one - w0)  # 4a', 2'. dω₀ = da ⊙ c; σ'
        DZ[lr, W1, k] = da * cm * w1 * (one - w1)  # 4a', 2'. dω₁ = da ⊙ c⁻; σ'
        dck = dc[k] + da * w0  # 4a'. dc += da ⊙ ω₀
        dcm = da * w1  # 4a'. dc⁻ = da ⊙ ω₁
        DZ[lr, F, k] = dck * (cm - g) * f * (one - f)  # 3c', 2'. df = dc ⊙ (c⁻ − g); σ'
        DZ[lr, GG, k] = dck * (one - f) * (one - g * g)  # 3c', 2'. dg = dc ⊙ (1 − f); tanh'
        dc[k] = dcm + dck * f  # 3c'. dc⁻ += dc ⊙ f
    _mixture_backward(Z, X, r, L, cp, dc, DZ, lr, DCP)  # 3b'-3a'.


# ----------------------------------------------------------------- peepholes (cells/peephole.py)
# P = (w_i (H,), w_f (n, H), w_o (H,)); X rows: tanh(c), c_sum. Backward reads c(p) from c.
@njit(**JIT)
def peephole_forward(Z, r, cp, P, gates, h, c, X, Sc):
    w_i, w_f, w_o = P
    I, F, O, GG = gates[0], gates[1], gates[2], gates[3]
    n, H = cp.shape[0], cp.shape[1]
    for k in range(H):  # 2a. c_sum = Σ_d c(p⁻_d), kept in X[r, 1]
        X[r, 1, k] = cp[0, k]
    for d in range(1, n):
        for k in range(H):
            X[r, 1, k] = X[r, 1, k] + cp[d, k]
    for k in range(H):  # 2b. i = σ(z_i + w_i ⊙ c_sum)
        Z[r, I, k] = _sig(Z[r, I, k] + w_i[k] * X[r, 1, k])
    for d in range(n):  # 2b. f_d = σ(z_fd + w_f[d] ⊙ c(p⁻_d))
        for k in range(H):
            Z[r, F + d, k] = _sig(Z[r, F + d, k] + w_f[d, k] * cp[d, k])
    for k in range(H):  # 2b. g = tanh(z_g)
        Z[r, GG, k] = scalar_tanh(Z[r, GG, k])
    for k in range(H):  # 3. c = i ⊙ g ...
        c[r, k] = Z[r, I, k] * Z[r, GG, k]
    for d in range(n):  # 3. ... + Σ_d f_d ⊙ c(p⁻_d)
        for k in range(H):
            c[r, k] = c[r, k] + Z[r, F + d, k] * cp[d, k]
    for k in range(H):  # 4a. o = σ(z_o + w_o ⊙ c)
        Z[r, O, k] = _sig(Z[r, O, k] + w_o[k] * c[r, k])
    for k in range(H):
        X[r, 0, k] = c[r, k]
    for k in range(H):
        X[r, 0, k] = scalar_tanh(X[r, 0, k])
    for k in range(H):  # 4b. h = o ⊙ tanh(c)
        h[r, k] = Z[r, O, k] * X[r, 0, k]


@njit(**JIT)
def peephole_backward(Z, X, Sc, r, cp, h, c, dh, dc, P, gates, dP, DZ, lr, DCP):
    w_i, w_f, w_o = P
    dw_i, dw_f, dw_o = dP
    I, F, O, GG = gates[0], gates[1], gates[2], gates[3]
    n, H = cp.shape[0], cp.shape[1]
    one = scalar_like(dh[0], 1.0)
    for k in range(H):
        tc, o, i, g = X[r, 0, k], Z[r, O, k], Z[r, I, k], Z[r, GG, k]
        d_o = dh[k] * tc  # 4b'. do = dh ⊙ tanh(c)
        dck = dc[k] + dh[k] * o * (one - tc * tc)  # 4b'. dc += dh ⊙ o ⊙ (1 − tanh²(c))
        dz_o = d_o * o * (one - o)  # 4a'. σ'
        DZ[lr, O, k] = dz_o
        dck = dck + dz_o * w_o[k]  # 4a'. dc += dz_o ⊙ w_o
        dw_o[k] += dz_o * c[r, k]  # 4a'. dw_o += Σ dz_o ⊙ c(p)
        dz_i = dck * g * i * (one - i)  # 3', 2b'. di = dc ⊙ g; σ'
        DZ[lr, I, k] = dz_i
        DZ[lr, GG, k] = dck * i * (one - g * g)  # 3', 2b'. dg = dc ⊙ i; tanh'
        dw_i[k] += dz_i * X[r, 1, k]  # 2b'. dw_i += Σ dz_i ⊙ c_sum
        for d in range(n):
            f = Z[r, F + d, k]
            dz_f = dck * cp[d, k] * f * (one - f)  # 3', 2b'. df_d = dc ⊙ c(p⁻_d); σ'
            DZ[lr, F + d, k] = dz_f
            dw_f[d, k] += dz_f * cp[d, k]  # 2b'. dw_f[d] += Σ dz_fd ⊙ c(p⁻_d)
            dcp = dck * f + dz_f * w_f[d, k]  # 3', 2b'. dc(p⁻_d) = dc ⊙ f_d + dz_fd ⊙ w_f[d]
            DCP[r, d, k] = dcp + dz_i * w_i[k]  # 2a'. + dz_i ⊙ w_i (c_sum feeds every axis)


# ----------------------------------------------------------------- the table
class CellKernels(NamedTuple):
    """What ``NumbaCellSweep`` needs to run one cell class."""

    name: str
    forward: Callable            # the driver's forward, specialised
    backward: Callable           # the driver's backward, specialised
    gates: Tuple[str, ...]       # block names whose offsets the cell functions read, in order
    aux: Callable                # (n) -> (nx, ns): rows of X, columns of Sc
    params: Tuple[str, ...]      # the cell's own parameters: P's first entries, dP's entries
    pack: Callable               # (cell, params, dtype) -> P


def _own(keys):
    """P = the cell's own parameters, contiguous, in the order of ``keys``."""
    return lambda cell, params, dt: tuple(np.ascontiguousarray(params[k]) for k in keys)


def _ln_pack(cell, params, dt):
    """P of the layer-norm cell: gains and shifts as 2-D rows, κ, and a row of ones."""
    H = params["ln_c_gain"].shape[0]
    return (np.ascontiguousarray(params["ln_gain"]), np.ascontiguousarray(params["ln_shift"]),
            params["ln_c_gain"].reshape(1, H), params["ln_c_shift"].reshape(1, H),
            np.array([cell.kappa], dtype=dt), np.ones((1, 1, H), dtype=dt))


def _kernels(name, fwd, bwd, gates, aux, params=(), pack=None):
    f = specialise(forward_template, f"forward_sweep_{name}", __file__, cell_forward=fwd)
    b = specialise(backward_template, f"backward_sweep_{name}", __file__, cell_backward=bwd)
    return CellKernels(name, f, b, gates, aux, params, pack or _own(params))


KERNELS = {
    LayerNormCell: _kernels(
        "ln", ln_forward, ln_backward, ("i", "f", "o", "g"), lambda n: (n + 5, n + 4),
        ("ln_gain", "ln_shift", "ln_c_gain", "ln_c_shift"), _ln_pack),
    StableCell: _kernels("stable", stable_forward, stable_backward,
                         ("i", "f", "o", "lam", "g"), lambda n: (n + 2, 0)),
    LeakyLPCell: _kernels("leakylp", leakylp_forward, leakylp_backward,
                          ("f", "omega0", "omega1", "lam", "g"), lambda n: (n + 1, 0)),
    GravesPeepholeCell: _kernels("peephole", peephole_forward, peephole_backward,
                                 ("i", "f", "o", "g"), lambda n: (2, 0), ("w_i", "w_f", "w_o")),
}
