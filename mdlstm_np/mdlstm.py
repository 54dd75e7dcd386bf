"""The multi-dimensional LSTM layer: a wavefront sweep over an n-D grid, forward and backward.

Equations (Graves' cell; other cells in ``mdlstm_np/cells``). At cell p of an n-D grid, with
predecessors p⁻_d (zero — or the given initial state — outside the grid):

    1.  z(p) = x(p) W + b + Σ_d h(p⁻_d) U_d              W (C, G), U_d (H, G), b (G,)
    2-4.     (h(p), c(p)) = cell(z(p), c(p⁻_1), …, c(p⁻_n))

Shapes: x (B, S_1, …, S_n, C) -> h (B, S_1, …, S_n, H). The n recurrent matrices are stored
stacked, U = [U_1; …; U_n] of shape (n·H, G), so step 1's recurrent part is one matmul of the
concatenated predecessor states [h(p⁻_1) | … | h(p⁻_n)] (k·B, n·H) with U.

Schedule (``grid.py``). Cells are stored in wavefront order (sorted by index sum s), so a
wavefront is one slice of the cell axis:

    1a. zx = x W + b for *all* cells: one (N·B, C)·(C, G) matmul before the sweep
    for s = 0, 1, …, Σ(S_d − 1):            (H + W − 1 steps for a 2-D H×W grid)
        1b. z = zx[s] + [h(p⁻_1) | … | h(p⁻_n)] U      one (k·B, n·H)·(n·H, G) matmul
        2-4. h[s], c[s] = cell(z, c(p⁻_d))

Backward, the mirror image. L depends on h(p) through the output (dout) and through the
successors p⁺_d, whose step 1b used h(p), and on c(p) through the successors' step 3:

    ∂L/∂h(p) = dout(p) + Σ_d [dz(p⁺_d) U_dᵀ]         ∂L/∂c(p) = Σ_d dc_prev_d(p⁺_d)

so the sweep runs s = last … 0, each wavefront *pulling* the two terms from wavefront s+1
(no scatter), then:

    2-4b. dz[s], dc_prev = cell.backward(dh, dc)
    1b-b. dh_prev = dz U ᵀ  → split into the n predecessors' shares (pulled at s−1)

and after the sweep the weight gradients are whole-grid matmuls (no per-step accumulation):

    1a-b. dW = xᵀ dZ      db = Σ dZ      dU = [h(p⁻_1) | … | h(p⁻_n)]ᵀ dZ      dx = dZ Wᵀ
"""

from __future__ import annotations

from typing import Any, List, NamedTuple

import numpy as np

from .backend import get_backend
from .cells import make_cell
from .grid import WavefrontPlan, wavefront_plan
from .validate import (check_array, check_dtype_name, check_grid_input, check_params,
                       check_positive_int, check_sizes, check_state)


class DevicePlan(NamedTuple):
    """A WavefrontPlan's index arrays converted once to the backend (per backend and shape)."""

    host: WavefrontPlan
    order: Any                 # (N,)
    inverse: Any               # (N,)
    pred: List[List[Any]]      # pred[s][d] (k_s,)
    succ: List[List[Any]]      # succ[s][d] (k_s,)
    pred_all: List[Any]        # pred_all[d] (N,)


def device_plan(be, shape) -> DevicePlan:
    """Wavefront plan of ``shape`` with its index arrays on backend ``be`` (cached on ``be``)."""
    cache = be.__dict__.setdefault("_plans", {})
    key = tuple(shape)
    if key not in cache:
        p = wavefront_plan(key)
        cache[key] = DevicePlan(
            host=p, order=be.index(p.order), inverse=be.index(p.inverse),
            pred=[[be.index(row) for row in ps] for ps in p.pred],
            succ=[[be.index(row) for row in ss] for ss in p.succ],
            pred_all=[be.index(row) for row in p.pred_all])
    return cache[key]


class SweepCache(NamedTuple):
    """What the backward sweep needs from the forward sweep (reference implementation)."""

    h: Any            # (N+1, B, H) hidden states in wavefront order, row N = boundary state
    c: Any            # (N+1, B, H) cell states, same layout
    steps: List[Any]  # one cell step cache per wavefront


class FusedWeightGrads(NamedTuple):
    """Step 1a-b done inside a hot backward sweep (optional 4th item of its result)."""

    W: Any      # (C, G)  = Σ_cells x_wᵀ dz
    U: Any      # (n·H, G) = Σ_cells [h(p⁻_1) | … | h(p⁻_n)]ᵀ dz
    b: Any      # (G,)    = Σ_cells dz
    dx_w: Any   # (N, B, C) = dZ Wᵀ, wavefront order


class MDLSTMCache(NamedTuple):
    """Everything ``MDLSTM.backward`` needs (named, never unpacked by position)."""

    plan: DevicePlan
    x_w: Any            # (N, B, C) the input in wavefront order
    params: dict
    sweep: Any          # SweepCache (reference) or a hot loop's own cache
    hot: bool           # True when a backend's hot loop ran the sweep
    batch: int
    has_state: bool
    mask: Any           # (N, B, 1) 1 inside each sample's box, 0 outside; None: no masking


# --------------------------------------------------------------------------- reference sweep
def sweep_forward(be, cell, lay, dp: DevicePlan, zx, p, h, c, mask=None) -> SweepCache:
    """Steps 1b-4 over all wavefronts. zx (N, B, G); h, c (N+1, B, H) filled in place.

    mask (N, B, 1) or None: 5. h, c = m ⊙ h, m ⊙ c (cells outside a sample stay zero).
    """
    xp = be.xp
    U = p["U"]
    n, B, G = dp.host.ndim, zx.shape[1], zx.shape[2]
    steps = []
    for s, (a, b) in enumerate(dp.host.bounds):
        k = b - a
        h_prev = [be.take(h, dp.pred[s][d]) for d in range(n)]  # h(p⁻_d), (k, B, H) each
        c_prev = [be.take(c, dp.pred[s][d]) for d in range(n)]
        hp = xp.concat(h_prev, axis=-1) if n > 1 else h_prev[0]  # (k, B, nH)
        z = zx[a:b, ...] + xp.reshape(xp.reshape(hp, (k * B, -1)) @ U, (k, B, G))  # 1b.
        h_s, c_s, step = cell.forward(be, lay, z, c_prev, p)  # 2-4.
        if mask is not None:  # 5. masked cells keep zero state
            h_s, c_s = h_s * mask[a:b, ...], c_s * mask[a:b, ...]
        h[a:b, ...] = h_s
        c[a:b, ...] = c_s
        steps.append(step)
    return SweepCache(h, c, steps)


def sweep_backward(be, cell, lay, dp: DevicePlan, dout_w, sc: SweepCache, p, grads,
                   want_state: bool, mask=None):
    """Mirror of ``sweep_forward``: dout_w (N, B, H) -> dZ (N, B, G) (+ dh0, dc0 (B, H))."""
    xp = be.xp
    U = p["U"]
    n, H = dp.host.ndim, lay.hidden
    N, B = dout_w.shape[0], dout_w.shape[1]
    G = lay.size
    dZ = xp.zeros((N, B, G), dtype=dout_w.dtype)
    dh0 = dc0 = None
    if want_state:
        dh0 = xp.zeros((B, H), dtype=dout_w.dtype)
        dc0 = xp.zeros((B, H), dtype=dout_w.dtype)
    nxt_dh = nxt_dc = None  # wavefront s+1's shares for its predecessors, zero row appended
    for s in range(len(dp.host.bounds) - 1, -1, -1):
        a, b = dp.host.bounds[s]
        k = b - a
        dh = dout_w[a:b, ...]
        dc = xp.zeros((k, B, H), dtype=dout_w.dtype)
        if nxt_dh is not None:  # pull from the successors p⁺_d (wavefront s+1)
            for d in range(n):
                dh = dh + be.take(nxt_dh[d], dp.succ[s][d])
                dc = dc + be.take(nxt_dc[d], dp.succ[s][d])
        if mask is not None:  # 5b. h = m ⊙ h_cell  =>  dh_cell = m ⊙ dh (same for c)
            dh, dc = dh * mask[a:b, ...], dc * mask[a:b, ...]
        dz, dc_prev = cell.backward(be, lay, dh, dc, sc.steps[s], p, grads)  # 4b-2b.
        dZ[a:b, ...] = dz
        dhp = xp.reshape(xp.reshape(dz, (k * B, G)) @ U.T, (k, B, n * H))  # 1b-b.
        zero = xp.zeros((1, B, H), dtype=dout_w.dtype)
        nxt_dh = [xp.concat([dhp[..., d * H:(d + 1) * H], zero], axis=0) for d in range(n)]
        nxt_dc = [xp.concat([dc_prev[d], zero], axis=0) for d in range(n)]
        if want_state:  # shares of predecessors outside the grid go to the initial state
            for d in range(n):
                m = _boundary_mask(be, dp, s, d, be.dtype_name(dout_w))  # (k, 1, 1)
                dh0 = dh0 + xp.sum(dhp[..., d * H:(d + 1) * H] * m, axis=0)
                dc0 = dc0 + xp.sum(dc_prev[d] * m, axis=0)
    return dZ, dh0, dc0


def sizes_mask(be, dp: DevicePlan, sizes, B, dtype: str):
    """Per-sample sizes (B, n) -> mask (N, B, 1) in wavefront order: 1 inside the sample's box."""
    shape = dp.host.shape
    sizes = check_sizes(be.to_numpy(sizes) if be.is_array(sizes) else sizes, B, shape)
    coords = np.stack(np.unravel_index(dp.host.order, shape), axis=1)  # (N, n) wavefront order
    inside = (coords[:, None, :] < sizes[None, :, :]).all(axis=-1)  # (N, B)
    return be.asarray(inside.astype(dtype)[:, :, None], dtype=dtype)


def _boundary_mask(be, dp: DevicePlan, s, d, dtype: str):
    """(k_s, 1, 1) float mask: 1 where p⁻_d lies outside the grid."""
    host = (dp.host.pred[s][d] == dp.host.ncells).astype(dtype)[:, None, None]
    return be.asarray(host, dtype=dtype)


# --------------------------------------------------------------------------- the layer
class MDLSTM:
    """Multi-dimensional LSTM layer over n-D grids (one scan direction, from the origin corner).

    Parameters
    ----------
    in_channels : C, channels of the input's last axis.
    hidden : H, width of the hidden and cell state.
    ndim : n ≥ 1, number of grid axes (1: an ordinary LSTM over sequences).
    cell : cell variant, ``"graves"`` (default), ``"stable"``, ``"leakylp"``, or a cell object.
    peepholes : Graves' peephole connections (graves cell only).
    ln : layer-normalised cell: False, True (NaN-free formulation) or "seed" (the seed's).
    forget_bias : initial value of the forget-gate biases (TensorFlow's LSTMCell adds a
        constant 1.0 to z_f; starting b_f at 1.0 gives identical training).
    backend : ``"numpy"``, ``"numba"``, ``"cupy"``, ``"auto"`` or a Backend.
    dtype : ``"float32"`` or ``"float64"``; inputs and parameters must match (no silent casts).

    Parameters (``init_params``): W (C, G), U (n·H, G), b (G,) plus the cell's own, if any.
    The gate order and G come from the cell (``layer.layout``, ``gates.py``): graves (with or
    without peepholes) [i | f_1..f_n | o | g], G = (n+3)H; stable [i | f | o | λ_1..λ_n | g] and
    leakylp [f | ω₀ | ω₁ | λ_1..λ_n | g], G = (n+4)H (4H for n = 1, no λ); the layer-norm
    cells have no b (their shift is the bias). Peepholes add w_i (H,), w_f (n, H), w_o (H,).
    Initialisation: W and U uniform in ±sqrt(6 / (C + n·H + G)) (Glorot, as TensorFlow's
    LSTMCell treats its stacked [x, h] kernel), b = 0 except the block named "f" (the forget
    gate; for leakylp the leak) = forget_bias.
    """

    def __init__(self, in_channels, hidden, ndim=2, *, cell="graves", peepholes=False,
                 ln=False, forget_bias=0.0, backend="numpy", dtype="float64"):
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.hidden = check_positive_int(hidden, "hidden")
        self.ndim = check_positive_int(ndim, "ndim")
        self.dtype = check_dtype_name(dtype)
        self.forget_bias = float(forget_bias)
        self.be = get_backend(backend)
        self.cell = make_cell(cell, peepholes=peepholes, ln=ln)
        self.layout = self.cell.layout(self.ndim, self.hidden)

    # ------------------------------------------------------------------ parameters
    def param_shapes(self) -> dict:
        C, H, n, G = self.in_channels, self.hidden, self.ndim, self.layout.size
        shapes = {"W": (C, G), "U": (n * H, G)}
        if getattr(self.cell, "uses_bias", True):
            shapes["b"] = (G,)
        shapes.update(self.cell.param_shapes(n, H))
        return shapes

    def init_params(self, rng: np.random.Generator) -> dict:
        """Fresh parameters (see the class docstring), as backend arrays of ``self.dtype``."""
        C, H, n, G = self.in_channels, self.hidden, self.ndim, self.layout.size
        limit = np.sqrt(6.0 / (C + n * H + G))
        host = {"W": rng.uniform(-limit, limit, (C, G)),
                "U": rng.uniform(-limit, limit, (n * H, G))}
        if "b" in self.param_shapes():
            host["b"] = np.zeros(G)
            if "f" in dict(self.layout.blocks):
                host["b"][self.layout.slice("f")] = self.forget_bias
        for key, shape in self.cell.param_shapes(n, H).items():
            host[key] = self.cell.init_value(key, shape)
        return {k: self.be.asarray(v, dtype=self.dtype) for k, v in host.items()}

    # ------------------------------------------------------------------ forward
    def forward(self, params, x, *, h0=None, c0=None, sizes=None):
        """x (B, S_1..S_n, C) -> out (B, S_1..S_n, H), cache.

        h0, c0 (B, H), optional: the state every predecessor outside the grid contributes
        (zeros when omitted). For n = 1 this is the usual LSTM initial state.
        sizes (B, n) ints, optional: sample b occupies the box [0, sizes[b, d]) of the padded
        grid. Cells outside it are masked: zero state, zero output, zero gradient, so each
        sample's result equals running it alone.
        """
        be, xp = self.be, self.be.xp
        check_grid_input(be, x, ndim=self.ndim, channels=self.in_channels, dtype=self.dtype)
        check_params(be, params, self.param_shapes(), self.dtype)
        B, S, C, H, G = x.shape[0], tuple(x.shape[1:-1]), self.in_channels, self.hidden, \
            self.layout.size
        check_state(be, h0, name="h0", batch=B, hidden=H, dtype=self.dtype)
        check_state(be, c0, name="c0", batch=B, hidden=H, dtype=self.dtype)
        dp = device_plan(be, S)
        N = dp.host.ncells
        mask = None if sizes is None else sizes_mask(be, dp, sizes, B, self.dtype)  # (N, B, 1)
        # 0. cells in wavefront order, batch inside: (B, N, C) -> (N, B, C)
        x_w = be.take(xp.permute_dims(xp.reshape(x, (B, N, C)), (1, 0, 2)), dp.order)
        # 1a. input projection of every cell at once
        # (tensordot, not @: numpy's matmul leaves BLAS when the inner size C is 1, the seed's
        # case, and is then ~4x slower; tensordot always reaches the GEMM)
        zx = xp.reshape(xp.tensordot(xp.reshape(x_w, (N * B, C)), params["W"], axes=1),
                        (N, B, G))
        if "b" in params:
            zx += params["b"]  # zx is fresh: add in place, no second (N, B, G) array
        h = xp.zeros((N + 1, B, H), dtype=x.dtype)  # row N: the boundary state
        c = xp.zeros((N + 1, B, H), dtype=x.dtype)
        if h0 is not None:
            h[N, ...] = h0
        if c0 is not None:
            c[N, ...] = c0
        hot = be.hot_loop("forward", self.cell, mask is not None)  # a fast sweep, or None
        if hot is not None:
            sweep = hot(self.cell, self.layout, dp, zx, params, h, c, mask)
        else:
            sweep = sweep_forward(be, self.cell, self.layout, dp, zx, params, h, c, mask)
        out = self._to_grid(sweep.h[:N, ...], dp, B, S)
        cache = MDLSTMCache(dp, x_w, params, sweep, hot is not None, B,
                            h0 is not None or c0 is not None, mask)
        return out, cache

    # ------------------------------------------------------------------ backward
    def backward(self, dout, cache: MDLSTMCache, *, return_state=False):
        """dout (B, S_1..S_n, H) -> dx (B, S_1..S_n, C), dparams {name: array}.

        With ``return_state=True`` also returns (dh0, dc0), each (B, H) (None when the forward
        pass was given no initial state).
        """
        be, xp = self.be, self.be.xp
        dp, p, B = cache.plan, cache.params, cache.batch
        N, S, H, C, G, n = dp.host.ncells, dp.host.shape, self.hidden, self.in_channels, \
            self.layout.size, self.ndim
        check_array(be, dout, name="dout", shape=(B, *S, H), dtype=self.dtype)
        dout_w = be.take(xp.permute_dims(xp.reshape(dout, (B, N, H)), (1, 0, 2)), dp.order)
        grads = {k: xp.zeros(v.shape, dtype=v.dtype) for k, v in p.items()
                 if k not in ("W", "U", "b")}  # the cell's own parameters, accumulated
        fused = None  # a hot loop may hand back step 1a-b already done (FusedWeightGrads)
        if cache.hot:
            res = be.hot_loop("backward", self.cell, cache.mask is not None)(
                self.cell, self.layout, dp, dout_w, cache.sweep, p, grads, cache.has_state,
                cache.mask, x_w=cache.x_w)
            dZ, dh0, dc0 = res[:3]
            fused = res[3] if len(res) > 3 else None
        else:
            dZ, dh0, dc0 = sweep_backward(be, self.cell, self.layout, dp, dout_w, cache.sweep,
                                          p, grads, cache.has_state, cache.mask)
        if fused is not None:  # accumulated wavefront by wavefront while dz was in cache
            grads.update(W=fused.W, U=fused.U, b=fused.b)
            dx = self._to_grid(fused.dx_w, dp, B, S)
            return (dx, grads, (dh0, dc0)) if return_state else (dx, grads)
        # 1a-b. whole-grid weight gradients
        dZ2 = xp.reshape(dZ, (N * B, G))
        grads["W"] = xp.reshape(cache.x_w, (N * B, C)).T @ dZ2
        if "b" in p:
            grads["b"] = xp.sum(dZ2, axis=0)
        h_prev = [be.take(cache.sweep.h, dp.pred_all[d]) for d in range(n)]  # (N, B, H) each
        hp = xp.concat(h_prev, axis=-1) if n > 1 else h_prev[0]
        grads["U"] = xp.reshape(hp, (N * B, n * H)).T @ dZ2
        dx_w = xp.reshape(dZ2 @ p["W"].T, (N, B, C))
        dx = self._to_grid(dx_w, dp, B, S)
        if return_state:
            return dx, grads, (dh0, dc0)
        return dx, grads

    def _to_grid(self, a_w, dp: DevicePlan, B, S):
        """(N, B, F) in wavefront order -> (B, *S, F) in raster order."""
        xp = self.be.xp
        a = xp.permute_dims(self.be.take(a_w, dp.inverse), (1, 0, 2))
        return xp.reshape(a, (B, *S, a.shape[-1]))
