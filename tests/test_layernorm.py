"""Layer norm and the layer-normalised MD-LSTM cell: finite-difference checks (float64).

The "fixed" cell is checked on every kind of input grid_inputs draws, exactly-zero inputs and
zero corners included, with the initial parameters (zero shifts: the degenerate case) or
perturbed ones. The "seed" cell is checked on non-degenerate inputs only: at exact zeros its
derivative is mathematically defined but ~(1/√ε)^k large and varies on the scale √ε ≈ 3e-3,
so a finite difference with step 1e-3 measures something else (pinned below).
"""

import numpy as np
import pytest
from hypothesis import assume, example, given, strategies as st

from mdlstm_np.backends import Backend
from mdlstm_np.cells import make_cell
from mdlstm_np.cells.layernorm import LayerNormCell
from mdlstm_np.testing.gradcheck import check_gradients, check_layer
from mdlstm_np.norm import layer_norm, layer_norm_backward
from mdlstm_np.mdlstm import MDLSTM
from strategies import grid_inputs

TOL = 1e-6
LN_KEYS = {"ln_gain", "ln_shift", "ln_c_gain", "ln_c_shift"}


# ----------------------------------------------------------------- the LN primitive
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       kappa=st.sampled_from([1e-5, 1e-2, 1.0]), constant=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_layer_norm_backward_per_element(shape, kappa, constant, seed):
    """(★) against central differences, for a, gain and shift; constant vectors (variance 0,
    the degenerate case) only with κ = 1, where the map is smooth on the unit scale."""
    rng = np.random.default_rng(seed)
    H = shape[-1]
    if constant:  # every vector constant: variance exactly 0
        kappa = 1.0
        a = np.zeros(shape) + rng.standard_normal(shape[:-1] + [1])
    else:  # entries at least 0.4 apart: spread ≫ √κ for every κ drawn
        a = rng.permuted(np.broadcast_to(np.arange(H, dtype=float), shape), axis=-1) \
            + rng.uniform(-0.3, 0.3, shape)
    arrs = {"a": a, "gain": rng.uniform(0.5, 1.5, shape[-1:]),
            "shift": rng.standard_normal(shape[-1:])}
    w = rng.standard_normal(shape)
    xp = np
    f = lambda: float((layer_norm(xp, arrs["a"], arrs["gain"], arrs["shift"], kappa)[0]
                       * w).sum())
    _, cache = layer_norm(xp, arrs["a"], arrs["gain"], arrs["shift"], kappa)
    da, dg, ds = layer_norm_backward(xp, w, cache)
    errors = check_gradients(f, arrs, {"a": da, "gain": dg, "shift": ds})
    assert max(errors.values()) <= TOL, errors


@pytest.mark.parametrize("kappa", [1e-5, 1.0])
@pytest.mark.parametrize("spread", [0.0, 1e-3, 1.0, 30.0])
def test_layer_norm_jacobian_norm_is_one_over_s(kappa, spread, rng):
    """The docstring's bound: ‖∂â/∂a‖₂ = 1/sqrt(var + κ) exactly, maximal (1/√κ) at variance 0."""
    H = 6
    a = 0.7 + spread * rng.standard_normal(H)
    _, cache = layer_norm(np, a, np.ones(H), np.zeros(H), kappa)
    J = np.stack([layer_norm_backward(np, e, cache)[0] for e in np.eye(H)])  # symmetric
    var = ((a - a.mean()) ** 2).mean()
    np.testing.assert_allclose(np.linalg.norm(J, 2), 1.0 / np.sqrt(var + kappa), rtol=1e-10)


# ----------------------------------------------------------------- the cell's interface
def test_ln_cell_parameters_and_registry():
    layer = MDLSTM(2, 3, 2, ln=True, dtype="float64")
    assert isinstance(layer.cell, LayerNormCell) and layer.cell.formulation == "fixed"
    assert MDLSTM(2, 3, 2, ln="fixed", dtype="float64").cell.formulation == "fixed"
    assert MDLSTM(2, 3, 2, ln="seed", dtype="float64").cell.kappa == 1e-5
    shapes = layer.param_shapes()
    assert "b" not in shapes  # the LN shifts are the biases
    assert shapes == {"W": (2, 15), "U": (6, 15), "ln_gain": (5, 3), "ln_shift": (5, 3),
                      "ln_c_gain": (3,), "ln_c_shift": (3,)}
    p = layer.init_params(np.random.default_rng(0))
    assert (p["ln_gain"] == 1).all() and (p["ln_c_gain"] == 1).all()
    assert (p["ln_shift"] == 0).all() and (p["ln_c_shift"] == 0).all()


@pytest.mark.parametrize("kwargs, what", [
    ({"formulation": "tf"}, "formulation"), ({"tau": 0.0}, "tau"),
    ({"tau": float("nan")}, "tau"), ({"eps": -1e-5}, "eps"), ({"tau": True}, "tau")])
def test_ln_cell_rejects_bad_options(kwargs, what):
    with pytest.raises(ValueError, match=what):
        LayerNormCell(**kwargs)


def test_ln_cell_unknown_parameter_name():
    with pytest.raises(KeyError, match="ln_gain"):
        LayerNormCell().init_value("gamma", (3,))


def test_ln_cell_with_unit_gain_matches_hand_computation(rng):
    """One cell, n = 2, fixed: the forward equations typed out with numpy."""
    cell, H = make_cell(ln=True), 4
    lay = cell.layout(2, H)
    z = rng.standard_normal((1, 1, 5 * H))
    c_up, c_left = rng.standard_normal((2, 1, 1, H))
    p = {"ln_gain": rng.uniform(0.5, 2, (5, H)), "ln_shift": rng.standard_normal((5, H)),
         "ln_c_gain": rng.uniform(0.5, 2, H), "ln_c_shift": rng.standard_normal(H)}
    h, c, _ = cell.forward(Backend(), lay, z, [c_up, c_left], p)

    def ln(a, g, s):  # sqrt(var + τ²), τ = 1
        return (a - a.mean()) / np.sqrt(a.var() + 1.0) * g + s

    blocks = [ln(z[0, 0, j * H:(j + 1) * H], p["ln_gain"][j], p["ln_shift"][j]) for j in range(5)]
    sg = lambda v: 1 / (1 + np.exp(-v))
    i, f1, f2, o = (sg(b) for b in blocks[:4])
    g = np.tanh(blocks[4])
    c_want = i * g + f1 * c_up[0, 0] + f2 * c_left[0, 0]
    np.testing.assert_allclose(c[0, 0], c_want, rtol=1e-12)
    np.testing.assert_allclose(h[0, 0], o * np.tanh(ln(c_want, p["ln_c_gain"], p["ln_c_shift"])),
                               rtol=1e-12)


# ----------------------------------------------------------------- finite differences
def _perturbed(params, rng):
    """Non-trivial LN parameters (gains away from 1, non-zero shifts)."""
    p = dict(params)
    for k in LN_KEYS:
        p[k] = p[k] + rng.uniform(-0.5, 0.5, p[k].shape)
    return p


@pytest.mark.slow
@given(data=grid_inputs(max_side=4, max_batch=2, max_channels=2, max_cells=12),
       hidden=st.integers(1, 3), seed=st.integers(0, 2**31 - 1), perturb=st.booleans())
def test_fixed_ln_gradients_per_element(data, hidden, seed, perturb):
    """Fixed formulation, n = 1, 2, 3, exactly-zero inputs and zero corners included; with the
    initial parameters (zero shifts) an all-zero input makes every LN see a constant vector."""
    x, n = data
    rng = np.random.default_rng(seed)
    layer = MDLSTM(x.shape[-1], hidden, n, ln=True, dtype="float64")
    params = layer.init_params(rng)
    if perturb:
        params = _perturbed(params, rng)
    errors = check_layer(layer, params, x, rng)
    assert set(errors) == {"W", "U", "x"} | LN_KEYS
    assert max(errors.values()) <= TOL, errors


def _smallest_ln_spread(cache):
    """min over every LN of every cell of s = sqrt(var + κ), from a forward cache."""
    steps = cache.sweep_cache.steps
    return 1.0 / max(max(float(st_.gate_ln.inv_s.max()), float(st_.cell_ln.inv_s.max()))
                     for st_ in steps)


def _non_degenerate_seed_draw(layer, shape, rng, min_spread=0.2, tries=50):
    """(params, x) for the seed's cell with every LN spread s ≥ min_spread, or None.

    Inputs ~ N(0, 1), weights ~ U(±2), gate gains ~ U(1, 2), non-zero shifts; redrawn until
    the smallest s = sqrt(var + ε) over all LNs of all cells is ≥ min_spread (~5 draws)."""
    for _ in range(tries):
        x = rng.standard_normal(shape)
        p = layer.init_params(rng)
        p["W"] = rng.uniform(-2, 2, p["W"].shape)
        p["U"] = rng.uniform(-2, 2, p["U"].shape)
        p["ln_gain"] = rng.uniform(1, 2, p["ln_gain"].shape)
        p["ln_shift"] = rng.uniform(-1, 1, p["ln_shift"].shape)
        p["ln_c_gain"] = rng.uniform(0.5, 1.5, p["ln_c_gain"].shape)
        p["ln_c_shift"] = rng.uniform(-0.5, 0.5, p["ln_c_shift"].shape)
        if _smallest_ln_spread(layer.forward(p, x)[1]) >= min_spread:
            return p, x
    return None


@pytest.mark.slow
@given(n=st.sampled_from([1, 2, 3]),
       sides=st.lists(st.integers(1, 3), min_size=3, max_size=3)
       .filter(lambda s: s[0] * s[1] * s[2] <= 12),
       batch=st.integers(1, 2), channels=st.integers(1, 2), hidden=st.integers(3, 4),
       seed=st.integers(0, 2**31 - 1))
@example(n=3, sides=[3, 1, 3], batch=2, channels=2, hidden=3, seed=2181)  # 1.0e-6 at h = 5e-4
@example(n=3, sides=[2, 2, 3], batch=2, channels=2, hidden=4, seed=1929)  # 1.6e-4 at h = 5e-4
def test_seed_ln_gradients_per_element_non_degenerate(n, sides, batch, channels, hidden, seed):
    """The seed's formulation (ε = 1e-5), away from its degenerate points.

    Candidly: "non-degenerate" has to be enforced. Even on random N(0, 1) inputs a few of the
    hundreds of H-vectors a small grid normalises have a spread of ~0.01, where the seed's LN
    varies on the scale of the FD step and the check reads 1e-5…1e-3. The fixed cell needs no
    such care (test_fixed_ln_gradients_per_element draws anything, zeros included).

    The step. Draws that pass the filter still have LN spreads down to s = 0.2 with gains up
    to 2 and weights up to 2: every cell rescales its pre-activations by up to ~2·2/0.2 = 20,
    so the function bends ~20× faster than at unit scale and the stencil's truncation error
    (≈ h⁴ f⁽⁵⁾/30) dominates. At h = 5e-4 it reached 1e-6…3e-4 on ~1 draw in 300 (the two
    examples above; errors falling 16× per halving of h: truncation, not a wrong gradient).
    At h = 1e-4 truncation is 625× smaller (the second example: 3.4e-8), while rounding stays
    ~1e-10 (|f| ≤ 100); over 150 random draws the worst error was 1e-8."""
    rng = np.random.default_rng(seed)
    layer = MDLSTM(channels, hidden, n, ln="seed", dtype="float64")
    draw = _non_degenerate_seed_draw(layer, (batch, *sides[:n], channels), rng)
    assume(draw is not None)
    errors = check_layer(layer, *draw, rng, h=1e-4)
    assert max(errors.values()) <= TOL, errors


def test_seed_ln_finite_differences_at_exact_zero_measure_something_else(rng):
    """Documents what FD does at the seed's degenerate point (all-zero input, initial
    parameters). The function is smooth (ε > 0) and our backward pass gives its derivative:
    on one cell, a step far below √ε ≈ 3e-3 agrees. But the step 1e-3 is not small on that
    scale, so it disagrees completely; and each further cell multiplies the derivative by
    ~1/ε and shrinks the region where the function is linear by as much, so on three cells
    no step that float64 can resolve agrees."""
    x1, x3 = np.zeros((1, 1, 1)), np.zeros((1, 3, 1))
    layer = MDLSTM(1, 3, 1, ln="seed", dtype="float64")
    params = layer.init_params(rng)
    fd = lambda x, h: check_layer(layer, params, x, np.random.default_rng(0), h=h)["x"]
    assert fd(x1, 1e-3) > 0.1
    assert fd(x1, 1e-7) <= TOL
    assert fd(x3, 1e-3) > 0.1 and fd(x3, 1e-6) > 0.1


@pytest.mark.parametrize("ln", ["fixed", "seed"])
@pytest.mark.parametrize("shape", [(2, 6, 7, 2), (1, 3, 4, 5, 2), (2, 12, 3)])
def test_ln_directional_derivative_larger_grids(ln, shape, rng):
    n = len(shape) - 2
    layer = MDLSTM(shape[-1], 5, n, ln=ln, dtype="float64")
    params = _perturbed(layer.init_params(rng), rng)
    x = rng.standard_normal(shape)
    assert check_layer(layer, params, x, rng, mode="direction")["direction"] <= TOL


def test_gradcheck_catches_a_wrong_ln_backward(rng, monkeypatch):
    """The checks can fail: drop the â·mean(dâ⊙â) term of (★) and the cell test notices."""
    import mdlstm_np.cells.layernorm as mod

    def wrong(xp, dy, cache):
        da, dg, ds = layer_norm_backward(xp, dy, cache)
        mean_dh = xp.mean(dy * cache.gain * cache.a_hat, axis=-1, keepdims=True)
        return da + cache.a_hat * mean_dh * cache.inv_s, dg, ds

    monkeypatch.setattr(mod, "layer_norm_backward", wrong)
    layer = MDLSTM(2, 3, 2, ln=True, dtype="float64")
    params = _perturbed(layer.init_params(rng), rng)
    x = rng.standard_normal((1, 3, 3, 2))
    assert max(check_layer(layer, params, x, rng).values()) > 1e-3


def test_ln_cell_on_a_strict_array_api_backend(rng):
    """Same numbers through array_api_strict: no stray numpy call in the cell or LN."""
    pytest.importorskip("array_api_strict")
    from mdlstm_np.backends.strict import StrictBackend

    be = StrictBackend()
    for ln in ("fixed", "seed"):
        ref, strict = MDLSTM(2, 3, 2, ln=ln, dtype="float64"), MDLSTM(2, 3, 2, ln=ln, backend=be, dtype="float64")
        params = _perturbed(ref.init_params(rng), rng)
        x, dout = rng.standard_normal((2, 3, 4, 2)), rng.standard_normal((2, 3, 4, 3))
        out, cache = ref.forward(params, x)
        dx, grads = ref.backward(dout, cache)
        sp = {k: be.asarray(v, dtype="float64") for k, v in params.items()}
        out_s, cache_s = strict.forward(sp, be.asarray(x, dtype="float64"))
        dx_s, grads_s = strict.backward(be.asarray(dout, dtype="float64"), cache_s)
        np.testing.assert_allclose(be.to_numpy(out_s), out, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(be.to_numpy(dx_s), dx, rtol=1e-12, atol=1e-14)
        for k in grads:
            np.testing.assert_allclose(be.to_numpy(grads_s[k]), grads[k], rtol=1e-12,
                                       atol=1e-14)
