"""The cupy backend: every array on a CUDA GPU, and a fused Graves MD-LSTM sweep.

Everything except the hot loop is the reference engine running on ``xp = array_api_compat.cupy``
(the array-API names over cupy): the layer code is the same code the numpy backend runs. Data,
parameters, gradients and optimiser state stay on the device; ``to_numpy`` (``cupy.asnumpy``)
is the only device -> host transfer, and ``all_finite`` the only other host sync.

The fused sweep (Graves' cell, ``cells/graves.py``; same notation). Per wavefront s of k cells:

    forward                                       backward (s = last … 0)
    G. hp = [h(p⁻_1) | … | h(p⁻_n)]  gather       B. dz, dc(p⁻_d): steps 5', 4'-2'  (fused)
    1b. zr = hp U                    cuBLAS            pulling dh, dc from wavefront s+1
    F. steps 1b (+zx), 2-5           (fused)      1b'.  dhp = dz Uᵀ                  cuBLAS

so a wavefront costs three kernel launches each way and the sweep never waits for the host.
The fused kernels read predecessors and successors through the wavefront plan's index arrays
themselves, so there are no per-step gathers of c or concatenations. What backward needs is
stored by forward, not recomputed: act = [i | f_1..f_n | o | g] (N, B, G) and tanh(c) (N, B, H).
Backward keeps every wavefront's shares for its predecessors, dhp (N, B, nH) and dcp
(n, N, B, H), so that wavefront s pulls them with one index per axis, and so that the shares
of predecessors outside the grid (the gradient of h0, c0) are summed once after the sweep.

One source of truth for the kernel math: the C bodies live in ``cupy_kernels.py`` (with the
numbered steps of ``cells/graves.py`` and ``sweep.py``); the tests also compile and run them
on the CPU. cupy objects are built on first use and compiled by cupy on their first launch
(never at import: this module imports without cupy).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from ..cells.graves import GravesCell
from ..sweep import SweepResult
from .base import Backend
from .cupy_kernels import (BACKWARD, FORWARD, GATHER, KERNELS, PREAMBLE, SIGMOID, KernelSource,
                           param_names, strip_comments)


# --------------------------------------------------------------------------- availability
def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


@functools.lru_cache(maxsize=1)
def cupy_unavailable_reason():
    """None when cupy imports and a CUDA GPU really runs a kernel; else one line: why, and the fix.

    Cached: the probe initialises CUDA once (``cupy_unavailable_reason.cache_clear()`` redoes it).
    """
    try:
        import cupy
    except ImportError:
        return "cupy is not installed: pip install 'mdlstm_np[cuda12]' (needs an NVIDIA GPU)"
    except Exception as e:  # a broken install can raise anything at import
        return (f"cupy failed to import ({_first_line(e)}): reinstall it with "
                f"pip install --force-reinstall 'mdlstm_np[cuda12]'")
    try:
        import array_api_compat.cupy  # noqa: F401
    except Exception as e:
        return (f"array-api-compat is missing ({_first_line(e)}): "
                f"pip install 'mdlstm_np[cuda12]' (or pip install array-api-compat)")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return (f"no CUDA GPU is usable ({_first_line(e)}): check nvidia-smi, the NVIDIA "
                f"driver (CUDA 12 capable) and CUDA_VISIBLE_DEVICES")
    if count < 1:
        return "no CUDA GPU is visible (0 devices): check nvidia-smi and CUDA_VISIBLE_DEVICES"
    try:  # a tiny kernel, a cuBLAS matmul and a copy back: the whole chain really works
        a = cupy.arange(6, dtype=cupy.float32).reshape(2, 3)
        if float((a @ a.T).sum()) != 69.0:
            return "a CUDA GPU is visible but returned a wrong result in a self-test"
    except Exception as e:
        return (f"a CUDA GPU is visible but cannot run a kernel ({_first_line(e)}): install "
                f"the CUDA 12 libraries, e.g. pip install 'cupy-cuda12x[ctk]'")
    return None


# --------------------------------------------------------------------------- kernel launchers
@functools.lru_cache(maxsize=1)
def _elementwise_kernels():
    """The cupy kernel objects (built on first use; cupy compiles each on its first launch)."""
    import cupy

    pre = strip_comments(PREAMBLE)
    return {ks.name: cupy.ElementwiseKernel(ks.in_params, ks.out_params, ks.code(), ks.name,
                                            preamble=pre)
            for ks in (*KERNELS, SIGMOID)}


class CupyKernels:
    """Launches the fused kernels on the current CUDA stream (asynchronous, no host sync).

    Each method takes the kernel's parameters by keyword, as named in its KernelSource, and
    runs one thread per element of ``size``. The tests provide a host twin with the same API.
    """

    def launch(self, ks: KernelSource, size: int, **kw):
        _elementwise_kernels()[ks.name](*(kw[nm] for nm in param_names(ks)), size=size)

    @staticmethod
    def contiguous(a):
        import cupy

        return cupy.ascontiguousarray(a)


# --------------------------------------------------------------------------- the fused sweep
class FusedCache(NamedTuple):
    """What the fused backward needs from the fused forward (device arrays)."""

    h: Any        # (N+1, B, H) hidden states in wavefront order, row N = boundary state
    c: Any        # (N+1, B, H) cell states, same layout
    act: Any      # (N, B, G) [i | f_1..f_n | o | g], the gate outputs of step 2
    tanh_c: Any   # (N, B, H) tanh(c(p)) of step 4 (before the mask)


class FusedPlan(NamedTuple):
    """A device plan as the fused kernels read it (per shape, bounded cache)."""

    pred: list      # pred[s] (n·k_s,) axis-major: pred[s][d·k + r] = position of p⁻_d
    succ: list      # succ[s] (n·k_s,) position of p⁺_d within wavefront s+1, k_{s+1}: none
    boundary: list  # boundary[d] (m_d,) cells whose p⁻_d lies outside the grid


def gate_offsets(layout) -> dict:
    """Block offsets (in units of H) the kernels address gates by, read off the layout."""
    return {f"off_{name}": layout.offset(name) for name in ("i", "f", "o", "g")}


class FusedGravesSweep:
    """The sweep contract (``mdlstm_np/sweep.py``) for Graves' cell, in fused kernels.

    Written against ``be.xp`` and a kernel launcher: on the GPU ``kernels`` is
    :class:`CupyKernels`; the tests drive the same code with numpy and host-compiled twins of
    the same kernel bodies.
    """

    name = "cupy-graves"
    supports_mask = True

    def __init__(self, be, kernels):
        self.be, self.kernels = be, kernels
        self._ones = {}

    def _plan(self, plan) -> FusedPlan:
        def make():
            host, idx = plan.host, self.be.index
            return FusedPlan(
                pred=[idx(pr.reshape(-1)) for pr in host.pred],
                succ=[idx(sc.reshape(-1)) for sc in host.succ],
                boundary=[idx(np.nonzero(row == host.ncells)[0]) for row in host.pred_all])
        return self.be.shape_cache("fused_plan").get_or_make(plan.host.shape, make)

    def _mask(self, mask, dtype):
        """The mask as the kernels read it, or a 1-element stand-in when unmasked."""
        if mask is not None:
            return self.kernels.contiguous(mask), 1
        if dtype not in self._ones:
            self._ones[dtype] = self.be.xp.ones((1,), dtype=dtype)
        return self._ones[dtype], 0

    def forward(self, *, cell, layout, plan, zx, params, h, c, mask=None) -> FusedCache:
        """zx (N, B, G) -> FusedCache; h, c (N+1, B, H) filled in place (C-contiguous)."""
        xp, K = self.be.xp, self.kernels
        N, B, G = zx.shape
        H, n = layout.hidden, plan.host.ndim
        _check_contiguous(h=h, c=c)
        zx = K.contiguous(zx)
        U = params["U"]
        fp = self._plan(plan)
        m, masked = self._mask(mask, zx.dtype)
        offsets = gate_offsets(layout)
        act = xp.empty((N, B, G), dtype=zx.dtype)
        tanh_c = xp.empty((N, B, H), dtype=zx.dtype)
        for s, (start, stop) in enumerate(plan.host.bounds):
            k = stop - start
            hp = xp.empty((k, B, n * H), dtype=zx.dtype)
            K.launch(GATHER, k * B * n * H, h=h, pred=fp.pred[s], k=k, B=B, H=H, nd=n,
                     hp=hp)  # 1b. gather
            zr = xp.reshape(hp, (k * B, n * H)) @ U  # 1b. (k·B, G), cuBLAS
            K.launch(FORWARD, k * B * H, zx=zx, zr=zr, mask=m, pred=fp.pred[s], start=start,
                     k=k, B=B, H=H, nd=n, G=G, masked=masked, h=h, c=c, act=act,
                     tanh_c=tanh_c, **offsets)  # 1b (+zx), 2-5.
        return FusedCache(h, c, act, tanh_c)

    def backward(self, *, cell, layout, plan, dout_w, cache: FusedCache, params, grads,
                 want_state, mask=None, x_w=None) -> SweepResult:
        """dout_w (N, B, H) -> SweepResult (the layer does step 1a')."""
        xp, K = self.be.xp, self.kernels
        N, B = dout_w.shape[0], dout_w.shape[1]
        H, n, G = layout.hidden, plan.host.ndim, layout.size
        dout_w = K.contiguous(dout_w)
        UT = params["U"].T
        fp = self._plan(plan)
        m, masked = self._mask(mask, dout_w.dtype)
        offsets = gate_offsets(layout)
        dZ = xp.empty((N, B, G), dtype=dout_w.dtype)
        dhp = xp.empty((N, B, n * H), dtype=dout_w.dtype)  # every cell's shares for p⁻_d
        dcp = xp.empty((n, N, B, H), dtype=dout_w.dtype)
        bounds = plan.host.bounds
        for s in range(len(bounds) - 1, -1, -1):
            start, stop = bounds[s]
            k = stop - start
            next_start, next_k = (bounds[s + 1][0], bounds[s + 1][1] - bounds[s + 1][0]) \
                if s + 1 < len(bounds) else (0, 0)
            K.launch(BACKWARD, k * B * H, dout=dout_w, dhp=dhp, act=cache.act,
                     tanh_c=cache.tanh_c, c=cache.c, mask=m, pred=fp.pred[s], succ=fp.succ[s],
                     start=start, k=k, next_start=next_start, next_k=next_k, B=B, H=H, nd=n,
                     N=N, G=G, masked=masked, dz=dZ, dcp=dcp, **offsets)  # 1b' pull, 5', 4'-2'.
            dhp[start:stop, ...] = xp.reshape(xp.reshape(dZ[start:stop, ...], (k * B, G)) @ UT,
                                              (k, B, n * H))  # 1b'. dh_prev = dz Uᵀ
        dh0 = dc0 = None
        if want_state:  # 1b'. shares of predecessors outside the grid: the initial state
            dh0 = xp.zeros((B, H), dtype=dout_w.dtype)
            dc0 = xp.zeros((B, H), dtype=dout_w.dtype)
            for d in range(n):
                rows = fp.boundary[d]
                dh0 = dh0 + xp.sum(self.be.take(dhp, rows)[..., d * H:(d + 1) * H], axis=0)
                dc0 = dc0 + xp.sum(self.be.take(dcp[d, ...], rows), axis=0)
        return SweepResult(dZ, dh0, dc0, None)


def _check_contiguous(**arrays):
    for name, a in arrays.items():
        if not a.flags.c_contiguous:
            raise ValueError(f"{name}: the fused sweep writes it in place and needs a "
                             f"C-contiguous array, got strides {a.strides}")


# --------------------------------------------------------------------------- the backend
class CupyBackend(Backend):
    """Arrays on the current CUDA device; a fused sweep for Graves' cell.

    Raises ValueError (one line: why, and how to fix it) when cupy or a GPU is not usable:
    ``--backend cupy`` never falls back silently.
    """

    name = "cupy"

    def __init__(self):
        reason = cupy_unavailable_reason()
        if reason is not None:
            raise ValueError(f"backend: 'cupy' is not usable: {reason}")
        import cupy
        from array_api_compat import cupy as xp

        super().__init__(xp)
        self.cupy = cupy
        self._graves = FusedGravesSweep(self, CupyKernels())

    def fast_sweeps(self) -> dict:
        """Graves' plain cell (masked or not); other cells run the reference sweep."""
        return {GravesCell: self._graves}

    def asarray(self, a, dtype=None):
        if dtype is not None:
            dtype = self.dtype(dtype)
        return self.cupy.asarray(a, dtype=dtype)

    def to_numpy(self, a) -> np.ndarray:
        """Device -> host: the only transfer (``cupy.asnumpy``); numpy input passes through."""
        if isinstance(a, self.cupy.ndarray):
            return self.cupy.asnumpy(a)
        return np.asarray(a)

    def index(self, idx):
        return self.cupy.asarray(np.ascontiguousarray(idx, dtype=np.int64))

    def is_array(self, a) -> bool:
        return isinstance(a, self.cupy.ndarray)

    def sigmoid(self, x):
        """σ(x) in one fused kernel (the preamble's ``mdl_sigmoid``)."""
        return _elementwise_kernels()[SIGMOID.name](x)

    def take(self, a, idx):
        return self.cupy.take(a, idx, axis=0)

    def all_finite(self, a) -> bool:
        """One host sync (a single bool): call it outside hot loops."""
        return bool(self.cupy.isfinite(a).all())

    def synchronize(self):
        self.cupy.cuda.get_current_stream().synchronize()
