"""The CUDA C sources of the cupy backend's fused Graves sweep (one source of truth).

Each kernel body is C indexed by ``i`` that compiles three ways: as a cupy
``ElementwiseKernel`` body (the GPU), inside a ``__global__`` wrapper by ``nvcc`` (a syntax
check in the tests), and as a plain C++ loop on the host (the tests run the very same bodies on
the CPU and compare them with the numpy reference sweep). Their numbered comments are those of
``cells/graves.py`` and ``sweep.py`` (forward k, backward k'), so the two can be read side by
side; comments are stripped before compiling (``KernelSource.code``). Gate blocks are addressed
through offsets the launcher reads off the gate layout (``off_i``, ``off_f``, ``off_o``,
``off_g``, in units of H), never through re-typed numbers. The one sigmoid of this language is
``mdl_sigmoid`` in the preamble; every kernel that needs σ uses it.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple


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
    "raw T zx, raw T zr, raw T mask, raw int64 pred, int64 start, int64 k, int64 B, "
    "int64 H, int64 nd, int64 G, int64 off_i, int64 off_f, int64 off_o, int64 off_g, "
    "int64 masked",
    "raw T h, raw T c, raw T act, raw T tanh_c",
    r"""
    // one thread per (cell r of the wavefront, sample b, hidden unit j); gate block q of
    // z(p) starts at zo + q·H, with the block offsets off_* read off the gate layout
    const long long r = i / (B * H);
    const long long b = (i / H) % B;
    const long long j = i % H;
    const long long row = start + r;                   // wavefront-order position of p
    const long long zo = (row * B + b) * G;            // z(p) of sample b in zx and act
    const long long ro = (r * B + b) * G;              // its recurrent part in zr (k, B, G)
    const long long out = (row * B + b) * H + j;       // (p, b, j) in h, c, tanh_c
    // 1b. z = zx + [h(p⁻_1) | … | h(p⁻_n)] U   (the matmul zr ran just before)
    // 2. i, f_1..f_n, o  (k, B, (n+2)H)     here: one (cell, sample, unit) of each
    const long long qi = off_i * H + j, qo = off_o * H + j, qg = off_g * H + j;
    const T i_ = mdl_sigmoid(zx[zo + qi] + zr[ro + qi]);
    const T o_ = mdl_sigmoid(zx[zo + qo] + zr[ro + qo]);
    const T g_ = tanh(zx[zo + qg] + zr[ro + qg]);  // 2. cell input
    T c_ = i_ * g_;  // 3. i ⊙ g ...
    for (long long d = 0; d < nd; ++d) {
        const long long qf = (off_f + d) * H + j;
        const T f_ = mdl_sigmoid(zx[zo + qf] + zr[ro + qf]);
        act[zo + qf] = f_;
        c_ = c_ + f_ * c[(pred[d * k + r] * B + b) * H + j];  // 3. ... + f_d ⊙ c(p⁻_d)
    }
    const T tc = tanh(c_);  // 4.
    T h_ = o_ * tc;  // 4. h = o ⊙ tanh(c)
    if (masked) {  // 5. masked cells keep zero state
        const T m = mask[row * B + b];
        h_ = h_ * m;
        c_ = c_ * m;
    }
    act[zo + qi] = i_;
    act[zo + qo] = o_;
    act[zo + qg] = g_;
    tanh_c[out] = tc;
    h[out] = h_;
    c[out] = c_;
    """)

BACKWARD = KernelSource(
    "mdlstm_graves_backward",
    "raw T dout, raw T dhp, raw T act, raw T tanh_c, raw T c, raw T mask, raw int64 pred, "
    "raw int64 succ, int64 start, int64 k, int64 next_start, int64 next_k, int64 B, "
    "int64 H, int64 nd, int64 N, int64 G, int64 off_i, int64 off_f, int64 off_o, "
    "int64 off_g, int64 masked",
    "raw T dz, raw T dcp",
    r"""
    // one thread per (cell r of the wavefront, sample b, hidden unit j)
    const long long nH = nd * H;
    const long long r = i / (B * H);
    const long long b = (i / H) % B;
    const long long j = i % H;
    const long long row = start + r;
    const long long qi = off_i * H + j, qo = off_o * H + j, qg = off_g * H + j;
    const long long zo = (row * B + b) * G;
    const long long out = (row * B + b) * H + j;
    T dh = dout[out];
    T dc = 0;
    for (long long d = 0; d < nd; ++d) {  // 1b'. pull from the successors p⁺_d (wavefront s+1)
        const long long sl = succ[d * k + r];  // position in wavefront s+1; next_k: none
        if (sl < next_k) {
            const long long q = next_start + sl;
            dh = dh + dhp[(q * B + b) * nH + d * H + j];
            dc = dc + dcp[((d * N + q) * B + b) * H + j];
        }
    }
    if (masked) {  // 5'. h = m ⊙ h_cell  =>  dh_cell = m ⊙ dh (same for c)
        const T m = mask[row * B + b];
        dh = dh * m;
        dc = dc * m;
    }
    const T tc = tanh_c[out];
    const T i_ = act[zo + qi];
    const T o_ = act[zo + qo];
    const T g_ = act[zo + qg];
    const T d_o = dh * tc;  // 4'. through h = o ⊙ tanh(c)
    dc = dc + dh * o_ * ((T)1 - tc * tc);  // 4'. ... and through tanh(c)
    const T d_i = dc * g_;  // 3'. through i ⊙ g
    const T d_g = dc * i_;
    for (long long d = 0; d < nd; ++d) {
        const long long q = zo + (off_f + d) * H + j;
        const T f_ = act[q];
        const T d_f = dc * c[(pred[d * k + r] * B + b) * H + j];  // 3'. through f_d ⊙ c(p⁻_d)
        dcp[((d * N + row) * B + b) * H + j] = dc * f_;
        dz[q] = d_f * f_ * ((T)1 - f_);  // 2'. σ' = σ(1 − σ)
    }
    dz[zo + qi] = d_i * i_ * ((T)1 - i_);  // 2'. σ' = σ(1 − σ)
    dz[zo + qo] = d_o * o_ * ((T)1 - o_);
    dz[zo + qg] = d_g * ((T)1 - g_ * g_);  // 2'. tanh' = 1 − g²
    """)

KERNELS = (GATHER, FORWARD, BACKWARD)


@functools.lru_cache(maxsize=None)
def param_names(ks: KernelSource):
    """Parameter names of a kernel in call order (inputs, then outputs)."""
    return tuple(p.split()[-1] for p in (ks.in_params + "," + ks.out_params).split(","))



SIGMOID = KernelSource("mdlstm_sigmoid", "T x", "T y",
                       "y = mdl_sigmoid(x);  // σ(x) = tanh(x/2)/2 + 1/2, the preamble's")
