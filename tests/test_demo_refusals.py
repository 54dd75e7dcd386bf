"""The demo refuses, in one line and before writing anything, a run whose data cannot fit in
memory (every task's data sets counted) and a lines run given both --steps and --epochs."""

import os

import demo_run
import pytest

from mdlstm_np.demo.memory import estimate_data_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_demo(*args):
    return demo_run.run_demo(*args, timeout=120)


@pytest.mark.parametrize("args", [
    ["--task", "gaussian", "--train", "5000000"],          # 54 GiB: was killed at 22.6 GB
    ["--task", "diagonal3d", "--size", "40", "--train", "2000000"],
    ["--task", "gaussian", "--val", "5000000"],
], ids=["gaussian-train", "diagonal3d-train", "gaussian-val"])
def test_data_that_cannot_fit_is_refused_before_anything_is_written(args, tmp_path):
    out = tmp_path / "run"
    r = run_demo(*args, "--backend", "numpy", "--out", str(out))
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "memory:" in r.stderr and "data" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_the_estimate_counts_every_data_set():
    s = dict(size=12, train=1000, val=500, dtype="float32")
    base = estimate_data_bytes("gaussian", s)
    assert estimate_data_bytes("gaussian", dict(s, val=1000)) > base          # validation
    assert estimate_data_bytes("gaussian", dict(s, dtype="float64")) > base
    assert estimate_data_bytes("diagonal3d", dict(s, size=5)) >= 1500 * 125 * 2 * 4
    assert estimate_data_bytes("lines", dict(s, train=4000, val=300)) >= 4300 * 20 * 80 * 4


def test_lines_takes_steps_or_epochs_not_both(tmp_path):
    r = run_demo("--task", "lines", "--steps", "3", "--epochs", "2", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "--steps or for --epochs, not both" in r.stderr and "Traceback" not in r.stderr


def _demo_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_for_advice", os.path.join(ROOT, "demo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("task", ["diagonal3d", "gaussian", "diagonal"])
def test_a_non_finite_run_is_advised_with_the_demos_own_flags(task):
    """Fault: --task diagonal3d --size 60 stopped with the layer's advice (cell=, ln=,
    forget_bias=), which no flag of that task sets. The demo's message names its own flags,
    and every flag it names is one the demo's parser accepts for that task."""
    from mdlstm_np.nonfinite import advice
    from mdlstm_np import MDLSTM

    demo = _demo_module()
    layer = MDLSTM(1, 4, cell="graves")
    message = f"MD_LSTM_3D: the forward pass produced NaN. {advice(layer)}"
    s = {"task": task, "dtype": "float32", "lr": 0.01, "size": 60, "ln": "off"}
    out = demo.demo_advice(message, s)
    assert "cell=" not in out and "forget_bias" not in out and "ln=True" not in out
    assert "--dtype float64" in out and "--size (this run: 60)" in out and "--lr" in out
    assert ("--ln fixed" in out) == (task == "diagonal")
    import re

    for flag in re.findall(r"--[a-z-]+", out):
        args = [flag, "float64" if flag == "--dtype" else "fixed" if flag == "--ln" else "3"]
        if task != "diagonal":
            args += ["--task", task]
        demo.parse_args(args)              # a flag the demo has (SystemExit otherwise)
    assert demo.demo_advice("no advice here", s) == "no advice here"
