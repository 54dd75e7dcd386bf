"""mdlstm_np.fit: learns a toy problem, validation metrics, resume equals an uninterrupted run,
clear errors for bad input."""

import numpy as np
import pytest

import mdlstm_np
from mdlstm_np import MDLSTM, Dense, Model, MultiDirectionalMDLSTM, fit
from mdlstm_np.training.checkpoint import CheckpointError
from mdlstm_np.training.guard import TrainingDiverged
from mdlstm_np.readout import MeanPoolReadout


def running_mean_task(n=48, size=5, seed=0):
    """x uniform; the target at (r, c) is the mean of the row up to c (the cell's left past)."""
    X = np.random.default_rng(seed).random((n, size, size, 1))
    Y = np.cumsum(X, axis=2) / np.arange(1, size + 1)[None, None, :, None]
    return X, Y


def regressor(hidden=6, dtype="float64"):
    layer = MDLSTM(1, hidden, cell="graves", backend="numpy", dtype=dtype)
    return Model(layer, Dense(hidden, 1, backend="numpy", dtype=dtype), name="md")


def classifier(dtype="float64"):
    layer = MultiDirectionalMDLSTM(1, 3, cell="graves", backend="numpy", dtype=dtype)
    return Model(layer, MeanPoolReadout(layer.out_features, 2, backend="numpy",
                                            dtype=dtype), name="cls")


def test_fit_is_exported_at_the_top():
    assert mdlstm_np.fit is fit


def test_fit_learns_a_per_cell_toy_problem():
    X, Y = running_mean_task()
    h = fit(regressor(), X, Y, epochs=12, batch=16, lr=0.02, progress=False,
            validation=(X[:16], Y[:16]))
    assert h.epoch == 12 and len(h.rows) == 12
    assert h.loss[-1] < h.loss[0] / 4, h.loss                  # the loss drops a lot
    assert h["val_loss"][-1] < h["val_loss"][0] / 4
    pred = h.predict(X[:3])
    assert pred.shape == (3, 5, 5, 1) and np.isfinite(pred).all()


def test_classification_reports_validation_accuracy():
    X, _ = running_mean_task(n=40)
    labels = (X.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64)
    X = X.astype(np.float32)                     # float32 with a cosine schedule: no promotion
    h = fit(classifier("float32"), X, labels, epochs=3, batch=8, progress=False,
            validation=(X[:10], labels[:10]), lr_schedule="cosine")
    assert all(str(v.dtype) == "float32" for v in h.params.values())
    assert h.loss_name == "cross_entropy"
    for row in h.rows:
        assert set(row) == {"epoch", "loss", "val_loss", "val_accuracy", "seconds"}
        assert 0.0 <= row["val_accuracy"] <= 1.0


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_an_interrupted_and_resumed_fit_equals_an_uninterrupted_one(tmp_path, schedule):
    X, Y = running_mean_task(n=20, size=4)
    kw = dict(epochs=4, batch=6, lr=0.01, progress=False, lr_schedule=schedule, seed=3,
              augment=lambda x, rng: x + 0.01 * rng.standard_normal(x.shape))
    full = fit(regressor(3), X, Y, **kw)
    path = str(tmp_path / "ckpt.npz")
    part = fit(regressor(3), X, Y, checkpoint=path, should_stop=lambda done: done == 2, **kw)
    assert part.stopped and part.epoch == 2
    resumed = fit(regressor(3), X, Y, checkpoint=path, resume=True, **kw)
    assert resumed.epoch == 4 and not resumed.stopped
    assert resumed.loss == full.loss                            # bit for bit
    for k in full.params:
        np.testing.assert_array_equal(resumed.params[k], full.params[k])


def test_resume_with_other_data_is_refused(tmp_path):
    X, Y = running_mean_task(n=8, size=4)
    path = str(tmp_path / "ckpt.npz")
    fit(regressor(2), X, Y, epochs=1, batch=4, progress=False, checkpoint=path)
    with pytest.raises(CheckpointError, match="data_crc32"):
        fit(regressor(2), X + 0.5, Y, epochs=2, batch=4, progress=False, checkpoint=path,
            resume=True)


def test_a_nonfinite_loss_stops_without_applying_the_update():
    X, Y = running_mean_task(n=8, size=4)

    def bad_loss(be, y, t):
        return be.xp.sum(y) * np.nan, y * 0
    model = regressor(2)
    with pytest.raises(TrainingDiverged, match="not finite") as e:
        fit(model, X, Y, loss=bad_loss, epochs=1, batch=4, progress=False)
    before = model.init_params(np.random.default_rng(np.random.SeedSequence(0).spawn(2)[0]))
    for k, v in before.items():
        np.testing.assert_array_equal(e.value.params[k], v)


@pytest.mark.parametrize("change, words", [
    (dict(X=[[1.0]]), "X: expected a host numpy array"),
    (dict(X=np.zeros((4, 4, 1), dtype=np.int64)), "X: expected a float array"),
    (dict(X=np.zeros((4, 4))), "X: expected shape (N, *S, C)"),
    (dict(Y=np.zeros((3, 4, 4, 1))), "Y: expected 4 targets"),
    (dict(Y=np.zeros((4, 5, 4, 1))), "Y: mse expects float per-cell targets"),
    (dict(Y=np.zeros((4, 4, 4, 2))), "Y: expected 1 target(s) per cell"),
    (dict(loss="hinge"), "loss: expected one of"),
    (dict(loss="cross_entropy"), "Y: cross_entropy expects integer class labels"),
    (dict(epochs=0), "epochs: expected an integer >= 1"),
    (dict(batch=1.5), "batch: expected an integer >= 1"),
    (dict(lr=-1.0), "lr: expected a finite number > 0"),
    (dict(validation=(np.zeros((2, 3, 3, 1)), np.zeros((2, 3, 3, 1)))),
     "validation[0]: expected samples of shape"),
    (dict(model=object()), "model: expected an object with init_params"),
    (dict(resume=True), "resume: needs checkpoint=path"),
])
def test_bad_input_names_the_argument(change, words):
    args = dict(model=regressor(2), X=np.zeros((4, 4, 4, 1)), Y=np.zeros((4, 4, 4, 1)))
    args.update(change)
    model, X, Y = args.pop("model"), args.pop("X"), args.pop("Y")
    with pytest.raises((TypeError, ValueError)) as e:
        fit(model, X, Y, epochs=args.pop("epochs", 1), progress=False, **args)
    assert words in str(e.value)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_an_overflowing_update_stops_with_training_diverged():
    """lr 1e300: the first update makes the parameters inf; the next forward pass's own check
    must end the run as TrainingDiverged (not a bare ValueError from the layer)."""
    X, Y = running_mean_task(n=8, size=4)
    with pytest.raises(TrainingDiverged, match="not finite"):
        fit(regressor(2, dtype="float32"), X.astype(np.float32), Y.astype(np.float32),
            lr=1e300, epochs=2, batch=4, progress=False)


def test_validate_every_leaves_nan_between_evaluations():
    X, Y = running_mean_task(n=8, size=4)
    h = fit(regressor(2), X, Y, epochs=5, batch=4, progress=False, validation=(X, Y),
            validate_every=2)
    done = [not np.isnan(v) for v in h["val_loss"]]
    assert done == [False, True, False, True, True]            # epochs 2, 4 and the last


def test_labels_beyond_the_models_classes_are_refused_before_training():
    X, _ = running_mean_task(n=4, size=4)
    with pytest.raises(ValueError, match=r"Y: expected class labels in \[0, 1\]"):
        fit(classifier(), X, np.array([0, 1, 2, 1]), epochs=1, progress=False)
