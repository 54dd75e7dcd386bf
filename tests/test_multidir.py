"""Multi-directional MD-LSTM (mdlstm_np/multidir.py): each direction is exactly the single-
direction layer run on the flipped input; finite-difference checks for every direction mode,
n = 1, 2, 3; bad inputs."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdlstm_np.backends import Backend
from mdlstm_np.testing.gradcheck import check_layer
from mdlstm_np.mdlstm import MDLSTM
from mdlstm_np.multidir import (MultiDirectionalMDLSTM, apply_flip, direction_code,
                                direction_flips, flip_index, parse_directions)

TOL = 1e-6


def _flip_axes(flips):
    return tuple(1 + d for d, f in enumerate(flips) if f)


# ----------------------------------------------------------------- direction codes
def test_direction_codes_2d_documented_mapping():
    # d0 top-left (plain MDLSTM), d1 flips the width, d2 the height, d3 both
    assert [direction_flips(k, 2) for k in range(4)] == [
        (False, False), (False, True), (True, False), (True, True)]
    assert all(direction_code(direction_flips(k, 3)) == k for k in range(8))


def test_directions_all_is_every_corner_once():
    for n in (1, 2, 3):
        layer = MultiDirectionalMDLSTM(1, 2, n, cell="graves", dtype="float64")
        assert layer.codes == list(range(2 ** n))
        assert len(set(layer.directions)) == 2 ** n
        assert layer.out_features == 2 * 2 ** n
        assert set(layer.param_shapes()) == {f"d{k}.{p}" for k in range(2 ** n)
                                             for p in ("W", "U", "b")}


def test_direction_spec_signs_and_bools_agree():
    assert parse_directions([(1, -1), (-1, -1)], 2) == [(False, True), (True, True)]
    assert parse_directions([(False, True), (True, True)], 2) == [(False, True), (True, True)]
    assert parse_directions([(np.True_,)], 1) == [(True,)]
    layer = MultiDirectionalMDLSTM(1, 2, 2, directions=[(-1, -1), (1, 1)], cell="graves", dtype="float64")
    assert layer.codes == [3, 0]
    assert sorted({k.split(".")[0] for k in layer.param_shapes()}) == ["d0", "d3"]


# ----------------------------------------------------------------- the flip permutation
@pytest.mark.parametrize("n", [1, 2, 3])
def test_flip_index_is_the_plain_flip_without_sizes_and_an_involution(n, rng):
    shape = (2, 3, 4)[:n]
    B = 2
    a = rng.standard_normal((B, *shape, 1))
    for flips in itertools.product([False, True], repeat=n):
        idx = flip_index(shape, flips, B)
        got = a.reshape(-1, 1)[idx].reshape(a.shape)
        np.testing.assert_array_equal(got, np.flip(a, _flip_axes(flips)))
        np.testing.assert_array_equal(idx[idx], np.arange(idx.size))  # P_F P_F = I


def test_flip_runs_on_a_strict_array_api_namespace():
    xps = pytest.importorskip("array_api_strict")
    be = Backend(xp=xps)
    a = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4, 1)
    sizes = np.array([[2, 3], [3, 4]])
    idx = flip_index((3, 4), (True, True), 2, sizes)
    got = apply_flip(be, xps.asarray(a), be.index(idx))
    want = apply_flip(Backend(), a, Backend().index(idx))
    np.testing.assert_array_equal(np.asarray(got), want)


# ----------------------------------------------------------------- equality with MDLSTM
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("combine", ["concat", "sum"])
def test_each_direction_is_mdlstm_on_the_flipped_input(n, combine, rng):
    """Forward: exact equality. Backward: each direction's parameter gradients are exactly the
    single layer's on the flipped input and flipped dout; dx is their flipped sum."""
    shape, B, C, H = (3, 2, 4)[:n], 2, 2, 3
    layer = MultiDirectionalMDLSTM(C, H, n, combine=combine, cell="graves", dtype="float64")
    single = MDLSTM(C, H, n, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    x = rng.standard_normal((B, *shape, C))
    out, cache = layer.forward(params, x)
    dout = rng.standard_normal(out.shape)
    dx, grads = layer.backward(dout, cache)
    total_out, total_dx = np.zeros((B, *shape, H)), np.zeros_like(x)
    for j, (k, flips) in enumerate(zip(layer.codes, layer.directions)):
        ax = _flip_axes(flips)
        p = layer.split_params(params, k)
        h, c = single.forward(p, np.ascontiguousarray(np.flip(x, ax)))
        h = np.flip(h, ax)
        block = slice(j * H, (j + 1) * H) if combine == "concat" else slice(None)
        d = dout[..., block]
        dxs, gs = single.backward(np.ascontiguousarray(np.flip(d, ax)), c)
        for name, g in gs.items():
            np.testing.assert_array_equal(grads[f"d{k}.{name}"], g)
        total_dx = total_dx + np.flip(dxs, ax)
        if combine == "concat":
            np.testing.assert_array_equal(out[..., block], h)
        else:
            total_out = total_out + h
    if combine == "sum":
        np.testing.assert_array_equal(out, total_out)
    np.testing.assert_array_equal(dx, total_dx)


def test_sum_is_the_sum_of_the_concat_blocks(rng):
    cat = MultiDirectionalMDLSTM(1, 2, 2, cell="graves", dtype="float64")
    add = MultiDirectionalMDLSTM(1, 2, 2, combine="sum", cell="graves", dtype="float64")
    params = cat.init_params(rng)
    x = rng.standard_normal((2, 3, 3, 1))
    o_cat, _ = cat.forward(params, x)
    o_add, _ = add.forward(params, x)
    np.testing.assert_allclose(o_add, o_cat.reshape(2, 3, 3, 4, 2).sum(axis=3), rtol=1e-13)


# ----------------------------------------------------------------- finite differences
@pytest.mark.parametrize("n, shape", [(1, (2, 3, 1)), (2, (2, 2, 3, 1)),
                                      pytest.param(3, (1, 2, 2, 2, 1), marks=pytest.mark.slow)])
@pytest.mark.parametrize("combine", ["concat", "sum"])
def test_gradcheck_per_element_all_directions(n, shape, combine, rng):
    layer = MultiDirectionalMDLSTM(1, 1, n, combine=combine, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    x = rng.standard_normal(shape)
    errs = check_layer(layer, params, x, rng)
    assert max(errs.values()) <= TOL, errs


@pytest.mark.parametrize("n", [1, 2, pytest.param(3, marks=pytest.mark.slow)])
def test_gradcheck_per_element_zero_input(n, rng):
    """Exactly-zero input (every cell sees only biases and its neighbours' state)."""
    hidden = 2 if n < 3 else 1  # n = 3: 8 directions, keep the element count small
    layer = MultiDirectionalMDLSTM(1, hidden, n, combine="sum", forget_bias=1.0, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    x = np.zeros((1,) + (2,) * n + (1,))
    errs = check_layer(layer, params, x, rng)
    assert max(errs.values()) <= TOL, errs


@st.composite
def _cases(draw):
    n = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 3)) for _ in range(n))
    B = draw(st.integers(1, 3))
    C, H = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    combine = draw(st.sampled_from(["concat", "sum"]))
    subset = draw(st.booleans())  # False: all 2ⁿ directions; True: a drawn non-empty subset
    codes = list(range(2 ** n))
    if subset:
        codes = draw(st.lists(st.sampled_from(codes), min_size=1, unique=True))
    masked = draw(st.booleans())
    sizes = None
    if masked:
        sizes = np.array([[draw(st.integers(1, s)) for s in shape] for _ in range(B)])
    zero = draw(st.booleans())
    seed = draw(st.integers(0, 2 ** 31 - 1))
    return n, shape, B, C, H, combine, codes, sizes, zero, seed


@given(_cases())
def test_gradcheck_directional_hypothesis(case):
    n, shape, B, C, H, combine, codes, sizes, zero, seed = case
    rng = np.random.default_rng(seed)
    dirs = [direction_flips(k, n) for k in codes]
    layer = MultiDirectionalMDLSTM(C, H, n, combine=combine, directions=dirs, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    x = np.zeros((B, *shape, C)) if zero else rng.standard_normal((B, *shape, C))
    errs = check_layer(layer, params, x, rng, mode="direction", sizes=sizes)
    assert errs["direction"] <= TOL, (errs, case)


# ----------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("combine", ["mean", "", None, "Concat"])
def test_bad_combine(combine):
    with pytest.raises(ValueError, match="combine"):
        MultiDirectionalMDLSTM(1, 2, 2, combine=combine, cell="graves", dtype="float64")


@pytest.mark.parametrize("spec, exc", [
    ("some", ValueError), (5, TypeError), ([], ValueError), ([(1,)], ValueError),
    ([(1, 0)], ValueError), ([(1, 2)], ValueError), ([(True, -1)], ValueError),
    ([(1, 1), (1, 1)], ValueError), ([(False, True), (1, -1)], ValueError),
    ([3], ValueError), ([(1.0, -1.0)], ValueError)])
def test_bad_direction_spec(spec, exc):
    with pytest.raises(exc, match="directions"):
        MultiDirectionalMDLSTM(1, 2, 2, directions=spec, cell="graves", dtype="float64")


def test_bad_inputs_to_forward_and_backward(rng):
    layer = MultiDirectionalMDLSTM(1, 2, 2, cell="graves", dtype="float64")
    params = layer.init_params(rng)
    x = rng.standard_normal((2, 3, 3, 1))
    with pytest.raises(ValueError, match="x"):
        layer.forward(params, x[..., 0])
    with pytest.raises(TypeError, match="x"):
        layer.forward(params, x.astype(np.float32))
    with pytest.raises(ValueError, match=r"params.*d3"):
        layer.forward({k: v for k, v in params.items() if not k.startswith("d3.")}, x)
    out, cache = layer.forward(params, x)
    with pytest.raises(ValueError, match="dout"):
        layer.backward(out[..., :2], cache)
    with pytest.raises(ValueError, match="ndim"):
        MultiDirectionalMDLSTM(1, 2, 0, cell="graves", dtype="float64")
