"""CTC: the log-space loss and gradient against a plain-Python dynamic programme in probability
space (the paper's own α, β convention), against brute-force enumeration of all paths, and
against finite differences; long float32 inputs; the decoders; edit distance and CER."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdlstm_np import get_backend
from mdlstm_np.ctc import (best_path_decode, cer, ctc_loss, edit_distance, log_softmax,
                           log_softmax_backward, min_input_length, prefix_beam_search)
from mdlstm_np.testing.gradcheck import check_gradients

BE = get_backend("numpy")


# --------------------------------------------------------------------------- references
def ref_ctc(lp, labels, blank=0):
    """-ln p and ∂(-ln p)/∂ln y for one sample, Python floats, probability space.

    lp: (T, K) log-probabilities of the sample's T valid steps. Straight from Graves et al.
    2006, eq. 5-15, 0-based, with the paper's β (which includes y_t): Σ_{π∋(t,s)} P(π) = αβ/y.
    """
    T, K = len(lp), len(lp[0])
    y = [[math.exp(float(v)) for v in row] for row in lp]
    ext = [blank]
    for k in labels:
        ext += [int(k), blank]
    U = len(ext)

    def skip(s):  # may a path jump from s-2 to s?
        return s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]

    alpha = [[0.0] * U for _ in range(T)]
    alpha[0][0] = y[0][ext[0]]
    if U > 1:
        alpha[0][1] = y[0][ext[1]]
    for t in range(1, T):
        for s in range(U):
            acc = alpha[t - 1][s] + (alpha[t - 1][s - 1] if s >= 1 else 0.0)
            acc += alpha[t - 1][s - 2] if skip(s) else 0.0
            alpha[t][s] = y[t][ext[s]] * acc
    p = alpha[T - 1][U - 1] + (alpha[T - 1][U - 2] if U > 1 else 0.0)
    beta = [[0.0] * U for _ in range(T)]
    beta[T - 1][U - 1] = y[T - 1][ext[U - 1]]
    if U > 1:
        beta[T - 1][U - 2] = y[T - 1][ext[U - 2]]
    for t in range(T - 2, -1, -1):
        for s in range(U):
            acc = beta[t + 1][s] + (beta[t + 1][s + 1] if s + 1 < U else 0.0)
            acc += beta[t + 1][s + 2] if s + 2 < U and skip(s + 2) else 0.0
            beta[t][s] = y[t][ext[s]] * acc
    grad = [[0.0] * K for _ in range(T)]
    for t in range(T):
        for s in range(U):
            grad[t][ext[s]] -= alpha[t][s] * beta[t][s] / y[t][ext[s]] / p
    return -math.log(p), np.array(grad)


def collapse(path, blank=0):
    out = []
    for i, k in enumerate(path):
        if k != blank and (i == 0 or k != path[i - 1]):
            out.append(k)
    return tuple(out)


def brute_force(lp, blank=0):
    """{labelling: p(labelling|x)} by enumerating all K^T paths of lp (T, K)."""
    T, K = lp.shape
    probs = {}
    for path in itertools.product(range(K), repeat=T):
        p = math.exp(sum(float(lp[t, k]) for t, k in enumerate(path)))
        key = collapse(path, blank)
        probs[key] = probs.get(key, 0.0) + p
    return probs


def random_batch(rng, B, T, K, S, repeat=True, dtype=np.float64, scale=1.0):
    """Random feasible batch: log-probs (T, B, K), targets (B, S), input and target lengths."""
    lp = np.asarray(log_softmax(BE, scale * rng.standard_normal((T, B, K))), dtype=dtype)
    targets = rng.integers(1, K, size=(B, S))
    if repeat and S >= 2:
        targets[:, 1] = targets[:, 0]                              # a repeated label
    L = rng.integers(0, S + 1, size=B)
    for b in range(B):                                             # shorten until feasible
        while min_input_length(targets[b, :L[b]]) > T:
            L[b] -= 1
    Tb = np.array([rng.integers(max(min_input_length(targets[b, :L[b]]), 1), T + 1)
                   for b in range(B)])
    return lp, targets, Tb, L


# --------------------------------------------------------------------------- the loss
@given(seed=st.integers(0, 2**16), B=st.integers(1, 4), T=st.integers(1, 8), K=st.integers(2, 5),
       S=st.integers(0, 4))
def test_ctc_matches_reference_dp(seed, B, T, K, S):
    rng = np.random.default_rng(seed)
    lp, tg, Tb, L = random_batch(rng, B, T, K, S)
    loss, dlp = ctc_loss(BE, lp, tg, Tb, L)
    ref_loss, ref_grad = 0.0, np.zeros_like(lp)
    for b in range(B):
        lb, gb = ref_ctc(lp[:Tb[b], b], tg[b, :L[b]])
        ref_loss += lb
        ref_grad[:Tb[b], b] = gb
    assert abs(float(loss) - ref_loss) <= 1e-10 * max(1.0, abs(ref_loss))
    assert np.abs(dlp - ref_grad).max() <= 1e-10
    sums = dlp.sum(axis=2)                                         # Σ_k ∂loss/∂ln y_t(k) = -1
    expected = -(np.arange(T)[:, None] < Tb[None, :]).astype(float)
    np.testing.assert_allclose(sums, expected, atol=1e-12)


@pytest.mark.parametrize("labels,T", [((), 1), ((1,), 1), ((1, 1), 3), ((1, 2), 4),
                                      ((2, 2, 1), 5), ((), 4)])
def test_reference_matches_brute_force(labels, T):
    lp = np.asarray(log_softmax(BE, np.random.default_rng(T).standard_normal((T, 3))))
    p = brute_force(lp).get(tuple(labels), 0.0)
    ref_loss, _ = ref_ctc(lp, labels)
    loss, _ = ctc_loss(BE, lp[:, None, :], np.array([labels], dtype=np.int64).reshape(1, -1),
                       [T], [len(labels)])
    assert ref_loss == pytest.approx(-math.log(p), abs=1e-12)
    assert float(loss) == pytest.approx(-math.log(p), abs=1e-12)


@given(seed=st.integers(0, 2**16), reduction=st.sampled_from(["sum", "mean"]))
def test_ctc_finite_differences(seed, reduction):
    rng = np.random.default_rng(seed)
    lp, tg, Tb, L = random_batch(rng, 3, 5, 4, 3)
    lp = lp + 0.3 * rng.standard_normal(lp.shape)                  # unnormalised: free inputs
    _, dlp = ctc_loss(BE, lp, tg, Tb, L, reduction=reduction)
    errs = check_gradients(lambda: float(ctc_loss(BE, lp, tg, Tb, L, reduction=reduction)[0]),
                           {"log_probs": lp}, {"log_probs": dlp})
    assert errs["log_probs"] <= 1e-7, errs


def test_known_values_repeats_empty_and_t1():
    lp = np.log(np.array([[[0.5, 0.3, 0.2]], [[0.1, 0.6, 0.3]], [[0.7, 0.2, 0.1]]]))  # (3, 1, 3)
    loss, _ = ctc_loss(BE, lp, [[1, 1]], [3], [2])                 # only path: 1 ∅ 1
    assert float(loss) == pytest.approx(-math.log(0.3 * 0.1 * 0.2), abs=1e-14)
    loss, _ = ctc_loss(BE, lp, np.zeros((1, 0), np.int64), [3], [0])   # only path: ∅ ∅ ∅
    assert float(loss) == pytest.approx(-math.log(0.5 * 0.1 * 0.7), abs=1e-14)
    loss, dlp = ctc_loss(BE, lp, [[2, 0]], [1], [1])               # T_b = 1: p = y_0(2)
    assert float(loss) == pytest.approx(-math.log(0.2), abs=1e-14)
    assert dlp[0, 0].tolist() == [0.0, 0.0, -1.0] and not dlp[1:].any()
    with pytest.raises(ValueError, match="input_lengths: sample 0 needs at least 3 time steps"):
        ctc_loss(BE, lp, [[1, 1]], [2], [2])


def test_padding_steps_and_absent_labels_get_zero_gradient():
    rng = np.random.default_rng(3)
    lp, tg, _, _ = random_batch(rng, 2, 9, 6, 2, repeat=False)
    tg[:] = [[2, 3], [4, 4]]
    _, dlp = ctc_loss(BE, lp, tg, [9, 5], [2, 2])
    assert not dlp[5:, 1].any()                                     # t ≥ T_b
    assert not dlp[:, 0, [1, 4, 5]].any() and not dlp[:, 1, [1, 2, 3, 5]].any()


def test_mean_and_zero_infinity():
    rng = np.random.default_rng(4)
    lp, tg, Tb, L = random_batch(rng, 3, 6, 4, 3)
    s, ds = ctc_loss(BE, lp, tg, Tb, L)
    m, dm = ctc_loss(BE, lp, tg, Tb, L, reduction="mean")
    assert float(m) == pytest.approx(float(s) / 3, rel=1e-14)
    np.testing.assert_allclose(dm, ds / 3, rtol=1e-14)
    tg2, L2, Tb2 = tg.copy(), L.copy(), Tb.copy()
    tg2[1, :3], L2[1], Tb2[1] = [1, 2, 3], 3, 2                     # impossible: 3 labels, 2 steps
    with pytest.raises(ValueError, match="input_lengths: sample 1 needs at least 3"):
        ctc_loss(BE, lp, tg2, Tb2, L2)
    z, dz = ctc_loss(BE, lp, tg2, Tb2, L2, zero_infinity=True)
    keep = [0, 2]
    k, dk = ctc_loss(BE, lp[:, keep], tg[keep], Tb[keep], L[keep])
    assert float(z) == pytest.approx(float(k), rel=1e-14)
    assert not dz[:, 1].any()
    np.testing.assert_array_equal(dz[:, keep], dk)


def test_long_float32_inputs_that_underflow_in_probability_space():
    """T = 300 with peaked, wrong-ish outputs: p(l|x) ≈ e^-2000, far below float64's 1e-308."""
    rng = np.random.default_rng(5)
    T, B, K, S = 300, 3, 6, 20
    logits = 12.0 * rng.standard_normal((T, B, K))
    tg = rng.integers(1, K, size=(B, S))
    tg[:, 5] = tg[:, 4]
    Tb, L = np.array([300, 250, 201]), np.array([20, 13, 0])
    lp64 = np.asarray(log_softmax(BE, logits))
    lp32 = np.asarray(log_softmax(BE, logits.astype(np.float32)))
    loss64, d64 = ctc_loss(BE, lp64, tg, Tb, L)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow of exp is benign
        loss32, d32 = ctc_loss(BE, lp32, tg, Tb, L)
    assert loss32.dtype == np.float32 and d32.dtype == np.float32
    assert np.isfinite(loss32) and np.isfinite(d32).all()
    for b in range(B):                                             # each sample truly underflows
        lb, _ = ctc_loss(BE, lp64[:, b:b + 1], tg[b:b + 1], Tb[b:b + 1], L[b:b + 1])
        assert math.exp(-float(lb)) == 0.0
    assert float(loss32) == pytest.approx(float(loss64), rel=1e-5)
    assert np.abs(d32 - d64).max() <= 3e-4                       # 1.5e-3 before the per-t ln p
    expected = -(np.arange(T)[:, None] < Tb).astype(float)
    np.testing.assert_allclose(d32.sum(axis=2), expected, atol=1e-4)


@pytest.mark.parametrize("T", [300, 1000, 10000])
def test_float32_gradient_is_the_float64_one_rounded_up_to_t_10000(T):
    """The bound of ctc.py's "Precision": float32 in, |Δγ| ≤ 2⁻²⁴ + T·1e-15 against float64.

    The exact reference is the float64 CTC of the same float32 numbers (upcast), so input
    rounding is not counted. With float32 recursions the error was 5.7e-5 at T = 300, 2.8e-4 at
    1000 and 2.7e-3 at 10,000; it is now ~3e-8 at every T.
    """
    rng = np.random.default_rng(T)
    lp32 = np.asarray(log_softmax(BE, 2.0 * rng.standard_normal((T, 2, 5)))).astype(np.float32)
    tg, Tb, L = np.array([[1, 2, 3, 1], [4, 4, 2, 0]]), np.array([T, T - 7]), np.array([4, 3])
    exact_loss, exact = ctc_loss(BE, lp32.astype(np.float64), tg, Tb, L)
    loss, d = ctc_loss(BE, lp32, tg, Tb, L)
    assert loss.dtype == np.float32 and d.dtype == np.float32
    assert float(loss) == pytest.approx(float(exact_loss), rel=2.0 ** -23)
    assert np.abs(d.astype(np.float64) - exact).max() <= 2.0 ** -24 + T * 1e-15


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_softmax_of_huge_logits_is_finite_and_exact(dtype):
    """Logits of magnitude 1e3: e^1000 overflows both dtypes, so only the max shift keeps the
    log-softmax (and the CTC loss behind it) finite. The reference is numpy's logaddexp."""
    rng = np.random.default_rng(7)
    u = (1e3 * rng.standard_normal((6, 2, 4))).astype(dtype)
    y = np.asarray(log_softmax(BE, u))
    ref = u.astype(np.float64) - np.logaddexp.reduce(u.astype(np.float64), axis=-1, keepdims=True)
    assert y.dtype == np.dtype(dtype) and np.isfinite(y).all()
    np.testing.assert_allclose(y, ref, rtol=1e-6 if dtype == "float32" else 1e-12, atol=1e-3)
    tg, Tb, L = np.array([[1, 3], [2, 2]]), np.array([6, 6]), np.array([2, 2])
    loss, dlp = ctc_loss(BE, y, tg, Tb, L, zero_infinity=True)
    du = log_softmax_backward(BE, dlp, y)
    assert np.isfinite(loss) and np.isfinite(dlp).all() and np.isfinite(du).all()


def test_log_softmax_and_its_backward():
    rng = np.random.default_rng(6)
    u = 50.0 * rng.standard_normal((4, 2, 5))
    y = log_softmax(BE, u)
    ref = u - u.max(-1, keepdims=True)
    ref = ref - np.log(np.exp(ref).sum(-1, keepdims=True))
    np.testing.assert_allclose(y, ref, atol=1e-12)
    w = rng.standard_normal(u.shape)
    du = log_softmax_backward(BE, w, y)
    u_small = u / 50.0
    du_small = log_softmax_backward(BE, w, log_softmax(BE, u_small))
    errs = check_gradients(lambda: float((log_softmax(BE, u_small) * w).sum()), {"u": u_small},
                           {"u": du_small})
    assert errs["u"] <= 1e-7 and du.shape == u.shape
    # through CTC: ∂loss/∂u = y - posterior (eq. 16), i.e. e^{lp} + dlp
    tg, Tb, L = np.array([[1, 3], [2, 2]]), np.array([4, 4]), np.array([2, 2])
    _, dlp = ctc_loss(BE, y, tg, Tb, L)
    np.testing.assert_allclose(log_softmax_backward(BE, dlp, y), np.exp(y) + dlp, atol=1e-14)


def test_ctc_bad_inputs():
    lp = np.asarray(log_softmax(BE, np.zeros((4, 2, 3))))
    tg, Tb, L = np.array([[1, 2], [2, 0]]), np.array([4, 3]), np.array([2, 1])
    with pytest.raises(ValueError, match=r"log_probs: expected shape \(T, B, K\)"):
        ctc_loss(BE, lp[0], tg, Tb, L)
    with pytest.raises(TypeError, match="log_probs: expected a numpy array"):
        ctc_loss(BE, lp.tolist(), tg, Tb, L)
    with pytest.raises(ValueError, match="log_probs: expected finite"):
        ctc_loss(BE, np.where(lp == lp[0, 0, 0], -np.inf, lp), tg, Tb, L)
    with pytest.raises(ValueError, match=r"targets: expected shape \(2, S\)"):
        ctc_loss(BE, lp, tg[:1], Tb, L)
    with pytest.raises(ValueError, match="other than the blank 0, got 0 in sample 0 at position 1"):
        ctc_loss(BE, lp, np.array([[1, 0], [2, 0]]), Tb, L)
    with pytest.raises(ValueError, match="got 3 in sample 1 at position 0"):
        ctc_loss(BE, lp, np.array([[1, 2], [3, 0]]), Tb, L)
    with pytest.raises(ValueError, match=r"input_lengths: expected values in \[1, 4\]"):
        ctc_loss(BE, lp, tg, [5, 3], L)
    with pytest.raises(ValueError, match=r"target_lengths: expected values in \[0, 2\]"):
        ctc_loss(BE, lp, tg, Tb, [3, 1])
    with pytest.raises(ValueError, match=r"input_lengths: expected an integer array of shape"):
        ctc_loss(BE, lp, tg, [4.0, 3.0], L)
    with pytest.raises(ValueError, match="reduction: expected one of sum, mean"):
        ctc_loss(BE, lp, tg, Tb, L, reduction="none")
    with pytest.raises(ValueError, match=r"blank: expected an integer in \[0, 2\]"):
        ctc_loss(BE, lp, tg, Tb, L, blank=3)


# --------------------------------------------------------------------------- decoders
def test_best_path_collapses_repeats_then_drops_blanks():
    path = [1, 1, 0, 1, 2, 2, 0, 0, 2]                             # -> 1 1 2 2
    lp = np.full((len(path), 2, 3), -5.0)
    lp[np.arange(len(path)), 0, path] = -0.1
    lp[np.arange(len(path)), 1, path] = -0.1
    out = best_path_decode(lp, np.array([9, 3]))
    assert out == [[1, 1, 2, 2], [1]]
    assert best_path_decode(lp, np.array([9, 0])) == [[1, 1, 2, 2], []]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_prefix_beam_search_finds_the_most_probable_labelling(seed):
    T, K = 5, 3
    lp = np.asarray(log_softmax(BE, 2.0 * np.random.default_rng(seed).standard_normal((T, 1, K))))
    probs = brute_force(lp[:, 0])
    best = max(probs, key=probs.get)
    (labels, score), = prefix_beam_search(lp, np.array([T]), beam=64, return_scores=True)
    assert tuple(labels) == best and score == pytest.approx(math.log(probs[best]), abs=1e-12)
    assert prefix_beam_search(lp, np.array([T]), beam=8)[0] == list(best)


def test_beam_search_can_beat_best_path():
    # best path ∅∅ (0.6·0.6 = 0.36) -> "", but p("1") = 1 - p("") = 0.64 - nothing else exists
    lp = np.log(np.array([[[0.6, 0.4]], [[0.6, 0.4]]]))
    assert best_path_decode(lp, np.array([2])) == [[]]
    assert prefix_beam_search(lp, np.array([2]), beam=4) == [[1]]


def test_edit_distance_and_cer():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], [1, 2, 3]) == 3 and edit_distance([1, 2], []) == 2
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance([1, 2, 3, 4], [2, 3, 4, 1]) == 2
    assert edit_distance("flaw", "lawn") == 2
    assert cer([[1, 2, 3], [4]], [[1, 2, 4], [4, 5]]) == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="predictions: expected 2 sequences"):
        cer([[1]], [[1], [2]])
    with pytest.raises(ValueError, match="targets: expected at least one label"):
        cer([[1]], [[]])
    with pytest.raises(ValueError, match="beam: expected an integer >= 1"):
        prefix_beam_search(np.zeros((2, 1, 3)), np.array([2]), beam=0)
