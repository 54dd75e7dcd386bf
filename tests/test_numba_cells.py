"""Every cell's numba fast sweep (``backends/numba_cells.py`` through ``numba_driver.py``) against
the numpy reference: outputs and every gradient (the cell's own parameters, dh0, dc0 included),
n = 1, 2, 3, masks and initial state; finite differences per cell on the numba backend; and one
cell with the JIT disabled. The equality measure is ``test_numba.py``'s (see its docstring):
float64 ≤ 1e-12 of each array's maximum; float32 ≤ 1e-5 against float64 arithmetic, floor 1.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

numba = pytest.importorskip("numba")

from mdlstm_np.backends.numba import NumbaBackend, NumbaCellSweep  # noqa: E402
from mdlstm_np.backends.numba_cells import KERNELS  # noqa: E402
from mdlstm_np.cells import make_cell  # noqa: E402
from mdlstm_np.mdlstm import MDLSTM  # noqa: E402
from mdlstm_np.testing.gradcheck import check_layer  # noqa: E402
from test_numba import GRIDS, ROOT, compare_layers  # noqa: E402

# name -> MDLSTM keyword arguments (cell= always explicit: the layer's default may change)
CELLS = {
    "ln_fixed": dict(cell="graves", ln=True),
    "ln_seed": dict(cell="graves", ln="seed"),
    "stable": dict(cell="stable"),
    "leakylp": dict(cell="leakylp"),
    "peephole": dict(cell="graves", peepholes=True),
}


@pytest.fixture(scope="module", autouse=True)
def warm_jit():
    """Compile (or load from numba's cache) every cell's driver in both dtypes, once."""
    for kw in CELLS.values():
        for dt in ("float32", "float64"):
            layer = MDLSTM(1, 2, ndim=2, backend="numba", dtype=dt, **kw)
            p = layer.init_params(np.random.default_rng(0))
            x = np.random.default_rng(1).standard_normal((2, 2, 2, 1)).astype(dt)
            out, cache = layer.forward(p, x, h0=np.ones((2, 2), dt), c0=np.ones((2, 2), dt))
            layer.backward(out, cache, return_state=True)


def pair(C, H, n, dt, name, be=None):
    """numpy and numba layers of cell ``name``."""
    return (MDLSTM(C, H, ndim=n, backend="numpy", dtype=dt, **CELLS[name]),
            MDLSTM(C, H, ndim=n, backend=be or NumbaBackend(), dtype=dt, **CELLS[name]))


def perturbed(layer, rng, dt):
    """Initial parameters with every non-matrix entry (b, the cell's own) moved off its
    initial value (gains 1, shifts and peepholes 0 would hide errors in their gradients)."""
    p = layer.init_params(rng)
    for k, v in p.items():
        if k not in ("W", "U"):
            p[k] = (v + 0.5 * rng.standard_normal(v.shape)).astype(dt)
    return p


def smallest_ln_spread(layer, p, x, **kw):
    """min over every layer norm of every cell of s = sqrt(var + κ) (reference forward)."""
    steps = layer.forward(p, x, **kw)[1].sweep_cache.steps
    return 1.0 / max(max(float(s.gate_ln.inv_s.max()), float(s.cell_ln.inv_s.max()))
                     for s in steps)


def draw_inputs(ref, rng, name, shape, dt, H, state, sizes):
    """(p, x, kw) for cell ``name``, or None; for the seed's layer norm, redrawn until every LN
    has a spread s ≥ 0.2 (``test_layernorm._non_degenerate_seed_draw``): near s = √ε the seed's cell
    amplifies by up to 1/√ε per layer norm, so float32 rounding would dominate any comparison."""
    for _ in range(50):
        p = perturbed(ref, rng, dt)
        x = rng.standard_normal(shape).astype(dt)
        kw = {}
        if state:
            kw["h0"] = rng.standard_normal((shape[0], H)).astype(dt)
            kw["c0"] = rng.standard_normal((shape[0], H)).astype(dt)
        if sizes is not None:
            kw["sizes"] = sizes
        if name != "ln_seed":
            return p, x, kw
        p["W"] = rng.uniform(-2, 2, p["W"].shape).astype(dt)
        p["U"] = rng.uniform(-2, 2, p["U"].shape).astype(dt)
        p["ln_gain"] = rng.uniform(1, 2, p["ln_gain"].shape).astype(dt)
        if smallest_ln_spread(ref, p, x, **kw) >= 0.2:
            return p, x, kw
    return None  # (the tests below: hypothesis draws another case, the others fail)


@pytest.mark.parametrize("name", sorted(CELLS))
@given(S=GRIDS, B=st.integers(1, 3), H=st.integers(1, 3), C=st.integers(1, 2),
       dt=st.sampled_from(["float64", "float32"]), state=st.booleans(), masked=st.booleans(),
       seed=st.integers(0, 2**16))
def test_equals_numpy(name, S, B, H, C, dt, state, masked, seed):
    if name.startswith("ln"):  # a layer norm over one entry is constant (nothing to compare),
        H = max(H, 3)  # and over two the seed's is rarely non-degenerate in every cell
    if name == "ln_seed":  # one channel: z = x W is x times a constant vector, so the seed's
        C = 2  # (scale-invariant) layer norm makes ∂L/∂x ≈ 0 on a one-cell grid
    n = len(S)
    rng = np.random.default_rng(seed)
    ref, fast = pair(C, H, n, dt, name)
    sizes = (np.stack([rng.integers(1, s + 1, size=B) for s in S], axis=1) if masked
             else None)
    draw = draw_inputs(ref, rng, name, (B, *S, C), dt, H, state, sizes)
    assume(draw is not None)
    p, x, kw = draw
    dout = rng.standard_normal((B, *S, H)).astype(dt)
    compare_layers(ref, fast, p, x, dout, dt, **kw)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_larger_grid_with_everything(name, dt):
    """A 2-D grid with several wavefronts of several cells, masks, initial state, H = 8 (the
    layer norm's 8-way sums take their unrolled path)."""
    rng = np.random.default_rng(21)
    ref, fast = pair(2, 8, 2, dt, name)
    B = 3
    p, x, kw = draw_inputs(ref, rng, name, (B, 6, 5, 2), dt, 8, True,
                           np.array([[6, 5], [3, 5], [6, 2]]))
    compare_layers(ref, fast, p, x, rng.standard_normal((B, 6, 5, 8)).astype(dt), dt, **kw)


@pytest.mark.parametrize("name", ["stable", "leakylp"])
@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize("n", [2, 3])
def test_mixture_where_every_lambda_rounds_to_zero(name, dt, n):
    """z_λ = −1000 and −5 in the same run: the λ-mixture takes its exact log-sigmoid branch
    (Σ λ < ½, σ(−1000) = 0 would give 0/0) in some entries and the fast one elsewhere."""
    rng = np.random.default_rng(5)
    ref, fast = pair(2, 4, n, dt, name)
    p = perturbed(ref, rng, dt)
    lam = ref.layout.slice("lam")
    p["b"][lam] = np.where(np.arange(lam.stop - lam.start) % 3 == 0, -1000.0, -5.0).astype(dt)
    x = rng.standard_normal((2, *(3,) * (n - 1), 2, 2)).astype(dt)
    errs = compare_layers(ref, fast, p, x, rng.standard_normal((*x.shape[:-1], 4)).astype(dt),
                          dt)
    assert all(np.isfinite(v) for v in errs.values())


@pytest.mark.parametrize("name", ["stable", "peephole"])
@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_batch_chunks_on_threads(name, dt):
    """Forced batch chunks on threads: the parameter-free stable cell splits, the peephole
    cell (own gradient accumulators) runs as one chunk; both equal numpy."""
    rng = np.random.default_rng(11)
    ref, fast = pair(2, 3, 2, dt, name, be=NumbaBackend(threads=3, min_work=0))
    B = 5
    p, x, kw = draw_inputs(ref, rng, name, (B, 4, 3, 2), dt, 3, True,
                           np.array([[4, 3], [2, 3], [4, 1], [1, 1], [3, 2]]))
    compare_layers(ref, fast, p, x, rng.standard_normal((B, 4, 3, 3)).astype(dt), dt, **kw)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("n, shape, state, sizes", [
    (1, (4,), True, None),
    (2, (2, 3), True, np.array([[2, 3], [1, 2]])),
    (3, (2, 1, 2), False, None),
])
def test_finite_differences_on_numba(name, n, shape, state, sizes):
    rng = np.random.default_rng(7)
    layer = MDLSTM(2, 3, ndim=n, backend="numba", dtype="float64", **CELLS[name])
    assert layer.be.sweep_for(layer.cell).name.startswith("numba-")
    p, x, kw = draw_inputs(MDLSTM(2, 3, ndim=n, dtype="float64", **CELLS[name]), rng, name,
                           (2, *shape, 2), "float64", 3, state, sizes)
    errs = check_layer(layer, p, x, rng, mode="element", h=1e-4, **kw)
    assert max(errs.values()) <= 1e-6, errs


def test_every_cell_is_registered():
    be = NumbaBackend()
    for kw in CELLS.values():
        cell = make_cell(kw["cell"], peepholes=kw.get("peepholes", False),
                         ln=kw.get("ln", False))
        sweep = be.sweep_for(cell, masked=True)
        assert isinstance(sweep, NumbaCellSweep) and sweep.k is KERNELS[type(cell)]

    class Variant(type(make_cell("stable"))):
        pass

    assert be.sweep_for(Variant()) is be.reference_sweep


@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_cell_fuses_the_weight_gradients_into_its_backward(name):
    """Step 1a' (dW, dU, db, dx) runs inside the numba backward for every cell, the
    layer-norm cells (no bias b: ``fused.b`` is None) included; before, they fell back to the
    whole-grid matmuls after the sweep (~12 ms of a 32×32 MD_LSTM step)."""
    rng = np.random.default_rng(0)
    layer = MDLSTM(2, 3, ndim=2, backend=NumbaBackend(), dtype="float64", **CELLS[name])
    p = layer.init_params(rng)
    _, cache = layer.forward(p, rng.standard_normal((2, 3, 4, 2)))
    res = cache.sweep.backward(cell=layer.cell, layout=layer.layout, plan=cache.plan,
                               dout_w=rng.standard_normal((12, 2, 3)), cache=cache.sweep_cache,
                               params=p, grads={k: np.zeros_like(v) for k, v in p.items()},
                               want_state=False, mask=None, x_w=cache.x_w)
    assert res.fused is not None
    assert (res.fused.b is None) == ("b" not in p)
    assert res.fused.W.shape == p["W"].shape and res.fused.U.shape == p["U"].shape


def test_stable_cell_runs_with_jit_disabled():
    """The driver and the cell functions are plain Python under NUMBA_DISABLE_JIT=1."""
    code = textwrap.dedent("""
        import numpy as np
        from mdlstm_np.mdlstm import MDLSTM
        rng = np.random.default_rng(0)
        for dt, tol in (("float64", 1e-12), ("float32", 1e-5)):
            ref = MDLSTM(2, 3, ndim=2, backend="numpy", dtype=dt, cell="stable")
            fast = MDLSTM(2, 3, ndim=2, backend="numba", dtype=dt, cell="stable")
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
                assert np.max(np.abs(a - b)) <= tol * max(np.max(np.abs(b)), 1.0)
        print("JIT-DISABLED-OK")
    """)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=ROOT)
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "JIT-DISABLED-OK" in res.stdout


@pytest.mark.parametrize("cell", ["stable", "leakylp", "graves", "ln"])
def test_padded_cells_hold_zero_state_in_the_cache(cell):
    """Fault: a numba sweep leaving c non-zero at padded cells (outside a sample's box).
    Outputs and gradients cannot show it (the mask zeroes them), the cache can: at every
    padded cell h and c are exactly 0, as in the reference, and inside every box they equal it."""
    from mdlstm_np import MDLSTM

    kw = dict(ln="fixed") if cell == "ln" else dict(cell=cell)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5, 2))
    sizes = np.array([[4, 5], [2, 3], [3, 1]])
    caches = {}
    for be in ("numpy", "numba"):
        layer = MDLSTM(2, 3, backend=be, dtype="float64", **kw)
        params = layer.init_params(np.random.default_rng(0))
        _, cache = layer.forward(params, x, sizes=sizes)
        caches[be] = cache
    mask = np.asarray(caches["numpy"].mask)[..., 0] == 0          # (N, B) padded cells
    assert mask.any()
    for field in ("h", "c"):
        ref = np.asarray(getattr(caches["numpy"].sweep_cache, field))[:-1]   # (N, B, H)
        got = np.asarray(getattr(caches["numba"].sweep_cache, field))
        got = got.reshape(ref.shape[0] + 1, ref.shape[1], -1)[:-1] if got.ndim == 2 \
            else got[:-1]
        assert (ref[mask] == 0).all()
        assert (got[mask] == 0).all(), f"{field} non-zero at padded cells"
        np.testing.assert_allclose(got[~mask], ref[~mask], rtol=1e-12, atol=1e-12)
