"""The wavefront sweep: the recurrence of an MD-LSTM layer over its grid, forward and backward,
and the one contract every backend's fast sweep follows.

Notation. We are at cell p of an n-D grid; p⁻_d is its predecessor along axis d (p⁺_d its
successor); outside the grid a predecessor holds the boundary state (zeros, or the given
h0, c0). The layer (``mdlstm.py``) did step 1a before the sweep, zx = x W + b for all cells,
and hands over zx in wavefront order (``grid.py``): wavefront s is the slice [start, stop) of
the cell axis, and row N of h and c is the boundary row.

Forward, for s = 0, 1, …, Σ(S_d − 1):

    1a. zx = x W + b                                         the layer's, before the sweep
    1b. z = zx[start:stop] + [h(p⁻_1) | … | h(p⁻_n)] U      one (k·B, n·H)·(n·H, G) matmul
    2-4. h, c = cell(z, c(p⁻_1), …, c(p⁻_n))                 the cell's own numbered steps
    5.  h, c = m ⊙ h, m ⊙ c                                  m: the sizes mask (1 without)

Backward, s = last … 0. L depends on h(p) through the output (dout) and through the
successors' step 1b, and on c(p) through the successors' cell step (their dc_prev):

    1b'(pull).  dh = dout(p) + Σ_d [dz(p⁺_d) Uᵀ]_d         dc = Σ_d dc_prev_d(p⁺_d)
                each wavefront *pulls* both from wavefront s+1 (gathers only, no scatter)
    5'.         dh, dc = m ⊙ dh, m ⊙ dc
    4'-2'.      dz, dc_prev = cell.backward(dh, dc)
    1b'(share). dz Uᵀ, split into the n predecessors' shares (pulled at s−1); the shares of
                predecessors outside the grid are the gradient of the initial state (dh0, dc0)

Why step 1b has two backward halves on two wavefronts. Step 1b of wavefront s reads h of the
cells' predecessors, and every predecessor lies on wavefront s−1; so the adjoint of that
matmul, dz(s) Uᵀ, is a gradient with respect to h on wavefront s−1. It is computed at s, the
only time dz(s) is known — one GEMM for the whole wavefront, 1b'(share) — and consumed one
step later, when wavefront s−1 gathers each cell's shares from its successors, 1b'(pull).

Step labels, the same in every cell, this module, the layer and every kernel: forward steps
are numbered (1a, 1b, 2, …); the backward step that reverses forward step k is k' (a prime),
and a backward step done in parts names each part in brackets, k'(part).

The contract of a sweep (the reference below; ``backends/numba.py``, ``backends/cupy.py``)::

    sweep.forward(*, cell, layout, plan, zx, params, h, c, mask) -> cache
        zx (N, B, G) (a fast sweep may overwrite it); h, c (N+1, B, H) filled in place;
        cache: any object with fields h, c (what its own backward needs)
    sweep.backward(*, cell, layout, plan, dout_w, cache, params, grads, want_state, mask,
                   x_w) -> SweepResult(dZ, dh0, dc0, fused)
        adds the cell's own parameter gradients into grads; fused: step 1a' done inside the
        sweep (FusedWeightGrads) or None (the layer then does it)

A backend answers ``be.sweep_for(cell)`` with its fast sweep registered for ``type(cell)``,
or with the reference sweep of this module.
"""

from __future__ import annotations

from typing import Any, List, NamedTuple, Optional

import numpy as np

from .grid import WavefrontPlan, wavefront_plan
from .validate import check_sizes


class DevicePlan(NamedTuple):
    """A WavefrontPlan's index arrays converted once to the backend (per backend and shape).

    Memory: 2N + 2·n·N int64 indices (+ the host plan's as many again), ~0.5 MB for a
    128×128 grid; ``device_plan`` keeps the backend's ``cache_shapes`` most recent shapes.
    """

    host: WavefrontPlan
    order: Any                 # (N,) raster index of the j-th cell in wavefront order
    inverse: Any               # (N,) wavefront position of raster cell r
    pred: List[List[Any]]      # pred[s][d] (k_s,) positions of p⁻_d (N: boundary row)
    succ: List[List[Any]]      # succ[s][d] (k_s,) positions of p⁺_d within wavefront s+1
    pred_all: List[Any]        # pred_all[d] (N,)


def device_plan(be, shape) -> DevicePlan:
    """Wavefront plan of ``shape`` with its index arrays on backend ``be`` (bounded cache)."""
    def make():
        host = wavefront_plan(tuple(shape))
        return DevicePlan(
            host=host, order=be.index(host.order), inverse=be.index(host.inverse),
            pred=[[be.index(row) for row in ps] for ps in host.pred],
            succ=[[be.index(row) for row in ss] for ss in host.succ],
            pred_all=[be.index(row) for row in host.pred_all])
    return be.shape_cache("device_plan").get_or_make(tuple(shape), make)


class SweepCache(NamedTuple):
    """What the reference backward sweep needs from the reference forward sweep."""

    h: Any            # (N+1, B, H) hidden states in wavefront order, row N = boundary state
    c: Any            # (N+1, B, H) cell states, same layout
    steps: List[Any]  # one cell step cache per wavefront


class FusedWeightGrads(NamedTuple):
    """Step 1a' done inside a fast backward sweep, wavefront by wavefront."""

    W: Any      # (C, G)  = Σ_cells x_wᵀ dz
    U: Any      # (n·H, G) = Σ_cells [h(p⁻_1) | … | h(p⁻_n)]ᵀ dz
    b: Any      # (G,)    = Σ_cells dz, or None: the layer has no b (the layer-norm cells)
    dx_w: Any   # (N, B, C) = dZ Wᵀ, wavefront order


class SweepResult(NamedTuple):
    """What every backward sweep returns (the one result type of the contract)."""

    dZ: Any                             # (N, B, G) ∂L/∂z for every cell, wavefront order
    dh0: Any                            # (B, H) ∂L/∂h0, or None without want_state
    dc0: Any                            # (B, H) ∂L/∂c0, or None
    fused: Optional[FusedWeightGrads]   # step 1a' already done, or None


class ReferenceSweep:
    """The readable sweep on any backend: array-API calls only, any cell object."""

    name = "reference"
    supports_mask = True

    def __init__(self, be):
        self.be = be

    def forward(self, *, cell, layout, plan: DevicePlan, zx, params, h, c,
                mask=None) -> SweepCache:
        """Steps 1b-5 over all wavefronts. zx (N, B, G); h, c (N+1, B, H) filled in place."""
        be, xp = self.be, self.be.xp
        U = params["U"]
        n, B, G = plan.host.ndim, zx.shape[1], zx.shape[2]
        steps = []
        for s, (start, stop) in enumerate(plan.host.bounds):
            k = stop - start
            h_prev = [be.take(h, plan.pred[s][d]) for d in range(n)]  # h(p⁻_d) (k, B, H)
            c_prev = [be.take(c, plan.pred[s][d]) for d in range(n)]
            hp = xp.concat(h_prev, axis=-1) if n > 1 else h_prev[0]  # (k, B, nH)
            z = zx[start:stop, ...] + xp.reshape(xp.reshape(hp, (k * B, -1)) @ U,
                                                 (k, B, G))  # 1b.
            h_s, c_s, step = cell.forward(be, layout, z, c_prev, params)  # 2-4.
            if mask is not None:  # 5. masked cells keep zero state
                h_s, c_s = h_s * mask[start:stop, ...], c_s * mask[start:stop, ...]
            h[start:stop, ...] = h_s
            c[start:stop, ...] = c_s
            steps.append(step)
        return SweepCache(h, c, steps)

    def backward(self, *, cell, layout, plan: DevicePlan, dout_w, cache: SweepCache, params,
                 grads, want_state: bool, mask=None, x_w=None) -> SweepResult:
        """Mirror of ``forward``: dout_w (N, B, H) -> SweepResult (x_w unused here)."""
        be, xp = self.be, self.be.xp
        U = params["U"]
        n, H, G = plan.host.ndim, layout.hidden, layout.size
        N, B = dout_w.shape[0], dout_w.shape[1]
        dt = dout_w.dtype
        dZ = xp.zeros((N, B, G), dtype=dt)
        dh0 = dc0 = None
        if want_state:
            dh0, dc0 = xp.zeros((B, H), dtype=dt), xp.zeros((B, H), dtype=dt)
        zero = xp.zeros((1, B, H), dtype=dt)
        next_dh = next_dc = None  # wavefront s+1's shares for its predecessors, + a zero row
        for s in range(len(plan.host.bounds) - 1, -1, -1):
            start, stop = plan.host.bounds[s]
            k = stop - start
            dh = dout_w[start:stop, ...]
            dc = xp.zeros((k, B, H), dtype=dt)
            if next_dh is not None:  # 1b'(pull). from the successors p⁺_d (wavefront s+1)
                for d in range(n):
                    dh = dh + be.take(next_dh[d], plan.succ[s][d])
                    dc = dc + be.take(next_dc[d], plan.succ[s][d])
            if mask is not None:  # 5'. h = m ⊙ h_cell  =>  dh_cell = m ⊙ dh (same for c)
                dh, dc = dh * mask[start:stop, ...], dc * mask[start:stop, ...]
            dz, dc_prev = cell.backward(be, layout, dh, dc, cache.steps[s], params,
                                        grads)  # 4'-2'.
            dZ[start:stop, ...] = dz
            dhp = xp.reshape(xp.reshape(dz, (k * B, G)) @ U.T, (k, B, n * H))  # 1b'(share).
            next_dh = [xp.concat([dhp[..., d * H:(d + 1) * H], zero], axis=0)
                       for d in range(n)]
            next_dc = [xp.concat([dc_prev[d], zero], axis=0) for d in range(n)]
            if want_state:  # 1b'(share). predecessors outside the grid: the initial state
                for d in range(n):
                    m = boundary_mask(be, plan, s, d, be.dtype_name(dout_w))  # (k, 1, 1)
                    dh0 = dh0 + xp.sum(dhp[..., d * H:(d + 1) * H] * m, axis=0)
                    dc0 = dc0 + xp.sum(dc_prev[d] * m, axis=0)
        return SweepResult(dZ, dh0, dc0, None)


def sizes_mask(be, plan: DevicePlan, sizes, B, dtype: str):
    """Per-sample sizes (B, n) -> mask (N, B, 1) in wavefront order: 1 inside the sample's box."""
    shape = plan.host.shape
    sizes = check_sizes(be.to_numpy(sizes) if be.is_array(sizes) else sizes, B, shape)
    coords = np.stack(np.unravel_index(plan.host.order, shape), axis=1)  # (N, n) wavefront
    inside = (coords[:, None, :] < sizes[None, :, :]).all(axis=-1)  # (N, B)
    return be.asarray(inside.astype(dtype)[:, :, None], dtype=dtype)


def boundary_mask(be, plan: DevicePlan, s, d, dtype: str):
    """(k_s, 1, 1) float mask of wavefront s: 1 where p⁻_d lies outside the grid."""
    host = (plan.host.pred[s][d] == plan.host.ncells).astype(dtype)[:, None, None]
    return be.asarray(host, dtype=dtype)
