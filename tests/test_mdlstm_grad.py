"""Finite-difference checks of the MD-LSTM backward pass (float64), n = 1, 2, 3."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mdlstm_np.testing.gradcheck import check_layer
from mdlstm_np.mdlstm import MDLSTM
from strategies import grid_inputs

TOL = 1e-6


@given(data=grid_inputs(), hidden=st.integers(1, 4), seed=st.integers(0, 2**31 - 1),
       forget_bias=st.sampled_from([0.0, 1.0]))
def test_mdlstm_gradients_per_element(data, hidden, seed, forget_bias):
    x, n = data
    rng = np.random.default_rng(seed)
    layer = MDLSTM(x.shape[-1], hidden, n, forget_bias=forget_bias, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    params["b"] = params["b"] + rng.uniform(-0.5, 0.5, params["b"].shape)  # non-trivial b
    errors = check_layer(layer, params, x, rng)
    assert set(errors) == {"W", "U", "b", "x"}
    assert max(errors.values()) <= TOL, errors


@given(data=grid_inputs(max_batch=2), hidden=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_mdlstm_gradients_with_initial_state(data, hidden, seed):
    """dh0, dc0: the gradients that reach the boundary state, checked like any input."""
    from mdlstm_np.testing.gradcheck import check_gradients

    x, n = data
    rng = np.random.default_rng(seed)
    layer = MDLSTM(x.shape[-1], hidden, n, cell="graves", dtype="float64")
    p = layer.init_params(rng)
    h0, c0 = rng.standard_normal((2, x.shape[0], hidden))
    out, cache = layer.forward(p, x, h0=h0, c0=c0)
    w = rng.standard_normal(out.shape)
    _, _, (dh0, dc0) = layer.backward(w, cache, return_state=True)
    arrs = {"h0": h0.copy(), "c0": c0.copy()}
    f = lambda: float((layer.forward(p, x, h0=arrs["h0"], c0=arrs["c0"])[0] * w).sum())
    errors = check_gradients(f, arrs, {"h0": dh0, "c0": dc0})
    assert max(errors.values()) <= TOL, errors


@pytest.mark.parametrize("shape", [(2, 6, 7, 3), (1, 4, 5, 6, 2), (3, 20, 2)])
def test_mdlstm_directional_derivative_larger_grids(shape, rng):
    """Bigger grids: one random direction through all parameters and the input at once."""
    n = len(shape) - 2
    layer = MDLSTM(shape[-1], 5, n, forget_bias=1.0, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    x = rng.standard_normal(shape)
    err = check_layer(layer, params, x, rng, mode="direction")["direction"]
    assert err <= TOL


class Broken:
    """``layer`` with a deliberate slip in its backward: ``slip(dx, grads) -> (dx, grads)``."""

    def __init__(self, layer, slip):
        self.layer, self.slip, self.be = layer, slip, layer.be

    def forward(self, params, x):
        return self.layer.forward(params, x)

    def backward(self, dout, cache):
        return self.slip(*self.layer.backward(dout, cache))


def test_gradcheck_catches_a_wrong_gradient(rng):
    """The check can fail: a backward pass with a deliberate slip is caught."""
    layer = MDLSTM(2, 3, 2, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    x = rng.standard_normal((2, 3, 3, 2))
    broken = Broken(layer, lambda dx, g: (dx, {**g, "U": g["U"] * 1.001}))
    errors = check_layer(broken, params, x, rng)
    assert errors["U"] > 1e-4 and errors["W"] <= TOL


@pytest.mark.parametrize("slip", [1.001, 0.999, -1.0])
def test_directional_check_catches_a_wrong_gradient(rng, slip):
    """Fault: the directional check weakened (e.g. its error divided by 1e6). It is the only
    check on the larger grids in seven places, so it must fail on a wrong backward too: every
    gradient scaled by ``slip`` changes the directional derivative by the same factor, so the
    relative error is |1 − slip| / |1 + slip| for any direction (5e-4 for a 0.1 % slip)."""
    layer = MDLSTM(2, 3, 2, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    x = rng.standard_normal((2, 5, 4, 2))
    broken = Broken(layer, lambda dx, g: (dx * slip, {k: v * slip for k, v in g.items()}))
    expected = abs(1 - slip) / max(abs(1 + slip), abs(1 - slip))
    err = check_layer(broken, params, x, rng, mode="direction")["direction"]
    assert err == pytest.approx(expected, rel=1e-3)
    assert err > 100 * TOL
    assert check_layer(layer, params, x, rng, mode="direction")["direction"] <= TOL
