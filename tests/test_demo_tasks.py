"""demo.py --task: each task's smoke run (tiny sizes, numpy, one epoch), metrics.json, --help,
and the flags that belong to one kind of task only."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from mdlstm_np.demo.demotasks import TASK_MODELS
from mdlstm_np.demo.models import MODEL_NAMES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "demo.py")
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
TINY = ["--epochs", "1", "--train", "6", "--val", "4", "--batch", "3", "--hidden", "2",
        "--backend", "numpy", "--no-progress"]


def run_demo(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, DEMO, *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def metrics(folder):
    with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as f:
        return json.load(f)


def test_gaussian_smoke_run_writes_metrics_and_the_figure(tmp_path):
    r = run_demo("--task", "gaussian", "--size", "4", "--out", str(tmp_path), *TINY)
    assert r.returncode == 0, r.stderr
    m = metrics(tmp_path)
    assert m["task"] == "gaussian" and m["settings"]["epochs"] == 1
    for kind in ("isotropic", "anisotropic"):
        assert set(m[kind]["models"]) == set(MODEL_NAMES)
        assert m[kind]["best"] in MODEL_NAMES
        for v in m[kind]["models"].values():
            assert v["val_mse"] > 0 and v["val_mse_interior"] > 0
    assert (tmp_path / "gaussian_fields.png").stat().st_size > 0
    assert len(list(tmp_path.glob("checkpoint_gaussian_*.npz"))) == 6


@pytest.mark.skipif(not HAVE_SKLEARN, reason="needs scikit-learn, which ships the digits")
def test_digits_smoke_run_reports_test_accuracy_per_model(tmp_path):
    r = run_demo("--task", "digits", "--out", str(tmp_path), *TINY)
    assert r.returncode == 0, r.stderr
    acc = metrics(tmp_path)["test_accuracy"]
    assert set(acc) == set(TASK_MODELS["digits"])
    for value in acc.values():
        assert isinstance(value, float) and 0.0 <= value <= 1.0
    assert (tmp_path / "digits_curves.png").stat().st_size > 0
    assert (tmp_path / "digits_errors.png").stat().st_size > 0      # confusion matrix, errors
    assert "test accuracy" in r.stdout


@pytest.mark.skipif(not HAVE_SKLEARN, reason="needs scikit-learn, which ships the digits")
def test_lines_smoke_run_writes_test_cer(tmp_path):
    """--task lines: the hierarchical MDRNN with CTC; metrics.json's test_cer is in [0, 1]
    (capped: an untrained model inserts labels, and edit distance / length can pass 1)."""
    r = run_demo("--task", "lines", "--steps", "4", "--train", "32", "--val", "8", "--batch",
                 "4", "--backend", "numpy", "--out", str(tmp_path), "--no-progress")
    assert r.returncode == 0, r.stderr
    m = metrics(tmp_path)
    assert m["task"] == "lines" and isinstance(m["test_cer"], float)
    assert 0.0 <= m["test_cer"] <= 1.0 and m["test_cer"] == min(1.0, m["test_cer_uncapped"])
    assert (tmp_path / "lines.png").stat().st_size > 0
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
    assert "test CER" in r.stdout


def test_diagonal3d_smoke_run(tmp_path):
    r = run_demo("--task", "diagonal3d", "--size", "3", "--model", "md_lstm_3d",
                 "--out", str(tmp_path), *TINY)
    assert r.returncode == 0, r.stderr
    m = metrics(tmp_path)["models"]
    assert set(m) == {"MD_LSTM_3D"} and m["MD_LSTM_3D"]["val_relevant_mse"] >= 0
    assert (tmp_path / "losses_3d.png").stat().st_size > 0


def test_diagonal_run_writes_metrics_and_the_receptive_fields(tmp_path):
    r = run_demo("--steps", "3", "--size", "5", "--batch", "2", "--hidden", "2",
                 "--model", "md_lstm", "--backend", "numpy", "--out", str(tmp_path),
                 "--no-progress")
    assert r.returncode == 0, r.stderr
    m = metrics(tmp_path)
    assert m["task"] == "diagonal" and m["models"]["MD_LSTM"]["steps"] == 3
    assert m["models"]["MD_LSTM"]["relevant_loss_median_last_100"] >= 0
    assert (tmp_path / "receptive_fields.png").stat().st_size > 0
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp_")]


def test_help_lists_tasks_models_backends_and_files():
    r = run_demo("--help")
    assert r.returncode == 0
    for word in ("diagonal", "gaussian", "digits", "diagonal3d", *MODEL_NAMES, "MD4_LSTM",
                 "MD_LSTM_3D", "numba", "cupy", "metrics.json", "config.json",
                 "receptive_fields.png", "gaussian_fields.png"):
        assert word in r.stdout, word


@pytest.mark.parametrize("args, words", [
    (["--task", "gaussian", "--steps", "5"], "steps: only for the diagonal task"),
    (["--task", "digits", "--ln", "off"], "ln: only for the diagonal task"),
    (["--epochs", "3"], "epochs: only for the tasks trained by epochs"),
    (["--task", "digits", "--model", "md_lstm_3d"], "model: expected one of MD4_LSTM"),
    (["--task", "digits", "--size", "6"], "digits: the images are 8x8"),
    (["--task", "gaussian", "--epochs", "0"], "epochs: expected an integer >= 1, got 0"),
    (["--task", "mnist"], "invalid choice: 'mnist'"),
])
def test_bad_task_flags_are_one_line_and_exit_2(tmp_path, args, words):
    r = run_demo(*args, "--out", str(tmp_path / "o"), "--backend", "numpy")
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o").exists()
