"""The hierarchical MDRNN + CTC for lines of handwriting: finite differences end to end, each
line of a padded batch equal to the line alone, numba against numpy, a short training run that
must at least halve the untrained test CER, and the example's smoke run and flag errors."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from mdlstm_np.backends import numba_available
from mdlstm_np.ctc import ctc_loss
from mdlstm_np.demo.handwriting import N_CLASSES, HierarchicalMDRNN, train_lines
from mdlstm_np.testing.gradcheck import directional_check

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def tiny(backend="numpy", dtype="float64"):
    return HierarchicalMDRNN(h1=2, f2=3, h2=2, cell="graves", forget_bias=0.5,
                             backend=backend, dtype=dtype)


def batch(rng):
    """Three lines of different sizes padded into one (3, 6, 13, 1) array, with labels."""
    sizes = np.array([[6, 13], [3, 7], [5, 2]])
    x = np.zeros((3, 6, 13, 1))
    for b, (h, w) in enumerate(sizes):
        x[b, :h, :w] = rng.random((h, w, 1))
    targets = np.array([[1, 4, 4], [10, 0, 0], [0, 0, 0]])             # repeat, one, empty
    return x, sizes, targets, np.array([3, 1, 0])


def ctc_sum(model, params, x, sizes, targets, lengths):
    y, cache = model.forward(params, x, sizes)
    return float(ctc_loss(model.be, y, targets, cache.input_lengths, lengths)[0])


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("seed", [0, 1])
def test_finite_differences_end_to_end(seed):
    """CTC loss of a padded batch, through every layer: random directions in float64."""
    rng = np.random.default_rng(seed)
    model = tiny()
    params = model.init_params(rng)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}  # b ≠ 0
    x, sizes, targets, lengths = batch(rng)
    _, grads, y, Tb = model.loss(params, x, sizes, targets, lengths, reduction="sum")
    assert y.shape == (4, 3, N_CLASSES) and Tb.tolist() == [4, 2, 1]
    assert set(grads) == set(params) == set(model.param_shapes())
    for k in range(3):
        exact, numeric, rel = directional_check(
            lambda: ctc_sum(model, params, x, sizes, targets, lengths), params, grads,
            np.random.default_rng(10 * seed + k))
        assert rel <= 1e-7, (exact, numeric)


def test_each_line_equals_running_it_alone():
    rng = np.random.default_rng(2)
    model = tiny()
    params = model.init_params(rng)
    x, sizes, targets, lengths = batch(rng)
    garbage = x.copy()                               # padding must not matter: fill it
    for b, (h, w) in enumerate(sizes):
        inside = garbage[b, :h, :w].copy()
        garbage[b] = 5.0 * rng.standard_normal(garbage[b].shape)
        garbage[b, :h, :w] = inside
    _, grads, y, Tb = model.loss(params, garbage, sizes, targets, lengths, reduction="sum")
    total = {k: np.zeros_like(v) for k, v in params.items()}
    for b, (h, w) in enumerate(sizes):
        _, g, y1, T1 = model.loss(params, x[b:b + 1, :h, :w], sizes[b:b + 1],
                                  targets[b:b + 1], lengths[b:b + 1], reduction="sum")
        assert T1[0] == Tb[b] == y1.shape[0]
        np.testing.assert_allclose(y[:Tb[b], b], y1[:, 0], rtol=0, atol=1e-12)
        for k in total:
            total[k] += g[k]
    for k in total:                                  # the batch's gradient is the sum of lines'
        np.testing.assert_allclose(grads[k], total[k], rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
def test_numba_matches_numpy():
    rng = np.random.default_rng(3)
    ref, fast = tiny("numpy"), tiny("numba")
    params = ref.init_params(rng)
    x, sizes, targets, lengths = batch(rng)
    l0, g0, y0, _ = ref.loss(params, x, sizes, targets, lengths)
    l1, g1, y1, _ = fast.loss(params, x, sizes, targets, lengths)
    assert abs(l0 - l1) <= 1e-10
    np.testing.assert_allclose(y1, y0, atol=1e-12)
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], atol=1e-11, err_msg=k)


def test_errors():
    model = tiny()
    params = model.init_params(np.random.default_rng(0))
    _, cache = model.forward(params, np.zeros((1, 4, 8, 1)), np.array([[4, 8]]))
    with pytest.raises(ValueError, match="dlog_probs"):
        model.backward(np.zeros((1, 1, N_CLASSES)), cache)
    with pytest.raises(ValueError, match="steps, epochs"):
        train_lines(10, epochs=1)
    with pytest.raises(ValueError, match="decay_at"):
        train_lines(10, decay_at=1.5)


# --------------------------------------------------------------------------- training
def test_short_training_run_halves_the_test_cer():
    """CI-sized: short lines (1-3 digits), 800 steps; 22 s on a shared 2-core machine (the
    untrained model's CER is 1.17 here: it inserts labels; the run reaches ~0.35)."""
    pytest.importorskip("sklearn")
    t0 = time.perf_counter()
    r = train_lines(800, batch=16, h1=4, f2=16, h2=16, lr=1e-2, forget_bias=-1.0, n_train=600,
                    n_test=100, eval_every=800, refresh=0, decay_at=None, backend="auto",
                    progress=False, lines_kwargs=dict(max_digits=3))
    assert r.untrained_cer > 0.5
    assert r.test_cer <= r.untrained_cer / 2, (r.untrained_cer, r.test_cer, r.evals)
    assert 0 <= r.test_cer <= 1 and len(r.predictions) == 100
    print(f"untrained CER {r.untrained_cer:.3f} -> {r.test_cer:.3f} in "
          f"{time.perf_counter() - t0:.1f} s")


@pytest.mark.parametrize("cut", [3, 6, 11])   # inside an epoch, at its end, after the decay
def test_an_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, cut):
    """Fault: a lines run (the longest demo task) kept no checkpoint, so an interruption lost
    it. Epochs of 3 batches, new training lines every epoch (refresh=1), α/10 from step 7:
    every loss, test CER and parameter after the resume equals an uninterrupted run's."""
    pytest.importorskip("sklearn")
    kw = dict(steps=12, batch=4, n_train=10, n_test=4, h1=2, f2=4, h2=3, eval_every=4,
              refresh=1, decay_at=0.5, backend="numpy", dtype="float64", progress=False,
              checkpoint_every=5)
    full = train_lines(**kw)
    path = str(tmp_path / "lines.npz")
    part = train_lines(checkpoint=path, should_stop=lambda done: done == cut, **kw)
    assert part.stopped and part.settings["steps_done"] == cut
    res = train_lines(checkpoint=path, resume=True, **kw)
    assert not res.stopped and res.settings["steps_done"] == 12
    assert [r["loss"] for r in res.curve] == [r["loss"] for r in full.curve]
    assert [e["test_cer"] for e in res.evals] == [e["test_cer"] for e in full.evals]
    assert res.settings["decayed_at_step"] == full.settings["decayed_at_step"]
    for k, v in full.params.items():
        np.testing.assert_array_equal(res.params[k], v)
    with pytest.raises(ValueError, match="h2 = 3"):            # another run's checkpoint
        train_lines(checkpoint=path, resume=True, **{**kw, "h2": 4})
    with pytest.raises(ValueError, match="resume: needs checkpoint"):
        train_lines(resume=True, **kw)


# --------------------------------------------------------------------------- the example
def run_example(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, "examples", "lines.py"), *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def test_example_smoke_run(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    p = run_example("--steps", "3", "--batch", "4", "--hidden", "2", "--h1", "2", "--f2", "3",
                    "--n-train", "8", "--n-test", "4", "--eval-every", "2", "--backend",
                    "numpy", "--no-progress", "--out", str(out))
    assert p.returncode == 0, p.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test_cer"] <= 1
    assert metrics["settings"]["h2"] == 2 and metrics["settings"]["steps"] == 3
    for name in ("curves.tsv", "evals.tsv", "learning_curves.png", "lines.png"):
        assert (out / name).stat().st_size > 0, name
    assert len((out / "curves.tsv").read_text().splitlines()) == 4
    assert not [f for f in os.listdir(out) if f.startswith(".tmp_")]


@pytest.mark.parametrize("args", [["--bogus"], ["--steps", "0"], ["--lr", "-1"],
                                  ["--steps", "5", "--epochs", "1"], ["--batch", "x"],
                                  ["--decay-at", "0"], ["--refresh", "-1"]])
def test_example_bad_flag_exits_2(args, tmp_path):
    p = run_example(*args, "--out", str(tmp_path))
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("lines.py: error:")
