"""Connectionist Temporal Classification: loss, gradient and decoders (Graves, Fernández, Gomez
& Schmidhuber 2006, "Connectionist Temporal Classification: Labelling Unsegmented Sequence Data
with Recurrent Neural Networks", ICML; Sec. 3 and 4.1). Indices start at 0 here, at 1 in the paper.

Notation (one sample; the code runs all B samples at once)
----------------------------------------------------------
    y_t(k)   = exp(log_probs[t, b, k]): the network's probability of label k at time t < T_b
    ∅        the blank (``blank``, 0 by default); l = (l_0 … l_{L-1}) the target, no blanks
    l'       the extended target, a blank before, between and after the labels (Sec. 4.1):
             l' = (∅, l_0, ∅, l_1, …, l_{L-1}, ∅),  U = 2L + 1 positions s = 0 … U-1
    𝓑        collapse a path: merge repeated labels, then drop blanks ("a∅ab∅b" -> "aab")
    p(l|x)   = Σ_{π : 𝓑(π) = l} Π_t y_t(π_t)       (eq. 2-3; a path π has one label per t)
    skip(s)  = [l'_s ≠ ∅ and l'_s ≠ l'_{s-2}]: a path may jump from s-2 straight to s only
               between distinct labels; two equal labels need a blank between them.

Forward, in probability space (eq. 5-7); the code runs it in log space, see below
---------------------------------------------------------------------------------
    1. gather  e_t(s) = ln y_t(l'_s)                          (-∞ for the padding s ≥ U_b)
    2. α_0(0) = y_0(∅),  α_0(1) = y_0(l_0),  α_0(s) = 0 for s ≥ 2
       α_t(s) = y_t(l'_s) · [α_{t-1}(s) + α_{t-1}(s-1) + skip(s) α_{t-1}(s-2)]
       α_t(s) is the probability of all path prefixes π_0 … π_t that collapse to l'_0 … l'_s
       and sit at s at time t. For t ≥ T_b the sample's α is frozen: α_t = α_{T_b-1}.
    3. p(l|x) = α_{T-1}(U-1) + α_{T-1}(U-2)                   (only the first term when L = 0)
    4. loss = Σ_b -ln p(l_b|x_b)    (eq. 12-13; reduction="mean" divides by B)

Backward, the mirror image (reverse-mode differentiation of steps 1-4)
----------------------------------------------------------------------
Our backward variable β̂ does NOT include y_t, unlike the paper's β (eq. 10-11): β̂_t(s) is the
probability of all path suffixes π_{t+1} … π_{T-1} that complete l' from position s. The two
are related by β_t(s) = y_t(l'_s) β̂_t(s), and β̂ is exactly the adjoint ∂p/∂α_t(s) of step 2:

    4'. ∂loss/∂ln p = -1 (or -1/B)
    3'. ∂p/∂α_{T-1}(s) = 1 for s ∈ {U-1, U-2}, else 0                       = β̂_{T-1}(s)
    2'. α_{t+1}(s') depends on α_t(s) for s' ∈ {s, s+1} and s' = s+2 if skip(s+2), with the
        factor y_{t+1}(l'_{s'}); the chain rule gives the paper's β recursion without y_t:
        β̂_t(s) = Σ_{s' ∈ {s, s+1} ∪ {s+2 : skip(s+2)}} y_{t+1}(l'_{s'}) β̂_{t+1}(s')
        Then α_t(s) β̂_t(s) is the probability of all paths through s at time t, and
        Σ_s α_t(s) β̂_t(s) = p for every t < T_b (each path sits at exactly one s).
    1'. α_t(s) is proportional to y_t(l'_s), so ∂α_t(s)/∂ln y_t(l'_s) = α_t(s); the transpose
        of the gather of step 1 adds up every s that reads the same label k:
            ∂p/∂ln y_t(k) = Σ_{s : l'_s = k} α_t(s) β̂_t(s)
            ∂loss/∂ln y_t(k) = -Σ_{s : l'_s = k} γ_t(s),
            γ_t(s) = exp(ln α_t(s) + ln β̂_t(s) - ln p)
        γ_t(s) is the posterior probability of sitting at s at time t; Σ_k ∂loss/∂ln y_t(k) = -1.
        Time steps t ≥ T_b get zero gradient. The gradient is with respect to log_probs taken as
        free inputs. Behind a log-softmax of logits u (:func:`log_softmax_backward`) it becomes
        the paper's eq. 16, ∂loss/∂u_t(k) = y_t(k) - Σ_{s : l'_s = k} γ_t(s).

Log space. Products of many probabilities underflow (T = 200 steps at y ≈ 0.01 is 1e-400), so
the code keeps a = ln α and b̂ = ln β̂, and sums become log-sum-exp,
    lse(x, y, z) = m + ln(e^{x-m} + e^{y-m} + e^{z-m}),   m = max(x, y, z).
A zero probability is -∞; where all terms are -∞ the shift m is replaced by 0, so no
-∞ - (-∞) = NaN is ever formed, and ln 0 is never evaluated (``_lse``). In step 1' the ln p
inside γ is recomputed at each t as lse_s(a_t(s) + b̂_t(s)), equal to step 3's in exact
arithmetic; in float32 this cancels rounding that a and b̂ share (see the comment there).

Precision. The recursions, ln p and γ run in float64 whatever the dtype of ``log_probs`` (step
0 casts up, step 0' rounds the loss and the gradient back once). In float32, a and b̂ reach
about -7 T and each log-sum-exp adds a relative rounding of ~6e-8, so a float32 recursion's γ
drifts by ~T·1e-7 (measured: 2.7e-3 absolute at T = 10,000). In float64 the drift is ~T·1e-16,
and the float32 result is the exact one rounded once: |Δγ| ≤ 2⁻²⁴·max|γ| + T·1e-15, i.e.
≤ 1e-6 absolute (γ ≤ 1) for every T up to 10,000 and beyond (tests/test_ctc.py,
``test_float32_gradient_is_the_float64_one_rounded_up_to_t_10000``). The price is float64
arithmetic on the (T, B, U) arrays; the network that feeds the loss stays in float32.

Impossible targets. A target needs T_b ≥ L + (number of adjacent equal labels) time steps (each
label once, plus a blank between repeats). A shorter input has p = 0 and an infinite loss: this
module raises a ValueError naming the sample, unless ``zero_infinity=True``, which (as in common
frameworks) gives such samples loss 0 and gradient 0. A feasible sample whose p underflows even
in log space (log_probs near -1e38) is treated the same way.

Loops: the recursions of steps 2 and 2' loop over time in Python; each step is vectorised over
the batch and the label positions s. Only array-API calls on ``be.xp`` touch device arrays; index
and mask arrays are built on the host with numpy (like ``multidir.py``). The decoders and the
edit distance are host code (numpy in, Python lists out).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, List, Sequence, Tuple

import numpy as np

REDUCTIONS = ("sum", "mean")
NEG_INF = -math.inf


# --------------------------------------------------------------------------- input checks
def _host_ints(be, a, name: str, shape: tuple) -> np.ndarray:
    """Integer array (host or backend) of the given shape -> host int64."""
    host = be.to_numpy(a) if be.is_array(a) else np.asarray(a)
    if host.shape != shape or not (np.issubdtype(host.dtype, np.integer) or host.size == 0):
        raise ValueError(f"{name}: expected an integer array of shape {shape}, got "
                         f"{host.dtype} {host.shape}")
    return host.astype(np.int64)


def min_input_length(labels: Sequence[int]) -> int:
    """Fewest time steps that can emit ``labels``: L + the number of adjacent equal labels."""
    labels = list(labels)
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


def _check_ctc(be, log_probs, targets, input_lengths, target_lengths, blank, reduction):
    if not be.is_array(log_probs):
        raise TypeError(f"log_probs: expected a {be.name} array, got {type(log_probs).__name__}")
    if be.dtype_name(log_probs) not in ("float32", "float64"):
        raise TypeError(f"log_probs: expected float32 or float64, got {be.dtype_name(log_probs)}")
    if log_probs.ndim != 3 or min(log_probs.shape) < 1 or log_probs.shape[2] < 2:
        raise ValueError(f"log_probs: expected shape (T, B, K) with T, B >= 1 and K >= 2, got "
                         f"{tuple(log_probs.shape)}")
    if not be.all_finite(log_probs):
        raise ValueError("log_probs: expected finite values, got NaN or inf")
    T, B, K = log_probs.shape
    if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)) or not 0 <= blank < K:
        raise ValueError(f"blank: expected an integer in [0, {K - 1}], got {blank!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    tg = be.to_numpy(targets) if be.is_array(targets) else np.asarray(targets)
    if tg.ndim != 2 or tg.shape[0] != B:
        raise ValueError(f"targets: expected shape ({B}, S), got {tg.shape}")
    tg = _host_ints(be, tg, "targets", tg.shape)
    S = tg.shape[1]
    Tb = _host_ints(be, input_lengths, "input_lengths", (B,))
    Lb = _host_ints(be, target_lengths, "target_lengths", (B,))
    if (Tb < 1).any() or (Tb > T).any():
        raise ValueError(f"input_lengths: expected values in [1, {T}], got {Tb.tolist()}")
    if (Lb < 0).any() or (Lb > S).any():
        raise ValueError(f"target_lengths: expected values in [0, {S}], got {Lb.tolist()}")
    for b in range(B):
        lab = tg[b, :Lb[b]]
        bad = np.flatnonzero((lab < 0) | (lab >= K) | (lab == blank))
        if bad.size:
            raise ValueError(f"targets: expected labels in [0, {K - 1}] other than the blank "
                             f"{blank}, got {int(lab[bad[0]])} in sample {b} at position "
                             f"{int(bad[0])}")
    return tg, Tb, Lb


def _extend(targets, Lb, blank):
    """Host extended targets: ext (B, U) label of each s, valid (B, U), skip (B, U); U = 2S+1."""
    B, S = targets.shape
    U = 2 * S + 1
    valid = np.arange(U)[None, :] < (2 * Lb + 1)[:, None]         # (B, U) s < U_b
    ext = np.full((B, U), blank, dtype=np.int64)
    ext[:, 1::2] = targets
    ext = np.where(valid, ext, blank)                              # padding reads the blank
    skip = np.zeros((B, U), dtype=bool)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    return ext, valid, skip & valid


# --------------------------------------------------------------------------- log-space helpers
def _lse(xp, *terms):
    """ln Σ exp(terms), elementwise; -∞ where every term is -∞ (no NaN, no ln 0)."""
    m = terms[0]
    for x in terms[1:]:
        m = xp.maximum(m, x)
    m = xp.where(m == NEG_INF, 0.0, m)                             # all -∞: shift by 0 instead
    total = xp.exp(terms[0] - m)
    for x in terms[1:]:
        total = total + xp.exp(x - m)
    pos = total > 0
    return xp.where(pos, m + xp.log(xp.where(pos, total, 1.0)), NEG_INF)


def _shift(xp, a, k, neg_col):
    """a (B, U) moved k positions along s: k > 0 gives a[:, s-k], k < 0 gives a[:, s+|k|];
    positions that fall off the end are -∞. ``neg_col``: a (B, 1) column of -∞."""
    U = a.shape[1]
    pad = xp.concat([neg_col] * min(abs(k), U), axis=1)
    if abs(k) >= U:
        return pad
    return xp.concat([pad, a[:, :U - k]], axis=1) if k > 0 else xp.concat([a[:, -k:], pad], axis=1)


# --------------------------------------------------------------------------- the loss
def ctc_loss(be, log_probs, targets, input_lengths, target_lengths, blank=0, reduction="sum",
             zero_infinity=False) -> Tuple[Any, Any]:
    """CTC loss -ln p(l|x) and its gradient with respect to ``log_probs`` (module docstring).

    be             : the backend (``mdlstm_np.get_backend``).
    log_probs      : backend float array (T, B, K): ln y_t(k), e.g. from :func:`log_softmax`.
                     Must be finite. Rows need not be normalised (the gradient treats them as
                     free inputs).
    targets        : integer array (B, S), host or backend: sample b's labels are
                     targets[b, :target_lengths[b]], each in [0, K) and not the blank; the
                     rest is padding and ignored. S may be 0.
    input_lengths  : integer array (B,): T_b in [1, T]; time steps t ≥ T_b are ignored.
    target_lengths : integer array (B,): L_b in [0, S]; L_b = 0 is the empty labelling.
    blank          : the blank label, in [0, K).
    reduction      : "sum" (Σ_b) or "mean" (Σ_b / B; not divided by target lengths).
    zero_infinity  : False (default): an impossible sample (T_b < L_b + repeats) raises a
                     ValueError naming it. True: it contributes loss 0 and gradient 0.

    Returns (loss, dlog_probs): ``loss`` a 0-d backend array of log_probs' dtype, ``dlog_probs``
    = ∂loss/∂log_probs, (T, B, K), of log_probs' dtype, zero at t ≥ T_b and at labels absent
    from the target. Both are computed in float64 and rounded once (module docstring,
    "Precision").
    Raises TypeError / ValueError for bad inputs, naming the argument (and the sample).
    """
    xp = be.xp
    tg, Tb, Lb = _check_ctc(be, log_probs, targets, input_lengths, target_lengths, blank,
                            reduction)
    T, B, K = log_probs.shape
    need = np.array([min_input_length(tg[b, :Lb[b]]) for b in range(B)], dtype=np.int64)
    feasible = need <= Tb
    if not zero_infinity and not feasible.all():
        b = int(np.flatnonzero(~feasible)[0])
        raise ValueError(f"input_lengths: sample {b} needs at least {need[b]} time steps for its "
                         f"{Lb[b]} label(s) (a blank between repeats), got {Tb[b]} (pass "
                         f"zero_infinity=True to give such samples loss 0)")
    dtype = be.dtype_name(log_probs)
    # 0. the recursions run in float64 whatever the input's dtype (module docstring, "Precision")
    log_probs = xp.astype(log_probs, be.dtype("float64"))
    ext, valid, skip = _extend(tg, Lb, blank)
    U = ext.shape[1]
    valid_d, skip_d = xp.asarray(valid), xp.asarray(skip)                # (B, U) bool
    skip_next = xp.asarray(np.concatenate([skip[:, 2:], np.zeros((B, min(2, U)), bool)], 1))
    first = xp.asarray(valid & (np.arange(U)[None, :] < 2))              # s ∈ {0, 1}
    steps = np.arange(T)[:, None, None]
    live = xp.asarray(steps < Tb[None, :, None])                         # (T, B, 1) t < T_b
    inner = xp.asarray(steps < Tb[None, :, None] - 1)                    # (T, B, 1) t < T_b - 1
    neg = xp.full((B, U), NEG_INF, dtype=log_probs.dtype)
    neg_col = neg[:, :1]

    # 1. gather e_t(s) = ln y_t(l'_s): flat index b·K + l'_{b,s} into the (T, B·K) view
    idx = be.index((np.arange(B)[:, None] * K + ext).reshape(-1))        # (B·U,)
    e = xp.reshape(xp.take(xp.reshape(log_probs, (T, B * K)), idx, axis=1), (T, B, U))
    e = xp.where(valid_d, e, NEG_INF)                                    # (T, B, U)

    # 2. α recursion in log space, frozen once t ≥ T_b
    a = xp.where(first, e[0, ...], neg)                                  # (B, U)
    alphas = [a]
    for t in range(1, T):
        step = e[t, ...] + _lse(xp, a, _shift(xp, a, 1, neg_col),
                                xp.where(skip_d, _shift(xp, a, 2, neg_col), NEG_INF))
        a = xp.where(live[t, ...], step, a)
        alphas.append(a)
    la = xp.stack(alphas, axis=0)                                        # (T, B, U)

    # 3. ln p = lse(a(U_b-1), a(U_b-2)), the second term only when L_b ≥ 1
    rows = np.arange(B) * U
    a_flat = xp.reshape(a, (B * U,))
    last = be.take(a_flat, be.index(rows + 2 * Lb))                      # (B,) a(U_b - 1)
    second = be.take(a_flat, be.index(rows + np.maximum(2 * Lb - 1, 0)))  # (B,) a(U_b - 2)
    second = xp.where(xp.asarray(Lb > 0), second, NEG_INF)
    lnp = _lse(xp, last, second)                                         # (B,)
    keep = xp.isfinite(lnp) & xp.asarray(feasible)
    if not zero_infinity and not bool(xp.all(keep)):
        b = int(np.flatnonzero(~be.to_numpy(keep))[0])
        raise ValueError(f"log_probs: sample {b} has p(target) = 0 even in log space (log_probs "
                         f"too negative); pass zero_infinity=True to give it loss 0")
    lnp = xp.where(keep, lnp, 0.0)                                       # dropped samples: 0

    # 4. loss
    scale = 1.0 / B if reduction == "mean" else 1.0
    loss = -xp.sum(lnp) * scale

    # 4'-3'. ∂loss/∂ln p = -scale; β̂_{T_b-1} = 1 at the two end positions: ln β̂ = 0 there
    ends = np.zeros((B, U), dtype=bool)
    ends[np.arange(B), 2 * Lb] = True
    ends[np.arange(B)[Lb > 0], 2 * Lb[Lb > 0] - 1] = True
    init = xp.where(xp.asarray(ends), 0.0, neg)                          # (B, U)
    # 2'. β̂ recursion (β̂ excludes y_t), before T_b - 1 only
    bt = init
    betas = [bt]
    for t in range(T - 2, -1, -1):
        g = e[t + 1, ...] + bt                                          # ln(y_{t+1} β̂_{t+1})
        step = _lse(xp, g, _shift(xp, g, -1, neg_col),
                    xp.where(skip_next, _shift(xp, g, -2, neg_col), NEG_INF))
        bt = xp.where(inner[t, ...], step, init)
        betas.append(bt)
    lb = xp.stack(betas[::-1], axis=0)                                   # (T, B, U)

    # 1'. γ_t(s) = exp(a + b̂ - ln p), zero at t ≥ T_b; scatter-add over s reading label k,
    #     as a matmul with the one-hot map M[b, s, k] = [l'_{b,s} = k and s < U_b]
    #     ln p is taken per t as lse_s(a_t(s) + b̂_t(s)), equal to step 3's in exact arithmetic
    #     (every path sits at one s at each t). a and b̂ reach ~-7T and carry absolute rounding
    #     errors common to all s; this cancels them (before the float64 recursions of step 0,
    #     float32 at T = 300 gave a gradient error of 1.5e-3 with step 3's ln p, 9e-5 with this).
    ab = la + lb                                                         # (T, B, U)
    m = xp.max(ab, axis=2, keepdims=True)
    m = xp.where(m == NEG_INF, 0.0, m)                                   # t ≥ T_b or dropped
    used = live & keep[None, :, None]                                    # (T, B, 1)
    gamma = xp.exp(ab - m)
    gamma = gamma / xp.where(used, xp.sum(gamma, axis=2, keepdims=True), 1.0)  # sum ≥ 1 if used
    gamma = xp.where(used, gamma, 0.0)
    onehot = (ext[:, :, None] == np.arange(K)[None, None, :]) & valid[:, :, None]
    M = be.asarray(onehot.astype(np.float64), "float64")                 # (B, U, K)
    occ = xp.permute_dims(gamma, (1, 0, 2)) @ M                          # (B, T, K)
    dlog_probs = xp.permute_dims(occ, (1, 0, 2)) * (-scale)              # (T, B, K)
    # 0'. back to the caller's dtype: one rounding of the float64 results
    out = be.dtype(dtype)
    return xp.astype(loss, out), xp.astype(dlog_probs, out)


# --------------------------------------------------------------------------- log-softmax
def log_softmax(be, logits, axis=-1):
    """ln softmax along ``axis``: y_k = u_k - m - ln Σ_j exp(u_j - m), m = max_j u_j.

    logits: backend float array of any shape; returns y of the same shape and dtype. The shift
    by m keeps every exp ≤ 1 (no overflow) and one term equal to 1 (the sum never underflows).
    """
    xp = be.xp
    m = xp.max(logits, axis=axis, keepdims=True)
    z = logits - m
    return z - xp.log(xp.sum(xp.exp(z), axis=axis, keepdims=True))


def log_softmax_backward(be, dy, y, axis=-1):
    """∂loss/∂u from dy = ∂loss/∂y and the stored output y = log_softmax(u).

    y_k = u_k - ln Σ_j e^{u_j} and ∂ ln Σ_j e^{u_j} / ∂u_i = e^{y_i}, so
        du_i = dy_i - e^{y_i} Σ_k dy_k
    (with the CTC gradient as dy, Σ_k dy_k = -1 and this is y_t(k) - Σ γ, eq. 16 of the paper).
    """
    xp = be.xp
    return dy - xp.exp(y) * xp.sum(dy, axis=axis, keepdims=True)


# --------------------------------------------------------------------------- decoders (host)
def _host_log_probs(log_probs, input_lengths):
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 3 or min(lp.shape) < 1:
        raise ValueError(f"log_probs: expected a host array (T, B, K), got shape {lp.shape}")
    T, B, _ = lp.shape
    Tb = np.asarray(input_lengths)
    if Tb.shape != (B,) or not np.issubdtype(Tb.dtype, np.integer) or (Tb < 0).any() \
            or (Tb > T).any():
        raise ValueError(f"input_lengths: expected {B} integers in [0, {T}], got "
                         f"{Tb.tolist()}")
    return lp, Tb


def best_path_decode(log_probs, input_lengths, blank=0) -> List[List[int]]:
    """Greedy decoding (Graves et al. 2006, Sec. 3.2, "best path"): 𝓑(argmax_k y_t(k)).

    log_probs: host array (T, B, K) (``be.to_numpy`` a device array first); input_lengths (B,).
    Returns B lists of labels: per sample, the most probable label at each t < T_b, repeats
    merged, blanks dropped.
    """
    lp, Tb = _host_log_probs(log_probs, input_lengths)
    path = np.argmax(lp, axis=2)                                         # (T, B)
    out = []
    for b in range(lp.shape[1]):
        p = path[:Tb[b], b]
        new = np.concatenate([[True], p[1:] != p[:-1]])                  # merge repeats
        out.append([int(k) for k in p[new & (p != blank)]])              # then drop blanks
    return out


def prefix_beam_search(log_probs, input_lengths, beam=8, blank=0, return_scores=False):
    """CTC prefix beam search (Graves et al. 2006, Sec. 3.2, "prefix search", with a beam).

    Each hypothesis is a labelling prefix l with two probabilities at time t: p∅(l), paths
    collapsing to l that end in a blank, and p+(l), ending in l's last label. One step:
        blank:            p∅'(l)   += (p∅ + p+)(l) · y(∅)
        repeat last:      p+'(l)   += p+(l) · y(l_last)          (merges with it)
        new label k:      p+'(lk)  += (k = l_last ? p∅(l) : (p∅ + p+)(l)) · y(k)
    then the ``beam`` most probable prefixes are kept. With an unlimited beam this is exact:
    the final p∅ + p+ is p(l|x) for every l.

    log_probs: host array (T, B, K); input_lengths (B,); beam ≥ 1.
    Returns B lists of labels, or with ``return_scores`` B pairs (labels, ln p(labels|x)).
    """
    lp, Tb = _host_log_probs(log_probs, input_lengths)
    if isinstance(beam, bool) or not isinstance(beam, (int, np.integer)) or beam < 1:
        raise ValueError(f"beam: expected an integer >= 1, got {beam!r}")
    K = lp.shape[2]
    results = []
    for b in range(lp.shape[1]):
        beams = {(): (0.0, NEG_INF)}                                     # prefix -> (ln p∅, ln p+)
        for t in range(Tb[b]):
            y = lp[t, b]
            nxt = defaultdict(lambda: [NEG_INF, NEG_INF])
            for prefix, (pb, pn) in beams.items():
                tot = np.logaddexp(pb, pn)
                cell = nxt[prefix]
                cell[0] = np.logaddexp(cell[0], tot + y[blank])
                if prefix:
                    cell[1] = np.logaddexp(cell[1], pn + y[prefix[-1]])
                for k in range(K):
                    if k == blank:
                        continue
                    src = pb if prefix and k == prefix[-1] else tot
                    ext = nxt[prefix + (k,)]
                    ext[1] = np.logaddexp(ext[1], src + y[k])
            ranked = sorted(nxt.items(), key=lambda kv: -np.logaddexp(*kv[1]))
            beams = {p: tuple(v) for p, v in ranked[:beam]}
        best, (pb, pn) = max(beams.items(), key=lambda kv: np.logaddexp(*kv[1]))
        labels = [int(k) for k in best]
        results.append((labels, float(np.logaddexp(pb, pn))) if return_scores else labels)
    return results


# --------------------------------------------------------------------------- error rates
def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: fewest insertions, deletions and substitutions turning a into b.

    One row of the table per element of a, vectorised along b. With D_i(j) the distance
    between a[:i] and b[:j]:
        c(j)   = min(D_{i-1}(j) + 1, D_{i-1}(j-1) + [a_i ≠ b_j])      delete / substitute
        D_i(j) = min(c(j), D_i(j-1) + 1)                              insert
    and the second line is a running minimum: D_i(j) - j = min_{j' ≤ j} (c(j') - j').
    """
    a, b = list(a), list(b)
    code = {v: i for i, v in enumerate(dict.fromkeys(a + b))}           # symbols -> ints
    bb = np.array([code[v] for v in b], dtype=np.int64)
    j = np.arange(len(b) + 1)
    row = j.copy()                                                       # D_0(j) = j
    for i, v in enumerate(a, 1):
        c = np.empty_like(row)
        c[0] = i
        c[1:] = np.minimum(row[1:] + 1, row[:-1] + (bb != code[v]))
        row = np.minimum.accumulate(c - j) + j
    return int(row[-1])


def cer(predictions: Sequence[Sequence], targets: Sequence[Sequence]) -> float:
    """Character error rate: Σ edit_distance(prediction, target) / Σ len(target).

    predictions, targets: equally long sequences of label sequences (lists of ints, strings).
    Raises ValueError when the counts differ or every target is empty.
    """
    predictions, targets = list(predictions), list(targets)
    if len(predictions) != len(targets):
        raise ValueError(f"predictions: expected {len(targets)} sequences (one per target), got "
                         f"{len(predictions)}")
    total = sum(len(t) for t in targets)
    if total == 0:
        raise ValueError("targets: expected at least one label in total, got only empty targets")
    return sum(edit_distance(p, t) for p, t in zip(predictions, targets)) / total
