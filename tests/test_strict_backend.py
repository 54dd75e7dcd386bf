"""The reference code path on a strict array-API namespace with device checking (no GPU needed).

``StrictBackend`` (``mdlstm_np/backend_strict.py``) runs the engine on ``array_api_strict``
with every array on a non-default fake device. Anything the cupy backend would choke on fails
here: a numpy call on a device array, a numpy array mixed into device math, an operation the
standard lacks, an array created on the default device and mixed with device arrays.

Each layer is run on the strict backend and on numpy with the same host data; the results must
agree (the same arithmetic, so to ~1e-13), and the strict run passes the finite-difference
check on its own.
"""

import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("array_api_strict", reason="pip install array-api-strict (test extra)")

from mdlstm_np.backends import Backend  # noqa: E402
from mdlstm_np.backends.strict import StrictBackend  # noqa: E402
from mdlstm_np.testing.gradcheck import check_layer  # noqa: E402
from mdlstm_np.mdlstm import MDLSTM  # noqa: E402
from mdlstm_np.sd import HorizontalSDLSTM, SnakeSDLSTM  # noqa: E402

TIGHT = dict(rtol=1e-12, atol=1e-13)


@pytest.fixture(scope="module")
def sbe():
    return StrictBackend()


def _forward_backward(layer, be, seed, x_shape, **kw):
    """Forward + backward with fixed random host data -> host dict of out, dx, grads."""
    rng = np.random.default_rng(seed)
    params = layer.init_params(rng)
    x = be.asarray(rng.standard_normal(x_shape), dtype=layer.dtype)
    kw = {k: (be.asarray(v, dtype=layer.dtype) if k in ("h0", "c0") else v)
          for k, v in kw.items()}
    out, cache = layer.forward(params, x, **kw)
    dout = be.asarray(rng.standard_normal(tuple(out.shape)), dtype=layer.dtype)
    back = layer.backward(dout, cache, return_state=True) if "h0" in kw else \
        layer.backward(dout, cache)
    dx, grads = back[0], back[1]
    res = {"out": out, "dx": dx, **{f"d{k}": v for k, v in grads.items()}}
    if "h0" in kw:
        res["dh0"], res["dc0"] = back[2]
    for k, v in res.items():
        assert be.is_array(v), f"{k}: a {type(v).__name__} left the backend"
    return {k: be.to_numpy(v) for k, v in res.items()}


def _assert_same(a, b):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], err_msg=k, **TIGHT)


# --------------------------------------------------------------------------- the harness is live
def test_strict_arrays_live_on_a_non_default_device(sbe):
    a = sbe.asarray(np.ones((2, 3)))
    assert a.device == sbe.device and sbe.device != sbe.host_device
    assert sbe.xp.zeros((2,), dtype=sbe.xp.float64).device == sbe.device  # like cupy's device


def test_strict_backend_rejects_host_device_mixing(sbe):
    a = sbe.asarray(np.ones((2, 3)))
    with pytest.raises(TypeError):
        a + np.ones((2, 3))                       # a numpy array in device math
    with pytest.raises(ValueError, match="devices"):
        a + sbe.raw.zeros((2, 3), dtype=sbe.raw.float64)  # default-device array
    with pytest.raises(RuntimeError):
        np.asarray(a)                             # implicit device -> host conversion
    with pytest.raises(AttributeError):
        sbe.xp.ascontiguousarray                  # numpy's, not in the standard
    np.testing.assert_array_equal(sbe.to_numpy(a), np.ones((2, 3)))  # the explicit way


def test_backends_expose_the_same_operations():
    """Every backend has the reference's public methods with the same signatures."""
    from mdlstm_np.backends.cupy import CupyBackend

    classes = [StrictBackend, CupyBackend]
    try:
        from mdlstm_np.backends.numba import NumbaBackend
        classes.append(NumbaBackend)
    except ImportError:
        pass
    names = [n for n, f in inspect.getmembers(Backend, inspect.isfunction)
             if not n.startswith("_")]
    for cls in classes:
        for n in names:
            got = inspect.signature(getattr(cls, n)).parameters
            want = inspect.signature(getattr(Backend, n)).parameters
            assert [(p.name, p.kind, p.default) for p in got.values()] == \
                [(p.name, p.kind, p.default) for p in want.values()], f"{cls.__name__}.{n}"


# --------------------------------------------------------------------------- MD-LSTM
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("state", [False, True])
@pytest.mark.parametrize("sizes", [False, True])
def test_mdlstm_strict_matches_numpy(sbe, n, state, sizes):
    S = (3, 4, 2)[:n]
    kw = {}
    rng = np.random.default_rng(n)
    if state:
        kw["h0"], kw["c0"] = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    if sizes:
        kw["sizes"] = np.array([S, [max(1, s - 1) for s in S]])
    res = {}
    for be in (Backend(), sbe):
        layer = MDLSTM(2, 3, ndim=n, backend=be, forget_bias=0.5, cell="graves", dtype="float64")
        res[be.name] = _forward_backward(layer, be, 11, (2, *S, 2), **kw)
    _assert_same(res["strict"], res["numpy"])


@pytest.mark.parametrize("n", [1, 2, 3])
def test_mdlstm_gradcheck_on_strict(sbe, n):
    rng = np.random.default_rng(5)
    layer = MDLSTM(2, 2, ndim=n, backend=sbe, forget_bias=0.5, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    S = (3, 2, 2)[:n] if n != 2 else (2, 2)
    x = sbe.asarray(rng.standard_normal((2, *S, 2)))
    h0 = sbe.asarray(rng.standard_normal((2, 2)))
    c0 = sbe.asarray(rng.standard_normal((2, 2)))
    sizes = np.array([S, [max(1, s - 1) for s in S]])
    mode = "element" if n < 3 else "direction"
    errs = check_layer(layer, params, x, rng, mode=mode, h0=h0, c0=c0, sizes=sizes)
    assert max(errs.values()) <= 1e-6, errs


@given(n=st.integers(1, 3), B=st.integers(1, 2), S=st.tuples(*[st.integers(1, 3)] * 3),
       H=st.integers(1, 3), zero=st.booleans())
def test_mdlstm_strict_matches_numpy_hypothesis(n, B, S, H, zero):
    sbe = StrictBackend()
    rng = np.random.default_rng(0)
    x = np.zeros((B, *S[:n], 2)) if zero else rng.standard_normal((B, *S[:n], 2))
    res = {}
    for be in (Backend(), sbe):
        layer = MDLSTM(2, H, ndim=n, backend=be, cell="graves", dtype="float64")
        params = layer.init_params(np.random.default_rng(1))
        out, cache = layer.forward(params, be.asarray(x))
        dx, grads = layer.backward(be.asarray(np.ones(tuple(out.shape))), cache)
        res[be.name] = {"out": be.to_numpy(out), "dx": be.to_numpy(dx),
                        **{k: be.to_numpy(v) for k, v in grads.items()}}
    _assert_same(res["strict"], res["numpy"])


@pytest.mark.parametrize("options", [dict(cell="stable"), dict(cell="leakylp"),
                                     dict(peepholes=True), dict(ln=True), dict(ln="seed")],
                         ids=["stable", "leakylp", "peepholes", "ln", "ln_seed"])
def test_cell_variants_strict_match_numpy(sbe, options):
    res = {}
    for be in (Backend(), sbe):
        layer = MDLSTM(2, 3, ndim=2, backend=be, dtype="float64", **options)
        res[be.name] = _forward_backward(layer, be, 3, (2, 3, 2, 2),
                                         sizes=np.array([[3, 2], [2, 1]]))
    _assert_same(res["strict"], res["numpy"])


def test_multidirectional_strict_matches_numpy(sbe):
    from mdlstm_np.multidir import MultiDirectionalMDLSTM

    res = {}
    for be in (Backend(), sbe):
        layer = MultiDirectionalMDLSTM(2, 2, ndim=2, backend=be, cell="graves", dtype="float64")
        res[be.name] = _forward_backward(layer, be, 4, (2, 3, 3, 2),
                                         sizes=np.array([[3, 3], [2, 1]]))
    _assert_same(res["strict"], res["numpy"])


# --------------------------------------------------------------------------- SD baselines
@pytest.mark.parametrize("cls", [HorizontalSDLSTM, SnakeSDLSTM])
def test_sd_baselines_on_strict(sbe, cls):
    res = {}
    for be in (Backend(), sbe):
        res[be.name] = _forward_backward(cls(2, 3, backend=be, dtype="float64"), be, 2, (2, 3, 4, 2))
    _assert_same(res["strict"], res["numpy"])
    rng = np.random.default_rng(8)
    layer = cls(1, 2, backend=sbe, dtype="float64")
    params = layer.init_params(rng)
    errs = check_layer(layer, params, sbe.asarray(rng.standard_normal((1, 2, 3, 1))), rng)
    assert max(errs.values()) <= 1e-6, errs


# --------------------------------------------------------------------------- head, loss, model
def test_head_and_losses_on_strict(sbe):
    from mdlstm_np.dense import Dense
    from mdlstm_np.losses import mse, relevant_loss

    rng = np.random.default_rng(9)
    head = Dense(3, 1, "sigmoid", backend=sbe, dtype="float64")
    params = head.init_params(rng)
    h = sbe.asarray(rng.standard_normal((2, 3, 3, 3)))
    errs = check_layer(head, params, h, rng)
    assert max(errs.values()) <= 1e-6, errs
    y, _ = head.forward(params, h)
    t = sbe.asarray((rng.random((2, 3, 3, 1)) > 0.5).astype(np.float64))
    loss, dy = mse(sbe, y, t)
    y_h, t_h = sbe.to_numpy(y), sbe.to_numpy(t)
    assert float(loss) == pytest.approx(np.mean((y_h - t_h) ** 2), rel=1e-12)
    np.testing.assert_allclose(sbe.to_numpy(dy), 2 * (y_h - t_h) / y_h.size, **TIGHT)
    pos = np.array([[1, 2], [0, 0]])
    rel = relevant_loss(sbe, y, t, pos)
    want = np.mean([(y_h[b, r, c, 0] - t_h[b, r, c, 0]) ** 2 for b, (r, c) in enumerate(pos)])
    assert float(rel) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("name", ["MD_LSTM", "HORIZONTAL_SD_LSTM", "SNAKE_SD_LSTM"])
def test_models_on_strict(sbe, name):
    from mdlstm_np.demo.models import build_model

    res = {}
    for be in (Backend(), sbe):
        model = build_model(name, hidden=3, backend=be, dtype="float64")
        res[be.name] = _forward_backward(model, be, 6, (2, 4, 4, 1))
    _assert_same(res["strict"], res["numpy"])


@pytest.mark.parametrize("opt", ["Adam", "SGD"])
def test_optimizers_on_strict(sbe, opt):
    from mdlstm_np import optim

    rng = np.random.default_rng(0)
    host = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    grads_h = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    res = {}
    for be in (Backend(), sbe):
        params = {k: be.asarray(v) for k, v in host.items()}
        o = getattr(optim, opt)(params)
        for _ in range(2):
            o.step(params, {k: be.asarray(v) for k, v in grads_h.items()})
        res[be.name] = {k: be.to_numpy(v) for k, v in params.items()}
    _assert_same(res["strict"], res["numpy"])
