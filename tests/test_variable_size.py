"""Variable-size batches in every scan direction (mdlstm_np/multidir.py, `sizes`).

A batch of differently sized samples padded at the origin corner: each sample's outputs, input
gradients and (summed) parameter gradients equal running it alone, cropped; padding outputs and
padding input-gradients are exactly zero; finite differences with masks on."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdlstm_np.testing.gradcheck import check_layer
from mdlstm_np.multidir import MultiDirectionalMDLSTM, flip_index

TOL = 1e-6
SHAPES = {1: (5,), 2: (4, 3), 3: (3, 2, 3)}


def _box(sizes_b):
    return tuple(slice(0, int(s)) for s in sizes_b)


def _check_batch_equals_alone(layer, params, x, sizes, dout, rtol=1e-12):
    """The core equality: batched-with-padding == each sample alone."""
    out, cache = layer.forward(params, x, sizes=sizes)
    dx, grads = layer.backward(dout, cache)
    summed = {k: np.zeros_like(v) for k, v in grads.items()}
    for b in range(x.shape[0]):
        box = _box(sizes[b])
        xb = np.ascontiguousarray(x[(b,) + box][None])
        ob, cb = layer.forward(params, xb)
        np.testing.assert_allclose(out[(b,) + box], ob[0], rtol=rtol, atol=1e-14)
        dxb, gb = layer.backward(np.ascontiguousarray(dout[(b,) + box][None]), cb)
        np.testing.assert_allclose(dx[(b,) + box], dxb[0], rtol=rtol, atol=1e-14)
        pad = np.ones(x.shape[1:-1], dtype=bool)
        pad[box] = False
        assert not out[b][pad].any(), "padding outputs must be exactly zero"
        assert not dx[b][pad].any(), "padding input gradients must be exactly zero"
        for k in summed:
            summed[k] += gb[k]
    for k in grads:
        np.testing.assert_allclose(grads[k], summed[k], rtol=1e-11, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("combine", ["concat", "sum"])
def test_each_sample_equals_running_it_alone(n, combine, rng):
    shape = SHAPES[n]
    # sizes include the full grid, a 1-cell extent and everything in between
    sizes = np.array([shape, [1] * n, [max(1, s - 1) for s in shape], [2] * n])
    B, C, H = len(sizes), 2, 2
    layer = MultiDirectionalMDLSTM(C, H, n, combine=combine, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    x = rng.standard_normal((B, *shape, C))  # padding holds garbage on purpose
    dout = rng.standard_normal((B, *shape, layer.out_features))  # and so does its dout
    _check_batch_equals_alone(layer, params, x, sizes, dout)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_every_single_direction_alone(n, rng):
    """Direction by direction (so that no direction's error can hide in a sum)."""
    shape = SHAPES[n]
    sizes = np.array([[max(1, s - 1) for s in shape], [1] * n, list(shape)])
    for flips in itertools.product([False, True], repeat=n):
        layer = MultiDirectionalMDLSTM(1, 2, n, directions=[flips], cell="graves", dtype="float64")
        params = layer.init_params(rng)
        x = rng.standard_normal((3, *shape, 1))
        dout = rng.standard_normal((3, *shape, 2))
        _check_batch_equals_alone(layer, params, x, sizes, dout)


@given(n=st.integers(1, 3), data=st.data())
def test_batch_equals_alone_hypothesis(n, data):
    shape = tuple(data.draw(st.integers(1, 4)) for _ in range(n))
    B = data.draw(st.integers(1, 3))
    sizes = np.array([[data.draw(st.integers(1, s)) for s in shape] for _ in range(B)])
    combine = data.draw(st.sampled_from(["concat", "sum"]))
    zero = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 31 - 1)))
    layer = MultiDirectionalMDLSTM(1, 2, n, combine=combine, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    x = np.zeros((B, *shape, 1)) if zero else rng.standard_normal((B, *shape, 1))
    dout = rng.standard_normal((B, *shape, layer.out_features))
    _check_batch_equals_alone(layer, params, x, sizes, dout)


def test_scan_starts_at_the_samples_own_corner():
    """1-D, reversed direction, a sample of length 2 in a grid of 4: its first step is at
    index 1 (its own last cell), not at the padded grid's index 3."""
    idx = flip_index((4,), (True,), 2, np.array([[2], [4]]))
    np.testing.assert_array_equal(idx, [1, 0, 2, 3, 7, 6, 5, 4])


def test_flip_keeps_padding_in_place_and_is_an_involution(rng):
    shape, B = (3, 4, 2), 4
    sizes = np.array([[1, 2, 1], [3, 4, 2], [2, 1, 2], [3, 3, 1]])
    N = int(np.prod(shape))
    for flips in itertools.product([False, True], repeat=3):
        idx = flip_index(shape, flips, B, sizes)
        np.testing.assert_array_equal(idx[idx], np.arange(B * N))
        for b in range(B):
            coords = np.stack(np.unravel_index(np.arange(N), shape), axis=1)
            inside = (coords < sizes[b]).all(axis=1)
            row = idx[b * N:(b + 1) * N] - b * N
            np.testing.assert_array_equal(row[~inside], np.arange(N)[~inside])
            assert inside[row[inside]].all()


# ----------------------------------------------------------------- finite differences
@pytest.mark.parametrize("n, shape, sizes, combine", [
    (1, (3,), [[2], [3]], "concat"), (1, (3,), [[2], [3]], "sum"),
    (2, (2, 3), [[1, 2], [2, 3]], "concat"), (2, (2, 3), [[1, 2], [2, 3]], "sum"),
    pytest.param(3, (2, 2, 2), [[1, 2, 2], [2, 1, 1]], "concat", marks=pytest.mark.slow)])
# n = 3 with "sum" and masks: covered by the directional hypothesis test in test_multidir.py
def test_gradcheck_per_element_masked(n, shape, sizes, combine, rng):
    layer = MultiDirectionalMDLSTM(1, 1, n, combine=combine, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    x = rng.standard_normal((len(sizes), *shape, 1))
    errs = check_layer(layer, params, x, rng, sizes=np.array(sizes))
    assert max(errs.values()) <= TOL, errs


# ----------------------------------------------------------------- bad sizes
@pytest.mark.parametrize("sizes", [
    np.array([[2, 3]]),                 # one row for a batch of two
    np.array([[2], [3]]),               # one column for two axes
    np.array([[2, 3], [3, 3]]) * 1.0,   # floats
    np.array([[0, 3], [3, 3]]),         # empty extent
    np.array([[2, 4], [3, 3]]),         # larger than the grid
    np.array([[True, True], [True, True]]),
    "big"])
def test_bad_sizes(sizes, rng):
    layer = MultiDirectionalMDLSTM(1, 2, 2, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    with pytest.raises(ValueError, match="sizes"):
        layer.forward(params, rng.standard_normal((2, 3, 3, 1)), sizes=sizes)
