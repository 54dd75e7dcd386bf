"""Hierarchical subsampling layers: finite differences in float64, forward values against plain
loops, and variable-size batches (padding gets zero output and zero gradient, each sample equals
running it alone), alone and chained with MD-LSTM levels."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdlstm_np import MDLSTM, MultiDirectionalMDLSTM
from mdlstm_np.testing.gradcheck import check_layer, directional_check
from mdlstm_np.dense import Dense
from mdlstm_np.hierarchy import (BlockSubsample, CollapseVertical, box_mask,
                                 level_sizes, subsample_sizes)

TOL = 1e-6


def random_sizes(rng, B, S):
    return np.stack([rng.integers(1, s + 1, size=B) for s in S], axis=1)


def layers(C):
    rng = np.random.default_rng(0)
    ff = Dense(C, 3, "tanh", dtype="float64")
    p = ff.init_params(rng)
    p["a"] = rng.standard_normal(3)                                 # non-zero bias: test db
    return [(BlockSubsample((2, 3), dtype="float64"), {}), (BlockSubsample((1, 2), dtype="float64"), {}), (ff, p),
            (CollapseVertical(dtype="float64"), {})]


# --------------------------------------------------------------------------- gradients
@given(seed=st.integers(0, 2**16), B=st.integers(1, 3), H=st.integers(1, 5),
       W=st.integers(1, 5), C=st.integers(1, 3), masked=st.booleans())
def test_finite_differences(seed, B, H, W, C, masked):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, H, W, C))
    sizes = random_sizes(rng, B, (H, W)) if masked else None
    for layer, params in layers(C):
        errs = check_layer(layer, params, x, rng, sizes=sizes)
        assert max(errs.values()) <= TOL, (type(layer).__name__, errs)


def test_finite_differences_3d_blocks_and_plain_dense():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 5, 2))
    sizes = np.array([[3, 4, 5], [2, 1, 3]])
    errs = check_layer(BlockSubsample((2, 1, 3), dtype="float64"), {}, x, rng, sizes=sizes)
    assert errs["x"] <= TOL, errs
    ff = Dense(2, 4, "tanh", dtype="float64")
    errs = check_layer(ff, ff.init_params(rng), rng.standard_normal((3, 2)), rng)
    assert max(errs.values()) <= TOL, errs


# --------------------------------------------------------------------------- forward values
def test_block_subsample_against_loops():
    rng = np.random.default_rng(2)
    B, H, W, C, (bh, bw) = 2, 5, 7, 3, (2, 3)
    x = rng.standard_normal((B, H, W, C))
    y, _ = BlockSubsample((bh, bw), dtype="float64").forward({}, x)
    assert y.shape == (B, 3, 3, bh * bw * C)
    ref = np.zeros_like(y)
    for b, i, j in np.ndindex(B, 3, 3):
        for oi, oj, c in np.ndindex(bh, bw, C):
            r, s = i * bh + oi, j * bw + oj
            if r < H and s < W:
                ref[b, i, j, (oi * bw + oj) * C + c] = x[b, r, s, c]
    np.testing.assert_array_equal(y, ref)


def test_collapse_and_dense_against_loops():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 5, 3))
    sizes = np.array([[4, 5], [2, 3]])
    y, _ = CollapseVertical(dtype="float64").forward({}, x, sizes)
    np.testing.assert_allclose(y[0], x[0].sum(axis=0), atol=1e-14)
    np.testing.assert_allclose(y[1, :3], x[1, :2, :3].sum(axis=0), atol=1e-14)
    assert not y[1, 3:].any()
    ff = Dense(3, 2, "tanh", dtype="float64")
    p = ff.init_params(rng)
    y, _ = ff.forward(p, x)
    np.testing.assert_allclose(y, np.tanh(x @ p["V"] + p["a"]), atol=1e-14)


def test_sizes_through_levels():
    sizes = np.array([[7, 10], [1, 1], [8, 3]])
    np.testing.assert_array_equal(subsample_sizes(sizes, (2, 4)), [[4, 3], [1, 1], [4, 1]])
    levels = level_sizes(sizes, [(2, 4), (3, 2)])
    np.testing.assert_array_equal(levels[2], [[2, 2], [1, 1], [2, 1]])
    np.testing.assert_array_equal(CollapseVertical(dtype="float64").out_sizes(levels[2]), [[2], [1], [1]])
    x = np.zeros((3, 8, 10, 1))
    y, _ = BlockSubsample((2, 4), dtype="float64").forward({}, x, sizes)
    assert y.shape[1:3] == (4, 3)                                   # ⌈8/2⌉, ⌈10/4⌉


# --------------------------------------------------------------------------- variable sizes
@pytest.mark.parametrize("which", range(4))
def test_padding_is_zero_and_each_sample_equals_running_alone(which):
    rng = np.random.default_rng(10 + which)
    B, H, W, C = 3, 6, 7, 2
    layer, params = layers(C)[which]
    sizes = np.array([[6, 7], [3, 5], [1, 2]])
    x = rng.standard_normal((B, H, W, C)) * 100                     # padding holds garbage
    y, cache = layer.forward(params, x, sizes)
    dy = rng.standard_normal(y.shape)
    dx, grads = layer.backward(dy, cache)
    out_sizes = layer.out_sizes(sizes)
    inside = box_mask(layer.be, out_sizes, B, y.shape[1:-1], "float64")
    assert not (y * (1 - inside)).any()                             # zero output outside
    assert not (dx * (1 - box_mask(layer.be, sizes, B, (H, W), "float64"))).any()
    total = {k: np.zeros_like(v) for k, v in grads.items()}
    for b in range(B):
        h, w = sizes[b]
        crop = tuple(slice(0, s) for s in out_sizes[b])
        yb, cb = layer.forward(params, x[b:b + 1, :h, :w])
        np.testing.assert_allclose(y[(b,) + crop], yb[0], atol=1e-12)
        dxb, gb = layer.backward(np.ascontiguousarray(dy[(slice(b, b + 1),) + crop]), cb)
        np.testing.assert_allclose(dx[b, :h, :w], dxb[0], atol=1e-12)
        for k in total:
            total[k] += gb[k]
    for k in grads:                                                 # weights: Σ over samples
        np.testing.assert_allclose(grads[k], total[k], atol=1e-12)


def test_two_level_hierarchy_batched_equals_alone_and_fd():
    """MD-LSTM -> 2×2 blocks -> tanh -> 4-direction MD-LSTM -> collapse, with sizes."""
    rng = np.random.default_rng(20)
    lstm1, block = MDLSTM(1, 2, cell="graves", dtype="float64"), BlockSubsample((2, 2), dtype="float64")
    ff, lstm2, collapse = Dense(8, 3, "tanh", dtype="float64"), MultiDirectionalMDLSTM(3, 2, combine="sum", cell="graves", dtype="float64"), \
        CollapseVertical(dtype="float64")
    params = [lstm1.init_params(rng), {}, ff.init_params(rng), lstm2.init_params(rng), {}]
    stages = [lstm1, block, ff, lstm2, collapse]
    sizes = np.array([[5, 6], [3, 2]])
    x = rng.standard_normal((2, 5, 6, 1))

    def run(x, sizes, params=params):
        caches, s = [], sizes
        for layer, p in zip(stages, params):
            x, c = layer.forward(p, x, sizes=s)
            caches.append(c)
            s = None if s is None else layer.out_sizes(s) if hasattr(layer, "out_sizes") else s
        return x, caches

    def back(dy, caches):
        grads = []
        for layer, c in zip(stages[::-1], caches[::-1]):
            dy, g = layer.backward(dy, c)
            grads.append(g)
        return dy, grads[::-1]

    y, caches = run(x, sizes)
    assert y.shape == (2, 3, 2) and not y[1, 1:].any()              # widths 3 and ⌈2/2⌉ = 1
    w = rng.standard_normal(y.shape)
    dx, grads = back(w, caches)
    for b in range(2):
        h, wd = sizes[b]
        n = -(-wd // 2)
        yb, cb = run(x[b:b + 1, :h, :wd], None)
        np.testing.assert_allclose(y[b, :n], yb[0], atol=1e-12)
        dxb, _ = back(np.ascontiguousarray(w[b:b + 1, :n]), cb)
        np.testing.assert_allclose(dx[b, :h, :wd], dxb[0], atol=1e-12)
    assert not dx[1, 3:].any() and not dx[1, :, 2:].any()
    arrays = {"x": x.copy(), "W1": params[0]["W"].copy(), "Wff": params[2]["V"].copy()}

    def f():
        p = [dict(params[0], W=arrays["W1"]), {}, dict(params[2], V=arrays["Wff"])] + params[3:]
        return float((run(arrays["x"], sizes, p)[0] * w).sum())

    analytic = {"x": dx, "W1": grads[0]["W"], "Wff": grads[2]["V"]}
    _, _, rel = directional_check(f, arrays, analytic, rng)
    assert rel <= TOL, rel


# --------------------------------------------------------------------------- errors
def test_bad_inputs():
    x = np.zeros((2, 4, 4, 3))
    with pytest.raises(ValueError, match="block: expected a tuple of integers >= 1"):
        BlockSubsample((2, 0), dtype="float64")
    with pytest.raises(ValueError, match=r"x: expected 5 dimensions"):
        BlockSubsample((2, 2, 2), dtype="float64").forward({}, x)
    with pytest.raises(TypeError, match="x: expected dtype float32"):
        BlockSubsample((2, 2), dtype="float32").forward({}, x)
    with pytest.raises(ValueError, match=r"sizes: expected 1 <= sizes"):
        BlockSubsample((2, 2), dtype="float64").forward({}, x, np.array([[5, 4], [1, 1]]))
    with pytest.raises(ValueError, match=r"sizes: expected an integer array of shape \(2, 2\)"):
        CollapseVertical(dtype="float64").forward({}, x, np.array([[4, 4]]))
    y, cache = BlockSubsample((2, 2), dtype="float64").forward({}, x)
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 2, 2, 12\)"):
        BlockSubsample((2, 2), dtype="float64").backward(np.zeros((2, 2, 2, 3)), cache)
    ff = Dense(3, 2, "tanh", dtype="float64")
    with pytest.raises(ValueError, match=r"h: expected shape \(\.\.\., 3\)"):
        ff.forward(ff.init_params(np.random.default_rng(0)), np.zeros((2, 4, 4, 2)))
    with pytest.raises(ValueError, match="params"):
        ff.forward({}, x)
    with pytest.raises(ValueError, match=r"sizes: expected positive integers of shape \(B, 2\)"):
        subsample_sizes(np.array([[0, 3]]), (2, 2))
    with pytest.raises(TypeError, match="x: expected a numpy array"):
        CollapseVertical(dtype="float64").forward({}, x.tolist())
