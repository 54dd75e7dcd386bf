"""The seed's SD baselines are the MD-LSTM engine with n = 1 reading the grid as sequences."""

import numpy as np
from hypothesis import given, strategies as st

from mdlstm_np.testing.gradcheck import check_layer
from mdlstm_np.mdlstm import MDLSTM
from mdlstm_np.sd import HorizontalSDLSTM, SnakeSDLSTM
from strategies import grid_inputs

BASELINES = [HorizontalSDLSTM, SnakeSDLSTM]


@given(data=grid_inputs(ndim=2, max_side=4), hidden=st.integers(1, 3),
       seed=st.integers(0, 2**31 - 1), which=st.sampled_from(BASELINES))
def test_sd_baseline_gradients(data, hidden, seed, which):
    x, _ = data
    rng = np.random.default_rng(seed)
    layer = which(x.shape[-1], hidden, dtype="float64")
    errors = check_layer(layer, layer.init_params(rng), x, rng)
    assert max(errors.values()) <= 1e-6, errors


def test_horizontal_rows_are_independent_sequences(rng):
    layer = HorizontalSDLSTM(2, 3, dtype="float64")
    p = layer.init_params(rng)
    x = rng.standard_normal((2, 4, 5, 2))
    out, _ = layer.forward(p, x)
    lstm = MDLSTM(2, 3, ndim=1, forget_bias=1.0, cell="graves", dtype="float64")
    for r in range(4):  # row r alone, as a batch of 1-D sequences
        row, _ = lstm.forward(p, x[:, r].copy())
        assert np.abs(out[:, r] - row).max() == 0.0
    x2 = x.copy()
    x2[:, 0] += 1.0  # changing row 0 leaves every other row's output unchanged
    assert np.array_equal(layer.forward(p, x2)[0][:, 1:], out[:, 1:])


def test_snake_reads_the_raster_order(rng):
    layer = SnakeSDLSTM(1, 3, dtype="float64")
    p = layer.init_params(rng)
    x = rng.standard_normal((1, 3, 4, 1))
    out, _ = layer.forward(p, x)
    seq, _ = MDLSTM(1, 3, ndim=1, forget_bias=1.0, cell="graves", dtype="float64").forward(p, x.reshape(1, 12, 1))
    assert np.abs(out.reshape(1, 12, 3) - seq).max() == 0.0
    x2 = x.copy()
    x2[0, 1, 3] += 1.0  # the last cell of row 1 influences row 2 (a snake sees across rows)
    out2, _ = layer.forward(p, x2)
    assert np.array_equal(out2[0, :1], out[0, :1]) and not np.allclose(out2[0, 2], out[0, 2])


def test_sd_forget_bias_defaults_to_tensorflows(rng):
    layer = HorizontalSDLSTM(1, 2, dtype="float64")
    b = layer.init_params(rng)["b"]
    f = layer.lstm.layout.slice("f")
    assert (b[f] == 1.0).all() and (np.delete(b, np.r_[f]) == 0.0).all()
