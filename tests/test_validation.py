"""Bad input gets a clear error naming the argument, what was expected and what came in."""

import numpy as np
import pytest

from mdlstm_np import MDLSTM, HorizontalSDLSTM, MultiDirectionalMDLSTM, get_backend


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
    layer = HorizontalSDLSTM(1, 2, dtype="float64")
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


# ------------------------------------------------------------------ issue 10, item 6
def _layer(backend, C=2, n=2, **kw):
    layer = MDLSTM(C, 3, ndim=n, backend=backend, **kw)
    return layer, layer.init_params(np.random.default_rng(0))


def _x(C=2, n=2, B=2):
    return np.random.default_rng(1).random((B, *(3,) * n, C), dtype=np.float32)


@pytest.mark.parametrize("backend", STATE_BACKENDS)
@pytest.mark.parametrize("other", [dict(C=3), dict(n=3), dict(cell="graves"),
                                   dict(dtype="float64")],
                         ids=["3-channels", "3-D", "other-cell", "other-dtype"])
def test_a_cache_of_another_layer_is_refused(backend, other):
    """Fault: a cache from a 2-channel 2-D layer fed to a 3-channel or 3-D layer (on numba it
    returned gradients shaped for the other layer). The error names ``cache`` and both."""
    src, p = _layer(backend)
    out, cache = src.forward(p, _x())
    kw = dict(other)
    C, n = kw.pop("C", 2), kw.pop("n", 2)
    dst, _ = _layer(backend, C=C, n=n, **kw)
    dout = np.zeros((2, *(3,) * n, 3), dtype=dst.dtype)
    with pytest.raises(ValueError, match=r"cache: expected a cache of this layer \(.*\), got "
                                         r"one of another layer"):
        dst.backward(dout, cache)


@pytest.mark.parametrize("backend", STATE_BACKENDS)
def test_a_cache_of_another_type_is_refused(backend):
    layer, p = _layer(backend)
    out, cache = layer.forward(p, _x())
    with pytest.raises(TypeError, match=r"cache: expected the MDLSTMCache .*got tuple"):
        layer.backward(out, tuple(cache))
    multi = MultiDirectionalMDLSTM(2, 3, ndim=2, backend=backend)
    with pytest.raises(TypeError, match=r"cache: expected the MultiDirCache of 4 direction"):
        multi.backward(np.zeros((2, 3, 3, 12), dtype=np.float32), cache)


@pytest.mark.parametrize("backend", STATE_BACKENDS)
@pytest.mark.parametrize("case, exc, pattern", [
    ("missing", ValueError, r"params: expected keys \['U', 'W', 'b'\], missing \['b'\]"),
    ("extra", ValueError, r"unexpected \['V'\]"),
    ("shape", ValueError, r"params\['U'\]: expected shape \(6, 18\), got \(6, 17\)"),
    ("dtype", TypeError, r"params\['W'\]: expected dtype float32, got float64"),
    ("list", TypeError, r"params\['b'\]: expected a (numpy|numba) array of shape \(18,\), got list"),
    ("int", TypeError, r"params\['W'\]: expected dtype float32, got int64"),
    ("nan", ValueError, r"params\['U'\]: expected finite values, got NaN or inf"),
    ("inf", ValueError, r"params\['b'\]: expected finite values, got NaN or inf"),
    ("not a dict", TypeError, r"params: expected a dict of arrays, got list"),
])
def test_bad_params_dicts(backend, case, exc, pattern):
    layer, p = _layer(backend)
    p = dict(p)
    if case == "missing":
        del p["b"]
    elif case == "extra":
        p["V"] = p["U"]
    elif case == "shape":
        p["U"] = p["U"][:, :17]
    elif case == "dtype":
        p["W"] = p["W"].astype(np.float64)
    elif case == "list":
        p["b"] = p["b"].tolist()
    elif case == "int":
        p["W"] = p["W"].astype(np.int64)
    elif case == "nan":
        p["U"] = p["U"].copy()
        p["U"][1, 2] = np.nan
    elif case == "inf":
        p["b"] = p["b"].copy()
        p["b"][0] = -np.inf
    elif case == "not a dict":
        p = list(p.values())
    with pytest.raises(exc, match=pattern):
        layer.forward(p, _x())


@pytest.mark.parametrize("backend", STATE_BACKENDS)
@pytest.mark.parametrize("name", ["h0", "c0"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_initial_state_is_refused(backend, name, bad):
    layer, p = _layer(backend)
    state = {"h0": np.zeros((2, 3), np.float32), "c0": np.zeros((2, 3), np.float32)}
    state[name][1, 1] = bad
    with pytest.raises(ValueError, match=rf"{name}: expected finite values, got NaN or inf"):
        layer.forward(p, _x(), **state)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(forget_bias=float("nan")), ValueError, r"forget_bias: expected a finite real number, "
                                                 r"got nan"),
    (dict(forget_bias=float("inf")), ValueError, r"forget_bias: expected a finite .*got inf"),
    (dict(forget_bias="1.0"), TypeError, r"forget_bias: expected a finite real number, got str"),
    (dict(forget_bias=True), TypeError, r"forget_bias: expected a finite real number, got bool"),
    (dict(forget_bias=None), TypeError, r"forget_bias: expected .*got NoneType"),
    (dict(peepholes=1), TypeError, r"peepholes: expected True or False, got int 1"),
    (dict(peepholes="yes"), TypeError, r"peepholes: expected True or False, got str 'yes'"),
    (dict(peepholes=None), TypeError, r"peepholes: expected True or False, got NoneType"),
    (dict(check_finite="no"), TypeError, r"check_finite: expected True or False, got str"),
])
@pytest.mark.parametrize("cls", ["MDLSTM", "MultiDirectionalMDLSTM"])
def test_bad_forget_bias_and_peepholes(cls, kwargs, exc, pattern):
    make = MDLSTM if cls == "MDLSTM" else MultiDirectionalMDLSTM
    with pytest.raises(exc, match=pattern):
        make(1, 2, ndim=2, **kwargs)


def test_good_numbers_are_accepted():
    assert MDLSTM(1, 2, forget_bias=np.float32(0.5)).forget_bias == 0.5
    assert MDLSTM(1, 2, forget_bias=2).forget_bias == 2.0
    assert MDLSTM(1, 2, peepholes=np.bool_(True)).cell.name == "graves_peephole"


def test_sd_baseline_refuses_a_foreign_cache(rng):
    from mdlstm_np import SnakeSDLSTM

    layer = SnakeSDLSTM(1, 2, dtype="float64")
    p = layer.init_params(rng)
    out, cache = layer.forward(p, np.zeros((1, 3, 3, 1)))
    with pytest.raises(TypeError, match=r"cache: expected the SDCache"):
        layer.backward(out, cache.inner)


def test_every_nan_or_inf_is_one_error_class():
    """NaN/inf in x, params, h0 and a non-finite state all raise NonFiniteError, which is a
    ValueError and a FloatingPointError: one ``except`` for a training loop's divergence."""
    from mdlstm_np.validate import NonFiniteError

    layer, p = _layer("numpy")
    bad = dict(p, W=np.full_like(p["W"], np.inf))
    for call in (lambda: layer.forward(bad, _x()),
                 lambda: layer.forward(p, np.full((1, 3, 3, 2), np.nan, np.float32)),
                 lambda: layer.forward(p, _x(), h0=np.full((2, 3), np.nan, np.float32))):
        with pytest.raises(NonFiniteError) as info:
            call()
        assert isinstance(info.value, ValueError) and isinstance(info.value, FloatingPointError)
