"""demo.py runs that lose nothing: SIGINT, SIGTERM and kill -9 in a subprocess, then --resume,
whose losses equal an uninterrupted run's bit for bit. Tiny runs (4x4 grid, batch 2, hidden 3,
numpy); the interruption lands at a known step through demo.py's test hook (SIGNAL_HOOK: the
process signals itself when its k-th step is done), except in the SIGTERM test, which sends a
real signal from outside while the run is going."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mdlstm_np.training.checkpoint import load_checkpoint
from mdlstm_np.demo.models import MODEL_NAMES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "demo.py")
TINY = ["--steps", "5", "--size", "4", "--batch", "2", "--hidden", "3", "--backend", "numpy",
        "--no-progress"]


def start_demo(*args, signal_at=None, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.pop("MDLSTM_NP_DEMO_SIGNAL_AT", None)
    if signal_at:
        env["MDLSTM_NP_DEMO_SIGNAL_AT"] = signal_at
    return subprocess.Popen([sys.executable, DEMO, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env, **kw)


def run_demo(*args, signal_at=None):
    p = start_demo(*args, signal_at=signal_at)
    out, err = p.communicate(timeout=300)
    return p.returncode, out, err


def loss_columns(path):
    """The TSV without its time column (the only column that may differ between runs)."""
    lines = open(path).read().splitlines()
    return [tuple(line.split("\t")[i] for i in (0, 1, 3)) for line in lines]


def temporaries(folder):
    return [p for p in os.listdir(folder) if p.startswith(".tmp")]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    rc, _, err = run_demo(*TINY, "--out", str(out))
    assert rc == 0, err
    return out


def test_sigint_in_the_second_model_then_resume_is_bit_for_bit(uninterrupted, tmp_path):
    """Fault: Ctrl-C lost every logged step and printed a traceback; during the second model it
    kept the first model's files but made no loss plots."""
    out = tmp_path / "run"
    rc, _, err = run_demo(*TINY, "--out", str(out), "--checkpoint-every", "2",
                          signal_at="SIGINT:7")             # step 2 of HORIZONTAL_SD_LSTM
    assert rc == 130, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "SIGINT" in lines[0] and f"--resume {out}" in lines[0]
    assert "at step 2 of 5 of HORIZONTAL_SD_LSTM" in lines[0]
    names = set(os.listdir(out))
    assert {"config.json", "losses_overall.png", "losses_relevant.png",
            "checkpoint_MD_LSTM.npz", "checkpoint_HORIZONTAL_SD_LSTM.npz",
            "predictions_HORIZONTAL_SD_LSTM_after.png"} <= names
    assert len(loss_columns(out / "out_HORIZONTAL_SD_LSTM.tsv")) == 1 + 2
    assert load_checkpoint(str(out / "checkpoint_HORIZONTAL_SD_LSTM.npz")).step == 2

    rc, stdout, err = run_demo("--resume", str(out), "--no-progress")
    assert rc == 0, err
    for name in MODEL_NAMES:
        assert loss_columns(out / f"out_{name}.tsv") == \
            loss_columns(uninterrupted / f"out_{name}.tsv")
        assert name in stdout                                  # the summary table
    assert temporaries(out) == []


def test_sigterm_from_outside_stops_after_the_step_with_everything_saved(tmp_path):
    out = tmp_path / "run"
    p = start_demo("--model", "horizontal_sd_lstm", "--steps", "100000", "--size", "4",
                   "--batch", "2", "--hidden", "3", "--backend", "numpy", "--no-progress",
                   "--out", str(out))
    tsv = out / "out_HORIZONTAL_SD_LSTM.tsv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:   # a few rows logged: running
        if tsv.exists() and len(tsv.read_text().splitlines()) > 3:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "SIGTERM" in err and "--resume" in err
    ckpt = load_checkpoint(str(out / "checkpoint_HORIZONTAL_SD_LSTM.npz"))
    rows = loss_columns(tsv)[1:]
    assert ckpt.step == ckpt.n_rows == len(rows) >= 3       # every logged step is in both
    last = ckpt.last_row
    assert (f"{last['steps']:04d}", repr(last["overall_loss"]), repr(last["relevant_loss"])) \
        == rows[-1]
    assert (out / "losses_overall.png").stat().st_size > 0
    assert temporaries(out) == []


def test_kill_9_loses_at_most_one_interval_and_leaves_no_temporary_files(uninterrupted,
                                                                          tmp_path):
    out = tmp_path / "run"
    rc, _, _ = run_demo(*TINY, "--model", "md_lstm", "--out", str(out), "--checkpoint-every",
                        "2", signal_at="SIGKILL:3")
    assert rc == -signal.SIGKILL
    assert load_checkpoint(str(out / "checkpoint_MD_LSTM.npz")).step == 2   # 1 step lost
    assert len(loss_columns(out / "out_MD_LSTM.tsv")) == 1 + 3              # flushed rows
    (out / ".tmp_x8y2.npz").write_bytes(b"half a checkpoint")  # a write killed mid-way
    rc, _, err = run_demo("--resume", str(out), "--no-progress")
    assert rc == 0, err
    assert loss_columns(out / "out_MD_LSTM.tsv") == loss_columns(uninterrupted / "out_MD_LSTM.tsv")
    assert temporaries(out) == []


# --------------------------------------------------------------------------- the epoch tasks
FIT_TINY = ["--task", "gaussian", "--epochs", "3", "--train", "16", "--val", "8", "--size", "5",
            "--hidden", "3", "--batch", "4", "--backend", "numpy", "--no-progress"]


def epoch_rows(path):
    """A fit checkpoint's per-epoch history without the wall times."""
    return [{k: v for k, v in row.items() if k != "seconds"}
            for row in load_checkpoint(str(path)).meta["history"]]


def test_an_epoch_task_interrupted_then_resumed_equals_an_uninterrupted_run(tmp_path):
    """Fault: --resume was refused for the tasks trained by epochs (fit), so an interrupted
    gaussian/digits/diagonal3d run could only start again."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    rc, _, err = run_demo(*FIT_TINY, "--out", str(whole))
    assert rc == 0, err
    # fit asks after every epoch but a model's last: the 5th question is SNAKE_SD_LSTM's first
    rc, _, err = run_demo(*FIT_TINY, "--out", str(cut), signal_at="SIGINT:5")
    assert rc == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "SIGINT" in lines[0] and f"--resume {cut}" in lines[0]
    assert not (cut / "checkpoint_gaussian_anisotropic_MD_LSTM.npz").exists()
    assert load_checkpoint(str(cut / "checkpoint_gaussian_isotropic_SNAKE_SD_LSTM.npz")).step == 1

    rc, stdout, err = run_demo("--resume", str(cut), "--no-progress")
    assert rc == 0, err
    assert "SNAKE_SD_LSTM" in stdout                        # the summary table
    for path in sorted(whole.glob("checkpoint_*.npz")):
        assert epoch_rows(cut / path.name) == epoch_rows(path), path.name   # bit for bit
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (whole, cut))
    for kind in ("isotropic", "anisotropic"):
        for name, m in a[kind]["models"].items():
            assert b[kind]["models"][name]["val_mse"] == m["val_mse"]
            assert b[kind]["models"][name]["val_mse_interior"] == m["val_mse_interior"]
    config = json.loads((cut / "config.json").read_text())
    assert len(config["resumed"]) == 1 and "--resume" in config["resumed"][0]["command"]
    assert temporaries(cut) == []


def test_resuming_an_epoch_task_refuses_new_settings_and_bad_checkpoints(tmp_path):
    out = tmp_path / "run"
    rc, _, err = run_demo(*FIT_TINY, "--model", "md_lstm", "--epochs", "1", "--out", str(out))
    assert rc == 0, err
    rc, _, err = run_demo("--resume", str(out), "--epochs", "9")
    assert rc == 2 and err.count("\n") == 1 and "--epochs cannot be combined with --resume" in err
    ckpt = out / "checkpoint_gaussian_isotropic_MD_LSTM.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:100])                # truncated
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    rc, _, err = run_demo("--resume", str(out), "--no-progress")
    assert rc == 2 and err.count("\n") == 1 and "truncated" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before   # nothing changed


def test_the_lines_task_interrupted_then_resumed_equals_an_uninterrupted_run(tmp_path):
    """Fault: --task lines (the longest demo run) kept no checkpoint: Ctrl-C lost it."""
    args = ["--task", "lines", "--steps", "8", "--train", "8", "--val", "4", "--hidden", "3",
            "--batch", "4", "--backend", "numpy", "--no-progress", "--checkpoint-every", "3"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    rc, _, err = run_demo(*args, "--out", str(whole))
    assert rc == 0, err
    rc, _, err = run_demo(*args, "--out", str(cut), signal_at="SIGINT:5")
    assert rc == 130 and f"--resume {cut}" in err and err.count("\n") == 1, err
    name = "checkpoint_lines_HIERARCHICAL_MDRNN.npz"
    assert load_checkpoint(str(cut / name)).step == 5
    rc, stdout, err = run_demo("--resume", str(cut), "--no-progress")
    assert rc == 0, err
    a, b = (load_checkpoint(str(d / name)).meta for d in (whole, cut))
    assert a["step"] == b["step"] == 8
    assert [r["loss"] for r in b["curve"]] == [r["loss"] for r in a["curve"]]   # bit for bit
    assert [e["test_cer"] for e in b["evals"]] == [e["test_cer"] for e in a["evals"]]
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (whole, cut))
    assert mb["test_cer_uncapped"] == ma["test_cer_uncapped"]
    assert temporaries(cut) == []
