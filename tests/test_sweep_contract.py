"""The sweep contract (``mdlstm_np/sweep.py``), bounded per-shape caches, caches as snapshots,
and the old module paths.

* every backend answers ``sweep_for(cell)`` with an object whose backward returns the one named
  result type, ``SweepResult``; a fast sweep registered for a cell is the one the layer runs,
  and a cell without one runs the reference sweep;
* a stream of distinct grid shapes (variable-size images) keeps retained memory bounded;
* ``backward(dout, cache)`` gives the gradient at the parameters forward used, even after the
  caller replaced entries of its params dict (as an optimiser does), for every layer.
"""

import gc
import tracemalloc

import numpy as np
import pytest

from mdlstm_np import HorizontalSDLSTM, MDLSTM, MultiDirectionalMDLSTM, SnakeSDLSTM
from mdlstm_np.demo.models import build_model
from mdlstm_np.backends import Backend, get_backend
from mdlstm_np.cells.graves import GravesCell
from mdlstm_np.sweep import ReferenceSweep, SweepResult

try:
    import numba  # noqa: F401
    CPU_BACKENDS = ["numpy", "numba"]
except ImportError:
    CPU_BACKENDS = ["numpy"]


def _strict_or_skip():
    pytest.importorskip("array_api_strict")
    from mdlstm_np.backends.strict import StrictBackend

    return StrictBackend()


# --------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("backend", CPU_BACKENDS + ["strict"])
@pytest.mark.parametrize("cell", ["graves", "stable"])
def test_every_backend_answers_the_same_named_result(backend, cell):
    be = _strict_or_skip() if backend == "strict" else get_backend(backend)
    layer = MDLSTM(2, 3, ndim=2, cell=cell, backend=be, dtype="float64")
    rng = np.random.default_rng(0)
    params = layer.init_params(rng)
    x = be.asarray(rng.standard_normal((2, 3, 4, 2)), dtype="float64")
    out, cache = layer.forward(params, x, h0=be.asarray(np.ones((2, 3)), dtype="float64"))
    sweep = be.sweep_for(layer.cell)
    assert cache.sweep is sweep
    assert hasattr(cache.sweep_cache, "h") and hasattr(cache.sweep_cache, "c")
    N = 12
    dout_w = be.asarray(rng.standard_normal((N, 2, 3)), dtype="float64")
    res = sweep.backward(cell=layer.cell, layout=layer.layout, plan=cache.plan, dout_w=dout_w,
                         cache=cache.sweep_cache, params=cache.params, grads={},
                         want_state=True, mask=None, x_w=None)
    assert isinstance(res, SweepResult)
    assert tuple(res.dZ.shape) == (N, 2, layer.layout.size)
    assert tuple(res.dh0.shape) == (2, 3) and tuple(res.dc0.shape) == (2, 3)


class _Recording(ReferenceSweep):
    """A 'fast' sweep that is the reference, recording that it ran and how it was called."""

    name = "recording"

    def __init__(self, be):
        super().__init__(be)
        self.calls = []

    def forward(self, **kw):
        self.calls.append(("forward", sorted(kw)))
        return super().forward(**kw)

    def backward(self, **kw):
        self.calls.append(("backward", sorted(kw)))
        return super().backward(**kw)


class _MyCell(GravesCell):
    name = "mine"


class _RegisteringBackend(Backend):
    def __init__(self):
        super().__init__()
        self.recording = _Recording(self)

    def fast_sweeps(self):
        return {_MyCell: self.recording}


def test_a_registered_fast_sweep_is_the_one_the_layer_runs():
    be = _RegisteringBackend()
    layer = MDLSTM(1, 2, ndim=2, cell=_MyCell(), backend=be, dtype="float64")
    params = layer.init_params(np.random.default_rng(1))
    out, cache = layer.forward(params, np.ones((1, 2, 3, 1)))
    layer.backward(np.ones(out.shape), cache)
    assert cache.sweep is be.recording and cache.hot
    kinds = [k for k, _ in be.recording.calls]
    assert kinds == ["forward", "backward"]
    assert be.recording.calls[0][1] == ["c", "cell", "h", "layout", "mask", "params", "plan",
                                        "zx"]  # keyword arguments only


def test_a_cell_without_a_fast_sweep_falls_back_to_the_reference():
    be = _RegisteringBackend()
    layer = MDLSTM(1, 2, ndim=2, backend=be, cell="graves", dtype="float64")  # none registered
    out, cache = layer.forward(layer.init_params(np.random.default_rng(1)), np.ones((1, 2, 2, 1)))
    assert cache.sweep is be.reference_sweep and not cache.hot
    assert be.recording.calls == []
    for name in CPU_BACKENDS:  # a cell class no backend has heard of
        other = MDLSTM(1, 2, ndim=2, cell=_MyCell(), backend=name, dtype="float64")
        assert other.be.sweep_for(other.cell) is other.be.reference_sweep


# --------------------------------------------------------------------------- bounded memory
@pytest.mark.slow
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_thousand_grid_shapes_keep_memory_bounded(backend):
    """1,000 distinct grid shapes through one layer (the normal case for handwriting): every
    per-shape cache keeps at most ``cache_shapes`` shapes, so retained memory levels off."""
    layer = MDLSTM(1, 1, ndim=2, backend=backend, cell="graves", dtype="float64")
    params = layer.init_params(np.random.default_rng(0))
    shapes = [(a, b) for a in range(1, 41) for b in range(1, 26)]  # 1,000 distinct (a, b)
    order = np.random.default_rng(1).permutation(len(shapes))

    def run(i):
        S = shapes[order[i]]
        out, cache = layer.forward(params, np.ones((1, *S, 1)))
        layer.backward(out, cache)

    for i in range(200):  # warm: caches full, JIT compiled
        run(i)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(200, 1000):
            run(i)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    caches = layer.be.__dict__.get("_shape_caches", {})
    assert caches and all(len(c) <= layer.be.cache_shapes for c in caches.values())
    # unbounded, the same 800 shapes kept ~40 MB (plans of up to 1,000 cells each)
    assert grown < 4e6, f"retained {grown / 1e6:.1f} MB over 800 new shapes"


def test_lru_keeps_the_most_recent_entries():
    from mdlstm_np.backends.base import LRU

    lru, made = LRU(2), []
    for key in ["a", "b", "a", "c", "b"]:
        lru.get_or_make(key, lambda k=key: made.append(k) or k.upper())
    assert made == ["a", "b", "c", "b"]  # "a" was reused; "b" was dropped for "c", remade
    assert len(lru) == 2


# --------------------------------------------------------------------------- snapshots
def test_snapshot_minimal_case():
    """The issue's case: backward after the caller replaced params["W"] still gives dx at the
    W forward used (0.141257), not at the new one (0.246490)."""
    layer = MDLSTM(1, 1, ndim=1, cell="graves", dtype="float64")
    params = {"W": np.array([[0.5, 0.0, 0.0, 1.0]]), "U": np.zeros((1, 4)), "b": np.zeros(4)}
    out, cache = layer.forward(params, np.ones((1, 1, 1)))
    params["W"] = np.array([[0.5, 0.0, 0.0, 2.0]])
    dx, _ = layer.backward(np.ones((1, 1, 1)), cache)
    assert float(dx[0, 0, 0]) == pytest.approx(0.141257, abs=1e-6)


def _layers():
    yield "graves", lambda be: MDLSTM(2, 3, ndim=2, backend=be, cell="graves", dtype="float64")
    yield "peepholes", lambda be: MDLSTM(2, 3, ndim=2, peepholes=True, backend=be, dtype="float64")
    yield "stable", lambda be: MDLSTM(2, 3, ndim=2, cell="stable", backend=be, dtype="float64")
    yield "leakylp", lambda be: MDLSTM(2, 3, ndim=2, cell="leakylp", backend=be, dtype="float64")
    yield "ln", lambda be: MDLSTM(2, 3, ndim=2, ln=True, backend=be, dtype="float64")
    yield "ln-seed", lambda be: MDLSTM(2, 3, ndim=2, ln="seed", backend=be, dtype="float64")
    yield "multidir", lambda be: MultiDirectionalMDLSTM(2, 3, ndim=2, backend=be, cell="graves", dtype="float64")
    yield "horizontal", lambda be: HorizontalSDLSTM(2, 3, backend=be, dtype="float64")
    yield "snake", lambda be: SnakeSDLSTM(2, 3, backend=be, dtype="float64")
    yield "model", lambda be: build_model("MD_LSTM", in_channels=2, hidden=3, backend=be,
                                          dtype="float64")


LAYERS = list(_layers())


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("name, make", LAYERS, ids=[n for n, _ in LAYERS])
def test_backward_uses_the_parameters_forward_used(backend, name, make):
    layer = make(backend)
    rng = np.random.default_rng(3)
    params = layer.init_params(rng)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}
    x = rng.standard_normal((2, 3, 4, 2))
    out, cache = layer.forward(params, x)
    dout = rng.standard_normal(out.shape)
    dx_ref, g_ref = layer.backward(dout, layer.forward(dict(params), x)[1])
    for k in list(params):  # what an optimiser does: new arrays under the same keys
        params[k] = params[k] * 2.0 + 1.0
    dx, g = layer.backward(dout, cache)
    np.testing.assert_array_equal(dx, dx_ref)
    for k in g_ref:
        np.testing.assert_array_equal(g[k], g_ref[k], err_msg=k)
