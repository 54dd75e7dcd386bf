"""Bad input gets a clear error naming the argument, what was expected and what came in."""

import numpy as np
import pytest

from mdlstm_np import MDLSTM, HorizontalSDLSTM, get_backend


@pytest.fixture
def layer_and_params(rng):
    layer = MDLSTM(2, 3, ndim=2, cell="graves", dtype="float64")
    return layer, layer.init_params(rng)


@pytest.mark.parametrize("x, exc, words", [
    (np.zeros((4, 4, 2)), ValueError, ["x:", "4 dimensions", "(4, 4, 2)"]),
    (np.zeros((1, 4, 4, 3)), ValueError, ["x:", "2 channel", "(1, 4, 4, 3)"]),
    (np.zeros((1, 4, 4, 2), dtype=np.int64), TypeError, ["x:", "float", "int64"]),
    (np.zeros((1, 4, 4, 2), dtype=np.float32), TypeError, ["x:", "float64", "float32"]),
    (np.full((1, 4, 4, 2), np.nan), ValueError, ["x:", "finite", "NaN"]),
    (np.full((1, 2, 2, 2), np.inf), ValueError, ["x:", "finite", "inf"]),
    ([[1.0]], TypeError, ["x:", "numpy array", "list"]),
    (np.zeros((1, 0, 4, 2)), ValueError, ["x:", ">= 1", "(1, 0, 4, 2)"]),
])
def test_bad_inputs(layer_and_params, x, exc, words):
    layer, p = layer_and_params
    with pytest.raises(exc) as info:
        layer.forward(p, x)
    for w in words:
        assert w in str(info.value)


def test_bad_params_and_state(layer_and_params):
    layer, p = layer_and_params
    x = np.zeros((2, 3, 3, 2))
    with pytest.raises(ValueError, match=r"params: expected keys .*missing \['U'\]"):
        layer.forward({k: v for k, v in p.items() if k != "U"}, x)
    with pytest.raises(ValueError, match=r"params\['W'\]: expected shape \(2, 15\), got \(3, 15\)"):
        layer.forward({**p, "W": np.zeros((3, 15))}, x)
    with pytest.raises(ValueError, match=r"h0: expected shape \(2, 3\), got \(3,\)"):
        layer.forward(p, x, h0=np.zeros(3))
    with pytest.raises(ValueError, match=r"sizes: expected 1 <= sizes"):
        layer.forward(p, x, sizes=np.array([[3, 3], [4, 1]]))
    _, cache = layer.forward(p, x)
    with pytest.raises(ValueError, match=r"dout: expected shape \(2, 3, 3, 3\)"):
        layer.backward(np.zeros((2, 3, 3, 2)), cache)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(in_channels=0, hidden=3), ValueError, r"in_channels: expected an integer >= 1, got 0"),
    (dict(in_channels=1, hidden=2.5), ValueError, r"hidden: expected an integer >= 1, got 2.5"),
    (dict(in_channels=1, hidden=3, ndim=0), ValueError, r"ndim: expected an integer >= 1"),
    (dict(in_channels=1, hidden=3, dtype="int32"), TypeError, r"dtype: expected float32 or float64, got 'int32'"),
    (dict(in_channels=1, hidden=3, backend="tpu"), ValueError, r"backend: expected one of .*got 'tpu'"),
    (dict(in_channels=1, hidden=3, cell="gru"), ValueError, r"cell: expected one of .*got 'gru'"),
    (dict(in_channels=1, hidden=3, ln="maybe"), ValueError, r"ln: expected one of .*got 'maybe'"),
])
def test_bad_constructor_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        MDLSTM(**kwargs)


def test_sd_baselines_want_2d_grids(rng):
    layer = HorizontalSDLSTM(1, 2)
    with pytest.raises(ValueError, match=r"x: expected 4 dimensions"):
        layer.forward(layer.init_params(rng), np.zeros((2, 5, 1)))


def test_backend_names():
    assert get_backend("NumPy").name == "numpy"
    with pytest.raises(ValueError, match="backend: expected one of auto, numpy, numba, cupy, got 3"):
        get_backend(3)


try:
    import numba  # noqa: F401
    STATE_BACKENDS = ["numpy", "numba"]
except ImportError:
    STATE_BACKENDS = ["numpy"]


@pytest.mark.parametrize("backend", STATE_BACKENDS)
@pytest.mark.parametrize("layer_dt, state_dt", [("float64", "float32"), ("float32", "float64")])
@pytest.mark.parametrize("name", ["h0", "c0"])
def test_initial_state_of_another_dtype_is_refused(backend, layer_dt, state_dt, name):
    """Fault: the dtype check of h0/c0 removed (a silent cast would pass every other test).
    Both state arguments, both directions of the mismatch, on every CPU backend."""
    layer = MDLSTM(2, 3, ndim=2, backend=backend, dtype=layer_dt, cell="graves")
    p = layer.init_params(np.random.default_rng(0))
    x = np.zeros((2, 3, 3, 2), dtype=layer_dt)
    good = np.zeros((2, 3), dtype=layer_dt)
    state = {"h0": good, "c0": good, name: np.zeros((2, 3), dtype=state_dt)}
    with pytest.raises(TypeError, match=rf"{name}: expected dtype {layer_dt}, got {state_dt}"):
        layer.forward(p, x, **state)


@pytest.mark.parametrize("backend", STATE_BACKENDS)
@pytest.mark.parametrize("layer_dt, dout_dt", [("float64", "float32"), ("float32", "float64")])
def test_dout_of_another_dtype_is_refused(backend, layer_dt, dout_dt):
    """The same fault's relative on the way back: dout of another dtype would be promoted
    silently (numpy) or hit a typing error deep in a kernel (numba)."""
    layer = MDLSTM(2, 3, ndim=2, backend=backend, dtype=layer_dt, cell="graves")
    p = layer.init_params(np.random.default_rng(0))
    out, cache = layer.forward(p, np.zeros((2, 3, 3, 2), dtype=layer_dt))
    with pytest.raises(TypeError, match=rf"dout: expected dtype {layer_dt}, got {dout_dt}"):
        layer.backward(np.zeros(out.shape, dtype=dout_dt), cache)
