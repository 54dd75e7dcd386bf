"""The CUDA C sources of the cupy backend's fused sweeps (one source of truth), every cell:
Graves', peepholes, the layer-normalised cells (fixed and seed: one kernel, κ a constant),
stable and LeakyLP (their λ-mixture one shared snippet).

Each kernel body is C indexed by ``i`` that compiles three ways: as a cupy
``ElementwiseKernel`` body (the GPU), inside a ``__global__`` wrapper by ``nvcc`` (a syntax
check in the tests), and as a plain C++ loop on the host (the tests run the very same bodies on
the CPU and compare them with the numpy reference sweep). Their numbered comments are those of
the cell's module (``cells/graves.py``, ...) and ``sweep.py`` (forward k, backward k'), so the
two can be read side by side (pinned by a test); comments are stripped before compiling (``KernelSource.code``). Gate blocks are addressed
through offsets the launcher reads off the gate layout (``off_i``, ``off_f``, ``off_o``,
``off_g``, in units of H), never through re-typed numbers. The one sigmoid of this language is
``mdl_sigmoid`` in the preamble; every kernel that needs σ uses it.

The sweep's own steps, as numbered in ``sweep.py`` (the cells' steps 2-4 are in their bodies):

    1a. zx = x W + b                    the layer, before the sweep (cuBLAS)
    1b. z = zx + [h(p⁻_1) | … | h(p⁻_n)] U   per wavefront: the matmul on cuBLAS, the sum here
    5. h, c = m ⊙ h, m ⊙ c             the sizes mask, inside the fused forward
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

# Every cell's kernels share one interface (the driver, ``FusedSweep`` in ``cupy.py``, is
# written once): forward (FORWARD_PARAMS) -> h, c and the cell's store row st (S numbers per
# cell and sample: what its backward needs); backward (BACKWARD_PARAMS) -> dz, the shares dcp
# for the predecessors' states, and dprm (P numbers per cell and sample: the contributions to
# the gradient of the cell's own parameters prm, summed by the driver after the sweep).
# prm: the cell's own parameters packed flat in ``param_shapes`` order; cst: its constants.
FORWARD_PARAMS = ("raw T zx, raw T zr, raw T mask, raw int64 pred, raw T prm, raw T cst, "
                  "int64 start, int64 k, int64 B, int64 H, int64 nd, int64 G, int64 S, "
                  "int64 off_i, int64 off_f, int64 off_o, int64 off_g, int64 off_lam, "
                  "int64 off_omega0, int64 off_omega1, int64 masked")
FORWARD_OUT = "raw T h, raw T c, raw T st"
BACKWARD_PARAMS = ("raw T dout, raw T dhp, raw T st, raw T c, raw T mask, raw int64 pred, "
                   "raw int64 succ, raw T prm, raw T cst, int64 start, int64 k, "
                   "int64 next_start, int64 next_k, int64 B, int64 H, int64 nd, int64 N, "
                   "int64 G, int64 S, int64 P, int64 off_i, int64 off_f, int64 off_o, "
                   "int64 off_g, int64 off_lam, int64 off_omega0, int64 off_omega1, "
                   "int64 masked")
BACKWARD_OUT = "raw T dz, raw T dcp, raw T dprm"

FORWARD = KernelSource(
    "mdlstm_graves_forward", FORWARD_PARAMS, FORWARD_OUT,
    r"""
    // one thread per (cell r of the wavefront, sample b, hidden unit j); gate block q of
    // z(p) starts at zo + q·H, with the block offsets off_* read off the gate layout
    const long long r = i / (B * H);
    const long long b = (i / H) % B;
    const long long j = i % H;
    const long long row = start + r;                   // wavefront-order position of p
    const long long zo = (row * B + b) * G;            // z(p) of sample b in zx
    const long long ro = (r * B + b) * G;              // its recurrent part in zr (k, B, G)
    const long long so = (row * B + b) * S;            // its store row: [act (G) | tanh c (H)]
    const long long out = (row * B + b) * H + j;       // (p, b, j) in h, c
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
        st[so + qf] = f_;
        c_ = c_ + f_ * c[(pred[d * k + r] * B + b) * H + j];  // 3. ... + f_d ⊙ c(p⁻_d)
    }
    const T tc = tanh(c_);  // 4.
    T h_ = o_ * tc;  // 4. h = o ⊙ tanh(c)
    if (masked) {  // 5. masked cells keep zero state
        const T m = mask[row * B + b];
        h_ = h_ * m;
        c_ = c_ * m;
    }
    st[so + qi] = i_;
    st[so + qo] = o_;
    st[so + qg] = g_;
    st[so + G + j] = tc;
    h[out] = h_;
    c[out] = c_;
    """)

BACKWARD = KernelSource(
    "mdlstm_graves_backward", BACKWARD_PARAMS, BACKWARD_OUT,
    r"""
    // one thread per (cell r of the wavefront, sample b, hidden unit j)
    const long long nH = nd * H;
    const long long r = i / (B * H);
    const long long b = (i / H) % B;
    const long long j = i % H;
    const long long row = start + r;
    const long long qi = off_i * H + j, qo = off_o * H + j, qg = off_g * H + j;
    const long long zo = (row * B + b) * G;
    const long long so = (row * B + b) * S;  // the store row: [act (G) | tanh c (H)]
    const long long out = (row * B + b) * H + j;
    T dh = dout[out];
    T dc = 0;
    for (long long d = 0; d < nd; ++d) {  // 1b'(pull). from the successors p⁺_d (wavefront s+1)
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
    const T tc = st[so + G + j];
    const T i_ = st[so + qi];
    const T o_ = st[so + qo];
    const T g_ = st[so + qg];
    const T d_o = dh * tc;  // 4'. through h = o ⊙ tanh(c)
    dc = dc + dh * o_ * ((T)1 - tc * tc);  // 4'. ... and through tanh(c)
    // 3'-2'. through the gates (gates_backward in cells/graves.py):
    const T d_i = dc * g_;  // 3'. through i ⊙ g
    const T d_g = dc * i_;
    for (long long d = 0; d < nd; ++d) {
        const long long q = (off_f + d) * H + j;
        const T f_ = st[so + q];
        const T d_f = dc * c[(pred[d * k + r] * B + b) * H + j];  // 3'. through f_d ⊙ c(p⁻_d)
        dcp[((d * N + row) * B + b) * H + j] = dc * f_;
        dz[zo + q] = d_f * f_ * ((T)1 - f_);  // 2'. σ' = σ(1 − σ)
    }
    dz[zo + qi] = d_i * i_ * ((T)1 - i_);  // 2'. σ' = σ(1 − σ)
    dz[zo + qo] = d_o * o_ * ((T)1 - o_);
    dz[zo + qg] = d_g * ((T)1 - g_ * g_);  // 2'. tanh' = 1 − g²
    """)

# --------------------------------------------------------------------------- layer norm
# The layer-normalised cells (``cells/layernorm.py``, ``norm.py``; same numbered steps): one
# thread per (cell r of the wavefront, sample b), because a layer norm needs the mean and the
# variance of a whole block of H units. The thread computes them itself, block by block, so a
# wavefront is still ONE launch each way (the price: k·B threads instead of k·B·H).
# Store row st (S = 2G + (n+3) + 2H + 1): [â of the gate blocks (G) | act (G) | 1/s per gate
# block (n+3) | normalised c (H) | 1/s of c (1) | tanh(ĉ) (H)]. prm = [ln_gain (n+3)·H |
# ln_shift (n+3)·H | ln_c_gain H | ln_c_shift H] (``param_shapes`` order); cst = [κ].
LN_FORWARD = KernelSource(
    "mdlstm_ln_forward", FORWARD_PARAMS, FORWARD_OUT,
    r"""
    const long long r = i / B;                  // cell within the wavefront
    const long long b = i % B;                  // sample
    const long long row = start + r;
    const long long zo = (row * B + b) * G;     // z(p) of sample b in zx
    const long long ro = (r * B + b) * G;       // its recurrent part in zr (k, B, G)
    const long long so = (row * B + b) * S;     // its store row
    const long long ho = (row * B + b) * H;     // (p, b, 0) in h and c
    const long long nq = nd + 3;                // gate blocks i, f_1..f_n, o, g
    const long long Pg = nq * H;                // size of ln_gain (and of ln_shift) in prm
    const long long sc = 2 * G + nq;            // offset of the normalised c in st
    const T kappa = cst[0];
    // 1b. z = zx + [h(p⁻_1) | … | h(p⁻_n)] U   (the matmul zr ran just before)
    for (long long q = 0; q < nq; ++q) {  // 2. a_j = LN_κ(z_j; gain_j, shift_j), block by block
        T mu = 0;
        for (long long j = 0; j < H; ++j) mu += zx[zo + q * H + j] + zr[ro + q * H + j];
        mu = mu / (T)H;  // 1. μ = mean(a)
        T var = 0;
        for (long long j = 0; j < H; ++j) {
            const T u = zx[zo + q * H + j] + zr[ro + q * H + j] - mu;  // 2. u = a − μ
            var += u * u;
        }
        const T inv_s = (T)1 / sqrt(var / (T)H + kappa);  // 3-4. v = mean(u²), s = sqrt(v + κ)
        st[so + 2 * G + q] = inv_s;
        for (long long j = 0; j < H; ++j) {
            const long long e = q * H + j;
            const T a_hat = (zx[zo + e] + zr[ro + e] - mu) * inv_s;  // 5. â = u / s
            const T a = a_hat * prm[e] + prm[Pg + e];  // 6. y = â ⊙ gain + shift
            st[so + e] = a_hat;
            // 3. i = σ(a_i)   f_d = σ(a_fd)   o = σ(a_o)   g = tanh(a_g)
            st[so + G + e] = (q == off_g) ? tanh(a) : mdl_sigmoid(a);
        }
    }
    T mu_c = 0;
    for (long long j = 0; j < H; ++j) {
        const long long a0 = so + G;
        T c_ = st[a0 + off_i * H + j] * st[a0 + off_g * H + j];  // 4. i ⊙ g ...
        for (long long d = 0; d < nd; ++d)  // 4. ... + f_d ⊙ c(p⁻_d)
            c_ = c_ + st[a0 + (off_f + d) * H + j] * c[(pred[d * k + r] * B + b) * H + j];
        c[ho + j] = c_;  // (masked below, after its layer norm)
        mu_c += c_;
    }
    mu_c = mu_c / (T)H;
    T var_c = 0;
    for (long long j = 0; j < H; ++j) var_c += (c[ho + j] - mu_c) * (c[ho + j] - mu_c);
    const T inv_sc = (T)1 / sqrt(var_c / (T)H + kappa);
    st[so + sc + H] = inv_sc;
    const T m = masked ? mask[row * B + b] : (T)1;
    for (long long j = 0; j < H; ++j) {
        const T c_hat = (c[ho + j] - mu_c) * inv_sc;  // 5. ĉ = LN_κ(c(p); ln_c_gain, ln_c_shift)
        const T tc = tanh(c_hat * prm[2 * Pg + j] + prm[2 * Pg + H + j]);
        st[so + sc + j] = c_hat;
        st[so + sc + H + 1 + j] = tc;
        h[ho + j] = st[so + G + off_o * H + j] * tc * m;  // 6. h(p) = o ⊙ tanh(ĉ)
        c[ho + j] = c[ho + j] * m;  // masked cells keep zero state
    }
    """)

LN_BACKWARD = KernelSource(
    "mdlstm_ln_backward", BACKWARD_PARAMS, BACKWARD_OUT,
    r"""
    // one thread per (cell r of the wavefront, sample b); the dz row doubles as scratch for
    // dh, dc (blocks i and f_1) until the last pass overwrites it
    const long long nH = nd * H;
    const long long r = i / B;
    const long long b = i % B;
    const long long row = start + r;
    const long long zo = (row * B + b) * G;
    const long long so = (row * B + b) * S;
    const long long ho = (row * B + b) * H;
    const long long po = (row * B + b) * P;     // this cell's own-parameter gradient shares
    const long long nq = nd + 3;
    const long long Pg = nq * H;
    const long long sc = 2 * G + nq;
    const long long a0 = so + G;                // act in st
    const T inv_sc = st[so + sc + H];
    const T m = masked ? mask[row * B + b] : (T)1;
    T s1 = 0, s2 = 0;
    for (long long j = 0; j < H; ++j) {
        T dh = dout[ho + j];
        T dc = 0;
        for (long long d = 0; d < nd; ++d) {  // 1b'(pull). from the successors p⁺_d (wavefront s+1)
            const long long sl = succ[d * k + r];
            if (sl < next_k) {
                const long long q = next_start + sl;
                dh = dh + dhp[(q * B + b) * nH + d * H + j];
                dc = dc + dcp[((d * N + q) * B + b) * H + j];
            }
        }
        dh = dh * m;  // 5'. h = m ⊙ h_cell  =>  dh_cell = m ⊙ dh (same for c)
        dc = dc * m;
        const T tc = st[so + sc + H + 1 + j];
        const T d_chat = dh * st[a0 + off_o * H + j] * ((T)1 - tc * tc);  // 6'. ... and through tanh(ĉ)
        const T d_hat = d_chat * prm[2 * Pg + j];  // 6'. dâ = dy ⊙ gain
        s1 += d_hat;
        s2 += d_hat * st[so + sc + j];
        dprm[po + 2 * Pg + j] = d_chat * st[so + sc + j];  // 6'. dgain = Σ_batch dy ⊙ â
        dprm[po + 2 * Pg + H + j] = d_chat;  // 6'. dshift = Σ_batch dy
        dz[zo + off_i * H + j] = dh;
        dz[zo + off_f * H + j] = dc;
    }
    s1 = s1 / (T)H;
    s2 = s2 / (T)H;
    for (long long j = 0; j < H; ++j) {
        const T dh = dz[zo + off_i * H + j];
        T dc = dz[zo + off_f * H + j];
        const T tc = st[so + sc + H + 1 + j];
        const T o_ = st[a0 + off_o * H + j];
        const T i_ = st[a0 + off_i * H + j];
        const T g_ = st[a0 + off_g * H + j];
        const T d_o = dh * tc;  // 6'. do = dh ⊙ tanh(ĉ)
        const T d_hat = dh * o_ * ((T)1 - tc * tc) * prm[2 * Pg + j];
        dc = dc + (d_hat - s1 - st[so + sc + j] * s2) * inv_sc;  // 5'. dc += LN_κ-backward(dĉ)
        dz[zo + off_i * H + j] = dc * g_ * i_ * ((T)1 - i_);  // 4'-3'. through i ⊙ g, σ'
        dz[zo + off_g * H + j] = dc * i_ * ((T)1 - g_ * g_);  // 3'. da_g = dg ⊙ (1 − g²)
        dz[zo + off_o * H + j] = d_o * o_ * ((T)1 - o_);
        for (long long d = 0; d < nd; ++d) {
            const long long q = (off_f + d) * H + j;
            const T f_ = st[a0 + q];
            const T cp = c[(pred[d * k + r] * B + b) * H + j];
            dcp[((d * N + row) * B + b) * H + j] = dc * f_;  // 4'. dc(p⁻_d) = dc ⊙ f_d
            dz[zo + q] = dc * cp * f_ * ((T)1 - f_);  // 4'. df_d = dc ⊙ c(p⁻_d), then σ'
        }
    }
    for (long long q = 0; q < nq; ++q) {  // 2'. dz_j = LN_κ-backward(da_j), block by block
        T t1 = 0, t2 = 0;
        for (long long j = 0; j < H; ++j) {
            const long long e = q * H + j;
            const T d_hat = dz[zo + e] * prm[e];
            t1 += d_hat;
            t2 += d_hat * st[so + e];
        }
        t1 = t1 / (T)H;  // 2'. centring: mean(dâ)
        t2 = t2 / (T)H;  // 5'-3'. through s: mean(dâ ⊙ â)
        const T inv_s = st[so + 2 * G + q];
        for (long long j = 0; j < H; ++j) {
            const long long e = q * H + j;
            const T da = dz[zo + e];
            dprm[po + e] = da * st[so + e];  // adds d ln_gain
            dprm[po + Pg + e] = da;  // adds d ln_shift
            dz[zo + e] = (da * prm[e] - t1 - st[so + e] * t2) * inv_s;  // (★)
        }
    }
    """)


# The λ-mixture of the stable and LeakyLP cells (``stable.mixture_forward``/``_backward``),
# one C snippet shared by both cells' kernels. It reads z_λ from zx + zr, writes λ̂_d to
# st[so + G + d·H + j] and σ(z_λd) to the λ block of act, and leaves c⁻ in ``c_mix``;
# backward, from ``dc_mix`` it writes dz_λ and the shares dc(p⁻_d).
MIXTURE_FORWARD = r"""
    T c_mix = c[(pred[r] * B + b) * H + j];  // n = 1: c⁻ = c(p⁻_1)
    if (nd > 1) {  // 3a-3b. c⁻, the λ-mixture of the predecessors
        // 3a. λ̂_d = λ_d / Σ_e λ_e as a softmax of ℓ_d = log σ(z_λd), shifted by max_e ℓ_e
        T top = 0;
        for (long long d = 0; d < nd; ++d) {
            const T z = zx[zo + (off_lam + d) * H + j] + zr[ro + (off_lam + d) * H + j];
            const T ell = (z - fabs(z)) * (T)0.5 - log1p(exp(-fabs(z)));
            top = (d == 0 || ell > top) ? ell : top;  // 3a. shift: the largest exp(·) is 1
        }
        T total = 0;
        for (long long d = 0; d < nd; ++d) {
            const T z = zx[zo + (off_lam + d) * H + j] + zr[ro + (off_lam + d) * H + j];
            const T ell = (z - fabs(z)) * (T)0.5 - log1p(exp(-fabs(z)));
            const T ex = exp(ell - top);
            st[so + G + d * H + j] = ex;
            st[so + (off_lam + d) * H + j] = mdl_sigmoid(z);
            total = total + ex;  // 3a. ≥ 1, never 0
        }
        c_mix = 0;
        for (long long d = 0; d < nd; ++d) {
            const T lam_hat = st[so + G + d * H + j] / total;  // 3a. λ̂_d = λ_d / Σ_e λ_e
            st[so + G + d * H + j] = lam_hat;
            c_mix = c_mix + lam_hat * c[(pred[d * k + r] * B + b) * H + j];  // 3b. c⁻ = Σ_d λ̂_d ⊙ c(p⁻_d)
        }
    }
"""
MIXTURE_BACKWARD = r"""
    if (nd > 1) {  // 3b'-3a'. dz_λ and dc(p⁻_d) from dc⁻
        for (long long d = 0; d < nd; ++d) {
            const T lam_hat = st[so + G + d * H + j];
            const T lam = st[so + (off_lam + d) * H + j];
            const T cp = c[(pred[d * k + r] * B + b) * H + j];
            dcp[((d * N + row) * B + b) * H + j] = dc_mix * lam_hat;  // 3b'. through λ̂_d ⊙ c(p⁻_d)
            dz[zo + (off_lam + d) * H + j] = lam_hat * ((T)1 - lam) * dc_mix * (cp - c_mix);  // 3a'. see above
        }
    } else {
        dcp[(row * B + b) * H + j] = dc_mix;  // n = 1: c⁻ = c(p⁻_1)
    }
"""

# --------------------------------------------------------------------------- stable cell
# Leifert's λ-stable cell (``cells/stable.py``; same numbered steps), one thread per (cell,
# sample, unit) like Graves'. Store row st (S = G + n·H + 2H): [act = σ of i, f, o, λ_1..λ_n
# and tanh of g (G) | λ̂_d (n·H) | c⁻ (H) | tanh c (H)]. No own parameters (P = 0).
STABLE_FORWARD = KernelSource(
    "mdlstm_stable_forward", FORWARD_PARAMS, FORWARD_OUT,
    r"""
    const long long r = i / (B * H);
    const long long b = (i / H) % B;
    const long long j = i % H;
    const long long row = start + r;
    const long long zo = (row * B + b) * G;
    const long long ro = (r * B + b) * G;
    const long long so = (row * B + b) * S;
    const long long out = (row * B + b) * H + j;
    // 1b. z = zx + [h(p⁻_1) | … | h(p⁻_n)] U   (the matmul zr ran just before)
    const long long qi = off_i * H + j, qf = off_f * H + j, qo = off_o * H + j;
    const long long qg = off_g * H + j;
    const T i_ = mdl_sigmoid(zx[zo + qi] + zr[ro + qi]);  // 2. i, f, o, λ_d = σ(z_·)
    const T f_ = mdl_sigmoid(zx[zo + qf] + zr[ro + qf]);
    const T o_ = mdl_sigmoid(zx[zo + qo] + zr[ro + qo]);
    const T g_ = tanh(zx[zo + qg] + zr[ro + qg]);  // 2. g = tanh(z_g)
""" + MIXTURE_FORWARD + r"""    T c_ = i_ * g_ + f_ * c_mix;  // 3c.
    const T tc = tanh(c_);
    T h_ = o_ * tc;  // 4. h = o ⊙ tanh(c)
    if (masked) {  // 5. masked cells keep zero state
        const T m = mask[row * B + b];
        h_ = h_ * m;
        c_ = c_ * m;
    }
    st[so + qi] = i_;
    st[so + qf] = f_;
    st[so + qo] = o_;
    st[so + qg] = g_;
    st[so + G + nd * H + j] = c_mix;
    st[so + G + nd * H + H + j] = tc;
    h[out] = h_;
    c[out] = c_;
    """)

STABLE_BACKWARD = KernelSource(
    "mdlstm_stable_backward", BACKWARD_PARAMS, BACKWARD_OUT,
    r"""
    const long long nH = nd * H;
    const long long r = i / (B * H);
    const long long b = (i / H) % B;
    const long long j = i % H;
    const long long row = start + r;
    const long long zo = (row * B + b) * G;
    const long long so = (row * B + b) * S;
    const long long out = (row * B + b) * H + j;
    const long long qi = off_i * H + j, qf = off_f * H + j, qo = off_o * H + j;
    const long long qg = off_g * H + j;
    T dh = dout[out];
    T dc = 0;
    for (long long d = 0; d < nd; ++d) {  // 1b'(pull). from the successors p⁺_d (wavefront s+1)
        const long long sl = succ[d * k + r];
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
    const T i_ = st[so + qi], f_ = st[so + qf], o_ = st[so + qo], g_ = st[so + qg];
    const T c_mix = st[so + G + nd * H + j];
    const T tc = st[so + G + nd * H + H + j];
    const T d_o = dh * tc;  // 4'. through h = o ⊙ tanh(c)
    dc = dc + dh * o_ * ((T)1 - tc * tc);  // 4'. ... and through tanh(c)
    const T d_i = dc * g_;  // 3c'. through i ⊙ g
    const T d_g = dc * i_;
    const T d_f = dc * c_mix;  // 3c'. through f ⊙ c⁻
    const T dc_mix = dc * f_;
""" + MIXTURE_BACKWARD + r"""    dz[zo + qi] = d_i * i_ * ((T)1 - i_);  // 2'. σ'
    dz[zo + qf] = d_f * f_ * ((T)1 - f_);
    dz[zo + qo] = d_o * o_ * ((T)1 - o_);
    dz[zo + qg] = d_g * ((T)1 - g_ * g_);  // 2'. tanh' = 1 − g²
    """)


# --------------------------------------------------------------------------- LeakyLP cell
# Leifert's leaky low-pass cell (``cells/leakylp.py``; same numbered steps), one thread per
# (cell, sample, unit). Gates [f | ω₀ | ω₁ | λ_1..λ_n | g]. Store row st (S = G + n·H + 3H):
# [act (G) | λ̂_d (n·H) | c⁻ (H) | c(p) (H) | h(p) = tanh(a) (H)] (c, h before the mask).
LEAKYLP_FORWARD = KernelSource(
    "mdlstm_leakylp_forward", FORWARD_PARAMS, FORWARD_OUT,
    r"""
    const long long r = i / (B * H);
    const long long b = (i / H) % B;
    const long long j = i % H;
    const long long row = start + r;
    const long long zo = (row * B + b) * G;
    const long long ro = (r * B + b) * G;
    const long long so = (row * B + b) * S;
    const long long out = (row * B + b) * H + j;
    // 1b. z = zx + [h(p⁻_1) | … | h(p⁻_n)] U   (the matmul zr ran just before)
    const long long qf = off_f * H + j, q0 = off_omega0 * H + j, q1 = off_omega1 * H + j;
    const long long qg = off_g * H + j;
    const T f_ = mdl_sigmoid(zx[zo + qf] + zr[ro + qf]);  // 2. f, ω₀, ω₁, λ_d = σ(z_·)
    const T w0 = mdl_sigmoid(zx[zo + q0] + zr[ro + q0]);
    const T w1 = mdl_sigmoid(zx[zo + q1] + zr[ro + q1]);
    const T g_ = tanh(zx[zo + qg] + zr[ro + qg]);  // 2. g = tanh(z_g)
""" + MIXTURE_FORWARD + r"""    T c_ = ((T)1 - f_) * g_ + f_ * c_mix;  // 3c. c(p) = (1 − f) ⊙ g + f ⊙ c⁻
    const T a = w0 * c_ + w1 * c_mix;  // 4a. a = ω₀ ⊙ c(p) + ω₁ ⊙ c⁻
    T h_ = tanh(a);  // 4b. h(p) = tanh(a)
    st[so + qf] = f_;
    st[so + q0] = w0;
    st[so + q1] = w1;
    st[so + qg] = g_;
    st[so + G + nd * H + j] = c_mix;
    st[so + G + nd * H + H + j] = c_;
    st[so + G + nd * H + 2 * H + j] = h_;
    if (masked) {  // 5. masked cells keep zero state
        const T m = mask[row * B + b];
        h_ = h_ * m;
        c_ = c_ * m;
    }
    h[out] = h_;
    c[out] = c_;
    """)

LEAKYLP_BACKWARD = KernelSource(
    "mdlstm_leakylp_backward", BACKWARD_PARAMS, BACKWARD_OUT,
    r"""
    const long long nH = nd * H;
    const long long r = i / (B * H);
    const long long b = (i / H) % B;
    const long long j = i % H;
    const long long row = start + r;
    const long long zo = (row * B + b) * G;
    const long long so = (row * B + b) * S;
    const long long out = (row * B + b) * H + j;
    const long long qf = off_f * H + j, q0 = off_omega0 * H + j, q1 = off_omega1 * H + j;
    const long long qg = off_g * H + j;
    T dh = dout[out];
    T dc = 0;
    for (long long d = 0; d < nd; ++d) {  // 1b'(pull). from the successors p⁺_d (wavefront s+1)
        const long long sl = succ[d * k + r];
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
    const T f_ = st[so + qf], w0 = st[so + q0], w1 = st[so + q1], g_ = st[so + qg];
    const T c_mix = st[so + G + nd * H + j];
    const T c_ = st[so + G + nd * H + H + j];
    const T h_ = st[so + G + nd * H + 2 * H + j];
    const T da = dh * ((T)1 - h_ * h_);  // 4b'. tanh' = 1 − h²
    const T d_w0 = da * c_;  // 4a'. through ω₀ ⊙ c
    const T d_w1 = da * c_mix;  // 4a'. through ω₁ ⊙ c⁻
    dc = dc + da * w0;  // 4a'. the new state's share of the output
    T dc_mix = da * w1;  // 4a'. c⁻'s direct share of the output ...
    const T d_f = dc * (c_mix - g_);  // 3c'. ∂c/∂f = c⁻ − g
    const T d_g = dc * ((T)1 - f_);  // 3c'. through (1 − f) ⊙ g
    dc_mix = dc_mix + dc * f_;  // 3c'. ... plus its share through f ⊙ c⁻
""" + MIXTURE_BACKWARD + r"""    dz[zo + qf] = d_f * f_ * ((T)1 - f_);  // 2'. σ'
    dz[zo + q0] = d_w0 * w0 * ((T)1 - w0);
    dz[zo + q1] = d_w1 * w1 * ((T)1 - w1);
    dz[zo + qg] = d_g * ((T)1 - g_ * g_);  // 2'. tanh' = 1 − g²
    """)


# --------------------------------------------------------------------------- peepholes
# Graves' cell with peepholes (``cells/peephole.py``; same numbered steps), one thread per
# (cell, sample, unit). prm = [w_i (H) | w_f (n·H) | w_o (H)]; each thread writes its own unit's
# shares of their gradients into dprm (P = (n + 2)·H). Store row st (S = G + 3H):
# [act = i | f_1..f_n | o | g (G) | c_sum (H) | c(p) (H) | tanh c (H)] (c before the mask).
PEEPHOLE_FORWARD = KernelSource(
    "mdlstm_peephole_forward", FORWARD_PARAMS, FORWARD_OUT,
    r"""
    const long long r = i / (B * H);
    const long long b = (i / H) % B;
    const long long j = i % H;
    const long long row = start + r;
    const long long zo = (row * B + b) * G;
    const long long ro = (r * B + b) * G;
    const long long so = (row * B + b) * S;
    const long long out = (row * B + b) * H + j;
    // 1b. z = zx + [h(p⁻_1) | … | h(p⁻_n)] U   (the matmul zr ran just before)
    const long long qi = off_i * H + j, qo = off_o * H + j, qg = off_g * H + j;
    T c_sum = c[(pred[r] * B + b) * H + j];
    for (long long d = 1; d < nd; ++d)
        c_sum = c_sum + c[(pred[d * k + r] * B + b) * H + j];  // 2a. c_sum = Σ_d c(p⁻_d)
    // 2b. i = σ(z_i + w_i ⊙ c_sum)     f_d = σ(z_fd + w_f[d] ⊙ c(p⁻_d))     g = tanh(z_g)
    const T i_ = mdl_sigmoid(zx[zo + qi] + zr[ro + qi] + prm[j] * c_sum);
    const T g_ = tanh(zx[zo + qg] + zr[ro + qg]);
    T c_ = i_ * g_;  // 3. i ⊙ g ...
    for (long long d = 0; d < nd; ++d) {
        const long long qf = (off_f + d) * H + j;
        const T cp = c[(pred[d * k + r] * B + b) * H + j];
        const T f_ = mdl_sigmoid(zx[zo + qf] + zr[ro + qf] + prm[H + d * H + j] * cp);
        st[so + qf] = f_;
        c_ = c_ + f_ * cp;  // 3. ... + f_d ⊙ c(p⁻_d)
    }
    const T o_ = mdl_sigmoid(zx[zo + qo] + zr[ro + qo] + prm[(nd + 1) * H + j] * c_);  // 4a. o sees the new state
    const T tc = tanh(c_);
    T h_ = o_ * tc;  // 4b. h = o ⊙ tanh(c)
    st[so + qi] = i_;
    st[so + qo] = o_;
    st[so + qg] = g_;
    st[so + G + j] = c_sum;
    st[so + G + H + j] = c_;
    st[so + G + 2 * H + j] = tc;
    if (masked) {  // 5. masked cells keep zero state
        const T m = mask[row * B + b];
        h_ = h_ * m;
        c_ = c_ * m;
    }
    h[out] = h_;
    c[out] = c_;
    """)

PEEPHOLE_BACKWARD = KernelSource(
    "mdlstm_peephole_backward", BACKWARD_PARAMS, BACKWARD_OUT,
    r"""
    const long long nH = nd * H;
    const long long r = i / (B * H);
    const long long b = (i / H) % B;
    const long long j = i % H;
    const long long row = start + r;
    const long long zo = (row * B + b) * G;
    const long long so = (row * B + b) * S;
    const long long po = (row * B + b) * P;  // this cell's shares of dw_i, dw_f, dw_o
    const long long out = (row * B + b) * H + j;
    const long long qi = off_i * H + j, qo = off_o * H + j, qg = off_g * H + j;
    T dh = dout[out];
    T dc = 0;
    for (long long d = 0; d < nd; ++d) {  // 1b'(pull). from the successors p⁺_d (wavefront s+1)
        const long long sl = succ[d * k + r];
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
    const T i_ = st[so + qi], o_ = st[so + qo], g_ = st[so + qg];
    const T c_sum = st[so + G + j], c_ = st[so + G + H + j], tc = st[so + G + 2 * H + j];
    const T d_o = dh * tc;  // 4b'. through h = o ⊙ tanh(c)
    dc = dc + dh * o_ * ((T)1 - tc * tc);  // 4b'. ... and through tanh(c)
    const T dz_o = d_o * o_ * ((T)1 - o_);  // 4a'. σ' = o(1 − o)
    dc = dc + dz_o * prm[(nd + 1) * H + j];  // 4a'. through the output peephole w_o ⊙ c
    dprm[po + (nd + 1) * H + j] = dz_o * c_;  // 4a'. shared vector
    const T d_i = dc * g_;  // 3'. through i ⊙ g
    const T d_g = dc * i_;
    const T dz_i = d_i * i_ * ((T)1 - i_);  // 2b'. σ' = σ(1 − σ)
    for (long long d = 0; d < nd; ++d) {
        const long long qf = (off_f + d) * H + j;
        const T f_ = st[so + qf];
        const T cp = c[(pred[d * k + r] * B + b) * H + j];
        const T dz_f = dc * cp * f_ * ((T)1 - f_);  // 3'. through f_d ⊙ c(p⁻_d), then σ'
        dz[zo + qf] = dz_f;
        dcp[((d * N + row) * B + b) * H + j] = dc * f_ + dz_f * prm[H + d * H + j]  // 2b'. via w_f[d] ⊙ c(p⁻_d)
            + dz_i * prm[j];  // 2a'. through w_i ⊙ Σ_d c(p⁻_d)
        dprm[po + H + d * H + j] = dz_f * cp;  // 2b'.
    }
    dprm[po + j] = dz_i * c_sum;  // 2b'.
    dz[zo + qi] = dz_i;
    dz[zo + qo] = dz_o;
    dz[zo + qg] = d_g * ((T)1 - g_ * g_);  // 2b'. tanh' = 1 − g²
    """)


class CellKernels(NamedTuple):
    """What one cell contributes to the fused sweep: its two kernel bodies and their sizes.

    store(n, H, G) -> S numbers per cell and sample; per_row: one thread per (cell, sample)
    (a layer norm's reductions) instead of one per (cell, sample, unit); consts(cell) -> the
    constants cst (at least one number).
    """

    forward: KernelSource
    backward: KernelSource
    store: object
    per_row: bool
    consts: object


GRAVES = CellKernels(FORWARD, BACKWARD, lambda n, H, G: G + H, False, lambda cell: (0.0,))
LAYER_NORM = CellKernels(LN_FORWARD, LN_BACKWARD,
                         lambda n, H, G: 2 * G + (n + 3) + 2 * H + 1, True,
                         lambda cell: (cell.kappa,))
STABLE = CellKernels(STABLE_FORWARD, STABLE_BACKWARD, lambda n, H, G: G + n * H + 2 * H,
                     False, lambda cell: (0.0,))

LEAKYLP = CellKernels(LEAKYLP_FORWARD, LEAKYLP_BACKWARD, lambda n, H, G: G + n * H + 3 * H,
                      False, lambda cell: (0.0,))
PEEPHOLE = CellKernels(PEEPHOLE_FORWARD, PEEPHOLE_BACKWARD, lambda n, H, G: G + 3 * H, False,
                       lambda cell: (0.0,))

KERNELS = (GATHER, FORWARD, BACKWARD, LN_FORWARD, LN_BACKWARD, STABLE_FORWARD, STABLE_BACKWARD,
           LEAKYLP_FORWARD, LEAKYLP_BACKWARD, PEEPHOLE_FORWARD, PEEPHOLE_BACKWARD)


@functools.lru_cache(maxsize=None)
def param_names(ks: KernelSource):
    """Parameter names of a kernel in call order (inputs, then outputs)."""
    return tuple(p.split()[-1] for p in (ks.in_params + "," + ks.out_params).split(","))



SIGMOID = KernelSource("mdlstm_sigmoid", "T x", "T y",
                       "y = mdl_sigmoid(x);  // σ(x) = tanh(x/2)/2 + 1/2, the preamble's")
