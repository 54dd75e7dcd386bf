"""demo.py as a user runs it: a short run writes its logs and figures; bad input is one line."""

import os
import subprocess
import sys

import pytest

from mdlstm_np.demo.models import MODEL_NAMES

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
    assert os.listdir(tmp_path) == ["d3.png"]
    from PIL import Image

    record = json.loads(Image.open(out).text["mdlstm_np.config"])   # the run's record
    assert record["settings"]["steps"] == 5 and record["models"]["3-D"]["sweep"] == "reference"
    assert record["command"][-2:] == ["--out", str(out)] and record["versions"]["numpy"]


# ---------------------------------------------------------------- in-process: one run, one record
import json  # noqa: E402
import shutil  # noqa: E402

import numpy as np  # noqa: E402

import demo  # noqa: E402

TINY = ["--steps", "3", "--size", "4", "--batch", "2", "--hidden", "3", "--backend", "numpy",
        "--no-progress"]


def demo_main(capsys, *args):
    """demo.main in this process: (exit status, stdout, stderr)."""
    try:
        status = demo.main(list(args))
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def snapshot(folder):
    return sorted((p.name, p.read_bytes()) for p in folder.iterdir())


def one_error_line(err, prog="demo.py"):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: ") and "Traceback" not in err
    return lines[0]


def test_config_json_records_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, _ = demo_main(capsys, *TINY, "--model", "md_lstm", "--ln", "off",
                                  "--seed", "4", "--out", str(out))
    assert status == 0
    config = json.loads((out / "config.json").read_text())
    s = config["settings"]
    assert (s["steps"], s["size"], s["batch"], s["hidden"], s["seed"], s["lr"], s["dtype"],
            s["ln"], s["model"], s["checkpoint_every"]) == \
        (3, 4, 2, 3, 4, 0.01, "float32", "off", "md_lstm", 100)
    assert config["seed"] == 4 and config["backend"] == "numpy"
    assert config["models"]["MD_LSTM"]["sweep"] == "reference"
    assert config["models"]["MD_LSTM"]["cell"] == "graves"
    assert "MD_LSTM: backend numpy, sweep reference" in stdout
    v = config["versions"]
    assert set(v) >= {"python", "numpy", "numba", "cupy", "mdlstm_np"}
    assert v["numpy"] == np.__version__ and v["python"] == sys.version.split()[0]
    assert config["command"][1:] == [DEMO, *TINY, "--model", "md_lstm", "--ln", "off",
                                     "--seed", "4", "--out", str(out)]
    assert config["resumed"] == []


def test_a_second_run_into_the_folder_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert demo_main(capsys, *TINY, "--out", str(out))[0] == 0
    before = snapshot(out)
    status, _, err = demo_main(capsys, *TINY, "--model", "md_lstm", "--steps", "2", "--out",
                               str(out))
    assert status == 2 and "holds another run's results" in one_error_line(err)
    assert "--overwrite" in err and "--resume" in err
    assert snapshot(out) == before
    status, _, _ = demo_main(capsys, *TINY, "--model", "md_lstm", "--steps", "2", "--out",
                             str(out), "--overwrite")
    assert status == 0
    names = sorted(p.name for p in out.iterdir())            # none of the first run's left
    assert names == sorted(["config.json", "out_MD_LSTM.tsv", "checkpoint_MD_LSTM.npz",
                            "predictions_MD_LSTM_before.png", "predictions_MD_LSTM_after.png",
                            "losses_overall.png", "losses_relevant.png", "metrics.json",
                            "receptive_fields.png"])
    assert len((out / "out_MD_LSTM.tsv").read_text().splitlines()) == 1 + 2
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")   # not a result: fine
    assert demo_main(capsys, *TINY, "--model", "md_lstm", "--out", str(tmp_path / "mine"))[0] == 0


@pytest.fixture(scope="module")
def _finished_template(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert demo.main([*TINY, "--model", "md_lstm", "--out", str(out),
                      "--checkpoint-every", "1"]) == 0
    return out


@pytest.fixture
def finished_run(_finished_template, tmp_path, capsys):
    """A finished one-model run, copied for each test (which may damage it)."""
    capsys.readouterr()
    return shutil.copytree(_finished_template, tmp_path / "run")


@pytest.mark.parametrize("damage, words", [
    ("truncate", "cannot be read, it is truncated, corrupted"),
    ("flip", "cannot be read, it is truncated, corrupted"),
    ("other_model", "holds model 'HORIZONTAL_SD_LSTM'"),
    ("other_hidden", "hidden = 3"),
    ("other_dtype", "float32"),
    ("short_log", "do not match"),
])
def test_resume_with_a_bad_checkpoint_is_one_line_and_changes_nothing(finished_run, tmp_path,
                                                                      capsys, damage, words):
    out = finished_run
    ckpt = out / "checkpoint_MD_LSTM.npz"
    data = bytearray(ckpt.read_bytes())
    config = json.loads((out / "config.json").read_text())
    if damage == "truncate":
        ckpt.write_bytes(bytes(data[: len(data) // 3]))
    elif damage == "flip":
        data[data.index(b"param/") + 300] ^= 0xFF
        ckpt.write_bytes(bytes(data))
    elif damage == "other_model":
        other = tmp_path / "other"
        assert demo_main(capsys, *TINY, "--model", "horizontal_sd_lstm", "--out",
                         str(other))[0] == 0
        shutil.copy(other / "checkpoint_HORIZONTAL_SD_LSTM.npz", ckpt)
    elif damage in ("other_hidden", "other_dtype"):   # the record says one thing, the file another
        key, value = ("hidden", 4) if damage == "other_hidden" else ("dtype", "float64")
        config["settings"][key] = value
        (out / "config.json").write_text(json.dumps(config))
    else:
        tsv = out / "out_MD_LSTM.tsv"
        tsv.write_text("".join(tsv.read_text().splitlines(keepends=True)[:-1]))
    before = snapshot(out)
    status, _, err = demo_main(capsys, "--resume", str(out), "--no-progress")
    assert status == 2 and words in one_error_line(err)
    assert snapshot(out) == before


def test_resume_takes_no_other_settings(finished_run, capsys):
    before = snapshot(finished_run)
    status, _, err = demo_main(capsys, "--resume", str(finished_run), "--steps", "9")
    assert status == 2 and "--steps cannot be combined with --resume" in one_error_line(err)
    assert snapshot(finished_run) == before


@pytest.mark.parametrize("args, words", [
    (["--resume", "{tmp}/nowhere"], "holds no config.json"),
    (["--steps", "99999999999999999999999"], "steps: expected an integer in [1, 1000000000]"),
    (["--checkpoint-every", "0"], "checkpoint_every: expected an integer >= 1, got 0"),
    (["--seed", "-1"], "seed: expected an integer >= 0"),
    (["--lr", "nan"], "lr: expected a finite number > 0"),
    (["--batch", "2.5"], "expected an integer, got '2.5'"),
    (["--size", "3000"], "memory: a training step (grid 3000x3000"),
    (["--batch", "1e8"], "memory: a training step (grid 8x8, batch 100000000"),
    (["--out", "{tmp}/a_file"], "exists and is not a folder"),
])
def test_more_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, words):
    """Faults: --steps 1e23 was an OverflowError, --size 3000 failed after 12 s naming a small
    allocation, --batch 1e8 a MemoryError traceback."""
    (tmp_path / "a_file").write_text("x")
    args = [a.format(tmp=tmp_path) for a in args]
    if "--resume" not in args:
        args = ["--backend", "numpy", "--no-progress", *args]
        if "--out" not in args:
            args += ["--out", str(tmp_path / "never")]
    status, _, err = demo_main(capsys, *args)
    assert status == 2 and words in one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
