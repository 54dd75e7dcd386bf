"""Finite-difference checks of the dense sigmoid head and the MSE loss, plus their input checks."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdlstm_np.backends import get_backend
from mdlstm_np.testing.gradcheck import check_gradients
from mdlstm_np.dense import Dense
from mdlstm_np.losses import mse, relevant_loss

BE = get_backend("numpy")
TOL = 1e-6

lead_shapes = st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple)


def _head_gradcheck(lead, F, K, seed, zero_input):
    rng = np.random.default_rng(seed)
    head = Dense(F, K, "sigmoid", backend="numpy", dtype="float64")
    params = head.init_params(rng)
    params["a"] = rng.standard_normal(K)                       # non-zero bias: test da for real
    h = np.zeros(lead + (F,)) if zero_input else rng.standard_normal(lead + (F,))
    w = rng.standard_normal(lead + (K,))                       # loss = Σ y ⊙ w, so dy = w

    def f():
        y, _ = head.forward(params, h)
        return float((y * w).sum())

    y, cache = head.forward(params, h)
    dh, dparams = head.backward(w, cache)
    arrays = {"V": params["V"], "a": params["a"], "h": h}
    errs = check_gradients(f, arrays, {**dparams, "h": dh})
    assert max(errs.values()) <= TOL, errs


@given(lead=lead_shapes, F=st.integers(1, 4), K=st.integers(1, 3), seed=st.integers(0, 2**16),
       zero_input=st.booleans())
def test_head_gradients(lead, F, K, seed, zero_input):
    _head_gradcheck(lead, F, K, seed, zero_input)


def test_head_gradients_seed_shape():
    _head_gradcheck((2, 3, 4), 5, 1, 0, False)                # (B, H, W, hidden) -> 1


@given(shape=lead_shapes, seed=st.integers(0, 2**16), zero=st.booleans())
def test_mse_gradient(shape, seed, zero):
    rng = np.random.default_rng(seed)
    y = np.zeros(shape) if zero else rng.standard_normal(shape)
    t = rng.standard_normal(shape)
    loss, dy = mse(BE, y, t)
    assert np.isclose(float(loss), np.mean((y - t) ** 2))
    errs = check_gradients(lambda: float(mse(BE, y, t)[0]), {"y": y}, {"y": dy})
    assert errs["y"] <= TOL, errs


def test_head_forward_values_and_init():
    rng = np.random.default_rng(0)
    head = Dense(16, 1, "sigmoid", backend="numpy", dtype="float32")
    p = head.init_params(rng)
    assert p["V"].dtype == np.float32 and p["a"].dtype == np.float32
    assert np.all(p["a"] == 0)
    limit = np.sqrt(6 / 17)
    assert np.all(np.abs(p["V"]) <= limit)
    h = rng.standard_normal((2, 3, 3, 16)).astype(np.float32)
    y, _ = head.forward(p, h)
    assert y.shape == (2, 3, 3, 1) and y.dtype == np.float32
    ref = 1 / (1 + np.exp(-(h.astype(np.float64) @ p["V"] + p["a"])))
    np.testing.assert_allclose(y, ref, rtol=1e-5)


def test_head_sigmoid_saturates_without_overflow():
    head = Dense(1, 1, "sigmoid", backend="numpy", dtype="float64")
    p = {"V": np.array([[1.0]]), "a": np.array([0.0])}
    with np.errstate(all="raise"):
        y, cache = head.forward(p, np.array([[-1e4], [1e4]]))
        dh, _ = head.backward(np.ones((2, 1)), cache)
    assert y[0, 0] == 0.0 and y[1, 0] == 1.0 and np.all(dh == 0.0)


def test_head_bad_input():
    head = Dense(3, 1, "sigmoid", backend="numpy", dtype="float64")
    p = head.init_params(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"h: expected shape \(\.\.\., 3\)"):
        head.forward(p, np.zeros((2, 4)))
    with pytest.raises(TypeError, match="h: expected dtype float64"):
        head.forward(p, np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="h: expected a numpy array"):
        head.forward(p, [[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="params"):
        head.forward({"V": p["V"]}, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="in_features"):
        Dense(0, 1, "sigmoid")
    with pytest.raises(TypeError, match="dtype"):
        Dense(3, 1, "sigmoid", dtype="int32")


def test_mse_bad_input():
    with pytest.raises(ValueError, match="t: expected the shape of y"):
        mse(BE, np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(TypeError, match="t: expected the dtype of y"):
        mse(BE, np.zeros(3), np.zeros(3, dtype=np.float32))


def test_relevant_loss_reads_the_given_cells():
    y = np.zeros((2, 4, 5, 1))
    t = np.zeros((2, 4, 5, 1))
    y[0, 2, 3, 0] = 0.5                 # error 0.5 at sample 0's position
    t[1, 1, 0, 0] = 1.0                 # error 1.0 at sample 1's position
    y[1, 3, 4, 0] = 9.0                 # elsewhere: ignored
    pos = np.array([[2, 3], [1, 0]])
    assert float(relevant_loss(BE, y, t, pos)) == pytest.approx((0.25 + 1.0) / 2)
    with pytest.raises(ValueError, match="pos: expected rows"):
        relevant_loss(BE, y, t, np.array([[4, 0], [0, 0]]))
    with pytest.raises(ValueError, match=r"pos: expected shape \(2, 2\)"):
        relevant_loss(BE, y, t, np.array([[1, 1]]))
