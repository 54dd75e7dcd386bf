"""Classification read-outs and softmax cross-entropy (mdlstm_np/readout.py): float64 finite-
difference checks with and without per-sample sizes (n = 1, 2, 3), what each read-out reads,
padding invariance, stable numerics, and the input errors."""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mdlstm_np import MultiDirectionalMDLSTM, get_backend
from mdlstm_np.testing.gradcheck import check_gradients, check_layer, directional_check
from mdlstm_np.readout import (READOUTS, LastCellReadout, MeanPoolReadout, SumScoresReadout,
                               softmax_cross_entropy)

BE = get_backend("numpy")
TOL = 1e-6
KINDS = sorted(READOUTS)


@st.composite
def readout_cases(draw):
    """(h (B, *S, F), sizes (B, n) or None, K, seed): tiny grids, n = 1, 2, 3."""
    n = draw(st.integers(1, 3))
    S = tuple(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)))
    B, F, K = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    sizes = None
    if draw(st.booleans()):
        sizes = np.array([[draw(st.integers(1, s)) for s in S] for _ in range(B)])
    h = np.random.default_rng(seed).standard_normal((B, *S, F))
    return h, sizes, K, seed


def _params(readout, rng):
    p = readout.init_params(rng)
    p["a"] = rng.standard_normal(p["a"].shape)           # a non-zero bias: test da for real
    return p


@pytest.mark.parametrize("kind", KINDS)
@given(case=readout_cases())
def test_readout_gradients(kind, case):
    h, sizes, K, seed = case
    rng = np.random.default_rng(seed + 1)
    readout = READOUTS[kind](h.shape[-1], K, backend="numpy", dtype="float64")
    errs = check_layer(readout, _params(readout, rng), h, rng, sizes=sizes)
    assert max(errs.values()) <= TOL, errs


@pytest.mark.parametrize("kind", KINDS)
def test_readout_gradients_digit_shape_with_sizes(kind):
    rng = np.random.default_rng(0)
    readout = READOUTS[kind](5, 10, backend="numpy", dtype="float64")
    h = rng.standard_normal((3, 8, 8, 5))
    sizes = np.array([[8, 8], [3, 5], [1, 1]])
    errs = check_layer(readout, _params(readout, rng), h, rng, sizes=sizes)
    assert max(errs.values()) <= TOL, errs


@given(B=st.integers(1, 4), K=st.integers(1, 5), seed=st.integers(0, 2**16),
       scale=st.sampled_from([0.0, 1.0, 30.0]))
@example(B=1, K=2, seed=2, scale=30.0)  # read 1.1e-6 with the default step 1e-4
def test_softmax_cross_entropy_gradient_and_value(B, K, seed, scale):
    """Value against a direct log-softmax, gradient against central differences.

    The step is 1e-3, not gradcheck's 1e-4: every derivative of log-sum-exp is bounded by a
    small constant on the unit scale of z, so truncation stays ~h⁴ ≈ 1e-12, while each loss
    value carries the rounding of the cancellation z_y − lse(z), ~ε·|z| ≈ 1e-14 at |z| ≈ 30,
    which the quotient divides by h. With logits ×30 a gradient of ~5e-10 (a confident right
    answer) is then compared on the 1e-6 floor: 1.1e-6 at h = 1e-4 (the example above; worst
    1.3e-6 over 3,000 draws), 1.3e-7 at 1e-3 (worst over the same draws)."""
    rng = np.random.default_rng(seed)
    z = scale * rng.standard_normal((B, K))
    y = rng.integers(0, K, size=B)
    loss, dz = softmax_cross_entropy(BE, z, y)
    logp = z - z.max(axis=1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
    assert float(loss) == pytest.approx(-logp[np.arange(B), y].mean(), rel=1e-12, abs=1e-12)
    errs = check_gradients(lambda: float(softmax_cross_entropy(BE, z, y)[0]), {"z": z},
                           {"z": dz}, h=1e-3)
    assert errs["z"] <= TOL, errs


def test_softmax_cross_entropy_extreme_logits_stay_finite():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # underflow to 0 is fine
        loss, dz = softmax_cross_entropy(BE, z, np.array([1, 2]))
    # row 0: p = (1, 0, 0), label 1 -> −log p = 2e4; row 1: uniform -> log 3
    assert float(loss) == pytest.approx((2e4 + np.log(3)) / 2)
    np.testing.assert_allclose(dz, np.array([[1, -1, 0], [1 / 3, 1 / 3, -2 / 3]]) / 2,
                               atol=1e-15)
    z32 = np.array([[88.0, -88.0]], dtype=np.float32)
    loss32, dz32 = softmax_cross_entropy("numpy", z32, np.array([0], dtype=np.int32))
    assert loss32.dtype == np.float32 and dz32.dtype == np.float32 and np.isfinite(loss32)


def test_softmax_cross_entropy_bad_labels():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 2\].*\[0, 3\]"):
        softmax_cross_entropy(BE, z, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 2\].*\[-1, 1\]"):
        softmax_cross_entropy(BE, z, np.array([-1, 1]))
    with pytest.raises(TypeError, match="labels: expected an integer array.*float64"):
        softmax_cross_entropy(BE, z, np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="labels: expected an integer array.*bool"):
        softmax_cross_entropy(BE, z, np.array([True, False]))
    with pytest.raises(ValueError, match=r"labels: expected shape \(2,\).*\(3,\)"):
        softmax_cross_entropy(BE, z, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="labels: expected an integer array of shape.*list"):
        softmax_cross_entropy(BE, z, [0, 1])
    with pytest.raises(ValueError, match=r"logits: expected shape \(B, K\)"):
        softmax_cross_entropy(BE, np.zeros(3), np.array([0]))
    with pytest.raises(TypeError, match="logits: expected float32 or float64"):
        softmax_cross_entropy(BE, np.zeros((2, 3), dtype=np.int64), np.array([0, 1]))


# ----------------------------------------------------------------- what each read-out reads
def test_last_cell_reads_each_samples_own_last_cell(rng):
    ro = LastCellReadout(4, 3, dtype="float64")
    p = _params(ro, rng)
    h = rng.standard_normal((2, 5, 6, 4))
    z, _ = ro.forward(p, h)
    np.testing.assert_allclose(z, h[:, 4, 5] @ p["V"] + p["a"], rtol=1e-13)
    z, _ = ro.forward(p, h, sizes=np.array([[5, 6], [2, 3]]))
    np.testing.assert_allclose(z[1], h[1, 1, 2] @ p["V"] + p["a"], rtol=1e-13)


def test_sum_is_box_size_times_mean_and_scores_are_per_cell(rng):
    """(b) = |b| · (c) with the same weights: the identity the module docstring derives."""
    h = rng.standard_normal((3, 4, 5, 2))
    sizes = np.array([[4, 5], [2, 3], [1, 1]])
    s, m = SumScoresReadout(2, 3, dtype="float64"), MeanPoolReadout(2, 3, dtype="float64")
    p = _params(s, rng)
    zs, _ = s.forward(p, h, sizes=sizes)
    zm, _ = m.forward(p, h, sizes=sizes)
    np.testing.assert_allclose(zs, sizes.prod(axis=1)[:, None] * zm, rtol=1e-12)
    u = s.scores(p, h)                                       # (3, 4, 5, 3)
    np.testing.assert_allclose(zs[1], u[1, :2, :3].sum(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(zm[1], h[1, :2, :3].mean(axis=(0, 1)) @ p["V"] + p["a"],
                               rtol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_padding_is_ignored_and_gets_no_gradient(kind, rng):
    ro = READOUTS[kind](3, 4, dtype="float64")
    p = _params(ro, rng)
    h = rng.standard_normal((2, 3, 4, 5, 3))                 # 3-D grid
    sizes = np.array([[3, 4, 5], [2, 1, 3]])
    z, cache = ro.forward(p, h, sizes=sizes)
    h2 = h.copy()
    h2[1, 2:] = 99.0
    h2[1, :, 1:] = 99.0
    h2[1, :, :, 3:] = 99.0
    np.testing.assert_array_equal(ro.forward(p, h2, sizes=sizes)[0], z)
    alone, _ = ro.forward(p, np.ascontiguousarray(h[1:, :2, :1, :3]))  # sample 1 cropped
    np.testing.assert_allclose(z[1:], alone, rtol=1e-12)
    dh, _ = ro.backward(rng.standard_normal(z.shape), cache)
    assert not dh[1, 2:].any() and not dh[1, :, 1:].any() and not dh[1, :, :, 3:].any()


def test_multidirectional_layer_plus_readout_plus_loss_directional_check(rng):
    """The whole classifier, h's gradient flowing into the layer, with a padded sample."""
    layer = MultiDirectionalMDLSTM(1, 2, ndim=2, backend="numpy", dtype="float64")
    ro = MeanPoolReadout(layer.out_features, 3, dtype="float64")
    params = {**layer.init_params(rng), **{"ro." + k: v for k, v in _params(ro, rng).items()}}
    x = rng.uniform(0, 1, (2, 3, 4, 1))
    sizes, y = np.array([[3, 4], [2, 3]]), np.array([2, 0])
    layer_keys = list(layer.param_shapes())

    def forward():
        h, hc = layer.forward({k: params[k] for k in layer_keys}, x, sizes=sizes)
        z, rc = ro.forward({"V": params["ro.V"], "a": params["ro.a"]}, h, sizes=sizes)
        loss, dz = softmax_cross_entropy(BE, z, y)
        return float(loss), dz, hc, rc

    _, dz, hc, rc = forward()
    dh, g_ro = ro.backward(dz, rc)
    dx, g_layer = layer.backward(dh, hc)
    analytic = {**g_layer, "ro.V": g_ro["V"], "ro.a": g_ro["a"], "x": dx}
    arrays = {**params, "x": x}
    _, _, rel = directional_check(lambda: forward()[0], arrays, analytic, rng)
    assert rel <= TOL


# ----------------------------------------------------------------- parameters and errors
def test_init_is_glorot_uniform_with_zero_bias():
    ro = SumScoresReadout(16, 10, dtype="float32")
    p = ro.init_params(np.random.default_rng(0))
    assert set(p) == {"V", "a"} and p["V"].shape == (16, 10) and p["a"].shape == (10,)
    assert p["V"].dtype == np.float32 and not p["a"].any()
    assert np.abs(p["V"]).max() <= np.sqrt(6 / 26)
    assert ro.param_shapes() == {"V": (16, 10), "a": (10,)}


@pytest.mark.parametrize("kind", KINDS)
def test_readout_bad_input(kind):
    ro = READOUTS[kind](3, 2, dtype="float64")
    p = ro.init_params(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"h: expected shape \(B, \*grid, 3\)"):
        ro.forward(p, np.zeros((2, 4, 4, 5)))
    with pytest.raises(ValueError, match=r"h: expected shape \(B, \*grid, 3\)"):
        ro.forward(p, np.zeros((2, 3)))                       # no grid axis
    with pytest.raises(TypeError, match="h: expected dtype float64"):
        ro.forward(p, np.zeros((2, 4, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="h: expected a numpy array"):
        ro.forward(p, [[[0.0, 0.0, 0.0]]])
    with pytest.raises(ValueError, match=r"sizes: expected 1 <= sizes"):
        ro.forward(p, np.zeros((2, 4, 3)), sizes=np.array([[5], [1]]))
    with pytest.raises(ValueError, match=r"sizes: expected an integer array of shape \(2, 1\)"):
        ro.forward(p, np.zeros((2, 4, 3)), sizes=np.array([[4, 4], [1, 1]]))
    with pytest.raises(ValueError, match="params"):
        ro.forward({"V": p["V"]}, np.zeros((2, 4, 3)))
    _, cache = ro.forward(p, np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match=r"dlogits: expected shape \(2, 2\)"):
        ro.backward(np.zeros((2, 3)), cache)
    with pytest.raises(ValueError, match="num_classes"):
        READOUTS[kind](3, 0, dtype="float64")
