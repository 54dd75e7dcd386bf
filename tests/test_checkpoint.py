"""Checkpoints: written atomically, read back exactly, resumed bit for bit, refused with one
clear error (and nothing written) when truncated, corrupted or made by another run."""

import os

import numpy as np
import pytest

from mdlstm_np.backends import numba_available
from mdlstm_np.training.checkpoint import CheckpointError, load_checkpoint
from mdlstm_np.demo.models import build_model
from mdlstm_np.demo.train import read_tsv, train
from mdlstm_np.mdlstm import MDLSTM

SMALL = dict(steps=7, batch=2, size=4, lr=0.01, seed=5, progress=False)
LOSSES = ("steps", "overall_loss", "relevant_loss")


def small_model(name="MD_LSTM", hidden=3, dtype="float64", backend="numpy"):
    return build_model(name, hidden=hidden, backend=backend, dtype=dtype)


def losses(rows):
    return [tuple(r[c] for c in LOSSES) for r in rows]


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """An uninterrupted run and one stopped after 3 steps (checkpoint every 2 steps)."""
    folder = tmp_path_factory.mktemp("ckpt")
    full = train(small_model(), **SMALL)
    ckpt, tsv = str(folder / "c.npz"), str(folder / "log.tsv")
    part = train(small_model(), checkpoint=ckpt, checkpoint_every=2, out_tsv=tsv,
                 should_stop=lambda done: done == 3, **SMALL)
    return full, part, ckpt, tsv


def test_stopped_run_saves_a_checkpoint_and_its_rows(stopped_run):
    full, part, ckpt, tsv = stopped_run
    assert part.stopped and part.step == 3 and len(part.rows) == 3
    c = load_checkpoint(ckpt)
    assert c.step == 3 and c.meta["model"] == "MD_LSTM" and c.meta["dtype"] == "float64"
    assert c.meta["optimizer"]["kind"] == "Adam" and c.optimizer["t"] == 3
    assert set(c.optimizer["slots"]) == {"m", "v"}
    assert c.meta["package_version"] and c.meta["settings"]["hidden"] == 3
    assert c.n_rows == 3 and c.last_row == part.rows[-1]
    assert losses(read_tsv(tsv)) == losses(part.rows)
    for k, v in part.params.items():
        np.testing.assert_array_equal(c.params[k], v)
    assert not [p for p in os.listdir(os.path.dirname(ckpt)) if p.startswith(".tmp")]


def test_resume_equals_an_uninterrupted_run_bit_for_bit(stopped_run, tmp_path):
    full, _, ckpt, tsv = stopped_run
    ckpt2, tsv2 = str(tmp_path / "c.npz"), str(tmp_path / "log.tsv")
    with open(ckpt, "rb") as f, open(ckpt2, "wb") as g:
        g.write(f.read())
    with open(tsv) as f, open(tsv2, "w") as g:   # and a row logged after it, then a cut line
        g.write(f.read() + "0003\t0.5\t0.1\t0.25\n0004\t0.3")
    res = train(small_model(), checkpoint=ckpt2, out_tsv=tsv2, resume=True, **SMALL)
    assert not res.stopped and res.step == 7
    assert losses(res.rows) == losses(full.rows)
    assert losses(read_tsv(tsv2)) == losses(full.rows)
    for k in full.params:
        np.testing.assert_array_equal(res.params[k], full.params[k])
        np.testing.assert_array_equal(res.initial_params[k], full.initial_params[k])
    assert load_checkpoint(ckpt2).step == 7                   # the final one


@pytest.mark.skipif(not numba_available(), reason="numba is not installed")
def test_a_checkpoint_loads_on_another_backend(stopped_run, tmp_path):
    full, _, ckpt, _ = stopped_run
    ckpt2 = str(tmp_path / "c.npz")
    with open(ckpt, "rb") as f, open(ckpt2, "wb") as g:
        g.write(f.read())
    res = train(small_model(backend="numba"), checkpoint=ckpt2, resume=True, **SMALL)
    assert [r["steps"] for r in res.rows] == [3, 4, 5, 6]      # no log given: from the ckpt
    np.testing.assert_allclose([r["overall_loss"] for r in res.rows],
                               [r["overall_loss"] for r in full.rows[3:]], rtol=1e-9)


def _damaged(src, dst, how):
    data = bytearray(open(src, "rb").read())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "corrupted":                  # one flipped byte inside an array's data
        i = data.index(b"param/") + 400
        data[i] ^= 0xFF
    elif how == "empty":
        data = b""
    else:
        data = b"not a zip file at all"
    open(dst, "wb").write(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "corrupted", "empty", "garbage"])
def test_damaged_checkpoint_is_one_clear_error_and_nothing_changes(stopped_run, tmp_path, how):
    _, _, ckpt, _ = stopped_run
    bad, tsv = str(tmp_path / "c.npz"), tmp_path / "log.tsv"
    _damaged(ckpt, bad, how)
    tsv.write_text("untouched\n")
    before = sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir())
    with pytest.raises(CheckpointError, match=r"checkpoint .*c\.npz: cannot be read") as info:
        train(small_model(), checkpoint=bad, out_tsv=str(tsv), resume=True, **SMALL)
    assert "\n" not in str(info.value)
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("model, words", [
    (lambda: small_model("SNAKE_SD_LSTM"), "holds model 'MD_LSTM'"),
    (lambda: small_model(hidden=4), "hidden = 3"),
    (lambda: small_model(dtype="float32"), "dtype = 'float64'"),
])
def test_mismatched_checkpoint_is_refused(stopped_run, tmp_path, model, words):
    _, _, ckpt, _ = stopped_run
    with pytest.raises(CheckpointError, match=words):
        train(model(), checkpoint=ckpt, out_tsv=str(tmp_path / "log.tsv"), resume=True, **SMALL)
    assert os.listdir(tmp_path) == []
    with pytest.raises(CheckpointError, match="batch = 2"):
        train(small_model(), checkpoint=ckpt, resume=True, **{**SMALL, "batch": 3})


def test_missing_checkpoint_and_missing_log_folder_fail_before_step_0(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        train(small_model(), checkpoint=str(tmp_path / "none.npz"), resume=True, **SMALL)
    calls = []
    model = small_model()
    forward = model.forward
    model.forward = lambda *a: calls.append(1) or forward(*a)
    with pytest.raises(FileNotFoundError):
        train(model, out_tsv=str(tmp_path / "missing" / "log.tsv"), **SMALL)
    assert calls == []


@pytest.mark.parametrize("model, words", [
    (None, "model: expected a mdlstm_np Model .* got NoneType"),
    (MDLSTM(1, 3), "got MDLSTM; wrap a bare layer"),
])
def test_train_refuses_what_is_not_a_model(model, words):
    with pytest.raises(TypeError, match=words):
        train(model, **SMALL)


def test_numpy_scalar_learning_rates_are_accepted():
    a = train(small_model(), **{**SMALL, "steps": 2, "lr": np.float32(0.25)})
    b = train(small_model(), **{**SMALL, "steps": 2, "lr": 0.25})
    assert losses(a.rows) == losses(b.rows)
