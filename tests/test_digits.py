"""Real data (mdlstm_np/data/digits.py): the fixed split, the missing-scikit-learn message, the
shift augmentation, and a multi-directional MD-LSTM + read-out + softmax + Adam that learns
the digits (≥ 90 % test accuracy in the slow test)."""

import importlib.util
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mdlstm_np import MultiDirectionalMDLSTM, get_backend
from mdlstm_np.data.digits import N_TRAIN, load_digits, random_shift
from mdlstm_np.optim import Adam
from mdlstm_np.readout import MeanPoolReadout, softmax_cross_entropy

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAVE_NUMBA = importlib.util.find_spec("numba") is not None
needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="needs scikit-learn (pip install "
                                   "scikit-learn), which ships the digits")
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="needs numba (pip install -e '.[fast]')")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "digits.py")


@needs_sklearn
def test_split_is_fixed_scaled_and_in_scikit_learns_order():
    from sklearn.datasets import load_digits as sk_load_digits

    sk = sk_load_digits()
    d = load_digits()
    assert N_TRAIN == 898
    assert d.x_train.shape == (898, 8, 8, 1) and d.x_test.shape == (899, 8, 8, 1)
    assert d.x_train.dtype == np.float64 and d.y_train.dtype == np.int64
    np.testing.assert_array_equal(d.y_train, sk.target[:898])
    np.testing.assert_array_equal(d.y_test, sk.target[898:])
    np.testing.assert_array_equal(d.x_test[0, ..., 0] * 16, sk.images[898])   # first test image
    for x in (d.x_train, d.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(d.y_test)) == set(range(10))
    assert load_digits("float32").x_train.dtype == np.float32


def test_missing_scikit_learn_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)            # makes "import sklearn" fail
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"scikit-learn.*\(pip install scikit-learn\)"):
        load_digits()


def test_random_shift_moves_each_image_and_fills_zeros():
    x = np.arange(1, 2 * 4 * 5 + 1, dtype=np.float64).reshape(2, 4, 5, 1)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        y = random_shift(x, rng, 1)
        for b in range(2):
            # y[b] equals x[b] translated by some (dy, dx) in [-1, 1]², zeros elsewhere
            matches = []
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ref = np.zeros((4, 5))
                    ref[max(dy, 0):4 + min(dy, 0), max(dx, 0):5 + min(dx, 0)] = \
                        x[b, max(-dy, 0):4 + min(-dy, 0), max(-dx, 0):5 + min(-dx, 0), 0]
                    if np.array_equal(y[b, ..., 0], ref):
                        matches.append((dy, dx))
            assert len(matches) == 1
            seen.add(matches[0])
    assert len(seen) == 9                                         # every offset occurs
    np.testing.assert_array_equal(random_shift(x, rng, 0), x)
    with pytest.raises(ValueError, match="max_shift: expected an integer >= 0"):
        random_shift(x, rng, -1)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, H, W, C\)"):
        random_shift(x[0], rng)


# ----------------------------------------------------------------- learning
def _train(hidden, epochs, *, lr, batch=32, shift=1, seed=0):
    """MultiDirectionalMDLSTM(1, hidden, 4 directions) -> mean pooling -> softmax, Adam with a
    cosine-decayed step. Returns (test accuracy, mean training loss of each epoch)."""
    d = load_digits("float32")
    be = get_backend("numba")
    layer = MultiDirectionalMDLSTM(1, hidden, ndim=2, cell="graves", forget_bias=0.0, backend=be,
                                   dtype="float32")  # the settings the accuracies were measured with
    readout = MeanPoolReadout(layer.out_features, 10, backend=be, dtype="float32")
    rng = np.random.default_rng(seed)
    p_rnn, p_ro = layer.init_params(rng), readout.init_params(rng)
    opt_rnn, opt_ro = Adam(p_rnn, lr=lr), Adam(p_ro, lr=lr)
    total = epochs * math.ceil(N_TRAIN / batch)
    step, losses = 0, []
    for _ in range(epochs):
        order, epoch_loss = rng.permutation(N_TRAIN), 0.0
        for i in range(0, N_TRAIN, batch):
            idx = order[i:i + batch]
            h, c_rnn = layer.forward(p_rnn, random_shift(d.x_train[idx], rng, shift))
            logits, c_ro = readout.forward(p_ro, h)
            loss, dlogits = softmax_cross_entropy(be, logits, d.y_train[idx])
            dh, g_ro = readout.backward(dlogits, c_ro)
            _, g_rnn = layer.backward(dh, c_rnn)
            for opt in (opt_rnn, opt_ro):
                opt.lr = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            opt_rnn.step(p_rnn, g_rnn)
            opt_ro.step(p_ro, g_ro)
            step += 1
            epoch_loss += float(loss) * len(idx)
        losses.append(epoch_loss / N_TRAIN)
    logits, _ = readout.forward(p_ro, layer.forward(p_rnn, d.x_test)[0])
    return float(np.mean(np.argmax(logits, axis=1) == d.y_test)), losses


@needs_sklearn
@needs_numba
def test_digits_start_to_learn():
    """~1 s: five epochs of a small layer (measured: loss 2.31 -> 1.04, test accuracy 0.64)."""
    acc, losses = _train(hidden=8, epochs=5, lr=0.02, shift=0)
    assert losses[0] < math.log(10) + 0.1 and losses[-1] < 0.6 * losses[0]
    assert acc > 0.4                                              # chance: 0.1


@pytest.mark.slow
@needs_sklearn
@needs_numba
def test_four_direction_mdlstm_reaches_90_percent_on_digits():
    """8-25 s on one core (by load); measured 97.2 % (seeds 1, 2: 94.9 %, 97.0 %). A tuned
    SVM gets 96.9 % on this split; ``examples/digits.py`` has settings that reach 97 % on
    every seed tried."""
    acc, losses = _train(hidden=16, epochs=40, lr=0.02)
    assert acc >= 0.90, (acc, losses[-1])


# ----------------------------------------------------------------- examples/digits.py
def _run_example(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, EXAMPLE, *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


@needs_sklearn
@needs_numba
def test_example_short_run_prints_the_table_and_writes_the_figure(tmp_path):
    png = tmp_path / "curves" / "digits.png"                      # the folder does not exist yet
    r = _run_example("--models", "md1,snake", "--epochs", "2", "--hidden", "2", "--batch", "300",
                     "--readout", "sum", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("model ")[1].splitlines()
    assert [line.split()[0] for line in table[2:4]] == ["md1", "snake"]
    assert all("sum" in line and "%" in line for line in table[2:4])
    assert "snake" in r.stderr                                    # tqdm's bar
    assert png.stat().st_size > 0 and not [p for p in os.listdir(png.parent) if p != "digits.png"]


@pytest.mark.parametrize("args, words", [
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--models", "md4,cnn"], "models: expected a comma-separated list from md4, md1"),
    (["--epochs", "0"], "epochs: expected an integer >= 1, got 0"),
    (["--lr", "nan"], "lr: expected a finite number > 0, got nan"),
    (["--shift", "8"], r"shift: expected an integer in \[0, 7\], got 8"),
    (["--readout", "max"], "invalid choice: 'max'"),
])
def test_example_bad_arguments_are_one_line_and_exit_2(args, words):
    r = _run_example(*args)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("digits.py: error: ")
    assert re.search(words, r.stderr), r.stderr
