"""The instability of Graves' cell in 2-D, and the bounded state of the stable and LeakyLP cells.

Saturated gates. With W = U = 0 and every bias 50, each sigmoid gate and the cell input are
exactly 1.0 in floating point (σ(50) and tanh(50) round to 1). Graves' cell then computes

    c(y, x) = 1 + c(y−1, x) + c(y, x−1),     c = 0 outside the grid,

so a(y, x) = c(y, x) + 1 obeys Pascal's rule a(y, x) = a(y−1, x) + a(y, x−1) with a = 1 on the
boundary, hence c(y, x) = C(y+x+2, y+1) − 1 (docs/equations.md): c(7, 7) = 12,869, and c(255, 255) =
C(512, 256) − 1 ≈ 4.7e152 on a 256×256 grid, past float32's 3.4e38 from wavefront ~130 on.

The stable cell mixes its predecessors convexly, so the same gates give
c(y, x) = 1 + (c(y−1, x) + c(y, x−1)) / 2: at most s + 1 on wavefront s = y + x (linear; the
first row is 2 − 2⁻ˣ). With forget gates ≤ f < 1 it is ≤ 1/(1 − f). LeakyLP stays in [−1, 1].

All runs are batch 1, hidden 1-2, numpy backend: a 256×256 sweep is 511 wavefronts, ~0.2 s.
"""

from math import comb

import numpy as np
import pytest

from mdlstm_np.mdlstm import MDLSTM

SAT = 50.0  # σ(50) == tanh(50) == 1.0 in float64 and float32


def constant_gates(cell, size, *, dtype="float64", f_bias=SAT, hidden=1, check_finite=False):
    """W = U = 0, all biases SAT except the forget gate's f_bias; zero input; size×size grid.

    Returns (c (size, size, hidden) in raster order, layer, params, out, cache). The layer's
    non-finite check is off by default here: these tests study the overflow itself.
    """
    layer = MDLSTM(1, hidden, 2, cell=cell, dtype=dtype, check_finite=check_finite)
    p = {k: np.zeros_like(v) for k, v in layer.init_params(np.random.default_rng(0)).items()}
    p["b"][:] = SAT
    p["b"][layer.layout.slice("f")] = f_bias
    x = np.zeros((1, size, size, 1), dtype=dtype)
    out, cache = layer.forward(p, x)
    return grid_state(cache, size, hidden), layer, p, out, cache


def grid_state(cache, size, hidden):
    host = cache.plan.host
    c_w = np.asarray(cache.sweep_cache.c)[:host.ncells][host.inverse]  # (N, 1, H), raster order
    return c_w.reshape(size, size, hidden)


def index_sum(size):
    y, x = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return y + x


# ------------------------------------------------------------------ Graves: binomial growth
def test_graves_state_is_binomial_exactly():
    """Every value below 2⁵³ is an exact integer, so the identity holds bit for bit."""
    size = 24  # largest value C(48, 24) − 1 ≈ 3.2e13 < 2⁵³
    c = constant_gates("graves", size)[0][..., 0]
    exact = np.array([[comb(y + x + 2, y + 1) - 1 for x in range(size)] for y in range(size)],
                     dtype=np.float64)
    assert c[7, 7] == 12869.0
    assert np.array_equal(c, exact)


def test_graves_state_grows_combinatorially_on_256x256():
    c = constant_gates("graves", 256)[0][..., 0]
    for y in (7, 31, 127, 255):
        exact = comb(2 * y + 2, y + 1) - 1
        assert abs(c[y, y] / exact - 1.0) < 1e-13, (y, c[y, y], exact)
    assert c[31, 31] > 1.8e18 and c[255, 255] > 4.7e152
    rows = [(y, x) for y in range(0, 256, 17) for x in range(0, 256, 13)]
    rel = max(abs(c[y, x] / (comb(y + x + 2, y + 1) - 1) - 1.0) for y, x in rows)
    assert rel < 1e-13


def test_graves_float32_overflows_to_inf_and_gradients_to_nan():
    """In float32 the state passes 3.4e38 on wavefront ~130; the backward then makes NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        c, layer, p, out, cache = constant_gates("graves", 256, dtype="float32")
        _, grads = layer.backward(np.ones_like(out), cache)
    c = c[..., 0]
    s_bad = index_sum(256)[~np.isfinite(c)]
    assert s_bad.size > 0
    big = float(np.finfo(np.float32).max)
    first = min(s for s in range(511) if comb(s + 2, (s + 2) // 2) - 1 > big)  # the first
    assert abs(int(s_bad.min()) - first) <= 1  # wavefront whose exact maximum overflows
    assert np.isfinite(c[index_sum(256) < first - 1]).all()
    assert np.isfinite(out).all()  # h = o ⊙ tanh(inf) = 1 hides it in the forward pass ...
    assert not all(np.isfinite(g).all() for g in grads.values())  # ... not in the backward


# ------------------------------------------------------------------ the stable cells
def test_stable_cell_grows_at_most_linearly_with_saturated_gates():
    c = constant_gates("stable", 256)[0][..., 0]
    s = index_sum(256)
    assert (c > 0).all() and (c <= s + 1).all()
    np.testing.assert_allclose(c[0, :40], 2.0 - 0.5 ** np.arange(40), rtol=1e-15)
    assert 400 < c.max() < 511  # ≈ 494: the expected exit time of a random walk, not 10¹⁵²


def test_leakylp_state_stays_in_unit_interval_with_saturated_gates():
    for f_bias in (0.0, 3.0, SAT):  # f = 1/2, 0.95, 1
        c = constant_gates("leakylp", 256, f_bias=f_bias)[0]
        assert np.abs(c).max() <= 1.0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forget_bias_one_blows_up_graves_but_not_the_stable_cells(dtype):
    """TensorFlow's forget bias 1.0 (f = 0.731) with saturated i, g: 2f > 1 paths per step."""
    f = 1.0 / (1.0 + np.exp(-1.0))
    with np.errstate(over="ignore"):
        graves = constant_gates("graves", 256, dtype=dtype, f_bias=1.0)[0]
    stable = constant_gates("stable", 256, dtype=dtype, f_bias=1.0)[0]
    leaky = constant_gates("leakylp", 256, dtype=dtype, f_bias=1.0)[0]
    if dtype == "float64":
        assert graves[255, 255, 0] > 1e83  # ≈ (2f)^510 / √s
    else:
        assert not np.isfinite(graves).all()
    eps = float(np.finfo(dtype).eps)
    assert stable.max() <= (1.0 / (1.0 - f)) * (1 + 8 * eps)  # 1 + e ≈ 3.718
    assert stable[255, 255, 0] > 3.7
    assert np.abs(leaky).max() <= 1.0


@pytest.mark.parametrize("scale", [0.5, 3.0])
@pytest.mark.parametrize("cell", ["stable", "leakylp"])
def test_random_weights_on_256x256_stay_bounded(cell, scale):
    """Random weights, large random input: LeakyLP |c| ≤ 1; stable ≤ min(s + 1, 1/(1 − max f)).

    (With scale 3 some forget gates saturate at exactly 1.0, and only s + 1 is left.)
    """
    rng = np.random.default_rng(11)
    layer = MDLSTM(2, 2, 2, cell=cell, dtype="float64")
    p = {k: scale * rng.standard_normal(v.shape) for k, v in layer.init_params(rng).items()}
    out, cache = layer.forward(p, 5.0 * rng.standard_normal((1, 256, 256, 2)))
    c = grid_state(cache, 256, 2)
    if cell == "leakylp":
        assert np.abs(c).max() <= 1.0 + 4 * np.finfo(np.float64).eps
    else:
        f_max = max(float(st.sig[..., layer.layout.slice("f")].max())
                    for st in cache.sweep_cache.steps)
        cap = 1.0 / (1.0 - f_max) if f_max < 1.0 else np.inf
        bound = np.minimum(index_sum(256) + 1, cap)
        assert (np.abs(c[..., 0]) <= bound * (1 + 1e-12)).all()
        assert (np.abs(c[..., 1]) <= bound * (1 + 1e-12)).all()
    assert np.isfinite(out).all()


# ------------------------------------------------------------------ the defaults (issue 9)
def _fresh_default_run(layer, side, seed=0):
    """A fresh default layer on a [0, 1) float32 image (1, side, side, 3), dout = 1."""
    rng = np.random.default_rng(seed)
    p = layer.init_params(rng)
    x = rng.random((1, side, side, 3), dtype=np.float32)
    out, cache = layer.forward(p, x)
    dx, grads = layer.backward(np.ones_like(out), cache)
    return out, cache, dx, grads


def test_defaults_are_the_stable_cell_forget_bias_one_float32():
    layer = MDLSTM(3, 8, ndim=2)
    assert (layer.cell.name, layer.forget_bias, layer.dtype) == ("stable", 1.0, "float32")
    assert MDLSTM(3, 8, ndim=2, ln=True).cell.name == "ln_fixed"  # ln and peepholes: Graves'
    assert MDLSTM(3, 8, ndim=2, peepholes=True).cell.name == "graves_peephole"
    assert MDLSTM(3, 8, ndim=2, cell="graves").cell.name == "graves"


@pytest.mark.slow
def test_defaults_are_finite_on_1024x1024_float32():
    """A fresh ``MDLSTM(3, 8, ndim=2)`` on a 1024×1024 [0, 1) float32 image: finite output and
    gradients (Graves' cell gives NaN gradients from 320×320 here). ~25 s, ~1.5 GB.

    Why it holds at every size up to this one, not only at this seed: the stable cell's state
    is bounded by construction, |c| ≤ s + 1 ≤ 2047 on wavefront s for any weights and input
    (``cells/stable.py``), and the carried-state Jacobian sums to f ≤ 1, so each unit of
    dout reaches every cell with total weight ≤ 1: the parameter gradients are sums over the
    N = side² cells of bounded terms, growing ~linearly in N. Measured max |∂L/∂b| / N here:
    1.19 (128²), 1.21 (256²), 1.22 (1024²) (2.5 for one scan of the 4-direction layer below);
    the test allows 8. float32's range (3.4e38) is 10³² times away.
    """
    side = 1024
    out, cache, dx, grads = _fresh_default_run(MDLSTM(3, 8, ndim=2), side)
    c = np.asarray(cache.sweep_cache.c)
    assert np.isfinite(out).all() and np.isfinite(dx).all() and np.isfinite(c).all()
    assert all(np.isfinite(g).all() for g in grads.values())
    assert np.abs(c).max() <= 2 * side - 1  # s + 1 on the last wavefront
    per_cell = float(np.abs(grads["b"]).max()) / side ** 2
    assert per_cell < 8.0, per_cell  # linear growth: ~1.2 per cell at every size measured


@pytest.mark.slow
def test_default_multidirectional_is_finite_on_512x512_float32():
    """``MultiDirectionalMDLSTM(3, 8, ndim=2)`` with defaults on 512×512 (4 scans: the work of
    one 1024×1024 scan, ~10 s). Each direction is a default MDLSTM on a flipped image, so the
    bounds of the test above hold per direction; the combine step only concatenates. Graves'
    cell gives NaN gradients from 244×244 with 4 directions (issue 9)."""
    from mdlstm_np.multidir import MultiDirectionalMDLSTM

    side = 512
    layer = MultiDirectionalMDLSTM(3, 8, ndim=2)
    out, cache, dx, grads = _fresh_default_run(layer, side, seed=1)
    assert out.dtype == np.float32 and np.isfinite(out).all() and np.isfinite(dx).all()
    for k, g in grads.items():
        assert np.isfinite(g).all(), k
    for inner in cache.caches:
        assert np.abs(np.asarray(inner.sweep_cache.c)).max() <= 2 * side - 1
    assert max(float(np.abs(grads[f"d{k}.b"]).max()) for k in layer.codes) / side ** 2 < 8.0  # 2.5


@pytest.mark.parametrize("side", [128, 256])
def test_default_gradient_grows_linearly_with_the_grid(side):
    """The per-cell size of max |∂L/∂b| is flat in the grid size (the argument above)."""
    _, _, _, grads = _fresh_default_run(MDLSTM(3, 8, ndim=2), side)
    per_cell = float(np.abs(grads["b"]).max()) / side ** 2
    assert 0.5 < per_cell < 8.0, per_cell
