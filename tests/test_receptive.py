"""Receptive fields (mdlstm_np/receptive.py): each model's map is exactly zero where the model
cannot see, non-zero where it can, and the figure is written atomically."""

import os

import numpy as np
import pytest

from mdlstm_np import MDLSTM, MultiDirectionalMDLSTM
from mdlstm_np.demo.models import build_model
from mdlstm_np.receptive import plot_receptive_fields, receptive_field

HG, WG = 4, 5  # tiny, not square: rows and columns cannot be confused


def _x(rng, batch=2, channels=1):
    return rng.uniform(-1.0, 1.0, (batch, HG, WG, channels))


def visible(name, p):
    """(HG, WG) bool: the input cells the model's output at p can depend on."""
    r, c = np.meshgrid(np.arange(HG), np.arange(WG), indexing="ij")
    if name == "MD_LSTM":
        return (r <= p[0]) & (c <= p[1])
    if name == "HORIZONTAL_SD_LSTM":
        return (r == p[0]) & (c <= p[1])
    if name == "SNAKE_SD_LSTM":
        return r * WG + c <= p[0] * WG + p[1]
    raise KeyError(name)


CELLS = [(0, 0), (2, 3), (HG - 1, WG - 1), (1, 0), (0, WG - 1)]


@pytest.mark.parametrize("name", ["MD_LSTM", "HORIZONTAL_SD_LSTM", "SNAKE_SD_LSTM"])
@pytest.mark.parametrize("ln", [True, False])
def test_zero_exactly_where_the_seed_models_cannot_see(rng, name, ln):
    model = build_model(name, hidden=3, backend="numpy", dtype="float64", ln=ln)
    params = model.init_params(rng)
    x = _x(rng)
    for p in CELLS:
        R = receptive_field(model, params, x, p)  # (B, HG, WG)
        assert R.shape == (2, HG, WG)
        see = visible(name, p)
        assert np.all(R[:, ~see] == 0.0), (name, p)  # exactly zero, not merely small
        assert np.all(R[:, see].max(axis=1) > 0), (name, p)  # something inside is seen
        assert np.all(R[:, p[0], p[1]] > 0)  # the cell always sees its own input


def test_md_lstm_sees_its_whole_quadrant(rng):
    """Beyond 'non-zero somewhere': every cell of the quadrant contributes (random params)."""
    model = build_model("MD_LSTM", hidden=3, backend="numpy", dtype="float64")
    params = model.init_params(rng)
    p = (HG - 1, WG - 2)
    R = receptive_field(model, params, _x(rng), p)
    assert np.all(R[:, visible("MD_LSTM", p)] > 0)


def test_bare_layer_and_several_channels(rng):
    """A bare MDLSTM (K = hidden outputs, C = 2 inputs) gives the same quadrant."""
    layer = MDLSTM(2, 3, ndim=2, backend="numpy", dtype="float64")
    params = layer.init_params(rng)
    p = (2, 1)
    R = receptive_field(layer, params, _x(rng, channels=2), p)
    see = visible("MD_LSTM", p)
    assert np.all(R[:, ~see] == 0.0) and np.all(R[:, see] > 0)


def test_the_map_is_the_gradient_of_the_summed_output(rng):
    """R = Σ_c |∂(Σ_k y_k(p))/∂x_c| against central differences (float64)."""
    layer = MDLSTM(2, 2, ndim=2, backend="numpy", dtype="float64")
    params = layer.init_params(rng)
    x = _x(rng, batch=1, channels=2)
    p = (1, 2)
    R = receptive_field(layer, params, x, p)[0]
    h = 1e-6
    fd = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        xp_, xm = x.copy(), x.copy()
        xp_[idx] += h
        xm[idx] -= h
        fd[idx] = (layer.forward(params, xp_)[0][0, p[0], p[1]].sum()
                   - layer.forward(params, xm)[0][0, p[0], p[1]].sum()) / (2 * h)
    np.testing.assert_allclose(R, np.abs(fd[0]).sum(axis=-1), rtol=1e-6, atol=1e-10)


def test_four_directions_see_the_whole_grid(rng):
    layer = MultiDirectionalMDLSTM(1, 2, ndim=2, backend="numpy", dtype="float64")
    params = layer.init_params(rng)
    for p in CELLS:
        R = receptive_field(layer, params, _x(rng), p)
        assert np.all(R > 0), p


def test_average_and_negative_cells(rng):
    model = build_model("HORIZONTAL_SD_LSTM", hidden=2, backend="numpy", dtype="float64")
    params = model.init_params(rng)
    x = _x(rng, batch=3)
    R = receptive_field(model, params, x, (1, 2))
    np.testing.assert_array_equal(receptive_field(model, params, x, (-3, -3)), R)
    np.testing.assert_allclose(receptive_field(model, params, x, (1, 2), average=True),
                               R.mean(axis=0))


@pytest.mark.parametrize("cell, err", [((1,), ValueError), ((1, 5), ValueError),
                                       ((1.0, 2), ValueError), (3, TypeError)])
def test_bad_cell_names_the_argument(rng, cell, err):
    model = build_model("MD_LSTM", hidden=2, backend="numpy", dtype="float64")
    params = model.init_params(rng)
    with pytest.raises(err, match="cell"):
        receptive_field(model, params, _x(rng), cell)


def test_plot_writes_a_png_atomically(rng, tmp_path):
    maps = {}
    for name in ("MD_LSTM", "SNAKE_SD_LSTM", "HORIZONTAL_SD_LSTM"):
        model = build_model(name, hidden=2, backend="numpy", dtype="float64")
        maps[name] = receptive_field(model, model.init_params(rng), _x(rng), (2, 3))
    path = tmp_path / "rf.png"
    out = plot_receptive_fields(maps, (2, 3), str(path), title="t",
                                marks=[((1, 3), "first one")])
    assert out == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp_")] == []


def test_plot_rejects_maps_of_different_shapes(tmp_path):
    with pytest.raises(ValueError, match="maps"):
        plot_receptive_fields({"a": np.ones((3, 3)), "b": np.ones((3, 4))}, (0, 0),
                              str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_example_script_smoke(tmp_path, capsys):
    """examples/receptive_fields.py: a 2-step run writes its figure; a bad flag is one line, 2."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "receptive_fields.py"
    spec = importlib.util.spec_from_file_location("receptive_fields_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "rf.png"
    assert mod.main(["--steps", "2", "--size", "4", "--hidden", "2", "--backend", "numpy",
                     "--no-progress", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        mod.main(["--bogus"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--bogus" in err


@pytest.mark.parametrize("name", ["MD_LSTM", "HORIZONTAL_SD_LSTM", "SNAKE_SD_LSTM"])
def test_numba_sweep_keeps_the_zeros_exact(rng, name):
    """The example trains on numba; its fused kernels must give the same exact zeros."""
    pytest.importorskip("numba")
    pytest.importorskip("scipy")
    model = build_model(name, hidden=3, backend="numba", dtype="float32", ln=False)
    params = model.init_params(rng)
    p = (2, 3)
    R = receptive_field(model, params, _x(rng), p)
    see = visible(name, p)
    assert np.all(R[:, ~see] == 0.0) and np.all(R[:, p[0], p[1]] > 0)
