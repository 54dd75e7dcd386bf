"""The cupy backend: every array on a CUDA GPU, and a fused Graves MD-LSTM sweep.

Everything except the hot loop is the reference engine running on ``xp = array_api_compat.cupy``
(the array-API names over cupy): the layer code is the same code the numpy backend runs. Data,
parameters, gradients and optimiser state stay on the device; ``to_numpy`` (``cupy.asnumpy``)
is the only device -> host transfer, and ``all_finite`` the only other host sync.

The fused sweep (Graves' cell, ``cells/graves.py``; same notation). Per wavefront s of k cells:

    forward                                       backward (s = last … 0)
    G. hp = [h(p⁻_1) | … | h(p⁻_n)]  gather       B. dz, dc(p⁻_d): steps 5b, 4b-2b  (fused)
    1b. zr = hp U                    cuBLAS            pulling dh, dc from wavefront s+1
    F. steps 1b (+zx), 2-5           (fused)      1b-b. dhp = dz Uᵀ                  cuBLAS

so a wavefront costs three kernel launches each way and the sweep never waits for the host.
The fused kernels read predecessors and successors through the wavefront plan's index arrays
themselves, so there are no per-step gathers of c or concatenations. What backward needs is
stored by forward, not recomputed: act = [i | f_1..f_n | o | g] (N, B, G) and tanh(c) (N, B, H).
Backward keeps every wavefront's shares for its predecessors, dhp (N, B, nH) and dcp
(n, N, B, H), so that wavefront s pulls them with one index per axis, and so that the shares
of predecessors outside the grid (the gradient of h0, c0) are summed once after the sweep.

One source of truth for the kernel math. The kernel bodies below are C that compiles three
ways: as cupy ``ElementwiseKernel`` bodies (the GPU), inside a ``__global__`` wrapper by
``nvcc`` (a syntax check in the tests), and as a plain C++ loop on the host (the tests run the
very same bodies on the CPU and compare them with the numpy reference sweep). Their numbered
comments are those of ``cells/graves.py``, so the two can be read side by side; comments are
stripped before compiling (``KernelSource.code``).

Kernels are defined here, at module level, as sources; cupy objects are built on first use and
compiled by cupy on their first launch (never at import: this module imports without cupy).
"""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

import numpy as np

from .backend import Backend
from .cells.graves import GravesCell


# --------------------------------------------------------------------------- kernel sources
class KernelSource(NamedTuple):
    """One elementwise kernel: cupy parameter lists and a C body indexed by ``i``.

    Raw arrays are C-contiguous and indexed by their flat position; ``int64`` scalars are
    ``long long``; ``T`` is float or double.
    """

    name: str
    in_params: str
    out_params: str
    body: str

    def code(self) -> str:
        return strip_comments(self.body)


def strip_comments(src: str) -> str:
    """Remove ``//`` comments (they hold the non-ASCII notation of the reference)."""
    return re.sub(r"//[^\n]*", "", src)


PREAMBLE = r"""
// Overflow-free logistic function that keeps the dtype: σ(x) = tanh(x/2)/2 + 1/2
template <typename U> __device__ U mdl_sigmoid(U x) {
    return tanh(x * (U)0.5) * (U)0.5 + (U)0.5;
}
"""

GATHER = KernelSource(
    "mdlstm_gather_pred",
    "raw T h, raw int64 pred, int64 k, int64 B, int64 H, int64 nd",
    "raw T hp",
    r"""
    // G. hp (k, B, nH) = [h(p⁻_1) | … | h(p⁻_n)] for the k cells of this wavefront
    const long long nH = nd * H;
    const long long r = i / (B * nH);           // cell within the wavefront
    const long long b = (i / nH) % B;           // sample
    const long long d = (i % nH) / H;           // axis of the predecessor
    const long long j = i % H;                  // hidden unit
    const long long src = pred[d * k + r];      // wavefront position of p⁻_d (N: boundary row)
    hp[i] = h[(src * B + b) * H + j];
    """)

FORWARD = KernelSource(
    "mdlstm_graves_forward",
    "raw T zx, raw T zr, raw T mask, raw int64 pred, "
    "int64 a, int64 k, int64 B, int64 H, int64 nd, int64 masked",
    "raw T h, raw T c, raw T act, raw T tanh_c",
    r"""
    // one thread per (cell r of the wavefront, sample b, hidden unit j)
    const long long G = (nd + 3) * H;
    const long long r = i / (B * H);
    const long long b = (i / H) % B;
    const long long j = i % H;
    const long long row = a + r;                       // wavefront-order position of p
    const long long zo = (row * B + b) * G;            // z(p) of sample b in zx and act
    const long long ro = (r * B + b) * G;              // its recurrent part in zr (k, B, G)
    const long long out = (row * B + b) * H + j;       // (p, b, j) in h, c, tanh_c
    // 1b. z = zx + [h(p⁻_1) | … | h(p⁻_n)] U   (the matmul zr ran just before)
    // 2. i, f_1..f_n, o  (k, B, (n+2)H)     here: one (cell, sample, unit) of each
    const T i_ = mdl_sigmoid(zx[zo + j] + zr[ro + j]);
    const T o_ = mdl_sigmoid(zx[zo + (nd + 1) * H + j] + zr[ro + (nd + 1) * H + j]);
    const T g_ = tanh(zx[zo + (nd + 2) * H + j] + zr[ro + (nd + 2) * H + j]);  // 2. cell input
    T c_ = i_ * g_;  // 3. i ⊙ g ...
    for (long long d = 0; d < nd; ++d) {
        const long long q = zo + (1 + d) * H + j;
        const T f_ = mdl_sigmoid(zx[q] + zr[ro + (1 + d) * H + j]);
        act[q] = f_;
        c_ = c_ + f_ * c[(pred[d * k + r] * B + b) * H + j];  // 3. ... + f_d ⊙ c(p⁻_d)
    }
    const T tc = tanh(c_);  // 4.
    T h_ = o_ * tc;  // 4. h = o ⊙ tanh(c)
    if (masked) {  // 5. masked cells keep zero state
        const T m = mask[row * B + b];
        h_ = h_ * m;
        c_ = c_ * m;
    }
    act[zo + j] = i_;
    act[zo + (nd + 1) * H + j] = o_;
    act[zo + (nd + 2) * H + j] = g_;
    tanh_c[out] = tc;
    h[out] = h_;
    c[out] = c_;
    """)

BACKWARD = KernelSource(
    "mdlstm_graves_backward",
    "raw T dout, raw T dhp, raw T act, raw T tanh_c, raw T c, raw T mask, raw int64 pred, "
    "raw int64 succ, int64 a, int64 k, int64 a1, int64 k1, int64 B, int64 H, int64 nd, "
    "int64 N, int64 masked",
    "raw T dz, raw T dcp",
    r"""
    // one thread per (cell r of the wavefront, sample b, hidden unit j)
    const long long G = (nd + 3) * H;
    const long long nH = nd * H;
    const long long r = i / (B * H);
    const long long b = (i / H) % B;
    const long long j = i % H;
    const long long row = a + r;
    const long long zo = (row * B + b) * G;
    const long long out = (row * B + b) * H + j;
    T dh = dout[out];
    T dc = 0;
    for (long long d = 0; d < nd; ++d) {  // pull from the successors p⁺_d (wavefront s+1)
        const long long sl = succ[d * k + r];  // position in wavefront s+1; k1: none
        if (sl < k1) {
            const long long q = a1 + sl;
            dh = dh + dhp[(q * B + b) * nH + d * H + j];
            dc = dc + dcp[((d * N + q) * B + b) * H + j];
        }
    }
    if (masked) {  // 5b. h = m ⊙ h_cell  =>  dh_cell = m ⊙ dh (same for c)
        const T m = mask[row * B + b];
        dh = dh * m;
        dc = dc * m;
    }
    const T tc = tanh_c[out];
    const T i_ = act[zo + j];
    const T o_ = act[zo + (nd + 1) * H + j];
    const T g_ = act[zo + (nd + 2) * H + j];
    const T d_o = dh * tc;  // 4b. through h = o ⊙ tanh(c)
    dc = dc + dh * o_ * ((T)1 - tc * tc);  // 4b. ... and through tanh(c)
    const T d_i = dc * g_;  // 3b. through i ⊙ g
    const T d_g = dc * i_;
    for (long long d = 0; d < nd; ++d) {
        const long long q = zo + (1 + d) * H + j;
        const T f_ = act[q];
        const T d_f = dc * c[(pred[d * k + r] * B + b) * H + j];  // 3b. through f_d ⊙ c(p⁻_d)
        dcp[((d * N + row) * B + b) * H + j] = dc * f_;
        dz[q] = d_f * f_ * ((T)1 - f_);  // 2b. σ' = σ(1 − σ)
    }
    dz[zo + j] = d_i * i_ * ((T)1 - i_);  // 2b. σ' = σ(1 − σ)
    dz[zo + (nd + 1) * H + j] = d_o * o_ * ((T)1 - o_);
    dz[zo + (nd + 2) * H + j] = d_g * ((T)1 - g_ * g_);  // 2b. tanh' = 1 − g²
    """)

KERNELS = (GATHER, FORWARD, BACKWARD)


@functools.lru_cache(maxsize=None)
def param_names(ks: KernelSource):
    """Parameter names of a kernel in call order (inputs, then outputs)."""
    return tuple(p.split()[-1] for p in (ks.in_params + "," + ks.out_params).split(","))


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
            for ks in KERNELS}


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


class _FusedPlan(NamedTuple):
    pred: list      # pred[s] (n·k_s,) axis-major: pred[s][d·k + r] = position of p⁻_d
    succ: list      # succ[s] (n·k_s,) position of p⁺_d within wavefront s+1, k_{s+1}: none
    boundary: list  # boundary[d] (m_d,) cells whose p⁻_d lies outside the grid


class FusedGraves:
    """The fused Graves sweep, written against ``be.xp`` and a kernel launcher.

    On the GPU ``kernels`` is :class:`CupyKernels`; the tests drive the same code with numpy
    and host-compiled twins of the same kernel bodies. Call contract: see ``mdlstm.py``
    (``hot(cell, layout, dp, zx, params, h, c, mask)`` and its backward).
    """

    def __init__(self, be, kernels):
        self.be, self.kernels = be, kernels
        self._plans = {}
        self._ones = {}

    def _plan(self, dp) -> _FusedPlan:
        key = dp.host.shape
        if key not in self._plans:
            host, idx = dp.host, self.be.index
            self._plans[key] = _FusedPlan(
                pred=[idx(p.reshape(-1)) for p in host.pred],
                succ=[idx(sc.reshape(-1)) for sc in host.succ],
                boundary=[idx(np.nonzero(row == host.ncells)[0]) for row in host.pred_all])
        return self._plans[key]

    def _mask(self, mask, dtype):
        """The mask as the kernels read it, or a 1-element stand-in when unmasked."""
        if mask is not None:
            return self.kernels.contiguous(mask), 1
        if dtype not in self._ones:
            self._ones[dtype] = self.be.xp.ones((1,), dtype=dtype)
        return self._ones[dtype], 0

    def forward(self, cell, lay, dp, zx, p, h, c, mask=None) -> FusedCache:
        """zx (N, B, G) -> FusedCache; h, c (N+1, B, H) filled in place (C-contiguous)."""
        xp, K = self.be.xp, self.kernels
        _check_graves(cell, lay, dp)
        N, B, G = zx.shape
        H, n = lay.hidden, dp.host.ndim
        _check_contiguous(h=h, c=c)
        zx = K.contiguous(zx)
        U = p["U"]
        fp = self._plan(dp)
        m, masked = self._mask(mask, zx.dtype)
        act = xp.empty((N, B, G), dtype=zx.dtype)
        tanh_c = xp.empty((N, B, H), dtype=zx.dtype)
        for s, (a, b) in enumerate(dp.host.bounds):
            k = b - a
            hp = xp.empty((k, B, n * H), dtype=zx.dtype)
            K.launch(GATHER, k * B * n * H, h=h, pred=fp.pred[s], k=k, B=B, H=H, nd=n, hp=hp)
            zr = xp.reshape(hp, (k * B, n * H)) @ U  # 1b. (k·B, G), cuBLAS
            K.launch(FORWARD, k * B * H, zx=zx, zr=zr, mask=m, pred=fp.pred[s], a=a, k=k, B=B,
                     H=H, nd=n, masked=masked, h=h, c=c, act=act, tanh_c=tanh_c)  # 2-5.
        return FusedCache(h, c, act, tanh_c)

    def backward(self, cell, lay, dp, dout_w, fc: FusedCache, p, grads, want_state,
                 mask=None, x_w=None):
        """dout_w (N, B, H) -> dZ (N, B, G), dh0, dc0 ((B, H) each, or None)."""
        xp, K = self.be.xp, self.kernels
        N, B = dout_w.shape[0], dout_w.shape[1]
        H, n, G = lay.hidden, dp.host.ndim, lay.size
        dout_w = K.contiguous(dout_w)
        UT = p["U"].T
        fp = self._plan(dp)
        m, masked = self._mask(mask, dout_w.dtype)
        dZ = xp.empty((N, B, G), dtype=dout_w.dtype)
        dhp = xp.empty((N, B, n * H), dtype=dout_w.dtype)  # every cell's shares for p⁻_d
        dcp = xp.empty((n, N, B, H), dtype=dout_w.dtype)
        bounds = dp.host.bounds
        for s in range(len(bounds) - 1, -1, -1):
            a, b = bounds[s]
            k = b - a
            a1, k1 = (bounds[s + 1][0], bounds[s + 1][1] - bounds[s + 1][0]) \
                if s + 1 < len(bounds) else (0, 0)
            K.launch(BACKWARD, k * B * H, dout=dout_w, dhp=dhp, act=fc.act, tanh_c=fc.tanh_c,
                     c=fc.c, mask=m, pred=fp.pred[s], succ=fp.succ[s], a=a, k=k, a1=a1, k1=k1,
                     B=B, H=H, nd=n, N=N, masked=masked, dz=dZ, dcp=dcp)  # 5b, 4b-2b.
            dhp[a:b, ...] = xp.reshape(xp.reshape(dZ[a:b, ...], (k * B, G)) @ UT,
                                       (k, B, n * H))  # 1b-b. dh_prev = dz Uᵀ
        dh0 = dc0 = None
        if want_state:  # shares of predecessors outside the grid go to the initial state
            dh0 = xp.zeros((B, H), dtype=dout_w.dtype)
            dc0 = xp.zeros((B, H), dtype=dout_w.dtype)
            for d in range(n):
                rows = fp.boundary[d]
                dh0 = dh0 + xp.sum(self.be.take(dhp, rows)[..., d * H:(d + 1) * H], axis=0)
                dc0 = dc0 + xp.sum(self.be.take(dcp[d, ...], rows), axis=0)
        return dZ, dh0, dc0


def _check_graves(cell, lay, dp):
    n = dp.host.ndim
    if lay.blocks != (("i", 1), ("f", n), ("o", 1), ("g", 1)):
        raise ValueError(f"layout: the fused Graves sweep expects [i | f_1..f_{n} | o | g], "
                         f"got {lay.blocks}")


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
        self._fused = FusedGraves(self, CupyKernels())

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
        return _sigmoid_kernel()(x)

    def take(self, a, idx):
        return self.cupy.take(a, idx, axis=0)

    def all_finite(self, a) -> bool:
        """One host sync (a single bool): call it outside hot loops."""
        return bool(self.cupy.isfinite(a).all())

    def synchronize(self):
        self.cupy.cuda.get_current_stream().synchronize()

    def hot_loop(self, direction: str, cell, masked: bool = False):
        """The fused sweep for Graves' cell (masked or not); other cells use the reference."""
        if type(cell) is not GravesCell:
            return None
        if direction == "forward":
            return self._fused.forward
        if direction == "backward":
            return self._fused.backward
        raise ValueError(f"direction: expected 'forward' or 'backward', got {direction!r}")


SIGMOID_BODY = "y = tanh(x * (T)0.5) * (T)0.5 + (T)0.5"  # σ(x) = tanh(x/2)/2 + 1/2


@functools.lru_cache(maxsize=1)
def _sigmoid_kernel():
    import cupy

    return cupy.ElementwiseKernel("T x", "T y", SIGMOID_BODY, "mdlstm_sigmoid")
