"""Figures a researcher can read: the cell that counts is marked, there is a colour bar, the
"before" figure does not claim a step count, loss figures state the settings, large grids are
drawn as images."""

import os

import numpy as np
import pytest

from mdlstm_np.demo import plots

SETTINGS = {"size": 6, "hidden": 3, "batch": 2, "lr": 0.01, "steps": 1000, "dtype": "float32",
            "seed": 0, "backend": "numpy"}


@pytest.fixture
def saved(monkeypatch):
    """Keep the figure instead of writing it: [fig]."""
    figs = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig) or path)
    return figs


def texts(fig):
    out = [fig._suptitle.get_text()] if fig._suptitle else []
    return out + [ax.get_title() for ax in fig.axes]


def test_predictions_mark_the_cell_and_have_a_colour_bar(saved):
    x = np.zeros((2, 6, 6, 1))
    cells = np.array([[2, 3], [4, 1]])
    plots.plot_predictions(x, x, x, "p.png", title="MD_LSTM before training", cells=cells,
                           settings=SETTINGS)
    fig = saved[0]
    assert len(fig.axes) == 2 * 3 + 1                          # panels and the colour bar
    frames = [p for ax in fig.axes[:6] for p in ax.patches]
    assert len(frames) == 6
    assert frames[0].get_xy() == (3 - 0.5, 2 - 0.5)           # (column, row) of cells[0]
    title = fig._suptitle.get_text()
    assert "before training" in title and "1000" not in title and "steps" not in title
    assert "hidden 3" in title and "lr 0.01" in title


def test_large_grids_are_images_with_the_cell_circled(saved):
    x = np.random.default_rng(0).random((1, 40, 40, 1))
    plots.plot_predictions(x, x, x, "p.png", cells=np.array([[20, 30]]))
    ax = saved[0].axes[0]
    assert ax.images[0].get_interpolation() == "antialiased"
    assert not ax.patches and ax.lines[0].get_marker() == "o"


def test_loss_figures_state_the_settings(saved):
    rows = [{"steps": i, "overall_loss": 1.0 / (i + 1), "relevant_loss": 0.5} for i in range(5)]
    plots.plot_losses({"MD_LSTM": rows}, "overall_loss", "l.png", settings=SETTINGS)
    title = saved[0].axes[0].get_title()
    assert "1000 steps" in title and "batch 2" in title and "seed 0" in title


def test_confusion_matrix_counts_and_the_error_figure(tmp_path):
    from mdlstm_np.demo.plots import confusion_matrix, plot_classification

    y_true = np.array([0, 1, 2, 2, 1, 0, 2])
    y_pred = np.array([0, 2, 2, 1, 1, 0, 2])
    cm = confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(cm, [[2, 0, 0], [0, 1, 1], [0, 1, 2]])
    assert cm.sum() == len(y_true) and np.trace(cm) == 5
    with pytest.raises(ValueError, match="y_pred"):
        confusion_matrix(y_true, y_pred[:3], 3)
    images = np.random.default_rng(0).random((7, 8, 8, 1))
    path = plot_classification(images, y_true, y_pred, str(tmp_path / "e.png"), classes=3)
    assert os.path.getsize(path) > 0 and os.listdir(tmp_path) == ["e.png"]
