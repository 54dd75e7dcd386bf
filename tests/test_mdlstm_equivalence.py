"""The wavefront engine against independent formulations of the same mathematics."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mdlstm_np.grid import wavefront_plan
from mdlstm_np.mdlstm import MDLSTM
from mdlstm_np.testing.reference import mdlstm_reference_forward
from strategies import grid_inputs


@given(data=grid_inputs(max_cells=125), hidden=st.integers(1, 4), seed=st.integers(0, 2**31 - 1),
       with_state=st.booleans())
def test_wavefront_equals_cell_by_cell(data, hidden, seed, with_state):
    x, n = data
    rng = np.random.default_rng(seed)
    layer = MDLSTM(x.shape[-1], hidden, n, forget_bias=0.5, cell="graves", dtype="float64")
    p = layer.init_params(rng)
    state = rng.standard_normal((2, x.shape[0], hidden)) if with_state else (None, None)
    out, _ = layer.forward(p, x, h0=state[0], c0=state[1])
    ref, _ = mdlstm_reference_forward(x, p["W"], p["U"], p["b"], state[0], state[1])
    assert np.abs(out - ref).max() <= 1e-12


def plain_lstm(x, W, U, b, h0, c0):
    """Textbook LSTM over sequences x (B, T, C), gates [i | f | o | g] (written independently)."""
    B, T, _ = x.shape
    H = U.shape[0]
    h, c, hs = h0, c0, []
    for t in range(T):
        a = x[:, t] @ W + h @ U + b
        i, f, o = (1 / (1 + np.exp(-a[:, k * H:(k + 1) * H])) for k in range(3))
        c = f * c + i * np.tanh(a[:, 3 * H:])
        h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1)


@given(T=st.integers(1, 12), B=st.integers(1, 3), C=st.integers(1, 3), H=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1))
def test_one_dimensional_mdlstm_is_a_plain_lstm(T, B, C, H, seed):
    rng = np.random.default_rng(seed)
    layer = MDLSTM(C, H, ndim=1, forget_bias=1.0, cell="graves", dtype="float64")
    p = layer.init_params(rng)
    x = rng.standard_normal((B, T, C))
    h0, c0 = rng.standard_normal((2, B, H))
    out, _ = layer.forward(p, x, h0=h0, c0=c0)
    assert np.abs(out - plain_lstm(x, p["W"], p["U"], p["b"], h0, c0)).max() <= 1e-12


@pytest.mark.parametrize("shape", [(8, 8), (3, 5), (1, 7), (2, 3, 4), (6,)])
def test_wavefront_plan_counts_and_order(shape):
    plan = wavefront_plan(shape)
    assert len(plan.bounds) == sum(s - 1 for s in shape) + 1  # H + W − 1 steps in 2-D
    coords = np.stack(np.unravel_index(plan.order, shape), axis=1)
    for s, (a, b) in enumerate(plan.bounds):
        assert (coords[a:b].sum(axis=1) == s).all()
        for d in range(len(shape)):  # every predecessor is in wavefront s−1, or the boundary
            pr = plan.pred[s][d]
            inside = pr < plan.ncells
            assert (coords[a:b][~inside, d] == 0).all()
            assert (coords[pr[inside]].sum(axis=1) == s - 1).all()


def test_float32_stays_float32(rng):
    layer = MDLSTM(2, 3, 2, dtype="float32", cell="graves")
    p = layer.init_params(rng)
    x = rng.standard_normal((2, 4, 4, 2)).astype(np.float32)
    out, cache = layer.forward(p, x)
    dx, g = layer.backward(np.ones_like(out), cache)
    assert out.dtype == dx.dtype == np.float32
    assert all(v.dtype == np.float32 for v in g.values())
    ref, _ = mdlstm_reference_forward(x.astype(np.float64), *(p[k].astype(np.float64)
                                                              for k in ("W", "U", "b")))
    assert np.abs(out - ref).max() < 1e-5
