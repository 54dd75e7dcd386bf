"""n-D volumes: the 3-D wavefront count, the volumetric random-diagonal task, what a 3-D scan
sees that a 2-D per-slice scan cannot, and a smoke run of examples/demo3d.py."""

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.demo3d import SliceWise2D, main as demo_main
from mdlstm_np.testing.gradcheck import check_layer
from mdlstm_np.grid import wavefront_plan
from mdlstm_np.mdlstm import MDLSTM
from mdlstm_np.demo.tasks3d import random_diagonal_3d, relevant_index


# ----------------------------------------------------------------- wavefronts
@given(st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)))
def test_3d_grid_takes_d_plus_h_plus_w_minus_2_wavefronts(shape):
    D, H, W = shape
    plan = wavefront_plan(shape)
    assert len(plan.bounds) == D + H + W - 2
    sums = np.stack(np.unravel_index(plan.order, shape)).sum(axis=0)
    for s, (a, b) in enumerate(plan.bounds):  # wavefront s = the cells with index sum s
        assert (sums[a:b] == s).all()


def test_layer_uses_the_3d_plan(rng):
    layer = MDLSTM(1, 2, ndim=3, cell="graves", dtype="float64")
    _, cache = layer.forward(layer.init_params(rng), rng.standard_normal((2, 3, 4, 5, 1)))
    assert len(cache.plan.host.bounds) == 3 + 4 + 5 - 2


def test_3d_layer_gradcheck_per_element(rng):
    layer = MDLSTM(1, 2, ndim=3, cell="graves", dtype="float64")
    errs = check_layer(layer, layer.init_params(rng), rng.standard_normal((1, 2, 2, 3, 1)), rng)
    assert max(errs.values()) <= 1e-6, errs


# ----------------------------------------------------------------- the task
def test_task_shapes_ones_target_and_relevant_position():
    x, y, pos = random_diagonal_3d(32, 6, np.random.default_rng(3))
    assert x.shape == y.shape == (32, 6, 6, 6, 1) and x.dtype == np.float64
    assert pos.shape == (32, 3) and pos.dtype == np.int64
    np.testing.assert_array_equal(y, np.roll(x, -1, axis=3))
    for b in range(32):
        ones = np.argwhere(x[b, ..., 0] == 1.0)
        assert len(ones) == 2
        (z, r, c), second = ones
        np.testing.assert_array_equal(second, [z + 1, r + 1, c + 1])
        assert 1 <= min(z, r, c) and max(z, r, c) <= 4
        np.testing.assert_array_equal(pos[b], [z + 1, r + 1, c])
        assert y[b, z + 1, r + 1, c, 0] == 1.0
        background = x[b, ..., 0][x[b, ..., 0] != 1.0]
        assert background.min() >= 0.0 and background.max() < 0.1


def test_task_is_seeded():
    a = random_diagonal_3d(4, 5, np.random.default_rng(7))
    b = random_diagonal_3d(4, 5, np.random.default_rng(7))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_relevant_index_reads_the_second_ones_target():
    x, y, pos = random_diagonal_3d(5, 4, np.random.default_rng(0))
    np.testing.assert_array_equal(y.reshape(-1)[relevant_index(pos, (4, 4, 4))], 1.0)


@pytest.mark.parametrize("kw, exc, name", [
    (dict(batch=0, size=5), ValueError, "batch"), (dict(batch=2, size=2), ValueError, "size"),
    (dict(batch=True, size=5), ValueError, "batch"), (dict(batch=2, size=5.0), ValueError, "size"),
    (dict(batch=2, size=5, rng=0), TypeError, "rng")])
def test_task_bad_inputs(kw, exc, name):
    kw.setdefault("rng", np.random.default_rng(0))
    with pytest.raises(exc, match=name):
        random_diagonal_3d(**kw)


def test_relevant_index_bad_inputs():
    with pytest.raises(ValueError, match="pos"):
        relevant_index(np.array([[1, 2]]), (3, 3, 3))
    with pytest.raises(ValueError, match="pos"):
        relevant_index(np.array([[1, 2, 3]]), (3, 3, 3))


# ----------------------------------------------------------------- why 3-D beats 2-D here
def test_3d_scan_sees_the_previous_slice_a_2d_scan_cannot(rng):
    """∂y(z+1, r+1, c)/∂x(z, r, c): nonzero for the 3-D layer, exactly zero slice by slice."""
    x, _, pos = random_diagonal_3d(1, 5, rng)
    z, r, c = pos[0] - np.array([1, 1, 0])  # the first one
    for layer, sees in ((MDLSTM(1, 3, ndim=3, cell="graves", dtype="float64"), True),
                        (SliceWise2D(1, 3, cell="graves", dtype="float64"), False)):
        out, cache = layer.forward(layer.init_params(rng), x)
        dout = np.zeros_like(out)
        dout[(0, *pos[0])] = 1.0
        dx, _ = layer.backward(dout, cache)
        assert (dx[0, z, r, c, 0] != 0.0) == sees


# ----------------------------------------------------------------- the demo runs
def test_demo3d_smoke(tmp_path, capsys):
    out = tmp_path / "curves.png"
    hists = demo_main(["--steps", "4", "--size", "3", "--hidden", "2", "--batch", "2",
                       "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["curves.png"]  # no temp file left behind
    assert set(hists) == {"3-D", "2-D"} and len(hists["3-D"]["relevant"]) == 4
    assert "3-D / 2-D" in capsys.readouterr().out
