"""The per-wavefront driver of every numba cell sweep, written once; each cell brings only its
pointwise forward and backward (``numba_cells.py``).

This is ``sweep.ReferenceSweep`` as loops, with the cell left open. Per wavefront s:

    forward                                       backward (s = last … 0, pulling, no scatter)
    1a.  zx = x W + b (the layer, whole grid)
    1b.  gather [h(p⁻_1) | … | h(p⁻_n)], ONE GEMM  1b'(pull). dh = dout + Σ_d [dz(p⁻…)Uᵀ]_d pulled from
         with U, z = zx + h U                          p⁺_d;  dc = Σ_d dc_prev_d(p⁺_d)
    2-…  cell_forward(row)      (the cell's steps) 5'.  dh, dc = m ⊙ dh, m ⊙ dc
    5.   h, c = m ⊙ h, m ⊙ c                        …-2'. cell_backward(row) -> dz, dc_prev_d
                                                    1b'(share). ONE GEMM dz Uᵀ (shares of p⁻_d; those
                                                         outside the grid go to dh0, dc0)
                                                    1a'. (whole batch) dU, dW, db, dx on blocks
                                                         of wavefronts while dz is in cache

The two functions below are templates: they call ``cell_forward`` and ``cell_backward``, names
that are *not* defined in this module. ``specialise`` makes, per cell, a copy of each template
whose globals bind those names to the cell's jitted functions, and jits the copy
(``cache=True``: numba's on-disk cache keys a function by its code and its file, so each copy
gets its own name, and its file is the cell module's, so editing the cell functions
invalidates the cached drivers; editing this file changes the code, which does too). Closures
or dispatcher arguments would do the same job but numba cannot cache them (measured: a fresh
process recompiled every time; the compile of one cell's pair is ~15-20 s, cached ~0.05 s).
One cost of the trick: a traceback or typing error inside a specialised driver names
``numba_cells.py`` with this file's line numbers. Under NUMBA_DISABLE_JIT=1 the copies are
plain Python.

The row interface (rows are (cell, sample) pairs in wavefront order, r = j·B + b; gate q of
row r is Z[r, q, k], the layout's blocks in units of H, as in ``numba_kernels.py``)::

    cell_forward(Z, r, cp, P, gates, h, c, X, Sc)
        Z (N·B, G/H, H): row r holds z on entry; the cell overwrites it with what it keeps
        (its gate activations); cp (n, H) = c(p⁻_d), gathered; P: tuple of the cell's own
        parameters; gates (int64): block offsets read off the layout; writes h[r], c[r]
        (unmasked) and its cache rows X[r] (N·B, nx, H), Sc[r] (N·B, ns).
    cell_backward(Z, X, Sc, r, cp, h, c, dh, dc, P, gates, dP, DZ, lr, DCP)
        dh, dc (H,): ∂L/∂h(p), ∂L/∂c(p) from the sweep (masked; the cell may overwrite them);
        writes dz into DZ[lr] and dc(p⁻_d) into DCP[r, d]; adds its parameter gradients
        into dP (a tuple of float64 arrays shaped like P's).
"""

from __future__ import annotations

import types as pytypes

import numpy as np
from numba import njit

from .numba_kernels import widest


def forward_template(zx, U, h, c, X, Sc, bounds, pred_all, mask, P, gates, b_lo, b_hi):
    """Steps 1b-5 for samples b_lo ≤ b < b_hi. zx (N·B, G) = x W (+ b), overwritten by the
    cell's cache; U (n·H, G); h, c ((N+1)·B, H), rows N·B… the boundary state; X, Sc the
    cell's cache (see the module docstring); bounds (S, 2); pred_all (n, N); mask (N·B,)."""
    NB, G = zx.shape
    H = h.shape[1]
    n, N = pred_all.shape
    B, Bc = NB // N, b_hi - b_lo
    kB = widest(bounds) * Bc
    hp = np.empty((kB, n, H), dtype=zx.dtype)  # [h(p⁻_1) | … | h(p⁻_n)] of one wavefront
    hp2 = hp.reshape(kB, n * H)
    zr = np.empty((kB, G), dtype=zx.dtype)     # its recurrent part Σ_d h(p⁻_d) U_d
    zrf, zxf = zr.reshape(kB * G), zx.reshape(NB * G)
    Z = zx.reshape(NB, G // H, H)
    cp = np.empty((n, H), dtype=zx.dtype)      # c(p⁻_d) of one row
    for s in range(bounds.shape[0]):
        start, stop = bounds[s, 0], bounds[s, 1]
        for j in range(start, stop):  # 1b. gather the predecessors' h into one (k·Bc, n·H) block
            for d in range(n):
                q = pred_all[d, j] * B
                for bb in range(b_lo, b_hi):
                    for k in range(H):
                        hp[(j - start) * Bc + bb - b_lo, d, k] = h[q + bb, k]
        rows = (stop - start) * Bc
        np.dot(hp2[:rows], U, zr[:rows])  # 1b. Σ_d h(p⁻_d) U_d: one GEMM
        for j in range(start, stop):
            e0, l0 = (j * B + b_lo) * G, (j - start) * Bc * G
            for e in range(Bc * G):  # 1b. z = zx + h U
                zxf[e0 + e] += zrf[l0 + e]
            for bb in range(b_lo, b_hi):
                r = j * B + bb
                for d in range(n):
                    q = pred_all[d, j] * B + bb
                    for k in range(H):
                        cp[d, k] = c[q, k]
                # 2-4. the cell's own steps (cell_forward: bound by ``specialise``)
                cell_forward(Z, r, cp, P, gates, h, c, X, Sc)  # noqa: F821
                m = mask[r]
                for k in range(H):  # 5. masked cells keep zero state
                    h[r, k] = h[r, k] * m
                    c[r, k] = c[r, k] * m


def backward_template(dout, UT, h, c, act, X, Sc, bounds, pred_all, succ_all, mask, dZ, DCP,
                      dh0, dc0, want_state, P, gates, dP, x_w, WT, gU, gW, gb, dx_w, fused,
                      R, b_lo, b_hi):
    """Mirror of ``forward_template`` for samples b_lo ≤ b < b_hi: fills their rows of
    dZ (N·B, G) and DCP (N·B, n, H) (dc(p⁻_d) of each row, pulled by the predecessors), adds
    into dh0, dc0 (B, H) with want_state and into the cell's dP. dout (N·B, H); UT (G, n·H).
    With ``fused`` (whole batch only) also step 1a' (as ``numba_kernels.backward_sweep``):
    gU (n·H, G), gW (C, G), gb (G,; length 0: the layer has no b) float64, zeroed by the
    caller; dx_w (N·B, C); x_w (N·B, C); WT (G, C); R rows per block."""
    NB, G = dZ.shape
    H = dout.shape[1]
    n, N = pred_all.shape
    B, Bc = NB // N, b_hi - b_lo
    kB = widest(bounds) * Bc
    whole = Bc == B
    dzb = np.empty((kB if not whole else 0, G // H, H), dtype=dout.dtype)
    dzb2 = dzb.reshape(dzb.shape[0], G)
    DZ = dZ.reshape(NB, G // H, H) if whole else dzb  # where row lr of this wavefront's dz goes
    Z = act.reshape(NB, G // H, H)
    dhp = np.empty((kB, n, H), dtype=dout.dtype)  # dz Uᵀ of wavefront s + 1, then of s
    dhp2 = dhp.reshape(kB, n * H)
    dh = np.empty(H, dtype=dout.dtype)
    dc = np.empty(H, dtype=dout.dtype)
    cp = np.empty((n, H), dtype=dout.dtype)
    S = bounds.shape[0]
    fuse = fused and whole
    cap = R + kB if fuse else 0
    hp = np.empty((cap, n, H), dtype=dout.dtype)  # 1a'. [h(p⁻_1) | … | h(p⁻_n)] of a block
    hp2 = hp.reshape(cap, n * H)
    hi = NB
    tU = np.empty((n * H if fuse else 0, G), dtype=dout.dtype)
    tW = np.empty((WT.shape[1] if fuse else 0, G), dtype=dout.dtype)
    for s in range(S - 1, -1, -1):
        start, stop = bounds[s, 0], bounds[s, 1]
        next_start = bounds[s + 1, 0] if s + 1 < S else N
        for j in range(start, stop):
            for bb in range(b_lo, b_hi):
                r, lc = j * B + bb, (j - start) * Bc + bb - b_lo
                lr = r if whole else lc
                for k in range(H):
                    dh[k] = dout[r, k]
                    dc[k] = 0
                for d in range(n):  # 1b'(pull). pull from the successors p⁺_d (wavefront s + 1)
                    q = succ_all[d, j]
                    if q < N:
                        ql, qr = (q - next_start) * Bc + bb - b_lo, q * B + bb
                        for k in range(H):
                            dh[k] += dhp[ql, d, k]  # ∂L/∂h += [dz(p⁺_d) Uᵀ]_d
                            dc[k] += DCP[qr, d, k]  # ∂L/∂c += dc_prev_d(p⁺_d)
                m = mask[r]
                for k in range(H):  # 5'. masked cells pass no gradient
                    dh[k] = dh[k] * m
                    dc[k] = dc[k] * m
                for d in range(n):
                    q = pred_all[d, j] * B + bb
                    for k in range(H):
                        cp[d, k] = c[q, k]
                # 4'-2'. the cell's own steps, mirrored (cell_backward: bound by ``specialise``)
                cell_backward(Z, X, Sc, r, cp, h, c, dh, dc, P, gates, dP, DZ, lr,  # noqa: F821
                              DCP)
                if not whole:
                    for e in range(G):
                        dZ[r, e] = dzb2[lc, e]
        rows = (stop - start) * Bc
        if whole:  # 1b'(share). dh_prev = dz Uᵀ: one GEMM
            np.dot(dZ[start * B:stop * B], UT, dhp2[:rows])
        else:
            np.dot(dzb2[:rows], UT, dhp2[:rows])
        if fuse:  # 1a'. gather [h(p⁻_1) | … | h(p⁻_n)] of this wavefront
            base = hi - cap
            for j in range(start, stop):
                for d in range(n):
                    q = pred_all[d, j] * B
                    for bb in range(B):
                        for k in range(H):
                            hp[j * B + bb - base, d, k] = h[q + bb, k]
            lo = start * B
            if s == 0 or hi - lo >= R:  # 1a'. block [lo, hi) of dz rows, still in cache
                dzs = dZ[lo:hi]
                np.dot(hp2[lo - base:].T, dzs, tU)  # dU += hpᵀ dz
                for i in range(n * H):
                    for e in range(G):
                        gU[i, e] += tU[i, e]
                np.dot(x_w[lo:hi].T, dzs, tW)  # dW += x_wᵀ dz
                for i in range(tW.shape[0]):
                    for e in range(G):
                        gW[i, e] += tW[i, e]
                for i in range(hi - lo):  # db += Σ dz
                    for e in range(gb.shape[0]):
                        gb[e] += dzs[i, e]
                np.dot(dzs, WT, dx_w[lo:hi])  # dx = dz Wᵀ
                hi = lo
        if want_state:  # 1b'(share). shares of predecessors outside the grid: the initial state
            for j in range(start, stop):
                for d in range(n):
                    if pred_all[d, j] == N:
                        for bb in range(b_lo, b_hi):
                            r, lr = j * B + bb, (j - start) * Bc + bb - b_lo
                            for k in range(H):
                                dh0[bb, k] += dhp[lr, d, k]
                                dc0[bb, k] += DCP[r, d, k]


def specialise(template, name: str, cell_file: str, **cell_functions):
    """A jitted copy of ``template`` whose free names (``cell_forward``, ``cell_backward``) are
    ``cell_functions``, called ``name`` and filed under ``cell_file`` for numba's cache (see
    the module docstring). Returns a numba dispatcher (a Python function without the JIT)."""
    glb = dict(template.__globals__)
    glb.update(cell_functions)
    code = template.__code__.replace(co_filename=cell_file, co_name=name, co_qualname=name)
    fn = pytypes.FunctionType(code, glb, name)
    fn.__qualname__ = name
    fn.__doc__ = template.__doc__
    fn.__module__ = template.__module__
    return njit(cache=True, nogil=True, error_model="numpy")(fn)
