"""numba kernels for the Graves MD-LSTM sweep: the whole wavefront loop in one jitted function.

These are ``ReferenceSweep.forward`` / ``ReferenceSweep.backward`` (``sweep.py``) with ``GravesCell``
(``cells/graves.py``) written out as loops. The numbered comments are the reference's,
so the two can be read side by side:

    forward, per wavefront s, per cell p of it, per sample:
        1a.  zx = x W + b                        (the layer, once for the whole grid)
        1b.  z = zx(p) + Σ_d h(p⁻_d) U_d
        2.   i, f_d, o = σ(z_i, z_fd, z_o)      g = tanh(z_g)
        3.   c = i ⊙ g + Σ_d f_d ⊙ c(p⁻_d)
        4.   h = o ⊙ tanh(c)
        5.   h, c = m ⊙ h, m ⊙ c                 (m = 1 without a sizes mask)
    backward, s = last … 0, pulling from the successors p⁺_d (no scatter):
        1b'(pull). dh = dout(p) + Σ_d [dz(p⁺_d) Uᵀ]_d      dc = Σ_d dc(p⁺_d) ⊙ f_d(p⁺_d)
        5'.  dh, dc = m ⊙ dh, m ⊙ dc
        4'.  do = dh ⊙ tanh(c)      dc += dh ⊙ o ⊙ (1 − tanh²(c))
        3'.  di = dc ⊙ g   dg = dc ⊙ i   df_d = dc ⊙ c(p⁻_d)   (dc(p⁻_d) = dc ⊙ f_d: pulled)
        2'.  dz_{i,f,o} = d{i,f,o} ⊙ σ(1 − σ)      dz_g = dg ⊙ (1 − g²)

Why one function for the whole sweep: at 8×8 a wavefront holds ≤ 8 cells, and any Python
work per wavefront (a dispatch, a temporary) costs more than its arithmetic. Inside, each
wavefront does what the reference does, without leaving compiled code:

    1b.   gather [h(p⁻_1) | … | h(p⁻_n)] into a (k·B, n·H) buffer, then ONE GEMM with U
          (``np.dot`` on contiguous 2-D buffers: numba calls SciPy's BLAS sgemm/dgemm directly)
    2-5.  the gate math, fused, in loops that LLVM vectorises
    backward: pull dh, dc from the successors, 5'/4'-2' fused, then ONE GEMM dh_prev = dz Uᵀ (1b'(share))
    1a'   (whole batch) the weight gradients dU, dW, db and dx = dz Wᵀ, on blocks of consecutive
          wavefronts (a block's dz rows are contiguous in dZ and still in cache), one GEMM each;
          the layer then skips its whole-grid passes over dZ (``sweep.FusedWeightGrads``)

Writing loops that vectorise. numba checks every signed index for wrap-around (a[-1]); with
an offset in the index (``act[r, nsig + k]``) LLVM cannot drop that check and gives up on
vector code. So gates are addressed as ``A[r, q, k]`` with A = act viewed as (rows, n+3, H)
(the per-element index is the loop variable k alone), and step 2 runs as one flat loop over
the B·G activations of a cell. No slice views inside the per-row loops either: each view
costs a reference-count call. Measured at 32×32, B 16, H 16 (float32, one core): forward
~290 ns, backward ~250 ns per cell and sample, about half of it the two GEMMs.

Storage. Rows are (cell, sample) pairs in wavefront order, r = j·B + b, so a wavefront is a
contiguous block of rows in every (N·B, ·) array. The forward kernel writes the activations
over zx (read once, just before being overwritten): the cache adds no (N·B, G) array to the
one the layer already made.

Threads. Samples are independent, so a sweep can run as batch chunks [b_lo, b_hi) on separate
threads (``NumbaBackend(threads=…)``; the kernels release the GIL, each chunk gathers into its
own buffers and writes disjoint rows). No ``prange``: ``parallel=True`` took ~30 s to compile.

tanh. libm's scalar tanh costs ~30 ns here and is not vectorised; the gates need (n + 3)·H
of them per cell and sample. ``scalar_tanh`` below is a few ulp from numpy's in both float32 and
float64 (tested): tanh|x| = (e^a − 1) / (e^a + 1), a = 2|x| (clamped at 40), with
e^a = 2^k · e^r (Cody–Waite reduction, |r| ≤ ln2/2), e^a − 1 = 2^k (e^r − 1) + (2^k − 1) so
small |x| loses nothing to cancellation, e^r − 1 by its Taylor series (to r⁷ in float32, r¹³
in float64), 2^k built from its exponent bits. Only arithmetic and selects: ~1 ns per value
in float32 when vectorised. σ(x) = tanh(x/2)/2 + 1/2 as in ``Backend.sigmoid``. Constants go
through ``scalar_like`` so float32 stays float32. Everything also runs as plain Python under
``NUMBA_DISABLE_JIT=1`` (``_pow2``, ``_em1`` and ``scalar_like`` have Python bodies; their jitted
versions come from the ``@overload``s).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import types
from numba.extending import intrinsic, overload


def scalar_like(x, v):
    """The number ``v`` in the float type of ``x`` (pure Python; jitted through the overload)."""
    return type(x)(v)


@overload(scalar_like)
def _like_jit(x, v):
    if x == types.float32:
        return lambda x, v: np.float32(v)
    return lambda x, v: np.float64(v)


_LN2_HI, _LN2_LO = 0.693359375, -2.12194440054690582768e-4   # ln 2 = HI + LO, k·HI exact
_INV_LN2 = 1.4426950408889634
_AMAX = 40.0    # 2|x| clamp: tanh = ±1 in float64 beyond |x| ≈ 19.1


def _pow2(kf):
    """2^k for an integer-valued float 0 ≤ k ≤ 58, in the type of ``kf`` (pure Python)."""
    return type(kf)(2.0 ** float(kf))


@intrinsic
def _pow2_bits(typingctx, kf):
    """2^k built from its bits: exponent field = k + bias (a shift and a bitcast, vectorisable)."""
    width, bias, shift = (32, 127, 23) if kf == types.float32 else (64, 1023, 52)

    def codegen(context, builder, sig, args):
        ity = ir.IntType(width)
        k = builder.fptosi(args[0], ity)
        bits = builder.shl(builder.add(k, ir.Constant(ity, bias)), ir.Constant(ity, shift))
        return builder.bitcast(bits, args[0].type)
    return kf(kf), codegen


@overload(_pow2, inline="always")
def _pow2_jit(kf):
    return lambda kf: _pow2_bits(kf)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _em1_f32(r):
    """e^r − 1 for |r| ≤ ln2/2: Taylor to r⁷ (truncation < 2e-8 relative, float32's ulp 6e-8)."""
    return r * (np.float32(1.0) + r * (np.float32(1 / 2) + r * (np.float32(1 / 6) + r * (
        np.float32(1 / 24) + r * (np.float32(1 / 120) + r * (np.float32(1 / 720) + r * (
            np.float32(1 / 5040))))))))


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _em1_f64(r):
    """e^r − 1 for |r| ≤ ln2/2: Taylor to r¹³ (truncation < 2e-17 relative)."""
    return r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (
        1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (
            1 / 39916800 + r * (1 / 479001600 + r * (1 / 6227020800)))))))))))))


def _em1(r):
    """e^r − 1 for |r| ≤ ln2/2 in the type of r (pure Python; jitted through the overload)."""
    return _em1_f32(r) if isinstance(r, np.float32) else _em1_f64(r)


@overload(_em1, inline="always")
def _em1_jit(r):
    if r == types.float32:
        return lambda r: _em1_f32(r)
    return lambda r: _em1_f64(r)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def scalar_tanh(x):
    """tanh(x) in the float type of x, a few ulp from libm's (see the module docstring)."""
    one = scalar_like(x, 1.0)
    a = abs(x) * scalar_like(x, 2.0)
    a = a if a < scalar_like(x, _AMAX) else scalar_like(x, _AMAX)  # (NaN -> AMAX; restored below)
    kf = np.floor(a * scalar_like(x, _INV_LN2) + scalar_like(x, 0.5))
    r = (a - kf * scalar_like(x, _LN2_HI)) - kf * scalar_like(x, _LN2_LO)  # e^a = 2^k e^r, |r| ≤ ln2/2
    two_k = _pow2(kf)
    em1 = two_k * _em1(r) + (two_k - one)  # e^a − 1 without cancellation
    y = em1 / (em1 + scalar_like(x, 2.0))  # tanh|x| = (e^{2|x|} − 1) / (e^{2|x|} + 1)
    y = -y if x < 0 else y
    return x if x != x else y


@njit(cache=True, nogil=True, error_model="numpy")
def widest(bounds):
    """The largest wavefront's cell count k_max."""
    k = 0
    for s in range(bounds.shape[0]):
        k = max(k, bounds[s, 1] - bounds[s, 0])
    return k


@njit(cache=True, nogil=True, error_model="numpy")
def forward_sweep(zx, U, h, c, tanh_c, bounds, pred_all, mask, gates, wgate, b_lo, b_hi):
    """Steps 1b-5 over all wavefronts for samples b_lo ≤ b < b_hi, in place.

    Rows are (cell, sample) pairs, r = j·B + b. zx (N·B, G) = x W + b on entry, overwritten
    with the gate activations act = [σ(z_i) | σ(z_f1..fn) | σ(z_o) | tanh(z_g)] (each value is
    read once, just before its gate is written: no second (N·B, G) array); U (n·H, G);
    h, c ((N+1)·B, H), rows N·B… = the boundary state (read), the others written;
    tanh_c (N·B, H) written;
    bounds (S, 2) wavefront [start, stop) in cells; pred_all (n, N) cell position of p⁻_d
    (N: the boundary); mask (N·B,) 1 inside a sample's box, else 0.
    """
    NB, G = zx.shape
    H = h.shape[1]
    n, N = pred_all.shape
    B, Bc = NB // N, b_hi - b_lo
    one = scalar_like(zx[0, 0], 1.0)
    kB = widest(bounds) * Bc
    hp = np.empty((kB, n, H), dtype=zx.dtype)  # [h(p⁻_1) | … | h(p⁻_n)] of one wavefront
    hp2 = hp.reshape(kB, n * H)
    zr = np.empty((kB, G), dtype=zx.dtype)     # its recurrent part Σ_d h(p⁻_d) U_d
    act = zx                                   # step 2 writes over step 1's input
    A = act.reshape(NB, G // H, H)              # gate q of row r: A[r, q] (I, F + d, O, GG)
    I, F, O, GG = gates[0], gates[1], gates[2], gates[3]  # block offsets, from the layout
    # Step 2 runs as one flat loop over a cell's Bc rows: act = tanh(z·w)·w + (1 − w) with
    # w = 1/2 on the σ gates (σ(z) = tanh(z/2)/2 + 1/2, as Backend.sigmoid) and w = 1 on g
    # (then it is exactly tanh(z)); wgate (G,) holds w, read off the layout by the caller.
    # Long flat loops vectorise; short per-gate ones do not pay.
    wf = np.empty(Bc * G, dtype=zx.dtype)
    for e in range(Bc * G):
        wf[e] = wgate[e % G]
    zrf, actf = zr.reshape(kB * G), act.reshape(NB * G)
    for s in range(bounds.shape[0]):
        start, stop = bounds[s, 0], bounds[s, 1]
        for j in range(start, stop):  # 1b. gather the predecessors' h into one (k·Bc, n·H) block
            for d in range(n):
                q = pred_all[d, j] * B
                for bb in range(b_lo, b_hi):
                    for k in range(H):
                        hp[(j - start) * Bc + bb - b_lo, d, k] = h[q + bb, k]
        rows = (stop - start) * Bc
        np.dot(hp2[:rows], U, zr[:rows])  # 1b. Σ_d h(p⁻_d) U_d: one GEMM (k·Bc, n·H)·(n·H, G)
        for j in range(start, stop):
            e0, l0, ne = (j * B + b_lo) * G, (j - start) * Bc * G, Bc * G
            zf, af = zrf[l0:l0 + ne], actf[e0:e0 + ne]  # (af holds zx until overwritten)
            for e in range(ne):  # 1b, 2. z = zx + h U; σ(z_i, z_fd, z_o), tanh(z_g)
                af[e] = scalar_tanh((af[e] + zf[e]) * wf[e]) * wf[e] + (one - wf[e])
            for bb in range(b_lo, b_hi):
                r = j * B + bb
                for k in range(H):  # 3. c = i ⊙ g ...
                    c[r, k] = A[r, I, k] * A[r, GG, k]
                for d in range(n):  # 3. ... + f_d ⊙ c(p⁻_d)
                    q = pred_all[d, j] * B + bb
                    for k in range(H):
                        c[r, k] = c[r, k] + A[r, F + d, k] * c[q, k]
                m = mask[r]
                for k in range(H):  # 4, 5. h = o ⊙ tanh(c); masked: zero state
                    tc = scalar_tanh(c[r, k])
                    tanh_c[r, k] = tc
                    h[r, k] = A[r, O, k] * tc * m
                    c[r, k] = c[r, k] * m


@njit(cache=True, nogil=True, error_model="numpy")
def backward_sweep(dout, UT, c, act, tanh_c, bounds, pred_all, succ_all, mask, dZ, dcs,
                   dh0, dc0, want_state, h, x_w, WT, gU, gW, gb, dx_w, fused, R, gates,
                   b_lo, b_hi):
    """Mirror of ``forward_sweep`` for samples b_lo ≤ b < b_hi: fills their rows of dZ (N·B, G)
    and, with want_state, adds into their rows of dh0, dc0 (B, H).

    dout (N·B, H) ∂L/∂h from the layer's output; UT (G, n·H) = Uᵀ contiguous; c, act, tanh_c
    from the forward sweep; succ_all (n, N) cell position of p⁺_d (N: outside the grid);
    dcs (N·B, H) scratch: ∂L/∂c(p) after step 4', pulled by the predecessors.

    With ``fused`` (whole batch only: b_lo = 0, b_hi = B) also step 1a', one wavefront at a
    time while its dz rows are still in cache, instead of whole-grid passes after the sweep:
        gU (n·H, G) += [h(p⁻_1) | … | h(p⁻_n)]ᵀ dz      gW (C, G) += x_wᵀ dz      gb (G,) += Σ dz
        dx_w (N·B, C) rows of the wavefront = dz Wᵀ
    from h ((N+1)·B, H) of the forward sweep, x_w (N·B, C) the input in wavefront order and
    WT (G, C) = Wᵀ contiguous. gU, gW, gb are zeroed by the caller (float64: the sum over
    wavefronts loses nothing in float32).
    """
    NB, G = dZ.shape
    H = dout.shape[1]
    n, N = pred_all.shape
    B, Bc = NB // N, b_hi - b_lo
    one = scalar_like(dout[0, 0], 1.0)
    kB = widest(bounds) * Bc
    # dz goes straight into dZ when this call has the whole batch (a wavefront's rows are then
    # contiguous there, ready for the GEMM); a batch chunk collects its rows in dzb first.
    whole = Bc == B
    dzb = np.empty((kB if not whole else 0, G // H, H), dtype=dout.dtype)
    dzb2 = dzb.reshape(dzb.shape[0], G)
    DZ = dZ.reshape(NB, G // H, H) if whole else dzb  # where row lr of this wavefront's dz goes
    dhp = np.empty((kB, n, H), dtype=dout.dtype)  # dz Uᵀ of wavefront s + 1, then of s
    dhp2 = dhp.reshape(kB, n * H)
    dh = np.empty(H, dtype=dout.dtype)
    dc = np.empty(H, dtype=dout.dtype)
    A = act.reshape(NB, G // H, H)
    I, F, O, GG = gates[0], gates[1], gates[2], gates[3]  # block offsets, from the layout
    S = bounds.shape[0]
    fuse = fused and whole
    # 1a' runs on blocks of consecutive wavefronts, [lo, hi) in dZ rows, of ≥ R rows (or the
    # last): one GEMM per block, not per wavefront (a 16-row GEMM runs far below peak)
    cap = R + kB if fuse else 0
    hp = np.empty((cap, n, H), dtype=dout.dtype)  # 1a'. [h(p⁻_1) | … | h(p⁻_n)] of a block
    hp2 = hp.reshape(cap, n * H)
    hi = NB
    tU = np.empty((n * H if fuse else 0, G), dtype=dout.dtype)  # one wavefront's share of gU
    tW = np.empty((WT.shape[1] if fuse else 0, G), dtype=dout.dtype)  # ... of gW
    for s in range(S - 1, -1, -1):
        start, stop = bounds[s, 0], bounds[s, 1]
        next_start = bounds[s + 1, 0] if s + 1 < S else N  # first cell of wavefront s + 1
        for j in range(start, stop):
            for bb in range(b_lo, b_hi):
                r, lc = j * B + bb, (j - start) * Bc + bb - b_lo  # global row, row in the chunk
                lr = r if whole else lc
                for k in range(H):
                    dh[k] = dout[r, k]
                    dc[k] = 0
                for d in range(n):  # 1b'(pull). from the successors p⁺_d (wavefront s + 1)
                    q = succ_all[d, j]
                    if q < N:
                        ql, qr = (q - next_start) * Bc + bb - b_lo, q * B + bb  # row in dhp, global
                        for k in range(H):
                            dh[k] += dhp[ql, d, k]  # ∂L/∂h += [dz(p⁺_d) Uᵀ]_d
                            dc[k] += dcs[qr, k] * A[qr, F + d, k]  # += dc(p⁺_d) ⊙ f_d(p⁺_d)
                m = mask[r]
                for k in range(H):
                    dhk = dh[k] * m  # 5'. masked cells pass no gradient
                    tc, o, i, g = tanh_c[r, k], A[r, O, k], A[r, I, k], A[r, GG, k]
                    DZ[lr, O, k] = dhk * tc * o * (one - o)  # 4', 2'. do = dh ⊙ tanh(c); σ'
                    dck = dc[k] * m + dhk * o * (one - tc * tc)  # 4'. dc += dh ⊙ o ⊙ tanh'(c)
                    dcs[r, k] = dck
                    DZ[lr, I, k] = dck * g * i * (one - i)  # 3', 2'. di = dc ⊙ g; σ'
                    DZ[lr, GG, k] = dck * i * (one - g * g)  # 3', 2'. dg = dc ⊙ i; tanh'
                for d in range(n):  # 3', 2'. df_d = dc ⊙ c(p⁻_d); σ'
                    q = pred_all[d, j] * B + bb
                    for k in range(H):
                        f = A[r, F + d, k]
                        DZ[lr, F + d, k] = dcs[r, k] * c[q, k] * f * (one - f)
                if not whole:
                    for e in range(G):
                        dZ[r, e] = dzb2[lc, e]
        rows = (stop - start) * Bc
        if whole:  # 1b'(share). dh_prev = dz Uᵀ: one GEMM
            np.dot(dZ[start * B:stop * B], UT, dhp2[:rows])
        else:
            np.dot(dzb2[:rows], UT, dhp2[:rows])
        if fuse:  # 1a'. gather [h(p⁻_1) | … | h(p⁻_n)] of this wavefront, as the forward's 1b.
            base = hi - cap  # hp row i <-> row base + i of dZ
            for j in range(start, stop):
                for d in range(n):
                    q = pred_all[d, j] * B
                    for bb in range(B):
                        for k in range(H):
                            hp[j * B + bb - base, d, k] = h[q + bb, k]
            lo = start * B
            if s == 0 or hi - lo >= R:  # block [lo, hi) of dz rows, still in cache
                dz = dZ[lo:hi]
                np.dot(hp2[lo - base:].T, dz, tU)  # dU += hpᵀ dz
                for i in range(n * H):
                    for e in range(G):
                        gU[i, e] += tU[i, e]
                np.dot(x_w[lo:hi].T, dz, tW)  # dW += x_wᵀ dz
                for i in range(tW.shape[0]):
                    for e in range(G):
                        gW[i, e] += tW[i, e]
                for r in range(hi - lo):  # db += Σ dz
                    for e in range(G):
                        gb[e] += dz[r, e]
                np.dot(dz, WT, dx_w[lo:hi])  # dx = dz Wᵀ
                hi = lo
        if want_state:  # shares of predecessors outside the grid go to the initial state
            for j in range(start, stop):
                for d in range(n):
                    if pred_all[d, j] == N:
                        for bb in range(b_lo, b_hi):
                            r, lr = j * B + bb, (j - start) * Bc + bb - b_lo
                            for k in range(H):
                                dh0[bb, k] += dhp[lr, d, k]
                                dc0[bb, k] += dcs[r, k] * A[r, F + d, k]
