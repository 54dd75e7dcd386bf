"""The numba backend against the numpy reference: outputs, every gradient, and finite differences.

Equality is measured norm-wise, per array. float64: max |numba − numpy| / max |numpy| ≤ 1e-12
(the same arithmetic up to summation order). float32: both the numba and the numpy float32 runs
against a float64 run of the same numbers, max |a − ref64| / max(max |ref64|, 1) ≤ 1e-5.

Why the float32 measure is not "relative to the array's own maximum": a gradient such as dh0 or
dc0 is a sum of O(1) terms that can cancel to ~1e-3, while float32 rounding errors stay on the
scale of the terms (~1e-7 absolute). Divided by the tiny result, ordinary rounding read as a
1e-5..5e-5 "relative error" (three falsifying examples below), although both float32 runs were
within ~7e-8 of the float64 truth. Every input here (x, dout, parameters, h0, c0) is O(1), so
1 is the natural scale of every output and gradient: the measure is relative for arrays of that
size or larger and absolute below it. The float64 comparison still pins every value to 1e-12.
"""

import copy
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

numba = pytest.importorskip("numba")

from mdlstm_np.backends import get_backend  # noqa: E402
from mdlstm_np.backends.numba import NumbaBackend  # noqa: E402
from mdlstm_np.cells.graves import GravesCell  # noqa: E402
from mdlstm_np.backends.numba_kernels import scalar_tanh  # noqa: E402
from mdlstm_np.mdlstm import MDLSTM  # noqa: E402
from mdlstm_np.sweep import FusedWeightGrads, SweepResult  # noqa: E402
from mdlstm_np.testing.gradcheck import check_layer  # noqa: E402
from mdlstm_np.sd import HorizontalSDLSTM, SnakeSDLSTM  # noqa: E402

TOL = {"float64": 1e-12, "float32": 1e-5}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", autouse=True)
def warm_jit():
    """Compile (or load from numba's cache) both dtypes once, outside the timed examples."""
    for dt in ("float32", "float64"):
        layer = MDLSTM(1, 2, ndim=2, cell="graves", backend="numba", dtype=dt)
        p = layer.init_params(np.random.default_rng(0))
        out, cache = layer.forward(p, np.ones((2, 2, 2, 1), dtype=dt))
        layer.backward(out, cache, return_state=True)


def rel(a, b, floor=1e-30):
    """max |a − b| / max(max |b|, floor): the norm-wise error of ``a`` against ``b``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), floor))


def run_layer(layer, p, x, dout, **kw):
    """{name: host array} of the output and every gradient of one forward + backward."""
    out, cache = layer.forward(p, x, **kw)
    dx, grads, (dh0, dc0) = layer.backward(dout, cache, return_state=True)
    res = {"out": out, "x": dx, **{f"d{k}": v for k, v in grads.items()}}
    if dh0 is not None:
        res["h0"], res["c0"] = dh0, dc0
    return res, cache


def as64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def pair(C, H, n, dt, fuse_bytes=None, **kw):
    """numpy and numba layers; fuse_bytes sets the numba backward's step-1a-b block size (1: a
    block per wavefront; None: the default, one block for these small grids)."""
    be = NumbaBackend()
    if fuse_bytes is not None:
        be.fuse_bytes = fuse_bytes
    return (MDLSTM(C, H, ndim=n, cell="graves", backend="numpy", dtype=dt, **kw),
            MDLSTM(C, H, ndim=n, cell="graves", backend=be, dtype=dt, **kw))


def compare_layers(ref, fast, p, x, dout, dt, **kw):
    """Run both, assert the hot loop ran and every output and gradient agrees (module doc)."""
    r0, c0 = run_layer(ref, p, x, dout, **kw)
    r1, c1 = run_layer(fast, p, x, dout, **kw)
    assert c1.hot and not c0.hot
    assert set(r1) == set(r0)
    for k in r0:
        assert r1[k].dtype == np.dtype(dt), k
    if dt == "float64":
        errs = {k: rel(r1[k], r0[k]) for k in r0}
    else:  # both float32 runs against float64 arithmetic on the same numbers
        ref64 = copy.copy(ref)
        ref64.dtype = "float64"
        r64, _ = run_layer(ref64, {k: as64(v) for k, v in p.items()}, as64(x), as64(dout),
                           **{k: as64(v) if k in ("h0", "c0") else v for k, v in kw.items()})
        errs = {k: rel(r1[k], r64[k], floor=1.0) for k in r64}
        yardstick = {k: rel(r0[k], r64[k], floor=1.0) for k in r64}
        assert max(yardstick.values()) <= TOL[dt], yardstick  # numpy float32 itself
    assert max(errs.values()) <= TOL[dt], errs
    return errs


GRIDS = st.integers(1, 3).flatmap(  # S: sides 1..4 (1..2 in 3-D), n = len(S)
    lambda n: st.lists(st.integers(1, 4 if n < 3 else 2), min_size=n, max_size=n).map(tuple))


@given(S=GRIDS, B=st.integers(1, 3), H=st.integers(1, 3),
       C=st.integers(1, 2), dt=st.sampled_from(["float64", "float32"]),
       state=st.booleans(), masked=st.booleans(), seed=st.integers(0, 2**16),
       fuse_bytes=st.sampled_from([None, 1, 600]))
@example(S=(1, 2), B=1, H=1, C=1, dt="float32", state=True, masked=False, seed=102,
         fuse_bytes=None)  # dh0 read 1.1e-5 under the old own-maximum measure
@example(S=(1, 1, 2), B=1, H=1, C=1, dt="float32", state=True, masked=False, seed=63008,
         fuse_bytes=None)  # dc0 read 5.0e-5
@example(S=(2, 1, 2), B=1, H=2, C=2, dt="float32", state=True, masked=True, seed=1894,
         fuse_bytes=None)  # dc0 read 1.4e-5
def test_equals_numpy(S, B, H, C, dt, state, masked, seed, fuse_bytes):
    n = len(S)
    rng = np.random.default_rng(seed)
    ref, fast = pair(C, H, n, dt, fuse_bytes)
    p = ref.init_params(rng)
    p["b"] = (p["b"] + rng.standard_normal(p["b"].shape)).astype(dt)
    x = rng.standard_normal((B, *S, C)).astype(dt)
    dout = rng.standard_normal((B, *S, H)).astype(dt)
    kw = {}
    if state:
        kw["h0"] = rng.standard_normal((B, H)).astype(dt)
        kw["c0"] = rng.standard_normal((B, H)).astype(dt)
    if masked:
        kw["sizes"] = np.stack([rng.integers(1, s + 1, size=B) for s in S], axis=1)
    compare_layers(ref, fast, p, x, dout, dt, **kw)


@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize("threads", [2, 3])
def test_batch_chunks_on_threads_equal_numpy(dt, threads):
    """The sweep split over batch chunks on Python threads (forced on a small grid)."""
    rng = np.random.default_rng(11)
    ref = MDLSTM(2, 3, ndim=2, cell="graves", backend="numpy", dtype=dt)
    fast = MDLSTM(2, 3, ndim=2, cell="graves",
                  backend=NumbaBackend(threads=threads, min_work=0), dtype=dt)
    p = ref.init_params(rng)
    B = 5
    x = rng.standard_normal((B, 4, 3, 2)).astype(dt)
    kw = dict(h0=rng.standard_normal((B, 3)).astype(dt), c0=rng.standard_normal((B, 3)).astype(dt),
              sizes=np.array([[4, 3], [2, 3], [4, 1], [1, 1], [3, 2]]))
    compare_layers(ref, fast, p, x, rng.standard_normal((B, 4, 3, 3)).astype(dt), dt, **kw)


def _hot_backward_result(be, B, x_w=True):
    """The raw result of the numba hot backward for a small 2-D layer on backend ``be``."""
    layer = MDLSTM(2, 3, ndim=2, cell="graves", backend=be, dtype="float64")
    rng = np.random.default_rng(4)
    p = layer.init_params(rng)
    out, cache = layer.forward(p, rng.standard_normal((B, 3, 4, 2)))
    dout_w = np.ascontiguousarray(
        np.transpose(out.reshape(B, -1, 3), (1, 0, 2))[cache.plan.host.order])
    sweep = be.sweep_for(layer.cell)
    return sweep.backward(cell=layer.cell, layout=layer.layout, plan=cache.plan, dout_w=dout_w,
                          cache=cache.sweep_cache, params=p, grads={}, want_state=False,
                          mask=None, x_w=cache.x_w if x_w else None)


def test_fused_weight_grads_only_in_whole_batch_mode():
    """Whole batch: step 1a' comes back from the kernel (``fused``, shapes of W, U, b, x_w);
    batch chunks on threads, or no x_w given: fused is None, the layer does 1a' itself."""
    res = _hot_backward_result(NumbaBackend(), B=3)
    assert isinstance(res, SweepResult) and isinstance(res.fused, FusedWeightGrads)
    fw = res.fused
    assert fw.W.shape == (2, 15) and fw.U.shape == (6, 15) and fw.b.shape == (15,)
    assert fw.dx_w.shape == (12, 3, 2)
    assert all(a.dtype == np.float64 for a in fw)
    assert _hot_backward_result(NumbaBackend(threads=2, min_work=0), B=3).fused is None
    assert _hot_backward_result(NumbaBackend(), B=3, x_w=False).fused is None


@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize("fuse_bytes", [1, 1000, None])
def test_fused_blocks_equal_numpy_on_a_larger_grid(dt, fuse_bytes):
    """Step 1a-b in blocks of one wavefront, of a few, and of the whole grid."""
    rng = np.random.default_rng(13)
    ref, fast = pair(2, 4, 2, dt, fuse_bytes)
    p = ref.init_params(rng)
    B = 3
    x = rng.standard_normal((B, 7, 5, 2)).astype(dt)
    kw = dict(h0=rng.standard_normal((B, 4)).astype(dt), c0=rng.standard_normal((B, 4)).astype(dt),
              sizes=np.array([[7, 5], [3, 5], [6, 2]]))
    compare_layers(ref, fast, p, x, rng.standard_normal((B, 7, 5, 4)).astype(dt), dt, **kw)


def test_threads_argument_is_checked():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            NumbaBackend(threads=bad)


def test_forward_leaves_the_callers_arrays_alone():
    """The hot loop overwrites zx, which the layer builds for it; x and params stay as given."""
    rng = np.random.default_rng(12)
    layer = MDLSTM(2, 3, ndim=2, cell="graves", backend="numba", dtype="float64")
    p = layer.init_params(rng)
    x = rng.standard_normal((2, 3, 3, 2))
    x0, p0 = x.copy(), {k: v.copy() for k, v in p.items()}
    out1, _ = layer.forward(p, x)
    out2, _ = layer.forward(p, x)
    assert np.array_equal(x, x0) and all(np.array_equal(p[k], p0[k]) for k in p)
    assert np.array_equal(out1, out2)


@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_exactly_zero_inputs(dt):
    ref, fast = pair(2, 3, 2, dt)
    p = {k: np.zeros_like(v) for k, v in ref.init_params(np.random.default_rng(1)).items()}
    x = np.zeros((2, 3, 4, 2), dtype=dt)
    errs = compare_layers(ref, fast, p, x, np.ones((2, 3, 4, 3), dtype=dt), dt)
    assert all(np.isfinite(v) for v in errs.values())


def test_larger_grid_float32():
    rng = np.random.default_rng(5)
    ref, fast = pair(1, 16, 2, "float32")
    p = ref.init_params(rng)
    x = rng.standard_normal((4, 12, 9, 1)).astype("float32")
    compare_layers(ref, fast, p, x, rng.standard_normal((4, 12, 9, 16)).astype("float32"),
                   "float32")


@pytest.mark.parametrize("n, shape, kw", [
    (2, (3, 2), {}),
    (1, (4,), {"state": True}),
    (2, (2, 3), {"state": True, "sizes": np.array([[2, 3], [1, 2]])}),
    (3, (2, 2, 2), {}),
])
def test_finite_differences_on_numba(n, shape, kw):
    rng = np.random.default_rng(7)
    layer = MDLSTM(2, 2, ndim=n, cell="graves", backend="numba", dtype="float64")
    p = layer.init_params(rng)
    p["b"] = p["b"] + rng.standard_normal(p["b"].shape)
    x = rng.standard_normal((2, *shape, 2))
    fkw = {}
    if kw.get("state"):
        fkw = {"h0": rng.standard_normal((2, 2)), "c0": rng.standard_normal((2, 2))}
    if "sizes" in kw:
        fkw["sizes"] = kw["sizes"]
    errs = check_layer(layer, p, x, rng, mode="element", **fkw)
    assert max(errs.values()) <= 1e-6, errs


@pytest.mark.parametrize("cls", [HorizontalSDLSTM, SnakeSDLSTM])
@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_sd_baselines_equal_numpy(cls, dt):
    rng = np.random.default_rng(3)
    ref, fast = cls(2, 3, backend="numpy", dtype=dt), cls(2, 3, backend="numba", dtype=dt)
    p = ref.init_params(rng)
    x = rng.standard_normal((2, 3, 4, 2)).astype(dt)
    o0, c0 = ref.forward(p, x)
    o1, c1 = fast.forward(p, x)
    assert c1.inner.hot
    dout = rng.standard_normal(o0.shape).astype(dt)
    dx0, g0 = ref.backward(dout, c0)
    dx1, g1 = fast.backward(dout, c1)
    assert rel(o1, o0) <= TOL[dt] and rel(dx1, dx0) <= TOL[dt]
    assert all(rel(g1[k], g0[k]) <= TOL[dt] for k in g0)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_tanh_within_a_few_ulp(dt):
    x = np.concatenate([np.linspace(-20, 20, 1601), np.geomspace(1e-30, 30, 400),
                        -np.geomspace(1e-30, 30, 400), [0.0, 0.125, -0.125, 0.1249999]]).astype(dt)
    y = np.array([scalar_tanh(v) for v in x], dtype=dt)  # (numba boxes a scalar as a Python float)
    ref = np.tanh(x)
    ulp = np.abs(y - ref) / np.spacing(np.abs(ref).astype(dt))
    assert float(np.max(ulp)) <= 8
    assert np.isnan(scalar_tanh(dt(np.nan)))
    assert scalar_tanh(dt(np.inf)) == 1 and scalar_tanh(dt(-np.inf)) == -1


def test_graves_cell_has_its_own_kernels_and_a_subclass_falls_back():
    """Graves' plain cell runs numba_kernels.py's sweep (every other cell: test_numba_cells.py);
    a subclass of a registered cell is a different cell: the reference sweep."""
    be = get_backend("numba")
    assert be.sweep_for(GravesCell()).name == "numba-graves"
    assert be.sweep_for(GravesCell(), masked=True).name == "numba-graves"

    class Variant(GravesCell):
        pass

    assert be.sweep_for(Variant()) is be.reference_sweep


def test_runs_with_jit_disabled():
    """The kernels are plain Python under NUMBA_DISABLE_JIT=1 and give the same numbers."""
    code = textwrap.dedent("""
        import numpy as np
        from mdlstm_np.mdlstm import MDLSTM
        rng = np.random.default_rng(0)
        for dt, tol in (("float64", 1e-12), ("float32", 1e-5)):
            ref = MDLSTM(2, 3, ndim=2, cell="graves", backend="numpy", dtype=dt)
            fast = MDLSTM(2, 3, ndim=2, cell="graves", backend="numba", dtype=dt)
            p = ref.init_params(rng)
            x = rng.standard_normal((2, 3, 2, 2)).astype(dt)
            h0 = rng.standard_normal((2, 3)).astype(dt)
            kw = dict(h0=h0, c0=h0, sizes=np.array([[3, 2], [2, 1]]))
            o0, c0 = ref.forward(p, x, **kw)
            o1, c1 = fast.forward(p, x, **kw)
            assert c1.hot and o1.dtype == np.dtype(dt)
            r0 = ref.backward(o0, c0, return_state=True)
            r1 = fast.backward(o0, c1, return_state=True)
            pairs = [(o1, o0), (r1[0], r0[0]), *[(r1[1][k], r0[1][k]) for k in r0[1]],
                     (r1[2][0], r0[2][0]), (r1[2][1], r0[2][1])]
            for a, b in pairs:
                assert a.dtype == np.dtype(dt)
                assert np.max(np.abs(a - b)) <= tol * max(np.max(np.abs(b)), 1e-30)
        print("JIT-DISABLED-OK")
    """)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=ROOT)
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "JIT-DISABLED-OK" in res.stdout
