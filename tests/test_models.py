"""The seed's three models end to end (recurrent layer → head → MSE): gradients by finite
differences, forward shapes, build_model's errors."""

import numpy as np
import pytest

from mdlstm_np.testing.gradcheck import check_gradients, directional_check
from mdlstm_np.losses import mse
from mdlstm_np.training.model import Model
from mdlstm_np.demo.models import MODEL_NAMES, build_model
from mdlstm_np.demo.tasks import random_diagonal

TOL = 1e-6


def _setup(name, seed=0, B=2, H=3, W=4, hidden=3):
    model = build_model(name, in_channels=1, hidden=hidden, backend="numpy", dtype="float64")
    rng = np.random.default_rng(seed)
    params = model.init_params(rng)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}  # no zeros
    x = rng.uniform(0.0, 1.0, (B, H, W, 1))
    t = rng.uniform(0.0, 1.0, (B, H, W, 1))
    return model, params, x, t


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_gradients_per_element(name):
    """loss = MSE(model(x), t); every parameter and the input, element by element."""
    model, params, x, t = _setup(name)
    be = model.be

    def f():
        y, _ = model.forward(params, x)
        return float(mse(be, y, t)[0])

    y, cache = model.forward(params, x)
    _, dy = mse(be, y, t)
    dx, grads = model.backward(dy, cache)
    assert set(grads) == set(params)
    arrays = {**params, "x": x}
    errs = check_gradients(f, arrays, {**grads, "x": dx})
    assert max(errs.values()) <= TOL, errs


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_gradients_directional_on_the_task(name):
    """A larger case (the task's 6×6 grids, batch 3, hidden 4): one random direction."""
    model = build_model(name, hidden=4, backend="numpy", dtype="float64")
    rng = np.random.default_rng(1)
    params = model.init_params(rng)
    x, t, _ = random_diagonal(3, 6, rng)

    def f():
        y, _ = model.forward(params, x)
        return float(mse(model.be, y, t)[0])

    y, cache = model.forward(params, x)
    dx, grads = model.backward(mse(model.be, y, t)[1], cache)
    exact, numeric, rel = directional_check(f, {**params, "x": x}, {**grads, "x": dx}, rng)
    assert rel <= TOL, (exact, numeric)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shapes_and_keys(name):
    model = build_model(name.lower(), hidden=5, backend="numpy", dtype="float32")
    assert model.name == name and model.dtype == "float32"
    params = model.init_params(np.random.default_rng(0))
    assert all(k.startswith(("rnn.", "head.")) for k in params)
    assert params["head.V"].shape == (5, 1) and params["head.a"].shape == (1,)
    y, _ = model.forward(params, np.full((2, 5, 6, 1), 0.05, dtype=np.float32))
    assert y.shape == (2, 5, 6, 1) and y.dtype == np.float32
    assert np.all((y > 0) & (y < 1))


def test_md_sees_the_top_left_quadrant_only():
    """MD_LSTM's output at (r, c) depends on inputs at (r', c') with r' ≤ r and c' ≤ c only."""
    model, params, x, _ = _setup("MD_LSTM", H=4, W=4)
    y0, _ = model.forward(params, x)
    x2 = x.copy()
    x2[:, 2, 1, 0] += 1.0
    y1, _ = model.forward(params, x2)
    changed = np.abs(y1 - y0)[0, :, :, 0] > 0
    expected = np.zeros((4, 4), bool)
    expected[2:, 1:] = True
    np.testing.assert_array_equal(changed, expected)


def test_build_model_errors():
    with pytest.raises(ValueError, match=r"model: expected one of MD_LSTM, HORIZONTAL_SD_LSTM, "
                                         r"SNAKE_SD_LSTM, got 'GRID_LSTM'"):
        build_model("GRID_LSTM")
    with pytest.raises(ValueError, match="model: expected one of .* got 3"):
        build_model(3)
    with pytest.raises(ValueError, match="hidden: expected an integer >= 1, got 0"):
        build_model("MD_LSTM", hidden=0)
    with pytest.raises(TypeError, match="dtype: expected float32 or float64"):
        build_model("MD_LSTM", dtype="int32")
    with pytest.raises(ValueError, match="backend: expected one of"):
        build_model("MD_LSTM", backend="tpu")


def test_model_rejects_mismatched_head():
    from mdlstm_np.dense import Dense
    from mdlstm_np.mdlstm import MDLSTM

    with pytest.raises(ValueError, match=r"head: expected in_features == the recurrent layer.s output width \(4\), got"):
        Model(MDLSTM(1, 4, backend="numpy", cell="graves", dtype="float64"), Dense(3, 1, "sigmoid", backend="numpy"))


def test_head_loss_optim_and_training_loop_on_a_strict_array_api_backend():
    """No stray numpy call and no host/device mixing outside the recurrent layers either:
    head, MSE, relevant loss, Adam/SGD and train() run on array_api_strict on a fake device."""
    pytest.importorskip("array_api_strict")
    from mdlstm_np.backends.strict import StrictBackend
    from mdlstm_np.optim import SGD
    from mdlstm_np.demo.train import predict, train

    be = StrictBackend()
    for name in MODEL_NAMES:
        ref = build_model(name, hidden=3, backend="numpy", dtype="float64")
        model = build_model(name, hidden=3, backend=be, dtype="float64")
        res = train(model, steps=3, batch=2, size=4, seed=5, progress=False)
        ref_res = train(ref, steps=3, batch=2, size=4, seed=5, progress=False)
        for row, ref_row in zip(res.rows, ref_res.rows):
            assert row["overall_loss"] == pytest.approx(ref_row["overall_loss"], rel=1e-12)
            assert row["relevant_loss"] == pytest.approx(ref_row["relevant_loss"], rel=1e-12)
        x, _, _ = random_diagonal(2, 4, np.random.default_rng(0))
        np.testing.assert_allclose(predict(model, res.params, x),
                                   predict(ref, ref_res.params, x), rtol=1e-12)
        grads = {k: be.asarray(np.ones(v.shape), "float64") for k, v in res.params.items()}
        SGD(res.params, lr=0.1, momentum=0.5).step(res.params, grads)


def test_model_with_a_multidirectional_layer_takes_its_concatenated_width(rng):
    """A head on a 4-direction concat layer reads 4·H features; gradients still check out."""
    from mdlstm_np.testing.gradcheck import check_layer
    from mdlstm_np.dense import Dense
    from mdlstm_np.multidir import MultiDirectionalMDLSTM

    model = Model(MultiDirectionalMDLSTM(1, 2, ndim=2, backend="numpy", cell="graves", dtype="float64"),
                  Dense(8, 1, "sigmoid", backend="numpy", dtype="float64"))
    params = model.init_params(rng)
    errors = check_layer(model, params, rng.standard_normal((2, 3, 4, 1)), rng)
    assert max(errors.values()) <= 1e-6, errors
