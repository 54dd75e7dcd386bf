"""The numba backend: the numpy reference plus jitted hot loops for every cell's sweep.

Everything is the numpy backend except the sweeps, registered in ``fast_sweeps``: the plain
Graves cell (the MD-LSTM and the SD baselines, which are the same engine with n = 1) runs in
its own two jitted functions (``numba_kernels.py``, described below); every other cell (layer
norm, stable, leakylp, peepholes) runs ``NumbaCellSweep``: one driver for all of them
(``numba_driver.py``) specialised with the cell's pointwise functions (``numba_cells.py``).

What the hot loop stores for the backward pass (``NumbaSweep``), per cell and sample:
h, c (the layer's own (N+1, B, H) stores), the gate activations act (G = (n+3)·H) and
tanh(c) (H): (n + 6)·H numbers (+ the mask), against (2n + 6)·H in the reference's step
caches. act is the layer's own zx array, overwritten by the forward kernel.

The backward kernel also does the layer's step 1a' (dU, dW, db, dx) block by block while dz
is in cache and hands it back as ``sweep.FusedWeightGrads`` (whole-batch sweeps only; batch
chunks on threads leave it to the layer). Measured on this 2-core machine (float32, fused vs
not, interleaved in one process): layer backward at M (32×32, B 16, H 16) ~13.3 -> ~11.6 ms
on one core, ~11.8 -> ~10.2 ms with NumPy's BLAS on two; at L (128×128, B 8, H 32) ~260-350
-> ~230-260 ms; peak memory at L 306 -> 258 MB (no gathered (N·B, n·H) predecessor array).
What is left of step 1a' is mostly the dU GEMM itself (~2.7 ms at M, one core).

The recurrent GEMMs go through SciPy's BLAS (numba's ``np.dot``), which this backend puts on
one thread the first time it runs (see ``_scipy_blas_one_thread``).
"""

from __future__ import annotations

import ctypes
import glob
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np

from ..cells.graves import GravesCell
from ..sweep import FusedWeightGrads, SweepResult
from .base import Backend


class NumbaSweep(NamedTuple):
    """The jitted forward sweep's cache (``MDLSTMCache.sweep_cache``)."""

    h: Any        # (N+1, B, H) hidden states, wavefront order, row N = boundary state
    c: Any        # (N+1, B, H) cell states
    act: Any      # (N, B, G) [σ(z_i) | σ(z_f1..fn) | σ(z_o) | tanh(z_g)]
    tanh_c: Any   # (N, B, H)
    mask: Any     # (N·B,) the mask the kernel used (ones without sizes)


class KernelPlan(NamedTuple):
    """A wavefront plan as the kernels want it: global positions, host int64 (per shape)."""

    bounds: np.ndarray     # (S, 2) [start, stop) of each wavefront
    pred_all: np.ndarray   # (n, N) position of p⁻_d, N when outside the grid
    succ_all: np.ndarray   # (n, N) position of p⁺_d, N when outside the grid


def kernel_plan(host) -> KernelPlan:
    """grid.WavefrontPlan -> KernelPlan (succ turned from wavefront-local to global)."""
    N, n = host.ncells, host.ndim
    bounds = np.asarray(host.bounds, dtype=np.int64).reshape(-1, 2)
    succ_all = np.full((n, N), N, dtype=np.int64)
    for s in range(len(host.bounds) - 1):
        a, b = host.bounds[s]
        a1, b1 = host.bounds[s + 1]
        local = host.succ[s]  # (n, k_s), k_{s+1} = "no successor"
        succ_all[:, a:b] = np.where(local < b1 - a1, local + a1, N)
    return KernelPlan(bounds, np.ascontiguousarray(host.pred_all, dtype=np.int64), succ_all)


_blas_done = False


def _scipy_blas_one_thread():
    """Put SciPy's bundled OpenBLAS (the BLAS numba's np.dot calls) on one thread, once.

    The per-wavefront GEMMs are small ((k·B, n·H)·(n·H, G)); OpenBLAS splitting each of them
    over threads made the L sweep ~20× slower on this 2-core machine (thread hand-offs per
    call), and switching the count back and forth around every sweep was worse still (~15× on
    a whole training step). So it is set once, for the process: scipy.linalg calls made in the
    same process then run single-threaded too. NumPy's own OpenBLAS (the layer's big
    whole-grid matmuls) is a different library and is left alone. No-op when SciPy's BLAS is
    not the bundled OpenBLAS (then nothing is known about its threads).
    """
    global _blas_done
    if _blas_done:
        return
    _blas_done = True
    try:
        import scipy

        libs = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
        for path in glob.glob(os.path.join(libs, "libscipy_openblas*")):
            ctypes.CDLL(path).scipy_openblas_set_num_threads(1)
            break
    except (ImportError, OSError, AttributeError):
        pass


_pool = None


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool
    if _pool is None or _pool._max_workers < workers:
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mdlstm-numba")
    return _pool


class NumbaBackend(Backend):
    """The numpy backend whose MD-LSTM sweeps (every cell) run in numba-jitted kernels.

    threads : batch chunks run side by side (Python threads; the kernels release the GIL).
        Default 1: on this 2-core machine a second sweep thread competes with NumPy's
        OpenBLAS threads (which spin after each call) and with other processes, and no win
        could be shown; try ``NumbaBackend(threads=2)`` (``--numba-threads 2`` in the
        benchmark) on a quiet machine with more cores.
    min_work : sweeps with fewer than this many gate values N·B·G run on one thread (a thread
        hand-off costs ~50 µs; at 8×8, B 16, H 16 the whole sweep takes ~300 µs).
    Raises ValueError for a non-positive or non-int ``threads``.
    """

    name = "numba"

    def __init__(self, threads=1, min_work=1 << 18):
        super().__init__(np)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads: expected a positive int, got {threads!r}")
        self.threads, self.min_work = threads, int(min_work)
        self._graves = NumbaGravesSweep(self)
        self._fast = None  # {cell class: sweep}, made on first use

    def fast_sweeps(self) -> dict:
        """Every cell, masked or not: Graves' plain cell (the MD-LSTM and the SD baselines) in
        its own kernels, the others through the one driver of ``numba_driver.py``."""
        if self._fast is None:  # imported on first use: jitting is lazy, importing is not free
            from .numba_cells import KERNELS

            self._fast = {GravesCell: self._graves,
                          **{cls: NumbaCellSweep(self, kern) for cls, kern in KERNELS.items()}}
        return self._fast

    def kernel_plan(self, plan) -> KernelPlan:
        """The kernels' form of a device plan (bounded per-shape cache)."""
        return self.shape_cache("numba_kernel_plan").get_or_make(
            plan.host.shape, lambda: kernel_plan(plan.host))

    fuse_bytes = 1 << 18  # 128 KB … 4 MB measured within noise at M and L; 1 = per wavefront

    def fuse_rows(self, G, dt) -> int:
        """Rows per step-1a' block in the backward kernel: dz of ~``fuse_bytes`` (cache-sized;
        a block is at least one wavefront). Larger blocks mean fewer, more efficient GEMMs."""
        return max(1, self.fuse_bytes // (G * np.dtype(dt).itemsize))

    def chunks(self, N, B, G) -> int:
        """How many batch chunks a sweep of N cells, B samples, G gates runs as."""
        return min(self.threads, B) if N * B * G >= self.min_work else 1

    def run(self, kernel, args, N, B, G):
        """kernel(*args, b_lo, b_hi) over batch chunks: one per thread when the sweep is big."""
        t = self.chunks(N, B, G)
        cuts = [i * B // t for i in range(t + 1)]
        _scipy_blas_one_thread()
        if t == 1:
            kernel(*args, 0, B)
            return
        rest = [_executor(t - 1).submit(kernel, *args, cuts[i], cuts[i + 1])
                for i in range(1, t)]
        kernel(*args, cuts[0], cuts[1])
        for f in rest:
            f.result()


def gate_offsets(layout) -> np.ndarray:
    """[i, f, o, g] block offsets (in units of H) from the layout, as the kernels index A."""
    return np.array([layout.offset(name) for name in ("i", "f", "o", "g")], dtype=np.int64)


def activation_weights(layout, dtype) -> np.ndarray:
    """(G,) w with act = tanh(z·w)·w + (1 − w): w = ½ on σ gates (σ(z) = tanh(z/2)/2 + ½),
    1 on the cell input g (then exactly tanh(z)); read off the layout."""
    w = np.full(layout.size, 0.5, dtype=dtype)
    w[layout.slice("g")] = 1.0
    return w


def rows_mask_and_gates(zx, mask):
    """What both jitted sweeps read: the mask as one value per (cell, sample) row, (N·B,) (ones
    without sizes), and zx (N, B, G) as a writable C-contiguous array. zx is consumed: the
    kernels overwrite it with the gate activations (the layer builds zx for the sweep and keeps
    only the sweep's cache, so no (N, B, G) copy is needed)."""
    N, B, _ = zx.shape
    m = (np.ones(N * B, dtype=zx.dtype) if mask is None
         else np.ascontiguousarray(mask, dtype=zx.dtype).reshape(N * B))
    act = np.ascontiguousarray(zx)
    if not act.flags.writeable:
        act = act.copy()
    return m, act


class NumbaGravesSweep:
    """The sweep contract (``mdlstm_np/sweep.py``) for Graves' cell, in two jitted kernels."""

    name = "numba-graves"
    supports_mask = True

    def __init__(self, be: NumbaBackend):
        self.be = be

    def forward(self, *, cell, layout, plan, zx, params, h, c, mask=None) -> NumbaSweep:
        """Fills h, c (N+1, B, H) in place; zx (N, B, G) is consumed (overwritten with the
        gate activations, which the returned cache keeps)."""
        from .numba_kernels import forward_sweep

        kp = self.be.kernel_plan(plan)
        N, B, G = zx.shape
        H = h.shape[2]
        dt = zx.dtype
        m, act = rows_mask_and_gates(zx, mask)
        tanh_c = np.empty((N, B, H), dtype=dt)
        # the kernel sees (cell, sample) rows: (N, B, F) -> (N·B, F), views of the same memory
        args = (act.reshape(N * B, G), np.ascontiguousarray(params["U"]),
                h.reshape((N + 1) * B, H), c.reshape((N + 1) * B, H),
                tanh_c.reshape(N * B, H), kp.bounds, kp.pred_all, m, gate_offsets(layout),
                activation_weights(layout, dt))
        self.be.run(forward_sweep, args, N, B, G)
        return NumbaSweep(h, c, act, tanh_c, m)

    def backward(self, *, cell, layout, plan, dout_w, cache: NumbaSweep, params, grads,
                 want_state, mask=None, x_w=None) -> SweepResult:
        """dout_w (N, B, H) -> SweepResult.

        Given x_w (N, B, C) (the layer's input in wavefront order) and a whole-batch sweep (one
        chunk), the kernel also does step 1a' wavefront by wavefront (``fused``).
        """
        from .numba_kernels import backward_sweep

        be = self.be
        kp = be.kernel_plan(plan)
        N, B, G = cache.act.shape
        H = cache.tanh_c.shape[2]
        n = kp.pred_all.shape[0]
        dt = cache.act.dtype
        dZ = np.empty((N, B, G), dtype=dt)
        dcs = np.empty((N * B, H), dtype=dt)
        dh0 = np.zeros((B, H), dtype=dt)
        dc0 = np.zeros((B, H), dtype=dt)
        fuse = x_w is not None and "b" in params and be.chunks(N, B, G) == 1
        C = x_w.shape[2] if fuse else 0
        xw = (np.ascontiguousarray(x_w, dtype=dt).reshape(N * B, C) if fuse
              else np.empty((0, 0), dtype=dt))
        WT = np.ascontiguousarray(params["W"].T) if fuse else np.empty((0, 0), dtype=dt)
        gU = np.zeros((n * H if fuse else 0, G))  # float64 accumulators
        gW = np.zeros((C, G))
        gb = np.zeros(G)
        dx_w = np.empty((N, B, C) if fuse else (0, 0, 0), dtype=dt)
        args = (np.ascontiguousarray(dout_w).reshape(N * B, H),
                np.ascontiguousarray(params["U"].T), cache.c.reshape((N + 1) * B, H),
                cache.act.reshape(N * B, G), cache.tanh_c.reshape(N * B, H), kp.bounds,
                kp.pred_all, kp.succ_all, cache.mask, dZ.reshape(N * B, G), dcs, dh0, dc0,
                bool(want_state), cache.h.reshape((N + 1) * B, H), xw, WT, gU, gW, gb,
                dx_w.reshape(dx_w.shape[0] * dx_w.shape[1], C), fuse, be.fuse_rows(G, dt),
                gate_offsets(layout))
        be.run(backward_sweep, args, N, B, G)
        if not want_state:
            dh0 = dc0 = None
        fused = None
        if fuse:  # 1a' done in the kernel
            fused = FusedWeightGrads(W=gW.astype(dt), U=gU.astype(dt), b=gb.astype(dt),
                                     dx_w=dx_w)
        return SweepResult(dZ, dh0, dc0, fused)


class NumbaCellCache(NamedTuple):
    """A ``NumbaCellSweep`` forward's cache (``MDLSTMCache.sweep_cache``)."""

    h: Any        # (N+1, B, H) hidden states, wavefront order, row N = boundary state
    c: Any        # (N+1, B, H) cell states
    act: Any      # (N, B, G) what the cell kept of its gates (the layer's zx, overwritten)
    X: Any        # (N·B, nx, H) the cell's per-row cache vectors (numba_cells.py)
    Sc: Any       # (N·B, ns) the cell's per-row cache scalars
    mask: Any     # (N·B,) the mask the kernel used (ones without sizes)


class NumbaCellSweep:
    """The sweep contract (``mdlstm_np/sweep.py``) for any cell with a ``numba_cells`` entry:
    the driver of ``numba_driver.py`` specialised with the cell's functions.

    A cell with parameters of its own runs as one batch chunk (its gradient accumulators are
    shared); the others may run as batch chunks on threads like the Graves sweep. Step 1a'
    is fused into the backward (for the layer-norm cells, which have no bias b, without db:
    ``FusedWeightGrads.b`` is then None)."""

    supports_mask = True

    def __init__(self, be: NumbaBackend, kernels):
        self.be, self.k = be, kernels
        self.name = f"numba-{kernels.name}"

    def _gates(self, layout) -> np.ndarray:
        names = dict(layout.blocks)
        return np.array([layout.offset(g) if g in names else -1 for g in self.k.gates],
                        dtype=np.int64)

    def _params(self, cell, params, dt) -> tuple:
        return self.k.pack(cell, params, dt) or (np.empty(0, dtype=dt),)

    def _run(self, kernel, args, N, B, G):
        if self.k.params:  # shared gradient accumulators: one chunk
            _scipy_blas_one_thread()
            kernel(*args, 0, B)
        else:
            self.be.run(kernel, args, N, B, G)

    def forward(self, *, cell, layout, plan, zx, params, h, c, mask=None) -> NumbaCellCache:
        """Fills h, c (N+1, B, H) in place; zx (N, B, G) is consumed (overwritten with what
        the cell keeps of its gates)."""
        kp = self.be.kernel_plan(plan)
        N, B, G = zx.shape
        H = h.shape[2]
        n = kp.pred_all.shape[0]
        dt = zx.dtype
        m, act = rows_mask_and_gates(zx, mask)
        nx, ns = self.k.aux(n)
        X = np.empty((N * B, nx, H), dtype=dt)
        Sc = np.empty((N * B, ns), dtype=dt)
        args = (act.reshape(N * B, G), np.ascontiguousarray(params["U"]),
                h.reshape((N + 1) * B, H), c.reshape((N + 1) * B, H), X, Sc, kp.bounds,
                kp.pred_all, m, self._params(cell, params, dt), self._gates(layout))
        self._run(self.k.forward, args, N, B, G)
        return NumbaCellCache(h, c, act, X, Sc, m)

    def backward(self, *, cell, layout, plan, dout_w, cache: NumbaCellCache, params, grads,
                 want_state, mask=None, x_w=None) -> SweepResult:
        """dout_w (N, B, H) -> SweepResult; adds the cell's own gradients into ``grads``."""
        be = self.be
        kp = be.kernel_plan(plan)
        N, B, G = cache.act.shape
        H = cache.h.shape[2]
        n = kp.pred_all.shape[0]
        dt = cache.act.dtype
        dZ = np.empty((N, B, G), dtype=dt)
        DCP = np.empty((N * B, n, H), dtype=dt)
        dh0 = np.zeros((B, H), dtype=dt)
        dc0 = np.zeros((B, H), dtype=dt)
        P = self._params(cell, params, dt)
        dP = tuple(np.zeros(P[i].shape) for i in range(len(self.k.params))) or (np.zeros(0),)
        fuse = bool(x_w is not None and (bool(self.k.params) or be.chunks(N, B, G) == 1))
        has_b = "b" in params
        C = x_w.shape[2] if fuse else 0
        xw = (np.ascontiguousarray(x_w, dtype=dt).reshape(N * B, C) if fuse
              else np.empty((0, 0), dtype=dt))
        WT = np.ascontiguousarray(params["W"].T) if fuse else np.empty((0, 0), dtype=dt)
        gU = np.zeros((n * H if fuse else 0, G))  # float64 accumulators
        gW = np.zeros((C, G))
        gb = np.zeros(G if fuse and has_b else 0)  # length 0: no db (the driver skips it)
        dx_w = np.empty((N, B, C) if fuse else (0, 0, 0), dtype=dt)
        args = (np.ascontiguousarray(dout_w).reshape(N * B, H),
                np.ascontiguousarray(params["U"].T), cache.h.reshape((N + 1) * B, H),
                cache.c.reshape((N + 1) * B, H), cache.act.reshape(N * B, G), cache.X,
                cache.Sc, kp.bounds, kp.pred_all, kp.succ_all, cache.mask,
                dZ.reshape(N * B, G), DCP, dh0, dc0, bool(want_state),
                P, self._gates(layout), dP, xw, WT, gU, gW, gb,
                dx_w.reshape(dx_w.shape[0] * dx_w.shape[1], C), fuse, be.fuse_rows(G, dt))
        self._run(self.k.backward, args, N, B, G)
        for key, g in zip(self.k.params, dP):
            grads[key] = grads[key] + g.astype(dt).reshape(params[key].shape)
        if not want_state:
            dh0 = dc0 = None
        fused = None
        if fuse:  # 1a' done in the kernel
            fused = FusedWeightGrads(W=gW.astype(dt), U=gU.astype(dt),
                                     b=gb.astype(dt) if has_b else None,
                                     dx_w=dx_w)
        return SweepResult(dZ, dh0, dc0, fused)
