"""demo.py as a user runs it: a short run writes its logs and figures; bad input is one line."""

import os
import subprocess
import sys

import pytest

from mdlstm_np.experiment.models import MODEL_NAMES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "demo.py")


def run_demo(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, DEMO, *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=300)


def test_short_run_writes_logs_and_figures(tmp_path):
    out = tmp_path / "run"                                   # does not exist yet
    r = run_demo("--steps", "5", "--size", "6", "--batch", "2", "--hidden", "3",
                 "--backend", "numpy", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    for name in MODEL_NAMES:
        tsv = out / f"out_{name}.tsv"
        lines = tsv.read_text().splitlines()
        assert lines[0].split("\t") == ["steps", "overall_loss", "time", "relevant_loss"]
        assert len(lines) == 1 + 5
        assert [int(line.split("\t")[0]) for line in lines[1:]] == list(range(5))
        for when in ("before", "after"):
            png = out / f"predictions_{name}_{when}.png"
            assert png.stat().st_size > 0
        assert name in r.stdout                               # the summary table
    for stem in ("overall", "relevant"):
        assert (out / f"losses_{stem}.png").stat().st_size > 0
    assert not [p for p in os.listdir(out) if p.startswith(".tmp_")]   # no temp files left
    assert "backend: numpy" in r.stdout


def test_one_model_lowercase(tmp_path):
    r = run_demo("--model", "snake_sd_lstm", "--steps", "2", "--size", "4", "--batch", "1",
                 "--hidden", "2", "--backend", "numpy", "--out", str(tmp_path), "--no-progress",
                 "--dtype", "float64")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.glob("*.tsv")) == ["out_SNAKE_SD_LSTM.tsv"]


@pytest.mark.parametrize("args, words", [
    (["--model", "GRID_LSTM"], "model: expected one of MD_LSTM"),
    (["--backend", "tpu"], "backend: expected one of auto, numpy, numba, cupy, got 'tpu'"),
    (["--size", "2"], "size: expected an integer >= 3, got 2"),
    (["--steps", "0"], "steps: expected an integer >= 1, got 0"),
    (["--batch", "-1"], "batch: expected an integer >= 1, got -1"),
    (["--lr", "-0.1"], "lr: expected a finite number > 0"),
    (["--dtype", "int32"], "int32"),
    (["--size", "eight"], "eight"),
    (["--frobnicate"], "frobnicate"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, words):
    r = run_demo(*args, "--out", str(tmp_path / "never"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("demo.py: error: ") and words in lines[0]
    assert not (tmp_path / "never").exists()                 # nothing written before the check


def test_cupy_without_gpu_is_one_line(tmp_path):
    try:
        from mdlstm_np.backends import get_backend

        get_backend("cupy")
        pytest.skip("cupy is usable here")
    except Exception:
        pass
    r = run_demo("--backend", "cupy", "--steps", "1", "--out", str(tmp_path))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("model", ["all", "md_lstm"])
def test_a_diverging_run_exits_1_and_keeps_its_partial_log(tmp_path, model):
    """Fault: the demo exiting 0 after training diverged. --lr 1e300 makes the first update
    overflow: every model must stop with a line saying "not finite", keep the rows logged
    before the bad step, and the process must exit 1 (no traceback)."""
    r = run_demo("--model", model, "--lr", "1e300", "--steps", "20", "--size", "4",
                 "--batch", "2", "--hidden", "3", "--backend", "numpy", "--out",
                 str(tmp_path), "--no-progress")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    names = list(MODEL_NAMES) if model == "all" else ["MD_LSTM"]
    msgs = [line for line in r.stderr.splitlines() if "not finite" in line]
    assert [m.split(":")[1].strip() for m in msgs] == names
    for name in names:
        lines = (tmp_path / f"out_{name}.tsv").read_text().splitlines()
        assert lines[0].split("\t") == ["steps", "overall_loss", "time", "relevant_loss"]
        assert len(lines) >= 2                                 # step 0 was fine and is kept
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_demo3d_stops_on_a_nonfinite_loss_with_exit_1(tmp_path, monkeypatch, capsys):
    """The same exit path in examples/demo3d.py: its loop had no guard and went on with NaN."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "demo3d", os.path.join(ROOT, "examples", "demo3d.py"))
    demo3d = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo3d)
    real_mse, calls = demo3d.mse, []

    def mse_nan_at_third_step(be, y, t):
        loss, dy = real_mse(be, y, t)
        calls.append(1)
        return (loss * float("nan"), dy) if len(calls) == 3 else (loss, dy)

    monkeypatch.setattr(demo3d, "mse", mse_nan_at_third_step)
    out = tmp_path / "d3.png"
    with pytest.raises(SystemExit) as info:
        demo3d.main(["--steps", "5", "--size", "3", "--hidden", "2", "--batch", "2",
                     "--out", str(out)])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "not finite" in err and "step 3" in err
    assert out.stat().st_size > 0                              # the two good steps, plotted
    assert sorted(os.listdir(tmp_path)) == ["d3.config.json", "d3.png"]   # and its record
