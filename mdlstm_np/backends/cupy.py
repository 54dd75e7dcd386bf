"""The cupy backend: every array on a CUDA GPU, and a fused MD-LSTM sweep for every cell
(Graves', peepholes, layer norm fixed and seed, stable, LeakyLP).

Everything except the hot loop is the reference engine running on ``xp = array_api_compat.cupy``
(the array-API names over cupy): the layer code is the same code the numpy backend runs. Data,
parameters, gradients and optimiser state stay on the device; ``to_numpy`` (``cupy.asnumpy``)
is the only device -> host transfer, and ``all_finite`` the only other host sync.

The fused sweep (``FusedSweep``, written once; each cell brings its two kernel bodies, a
``CellKernels``; shown for Graves' cell, ``cells/graves.py``, same notation). Per wavefront s
of k cells:

    forward                                       backward (s = last … 0)
    G. hp = [h(p⁻_1) | … | h(p⁻_n)]  gather       B. dz, dc(p⁻_d): steps 5', 4'-2'  (fused)
    1b. zr = hp U                    cuBLAS            pulling dh, dc from wavefront s+1
    F. steps 1b (+zx), 2-5           (fused)      1b'(share). dhp = dz Uᵀ           cuBLAS

Steps in ``sweep.py``'s numbering, forward and their mirrors:

    1a. zx = x W + b (the layer, before the sweep)     1a'. dx, dW, db (the layer, after it)
    1b. z = zx + hp U                                  1b'(pull) in B, 1b'(share) on cuBLAS
    2-4. the cell's steps, fused in F                  4'-2'. fused in B
    5. h, c = m ⊙ h, m ⊙ c, fused in F                 5'. fused in B

so a wavefront costs three kernel launches each way and the sweep never waits for the host.
The fused kernels read predecessors and successors through the wavefront plan's index arrays
themselves, so there are no per-step gathers of c or concatenations. What backward needs is
stored by forward, not recomputed: the cell's store rows st (N, B, S), for Graves' cell
[act = i | f_1..f_n | o | g (G) | tanh(c) (H)]. The layer-norm kernels run one thread per
(cell, sample), which computes its blocks' means and variances itself: still one launch.
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
from .cupy_kernels import (GATHER, GRAVES, KERNELS, LAYER_NORM, LEAKYLP, PEEPHOLE, PREAMBLE,
                           SIGMOID, STABLE, KernelSource, param_names, strip_comments)


# --------------------------------------------------------------------------- availability
def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def array_api_compat_module():
    """``array_api_compat`` (the array-API names over cupy), or SciPy's vendored copy of it.

    Offline GPU machines often have SciPy but not array-api-compat (a GPU image with CuPy,
    numba, SciPy and PyTorch, no package registry). SciPy ≥ 1.11 ships the same package as
    ``scipy._lib.array_api_compat``; we then register it under its own name, so that
    ``optim.py``'s ``from array_api_compat import array_namespace`` finds it too. Raises
    ImportError when neither is there.
    """
    import sys

    try:
        import array_api_compat
        import array_api_compat.cupy  # noqa: F401
        return array_api_compat
    except ImportError:
        pass
    from scipy._lib import array_api_compat  # raises ImportError when SciPy lacks it too
    import scipy._lib.array_api_compat.cupy  # noqa: F401

    sys.modules.setdefault("array_api_compat", array_api_compat)
    sys.modules.setdefault("array_api_compat.cupy", array_api_compat.cupy)
    return array_api_compat


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
        array_api_compat_module()
    except Exception as e:
        return (f"array-api-compat is missing ({_first_line(e)}) and SciPy's vendored copy "
                f"too: pip install 'mdlstm_np[cuda12]' (or [cuda13], or array-api-compat)")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return (f"no CUDA GPU is usable ({_first_line(e)}): check nvidia-smi, the NVIDIA "
                f"driver (as new as cupy's CUDA 12 or 13) and CUDA_VISIBLE_DEVICES")
    if count < 1:
        return "no CUDA GPU is visible (0 devices): check nvidia-smi and CUDA_VISIBLE_DEVICES"
    try:  # a tiny kernel, a cuBLAS matmul and a copy back: the whole chain really works
        a = cupy.arange(6, dtype=cupy.float32).reshape(2, 3)
        if float((a @ a.T).sum()) != 69.0:
            return "a CUDA GPU is visible but returned a wrong result in a self-test"
    except Exception as e:
        return (f"a CUDA GPU is visible but cannot run a kernel ({_first_line(e)}): install "
                f"the CUDA libraries, e.g. pip install 'cupy-cuda12x[ctk]' (or cupy-cuda13x)")
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
    st: Any       # (N, B, S) the cell's store rows (Graves': [act (G) | tanh c (H)])


class FusedPlan(NamedTuple):
    """A device plan as the fused kernels read it (per shape, bounded cache)."""

    pred: list      # pred[s] (n·k_s,) axis-major: pred[s][d·k + r] = position of p⁻_d
    succ: list      # succ[s] (n·k_s,) position of p⁺_d within wavefront s+1, k_{s+1}: none
    boundary: list  # boundary[d] (m_d,) cells whose p⁻_d lies outside the grid


GATE_BLOCKS = ("i", "f", "o", "g", "lam", "omega0", "omega1")


def gate_offsets(layout) -> dict:
    """Block offsets (in units of H) the kernels address gates by, read off the layout
    (0 for a block the layout does not have; its kernel does not read it then)."""
    present = dict(layout.blocks)
    return {f"off_{name}": layout.offset(name) if name in present else 0
            for name in GATE_BLOCKS}


class FusedSweep:
    """The sweep contract (``mdlstm_np/sweep.py``) in fused kernels, for any cell that brings
    its two kernel bodies (a ``CellKernels`` of ``cupy_kernels.py``).

    The driver is written once: per wavefront, forward G (gather) + 1b (cuBLAS) + the cell's
    fused forward; backward the cell's fused backward (1b'(pull), 5', 4'-2') + 1b'(share)
    (cuBLAS). The cell's own parameters travel packed flat (prm); its backward writes each
    cell's share of their gradient (dprm, (N, B, P)) and the driver sums them once after the sweep.
    Written against ``be.xp`` and a kernel launcher: on the GPU ``kernels`` is
    :class:`CupyKernels`; the tests drive the same code with numpy and host-compiled twins of
    the same kernel bodies.
    """

    supports_mask = True

    def __init__(self, be, kernels, spec, name):
        self.be, self.kernels, self.spec, self.name = be, kernels, spec, name
        self._ones = {}

    def _plan(self, plan) -> FusedPlan:
        def make():
            host, idx = plan.host, self.be.index
            return FusedPlan(
                pred=[idx(pr.reshape(-1)) for pr in host.pred],
                succ=[idx(sc.reshape(-1)) for sc in host.succ],
                boundary=[idx(np.nonzero(row == host.ncells)[0]) for row in host.pred_all])
        return self.be.shape_cache("fused_plan").get_or_make(plan.host.shape, make)

    def _stand_in(self, dtype):
        """A 1-element array for an unused argument (no mask, no own parameters)."""
        if dtype not in self._ones:
            self._ones[dtype] = self.be.xp.ones((1,), dtype=dtype)
        return self._ones[dtype]

    def _mask(self, mask, dtype):
        """The mask as the kernels read it, or a 1-element stand-in when unmasked."""
        if mask is not None:
            return self.kernels.contiguous(mask), 1
        return self._stand_in(dtype), 0

    def _own(self, cell, params, n, H, dtype):
        """(prm packed flat in ``param_shapes`` order, its size P, cst) for the kernels."""
        xp = self.be.xp
        shapes = cell.param_shapes(n, H)
        flat = [xp.reshape(params[key], (-1,)) for key in shapes]
        prm = self.kernels.contiguous(xp.concat(flat)) if flat else self._stand_in(dtype)
        P = sum(int(np.prod(sh)) for sh in shapes.values())
        cst = self.be.asarray(np.asarray(self.spec.consts(cell)), dtype=dtype)
        return prm, P, cst

    def _threads(self, k, B, H):
        return k * B if self.spec.per_row else k * B * H

    def forward(self, *, cell, layout, plan, zx, params, h, c, mask=None) -> FusedCache:
        """zx (N, B, G) -> FusedCache; h, c (N+1, B, H) filled in place (C-contiguous)."""
        xp, K = self.be.xp, self.kernels
        N, B, G = zx.shape
        H, n = layout.hidden, plan.host.ndim
        _check_contiguous(h=h, c=c)
        zx = K.contiguous(zx)
        U = params["U"]
        fp = self._plan(plan)
        dt = self.be.dtype_name(zx)
        m, masked = self._mask(mask, zx.dtype)
        prm, _, cst = self._own(cell, params, n, H, dt)
        S = self.spec.store(n, H, G)
        offsets = gate_offsets(layout)
        st = xp.empty((N, B, S), dtype=zx.dtype)
        for s, (start, stop) in enumerate(plan.host.bounds):
            k = stop - start
            hp = xp.empty((k, B, n * H), dtype=zx.dtype)
            K.launch(GATHER, k * B * n * H, h=h, pred=fp.pred[s], k=k, B=B, H=H, nd=n,
                     hp=hp)  # 1b. gather
            zr = xp.reshape(hp, (k * B, n * H)) @ U  # 1b. (k·B, G), cuBLAS
            K.launch(self.spec.forward, self._threads(k, B, H), zx=zx, zr=zr, mask=m,
                     pred=fp.pred[s], prm=prm, cst=cst, start=start, k=k, B=B, H=H, nd=n,
                     G=G, S=S, masked=masked, h=h, c=c, st=st, **offsets)  # 1b (+zx), 2-5.
        return FusedCache(h, c, st)

    def backward(self, *, cell, layout, plan, dout_w, cache: FusedCache, params, grads,
                 want_state, mask=None, x_w=None) -> SweepResult:
        """dout_w (N, B, H) -> SweepResult (the layer does step 1a'); adds the cell's own
        parameter gradients into ``grads``."""
        xp, K = self.be.xp, self.kernels
        N, B = dout_w.shape[0], dout_w.shape[1]
        H, n, G = layout.hidden, plan.host.ndim, layout.size
        dout_w = K.contiguous(dout_w)
        UT = params["U"].T
        fp = self._plan(plan)
        dt = self.be.dtype_name(dout_w)
        m, masked = self._mask(mask, dout_w.dtype)
        prm, P, cst = self._own(cell, params, n, H, dt)
        S = self.spec.store(n, H, G)
        offsets = gate_offsets(layout)
        dZ = xp.empty((N, B, G), dtype=dout_w.dtype)
        dhp = xp.empty((N, B, n * H), dtype=dout_w.dtype)  # every cell's shares for p⁻_d
        dcp = xp.empty((n, N, B, H), dtype=dout_w.dtype)
        dprm = xp.empty((N, B, P), dtype=dout_w.dtype) if P else self._stand_in(dout_w.dtype)
        bounds = plan.host.bounds
        for s in range(len(bounds) - 1, -1, -1):
            start, stop = bounds[s]
            k = stop - start
            next_start, next_k = (bounds[s + 1][0], bounds[s + 1][1] - bounds[s + 1][0]) \
                if s + 1 < len(bounds) else (0, 0)
            K.launch(self.spec.backward, self._threads(k, B, H), dout=dout_w, dhp=dhp,
                     st=cache.st, c=cache.c, mask=m, pred=fp.pred[s], succ=fp.succ[s],
                     prm=prm, cst=cst, start=start, k=k, next_start=next_start,
                     next_k=next_k, B=B, H=H, nd=n, N=N, G=G, S=S, P=P, masked=masked,
                     dz=dZ, dcp=dcp, dprm=dprm, **offsets)  # 1b'(pull), 5', 4'-2'.
            dhp[start:stop, ...] = xp.reshape(xp.reshape(dZ[start:stop, ...], (k * B, G)) @ UT,
                                              (k, B, n * H))  # 1b'(share). dh_prev = dz Uᵀ
        if P:  # the cell's own parameters: every cell's share, summed once
            total = xp.sum(xp.reshape(dprm, (N * B, P)), axis=0)
            o = 0
            for key, shape in cell.param_shapes(n, H).items():
                size = int(np.prod(shape))
                grads[key] = grads[key] + xp.reshape(total[o:o + size], shape)
                o += size
        dh0 = dc0 = None
        if want_state:  # 1b'(share). predecessors outside the grid: the initial state
            dh0 = xp.zeros((B, H), dtype=dout_w.dtype)
            dc0 = xp.zeros((B, H), dtype=dout_w.dtype)
            for d in range(n):
                rows = fp.boundary[d]
                dh0 = dh0 + xp.sum(self.be.take(dhp, rows)[..., d * H:(d + 1) * H], axis=0)
                dc0 = dc0 + xp.sum(self.be.take(dcp[d, ...], rows), axis=0)
        return SweepResult(dZ, dh0, dc0, None)


class FusedGravesSweep(FusedSweep):
    """The fused sweep of Graves' plain cell (``FusedSweep`` with its kernels)."""

    def __init__(self, be, kernels):
        super().__init__(be, kernels, GRAVES, "cupy-graves")


def fused_sweeps(be, kernels) -> dict:
    """{cell class: FusedSweep} for every cell with fused kernels (Graves', the layer-norm
    cells — fixed and seed share one kernel, κ is a constant —, stable, LeakyLP, peepholes)."""
    from ..cells.layernorm import LayerNormCell
    from ..cells.leakylp import LeakyLPCell
    from ..cells.peephole import GravesPeepholeCell
    from ..cells.stable import StableCell

    return {GravesCell: FusedGravesSweep(be, kernels),
            LayerNormCell: FusedSweep(be, kernels, LAYER_NORM, "cupy-layernorm"),
            StableCell: FusedSweep(be, kernels, STABLE, "cupy-stable"),
            LeakyLPCell: FusedSweep(be, kernels, LEAKYLP, "cupy-leakylp"),
            GravesPeepholeCell: FusedSweep(be, kernels, PEEPHOLE, "cupy-peephole")}


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

        super().__init__(array_api_compat_module().cupy)
        self.cupy = cupy
        self._fused = fused_sweeps(self, CupyKernels())

    def fast_sweeps(self) -> dict:
        """Every cell (Graves', peepholes, layer norm fixed and seed, stable, LeakyLP), masked
        or not; a cell class not listed (a user's own) runs the reference sweep."""
        return self._fused

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
