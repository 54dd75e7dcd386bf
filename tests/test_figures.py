"""Figures that say what they show: a log axis only over a decade or more, whole-number epoch
ticks, a single point visible, the run's settings on every figure of the demo and examples."""

import importlib.util
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mdlstm_np.demo import plots  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def figures(monkeypatch):
    """The figures the code makes, kept open instead of written (``plots._save`` and
    ``atomic_write`` replaced by collectors)."""
    made = []

    def keep(fig, path):
        made.append(fig)
        return path

    monkeypatch.setattr(plots, "_save", keep)
    monkeypatch.setattr(plt, "close", lambda fig=None: None)
    return made


def test_scale_is_log_only_over_a_decade():
    fig, ax = plt.subplots()
    assert plots.scale_y(ax, [0.5, 0.9]) == "linear" and ax.get_yscale() == "linear"
    assert plots.scale_y(ax, [0.01, 0.5]) == "log" and ax.get_yscale() == "log"
    assert plots.scale_y(ax, [0.2, 0.3], [0.002]) == "log"        # over every series
    assert plots.scale_y(ax, [0.0, 0.3, np.nan]) == "linear"       # non-positive values ignored
    plt.close(fig)


def _epoch_rows(n, loss0=0.7, acc=True):
    rows = [{"epoch": e, "loss": loss0 - 0.01 * e, "val_loss": loss0 - 0.012 * e} for e in
            range(1, n + 1)]
    if acc:
        for r in rows:
            r["val_accuracy"] = 0.5 + 0.01 * r["epoch"]
    return rows


def test_histories_after_one_epoch_draw_a_point_on_integer_ticks(figures):
    plots.plot_histories({"MD": _epoch_rows(1)}, "x.png", settings={"hidden": 8, "epochs": 1},
                         task="digits")
    fig = figures[-1]
    loss_ax, acc_ax = fig.axes[:2]
    for ax in (loss_ax, acc_ax):
        assert all(ln.get_marker() not in (None, "None", "") for ln in ax.lines), ax.get_title()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert loss_ax.get_yscale() == "linear"                          # 0.69 .. 0.688: no decade
    assert "hidden 8" in fig._suptitle.get_text()


def test_histories_over_a_decade_are_log(figures):
    rows = [{"epoch": e, "loss": 10.0 ** -e, "val_loss": 10.0 ** -e} for e in range(1, 5)]
    plots.plot_histories({"MD": rows}, "x.png", task="t")
    assert figures[-1].axes[0].get_yscale() == "log"


def test_step_curves_narrow_range_linear(figures):
    logs = {"MD": [{"steps": s, "overall_loss": 0.2 + 0.001 * s, "relevant_loss": 0.3}
                   for s in range(1, 6)]}
    plots.plot_losses(logs, "overall_loss", "x.png", settings={"size": 8})
    ax = figures[-1].axes[0]
    assert ax.get_yscale() == "linear" and "grid 8" in ax.get_title()


def _load(name):
    spec = importlib.util.spec_from_file_location(f"ex_{name}", ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_digits_example_plot_after_one_epoch(monkeypatch, tmp_path):
    saved = []
    monkeypatch.setattr(plt, "close", lambda fig=None: saved.append(fig))
    digits = _load("digits")
    hist = {"md1": {"epoch": [1], "train_loss": [0.9], "test_acc": [0.4]}}
    digits.save_plot(str(tmp_path / "d.png"), hist, settings={"hidden": 4, "epochs": 1})
    fig = saved[-1]
    assert (tmp_path / "d.png").exists()
    for ax in fig.axes:
        assert ax.lines and ax.lines[0].get_marker() not in (None, "None", "")
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert all(float(t).is_integer() for t in ticks)
    assert fig.axes[1].get_yscale() == "linear"
    assert "hidden 4" in fig._suptitle.get_text()


def test_demo3d_example_figure_carries_its_settings(monkeypatch, tmp_path):
    saved = []
    monkeypatch.setattr(plt, "close", lambda fig=None: saved.append(fig))
    demo3d = _load("demo3d")
    hist = {"3-D": {"step": [1, 2], "relevant": [0.8, 0.7], "loss": [0.1, 0.09]}}
    demo3d.save_plot(str(tmp_path / "d3.png"), hist, {"settings": {"size": 5, "hidden": 16}})
    fig = saved[-1]
    assert "grid 5" in fig._suptitle.get_text()
    assert all(ax.get_yscale() == "linear" for ax in fig.axes)


def test_demo_help_names_every_task():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "demo.py"), "--help"], cwd=ROOT,
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT),
                                                              "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    usage, _, rest = done.stdout.partition("options:")
    task_help = rest.split("--task")[1].split("--epochs")[0]
    for task in ("diagonal", "gaussian", "digits", "diagonal3d", "lines"):
        assert task in usage and task in task_help, task
