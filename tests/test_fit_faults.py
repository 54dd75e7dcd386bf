"""fit's faults that nothing caught before: the epoch loss of a short last minibatch, the
shuffle, an X without its channel axis, and a checkpoint path that fit would have replaced or
could not write (found only after the first epoch)."""

import os

import numpy as np
import pytest

import mdlstm_np
from mdlstm_np.backends import get_backend
from mdlstm_np.losses import mse


def small_model():
    return mdlstm_np.Model(mdlstm_np.MDLSTM(1, 2, dtype="float64"),
                           mdlstm_np.Dense(2, 1, "sigmoid", dtype="float64"))


def data(N=5):
    rng = np.random.default_rng(0)
    return rng.random((N, 3, 3, 1)), rng.random((N, 3, 3, 1))


def test_the_epoch_loss_is_the_per_sample_mean_with_a_short_last_minibatch():
    """N = 5, batch 2: minibatches of 2, 2 and 1. With a step size too small to move the
    parameters (1e-30), the epoch loss is the per-sample mean loss at the initial parameters;
    weighting the last minibatch like a full one gives (L1 + L2 + L3) / 3 instead."""
    X, Y = data(5)
    model = small_model()
    h = mdlstm_np.fit(model, X, Y, epochs=1, batch=2, lr=1e-30, progress=False)
    be = get_backend("numpy")
    y, _ = model.forward(h.initial_params, X)
    want, _ = mse(be, y, Y)
    assert h.loss[0] == pytest.approx(float(want), rel=1e-12)
    order = np.random.default_rng(np.random.SeedSequence(0).spawn(2)[1]).permutation(5)
    batches = [order[i:i + 2] for i in range(0, 5, 2)]
    unweighted = np.mean([float(mse(be, model.forward(h.initial_params, X[b])[0], Y[b])[0])
                          for b in batches])
    assert abs(unweighted - float(want)) > 1e-6      # the fault would be visible here


def test_every_epoch_is_a_new_permutation():
    """The samples each step sees, recorded through ``augment``: every epoch holds each sample
    once, in an order that is not the data's and not the previous epoch's."""
    X, Y = data(8)
    X = X.copy()
    X[:, 0, 0, 0] = np.arange(8)                     # sample i carries its index
    seen = []

    def record(xb, rng):
        seen.extend(int(v) for v in xb[:, 0, 0, 0])
        return xb

    mdlstm_np.fit(small_model(), X, Y, epochs=3, batch=3, lr=1e-30, progress=False,
                  augment=record)
    epochs = [seen[i:i + 8] for i in range(0, 24, 8)]
    assert all(sorted(e) == list(range(8)) for e in epochs)
    assert all(e != list(range(8)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]


def test_an_x_without_its_channel_axis_is_blamed_on_x():
    X, Y = data()
    with pytest.raises(ValueError, match=r"^X: expected samples \(N, \*S, C\) with C = 1"):
        mdlstm_np.fit(small_model(), X[..., 0], Y, epochs=1, progress=False)


def test_an_existing_checkpoint_is_not_replaced_without_resume(tmp_path):
    X, Y = data()
    path = tmp_path / "c.npz"
    path.write_bytes(b"an earlier run's checkpoint")
    with pytest.raises(ValueError, match="checkpoint: .* exists .*resume=True"):
        mdlstm_np.fit(small_model(), X, Y, epochs=1, progress=False, checkpoint=str(path))
    assert path.read_bytes() == b"an earlier run's checkpoint"


def test_a_checkpoint_folder_that_is_missing_fails_before_step_0(tmp_path):
    X, Y = data()
    calls = []
    with pytest.raises(ValueError, match="checkpoint: its folder .* does not exist"):
        mdlstm_np.fit(small_model(), X, Y, epochs=1, progress=False,
                      checkpoint=str(tmp_path / "missing" / "c.npz"),
                      augment=lambda xb, rng: calls.append(1) or xb)
    assert calls == []                               # no step ran


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_checkpoint_folder_fails_before_step_0(tmp_path):
    X, Y = data()
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="checkpoint: its folder .* is not writable"):
            mdlstm_np.fit(small_model(), X, Y, epochs=1, progress=False,
                          checkpoint=str(folder / "c.npz"))
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("first, shape", [
    ("SliceWise2D", (4, 3, 3, 3, 1)), ("HorizontalSDLSTM", (4, 3, 3, 1)),
    ("MultiDirectionalMDLSTM", (4, 3, 3, 1)), ("MDLSTM-3d", (4, 2, 3, 3, 1))])
def test_the_channel_and_rank_check_accepts_every_layers_own_grid(first, shape):
    """The rank check reads the grid rank each first layer states (``ndim``): the 3-D
    slice-wise baseline and the SD layers (whose inner MD-LSTMs have other ranks) train."""
    from mdlstm_np.sd import SliceWise2D

    layer = {"SliceWise2D": lambda: SliceWise2D(1, 2, dtype="float64"),
             "HorizontalSDLSTM": lambda: mdlstm_np.HorizontalSDLSTM(1, 2, dtype="float64"),
             "MultiDirectionalMDLSTM": lambda: mdlstm_np.MultiDirectionalMDLSTM(
                 1, 1, dtype="float64"),
             "MDLSTM-3d": lambda: mdlstm_np.MDLSTM(1, 2, ndim=3, dtype="float64")}[first]()
    width = getattr(layer, "out_features", None) or layer.hidden
    model = mdlstm_np.Model(layer, mdlstm_np.Dense(width, 1, dtype="float64"))
    X = np.random.default_rng(0).random(shape)
    h = mdlstm_np.fit(model, X, X, epochs=1, batch=2, progress=False)
    assert np.isfinite(h.loss[0])
    with pytest.raises(ValueError, match="^X: expected"):
        mdlstm_np.fit(model, X[:, 0], X[:, 0], epochs=1, progress=False)
