"""Each cell's pointwise forward and backward as small jitted functions of one (cell, sample)
row, and the drivers (``numba_driver.py``) specialised with them.

Every function here is its cell's ``forward``/``backward`` (``mdlstm_np/cells/*.py``) for one
row, with the same numbered steps; read them side by side. Conventions (the row interface is in
``numba_driver.py``): gate q of row r is Z[r, q, k] (the layout's blocks in units of H, offsets
read off the layout by the caller, ``CellKernels.gates``); cp[d] = c(p⁻_d); DZ[lr] receives
dz and DCP[r, d] the share dc(p⁻_d); parameter gradients accumulate in float64 (dP).
σ(x) = tanh(x/2)/2 + 1/2 and tanh are the module ``numba_kernels``'s (a few ulp from numpy's).
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
from .numba_kernels import _like, _tanh

JIT = dict(cache=True, nogil=True, error_model="numpy")


@njit(inline="always", **JIT)
def _sig(x):
    """σ(x) = tanh(x/2)/2 + 1/2, as ``Backend.sigmoid``."""
    half = _like(x, 0.5)
    return _tanh(x * half) * half + half


@njit(**JIT)
def _activate(Z, r, GG, skip):
    """Gates of row r in place: tanh on block GG, σ on the others except block ``skip``."""
    for q in range(Z.shape[1]):
        if q == GG:
            for k in range(Z.shape[2]):
                Z[r, q, k] = _tanh(Z[r, q, k])
        elif q != skip:
            for k in range(Z.shape[2]):
                Z[r, q, k] = _sig(Z[r, q, k])


@njit(**JIT)
def _ln_row(A, r, q, gain, shift, kappa, AH, ah, Sc, sq):
    """y = LN_κ(A[r, q]) ⊙ gain + shift in place; â into AH[r, ah], 1/s into Sc[r, sq]
    (``norm.layer_norm``, its steps 1-6)."""
    H = A.shape[2]
    mu = _like(A[r, q, 0], 0.0)
    for k in range(H):  # 1. μ
        mu += A[r, q, k]
    mu = mu / H
    v = _like(mu, 0.0)
    for k in range(H):  # 2-3. u = a − μ, v = mean(u²)
        u = A[r, q, k] - mu
        AH[r, ah, k] = u
        v += u * u
    v = v / H
    inv_s = _like(mu, 1.0) / np.sqrt(v + kappa)  # 4.
    Sc[r, sq] = inv_s
    for k in range(H):  # 5-6. â = u / s, y = â ⊙ gain + shift
        a_hat = AH[r, ah, k] * inv_s
        AH[r, ah, k] = a_hat
        A[r, q, k] = a_hat * gain[k] + shift[k]


@njit(**JIT)
def _ln_row_backward(D, lr, q, gain, AH, r, ah, inv_s, dgain, dshift):
    """D[lr, q] = ∂L/∂y in, ∂L/∂a out (``norm.layer_norm_backward``, (★)); adds dgain, dshift."""
    H = D.shape[2]
    md = _like(inv_s, 0.0)
    mdh = _like(inv_s, 0.0)
    for k in range(H):  # 6'. dgain, dshift, dâ = dy ⊙ gain
        dy, a_hat = D[lr, q, k], AH[r, ah, k]
        dgain[k] += dy * a_hat
        dshift[k] += dy
        d_hat = dy * gain[k]
        D[lr, q, k] = d_hat
        md += d_hat
        mdh += d_hat * a_hat
    md, mdh = md / H, mdh / H
    for k in range(H):  # 5'-2'. da = (dâ − mean(dâ) − â mean(dâ ⊙ â)) / s
        D[lr, q, k] = (D[lr, q, k] - md - AH[r, ah, k] * mdh) * inv_s


# ----------------------------------------------------------------- layer norm (cells/layernorm.py)
# P = (ln_gain (n+3, H), ln_shift (n+3, H), ln_c_gain (H,), ln_c_shift (H,), κ (1,));
# X rows: â of the n+3 gate blocks, â of c, tanh(ĉ); Sc: 1/s of the n+3 blocks and of c.
@njit(**JIT)
def ln_forward(Z, r, cp, P, gates, h, c, X, Sc):
    gain, shift, cgain, cshift, kap = P
    nb, H, n = Z.shape[1], Z.shape[2], cp.shape[0]
    I, F, O, GG = gates[0], gates[1], gates[2], gates[3]
    for q in range(nb):  # 2. a_j = LN_κ(z_j; gain_j, shift_j)
        _ln_row(Z, r, q, gain[q], shift[q], kap[0], X, q, Sc, q)
    _activate(Z, r, GG, -1)  # 3. i, f_d, o = σ(a), g = tanh(a_g)
    for k in range(H):  # 4. c = i ⊙ g + Σ_d f_d ⊙ c(p⁻_d)
        ck = Z[r, I, k] * Z[r, GG, k]
        for d in range(n):
            ck += Z[r, F + d, k] * cp[d, k]
        c[r, k] = ck
        X[r, nb + 1, k] = ck  # (ĉ is made in place from this row)
    _ln_row(X, r, nb + 1, cgain, cshift, kap[0], X, nb, Sc, nb)  # 5. ĉ = LN_κ(c)
    for k in range(H):  # 6. h = o ⊙ tanh(ĉ)
        tc = _tanh(X[r, nb + 1, k])
        X[r, nb + 1, k] = tc
        h[r, k] = Z[r, O, k] * tc


@njit(**JIT)
def ln_backward(Z, X, Sc, r, cp, h, c, dh, dc, P, gates, dP, DZ, lr, DCP):
    gain, shift, cgain, cshift, kap = P
    dgain, dshift, dcgain, dcshift = dP
    nb, H, n = Z.shape[1], Z.shape[2], cp.shape[0]
    I, F, O, GG = gates[0], gates[1], gates[2], gates[3]
    one = _like(dh[0], 1.0)
    for k in range(H):  # 6'. do = dh ⊙ tanh(ĉ), dĉ = dh ⊙ o ⊙ (1 − tanh²(ĉ))
        tc, o = X[r, nb + 1, k], Z[r, O, k]
        DZ[lr, O, k] = dh[k] * tc
        DZ[lr, GG, k] = dh[k] * o * (one - tc * tc)  # (dĉ, parked in g's row)
    _ln_row_backward(DZ, lr, GG, cgain, X, r, nb, Sc[r, nb], dcgain, dcshift)  # 5'.
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
        _ln_row_backward(DZ, lr, q, gain[q], X, r, q, Sc[r, q], dgain[q], dshift[q])


# ----------------------------------------------------------------- the λ-mixture (cells/stable.py)
@njit(**JIT)
def _mixture(Z, r, L, cp, X):
    """3a-3b. λ_d = σ(z_λd) into Z[r, L + d], λ̂_d into X[r, d], c⁻ into X[r, n].

    λ̂_d = λ_d / Σ_e λ_e when Σ_e λ_e ≥ ½ (then rounding in the λ_d costs a few ulp of λ̂);
    otherwise, as the reference always does, a softmax of ℓ_d = log σ(z_λd) (no 0/0 when
    every λ_d rounds to 0). n = 1: λ̂_1 = 1, c⁻ = c(p⁻_1) (no λ block, L unused)."""
    n, H = cp.shape[0], cp.shape[1]
    for k in range(H):
        if n == 1:
            X[r, 0, k] = _like(cp[0, 0], 1.0)
        else:
            total = _like(cp[0, 0], 0.0)
            for d in range(n):  # 3a. λ_d, Σ_e λ_e
                lam = _sig(Z[r, L + d, k])
                X[r, d, k] = lam
                total += lam
            if total >= _like(total, 0.5):
                for d in range(n):  # 3a. λ̂_d = λ_d / Σ_e λ_e
                    X[r, d, k] = X[r, d, k] / total
            else:  # 3a. the same as a softmax of log-sigmoids, shifted by the largest
                top = total  # (overwritten at d = 0)
                for d in range(n):
                    z = Z[r, L + d, k]
                    ell = (z - abs(z)) * _like(z, 0.5) - np.log1p(np.exp(-abs(z)))
                    X[r, d, k] = ell
                    top = ell if d == 0 or ell > top else top
                total = _like(total, 0.0)
                for d in range(n):
                    e = np.exp(X[r, d, k] - top)
                    X[r, d, k] = e
                    total += e
                for d in range(n):
                    X[r, d, k] = X[r, d, k] / total
            for d in range(n):
                Z[r, L + d, k] = _sig(Z[r, L + d, k])
        cm = X[r, 0, k] * cp[0, k]
        for d in range(1, n):  # 3b. c⁻ = Σ_d λ̂_d ⊙ c(p⁻_d)
            cm += X[r, d, k] * cp[d, k]
        X[r, n, k] = cm


@njit(**JIT)
def _mixture_backward(Z, X, r, L, cp, dcm, DZ, lr, DCP):
    """3b'-3a'. dc⁻ (H,) -> DCP[r, d] = dc⁻ ⊙ λ̂_d, DZ[lr, L + d] = dz_λd (n > 1)."""
    n, H = cp.shape[0], cp.shape[1]
    one = _like(dcm[0], 1.0)
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
    _mixture(Z, r, L, cp, X)  # 3a-3b. (σ of the λ gates first: 2.)
    for q in (I, F, O):  # 2. i, f, o = σ(z)
        for k in range(H):
            Z[r, q, k] = _sig(Z[r, q, k])
    for k in range(H):  # 2. g = tanh(z_g)
        Z[r, GG, k] = _tanh(Z[r, GG, k])
    for k in range(H):
        ck = Z[r, I, k] * Z[r, GG, k] + Z[r, F, k] * X[r, n, k]  # 3c. c = i ⊙ g + f ⊙ c⁻
        c[r, k] = ck
        tc = _tanh(ck)
        X[r, n + 1, k] = tc
        h[r, k] = Z[r, O, k] * tc  # 4. h = o ⊙ tanh(c)


@njit(**JIT)
def stable_backward(Z, X, Sc, r, cp, h, c, dh, dc, P, gates, dP, DZ, lr, DCP):
    I, F, O, L, GG = gates[0], gates[1], gates[2], gates[3], gates[4]
    n, H = cp.shape[0], cp.shape[1]
    one = _like(dh[0], 1.0)
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
    one = _like(cp[0, 0], 1.0)
    _mixture(Z, r, L, cp, X)  # 3a-3b. (σ of the λ gates first: 2.)
    for q in (F, W0, W1):  # 2. f, ω₀, ω₁ = σ(z)
        for k in range(H):
            Z[r, q, k] = _sig(Z[r, q, k])
    for k in range(H):  # 2. g = tanh(z_g)
        Z[r, GG, k] = _tanh(Z[r, GG, k])
    for k in range(H):
        f, cm = Z[r, F, k], X[r, n, k]
        ck = (one - f) * Z[r, GG, k] + f * cm  # 3c. c = (1 − f) ⊙ g + f ⊙ c⁻
        c[r, k] = ck
        a = Z[r, W0, k] * ck + Z[r, W1, k] * cm  # 4a. a = ω₀ ⊙ c + ω₁ ⊙ c⁻
        h[r, k] = _tanh(a)  # 4b. h = tanh(a)


@njit(**JIT)
def leakylp_backward(Z, X, Sc, r, cp, h, c, dh, dc, P, gates, dP, DZ, lr, DCP):
    F, W0, W1, L, GG = gates[0], gates[1], gates[2], gates[3], gates[4]
    n, H = cp.shape[0], cp.shape[1]
    one = _like(dh[0], 1.0)
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
# P = (w_i (H,), w_f (n, H), w_o (H,)); X rows: tanh(c). Backward reads c(p) from c.
@njit(**JIT)
def peephole_forward(Z, r, cp, P, gates, h, c, X, Sc):
    w_i, w_f, w_o = P
    I, F, O, GG = gates[0], gates[1], gates[2], gates[3]
    n, H = cp.shape[0], cp.shape[1]
    for k in range(H):
        cs = cp[0, k]
        for d in range(1, n):  # 2a. c_sum = Σ_d c(p⁻_d)
            cs = cs + cp[d, k]
        Z[r, I, k] = _sig(Z[r, I, k] + w_i[k] * cs)  # 2b. i = σ(z_i + w_i ⊙ c_sum)
        for d in range(n):  # 2b. f_d = σ(z_fd + w_f[d] ⊙ c(p⁻_d))
            Z[r, F + d, k] = _sig(Z[r, F + d, k] + w_f[d, k] * cp[d, k])
        g = _tanh(Z[r, GG, k])  # 2b. g = tanh(z_g)
        Z[r, GG, k] = g
        ck = Z[r, I, k] * g
        for d in range(n):  # 3. c = i ⊙ g + Σ_d f_d ⊙ c(p⁻_d)
            ck = ck + Z[r, F + d, k] * cp[d, k]
        c[r, k] = ck
        o = _sig(Z[r, O, k] + w_o[k] * ck)  # 4a. o = σ(z_o + w_o ⊙ c)
        Z[r, O, k] = o
        tc = _tanh(ck)
        X[r, 0, k] = tc
        h[r, k] = o * tc  # 4b. h = o ⊙ tanh(c)


@njit(**JIT)
def peephole_backward(Z, X, Sc, r, cp, h, c, dh, dc, P, gates, dP, DZ, lr, DCP):
    w_i, w_f, w_o = P
    dw_i, dw_f, dw_o = dP
    I, F, O, GG = gates[0], gates[1], gates[2], gates[3]
    n, H = cp.shape[0], cp.shape[1]
    one = _like(dh[0], 1.0)
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
        cs = cp[0, k]
        for d in range(1, n):
            cs = cs + cp[d, k]
        dw_i[k] += dz_i * cs  # 2b'. dw_i += Σ dz_i ⊙ c_sum
        for d in range(n):
            f = Z[r, F + d, k]
            dz_f = dck * cp[d, k] * f * (one - f)  # 3', 2b'. df_d = dc ⊙ c(p⁻_d); σ'
            DZ[lr, F + d, k] = dz_f
            dw_f[d, k] += dz_f * cp[d, k]  # 2b'. dw_f[d] += Σ dz_fd ⊙ c(p⁻_d)
            # 3'. dc ⊙ f_d, 2b'. + dz_fd ⊙ w_f[d], 2a'. + dz_i ⊙ w_i
            DCP[r, d, k] = dck * f + dz_f * w_f[d, k] + dz_i * w_i[k]


# ----------------------------------------------------------------- the table
class CellKernels(NamedTuple):
    """What ``NumbaCellSweep`` needs to run one cell class."""

    name: str
    forward: Callable            # the driver's forward, specialised
    backward: Callable           # the driver's backward, specialised
    gates: Tuple[str, ...]       # block names whose offsets the cell functions read, in order
    aux: Callable                # (n) -> (nx, ns): rows of X, columns of Sc
    params: Tuple[str, ...]      # the cell's own parameters, in P's order
    extra: Callable              # (cell, dtype) -> tuple of arrays appended to P


def _kernels(name, fwd, bwd, gates, aux, params=(), extra=lambda cell, dt: ()):
    f = specialise(forward_template, f"forward_sweep_{name}", __file__, cell_forward=fwd)
    b = specialise(backward_template, f"backward_sweep_{name}", __file__, cell_backward=bwd)
    return CellKernels(name, f, b, gates, aux, params, extra)


KERNELS = {
    LayerNormCell: _kernels(
        "ln", ln_forward, ln_backward, ("i", "f", "o", "g"), lambda n: (n + 5, n + 4),
        ("ln_gain", "ln_shift", "ln_c_gain", "ln_c_shift"),
        lambda cell, dt: (np.array([cell.kappa], dtype=dt),)),
    StableCell: _kernels("stable", stable_forward, stable_backward,
                         ("i", "f", "o", "lam", "g"), lambda n: (n + 2, 0)),
    LeakyLPCell: _kernels("leakylp", leakylp_forward, leakylp_backward,
                          ("f", "omega0", "omega1", "lam", "g"), lambda n: (n + 1, 0)),
    GravesPeepholeCell: _kernels("peephole", peephole_forward, peephole_backward,
                                 ("i", "f", "o", "g"), lambda n: (1, 0), ("w_i", "w_f", "w_o")),
}
