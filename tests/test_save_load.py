"""mdlstm_np.save / mdlstm_np.load: a trained model to a file and back, on any backend.

Saved on backend A and loaded on backend B, the parameters are the saved bits and ``predict``
equals the in-memory model on B bit for bit, for every pair of the backends present. Every
demo task's run folder holds checkpoints that ``load`` reads as models. A file without a model
description, a foreign file and a model that cannot be described give one clear error.
"""

import glob
import os

import numpy as np
import pytest
from demo_run import run_demo

import mdlstm_np
from mdlstm_np.backends import numba_available
from mdlstm_np.hierarchy import BlockSubsample, CollapseVertical, SequenceLogSoftmax
from mdlstm_np.readout import LastCellReadout, MeanPoolReadout, SumScoresReadout
from mdlstm_np.sd import SliceWise2D
from mdlstm_np.training.checkpoint import CheckpointError

BACKENDS = ["numpy"] + (["numba"] if numba_available() else [])
try:
    import cupy  # noqa: F401

    cupy.cuda.runtime.getDeviceCount()
    BACKENDS.append("cupy")
except Exception:  # noqa: BLE001 - no usable GPU: the CPU pairs only
    pass


def models(backend):
    """(model, input (N, *S, C), sizes or None) of every kind the package's layers make."""
    kw = dict(backend=backend)
    rng = np.random.default_rng(0)
    X2 = rng.random((3, 4, 5, 2)).astype(np.float32)
    return {
        "mdlstm+dense": (mdlstm_np.Model(mdlstm_np.MDLSTM(2, 3, cell="graves", **kw),
                                         mdlstm_np.Dense(3, 1, "sigmoid", **kw)), X2, None),
        "ln-cell": (mdlstm_np.Model(mdlstm_np.MDLSTM(2, 3, ln="fixed", **kw),
                                    mdlstm_np.Dense(3, 2, **kw)), X2, None),
        "multidir+readout": (mdlstm_np.Model(
            mdlstm_np.MultiDirectionalMDLSTM(2, 3, directions=[(1, 1), (-1, 1)], **kw),
            MeanPoolReadout(6, 4, **kw)), X2, np.array([[4, 5], [2, 3], [3, 5]])),
        "sd-horizontal": (mdlstm_np.Model(mdlstm_np.HorizontalSDLSTM(2, 3, **kw),
                                          mdlstm_np.Dense(3, 1, **kw)), X2, None),
        "sd-snake": (mdlstm_np.Model(mdlstm_np.SnakeSDLSTM(2, 3, **kw),
                                     LastCellReadout(3, 2, **kw)), X2, None),
        "slicewise-3d": (mdlstm_np.Model(SliceWise2D(1, 2, **kw), mdlstm_np.Dense(2, 1, **kw)),
                         rng.random((2, 3, 3, 4, 1)).astype(np.float32), None),
        "hierarchy": (mdlstm_np.Model(
            BlockSubsample((2, 2), **kw), mdlstm_np.MultiDirectionalMDLSTM(4, 2, **kw),
            CollapseVertical(**kw), mdlstm_np.Dense(8, 5, **kw), SequenceLogSoftmax(**kw)),
            rng.random((2, 4, 6, 1)).astype(np.float32), None),
        "sum-scores": (mdlstm_np.Model(mdlstm_np.MDLSTM(2, 3, **kw),
                                       SumScoresReadout(3, 3, **kw)), X2, None),
    }


KINDS = sorted(models("numpy"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("src,dst", [(a, b) for a in BACKENDS for b in BACKENDS])
def test_save_load_predict_equal_the_in_memory_model_bit_for_bit(kind, src, dst, tmp_path):
    model, X, sizes = models(src)[kind]
    params = model.init_params(np.random.default_rng(1))
    path = str(tmp_path / "m.npz")
    assert mdlstm_np.save(path, model, params) == path
    loaded, loaded_params = mdlstm_np.load(path, backend=dst)
    assert loaded.be.name == dst and loaded.dtype == model.dtype == "float32"
    assert loaded.names == model.names and repr(loaded).split("(")[0] == "Model"
    for k, v in params.items():
        got = loaded.be.to_numpy(loaded_params[k])
        assert got.dtype == np.asarray(model.be.to_numpy(v)).dtype
        np.testing.assert_array_equal(got, model.be.to_numpy(v))
    in_memory = models(dst)[kind][0]
    want = in_memory.predict(params, X, sizes, batch=2)
    got = loaded.predict(loaded_params, X, sizes, batch=2)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_a_model_that_cannot_be_described_is_refused_by_save(tmp_path):
    from mdlstm_np.cells.graves import GravesCell

    class MyCell(GravesCell):
        name = "mine"

    model = mdlstm_np.Model(mdlstm_np.MDLSTM(1, 2, cell=MyCell()), mdlstm_np.Dense(2, 1))
    with pytest.raises(ValueError, match="cell"):
        mdlstm_np.save(str(tmp_path / "m.npz"), model, model.init_params(np.random.default_rng(0)))
    assert not os.listdir(tmp_path)


def test_params_that_are_not_the_models_are_refused_by_save(tmp_path):
    model = mdlstm_np.Model(mdlstm_np.MDLSTM(1, 2), mdlstm_np.Dense(2, 1))
    params = model.init_params(np.random.default_rng(0))
    params.pop("head.a")
    with pytest.raises(ValueError, match="params: expected the model's parameters"):
        mdlstm_np.save(str(tmp_path / "m.npz"), model, params)


def test_foreign_and_undescribed_files_are_one_clear_error(tmp_path):
    foreign = str(tmp_path / "f.npz")
    np.savez(foreign, x=np.zeros(2))
    with pytest.raises(CheckpointError, match=f"checkpoint {foreign}:"):
        mdlstm_np.load(foreign)
    from mdlstm_np.optim import Adam
    from mdlstm_np.training.checkpoint import save_checkpoint

    old = str(tmp_path / "old.npz")
    p = {"rnn.W": np.zeros((1, 2))}
    save_checkpoint(old, be=mdlstm_np.get_backend("numpy"), model_name="M", settings={},
                    step=1, params=p, optimizer=Adam(p), rng=np.random.default_rng(0))
    with pytest.raises(CheckpointError, match="no model description"):
        mdlstm_np.load(old)
    with pytest.raises(CheckpointError, match="no such file"):
        mdlstm_np.load(str(tmp_path / "missing.npz"))




TINY_EPOCHS = ["--epochs", "1", "--train", "6", "--val", "4", "--batch", "3", "--hidden", "2",
               "--backend", "numpy", "--no-progress"]
RUNS = {
    "diagonal": ["--steps", "3", "--size", "4", "--batch", "2", "--hidden", "3", "--backend",
                 "numpy", "--no-progress"],
    "gaussian": ["--task", "gaussian", "--size", "4", *TINY_EPOCHS],
    "digits": ["--task", "digits", *TINY_EPOCHS],
    "diagonal3d": ["--task", "diagonal3d", "--size", "3", "--model", "md_lstm_3d",
                   *TINY_EPOCHS],
    "diagonal3d-both-models": ["--task", "diagonal3d", "--size", "3", *TINY_EPOCHS],
    "lines": ["--task", "lines", "--steps", "3", "--train", "16", "--val", "4", "--batch", "4",
              "--hidden", "2", "--backend", "numpy", "--no-progress"],
}


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(RUNS))
def test_every_demo_task_run_folder_loads(task, tmp_path):
    if task == "digits":
        pytest.importorskip("sklearn")
    r = run_demo(*RUNS[task], "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    found = sorted(glob.glob(str(tmp_path / "checkpoint_*.npz")))
    assert found, os.listdir(tmp_path)
    for path in found:
        for backend in BACKENDS[:2]:
            model, params = mdlstm_np.load(path, backend=backend)
            assert set(params) == set(model.param_shapes())
