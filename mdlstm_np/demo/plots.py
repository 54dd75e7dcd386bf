"""Figures for the demo: loss curves of all models, predictions beside the ground truth.

Matplotlib runs with the non-interactive Agg backend (no display needed). Every figure is saved
atomically: to a temporary file in the target folder, then moved into place with ``os.replace``.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..training.atomic import atomic_write  # noqa: E402

DECADE = 10.0  # a log axis only when the positive values span at least this ratio
FEW_POINTS = 30  # below this many points a curve gets markers (one point is still visible)


def scale_y(ax, *series) -> str:
    """Log-scale ``ax``'s y axis when the positive finite values of ``series`` span at least a
    decade, else linear (a log axis over a narrow range shows no tick labels worth reading).
    Returns the scale chosen."""
    values = np.concatenate([np.ravel(np.asarray(s, dtype=float)) for s in series] or [[]])
    values = values[np.isfinite(values) & (values > 0)]
    scale = "log" if values.size and values.max() >= DECADE * values.min() else "linear"
    ax.set_yscale(scale)
    return scale


def epoch_axis(ax, label: str = "epoch") -> None:
    """An x axis of whole epochs: integer ticks only."""
    ax.set_xlabel(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def marker(n: int):
    """The marker for a curve of ``n`` points: dots when there are few (a single point is
    drawn), none when the line alone shows the curve."""
    return "o" if n < FEW_POINTS else None


def _save(fig, path: str) -> str:
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100,
                                                          bbox_inches="tight"), suffix=".png")
    finally:
        plt.close(fig)


def plot_losses(logs: dict, column: str, path: str, *, title: str = None,
                settings: dict = None) -> str:
    """One figure, one curve per model, log-scaled y.

    logs     : {model name: rows}, rows as :func:`mdlstm_np.demo.train.train` logs them (dicts with
               "steps" and ``column``)
    column   : "overall_loss" or "relevant_loss"
    settings : the run's settings (size, hidden, batch, lr, steps, dtype, seed, backend ...),
               stated under the title (:func:`settings_text`)
    """
    if column not in ("overall_loss", "relevant_loss"):
        raise ValueError(f"column: expected 'overall_loss' or 'relevant_loss', got {column!r}")
    if not logs:
        raise ValueError("logs: expected at least one model's rows, got none")
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = []
    for name, rows in logs.items():
        s = np.array([r["steps"] for r in rows], dtype=float)
        v = np.maximum(np.array([r[column] for r in rows], dtype=float), 1e-12)  # log: v > 0
        ax.plot(s, v, label=name, linewidth=0.8, marker=marker(len(s)), markersize=3)
        drawn.append(v)
    scale_y(ax, *drawn)
    ax.set_xlabel("step")
    ax.set_ylabel(column.replace("_", " "))
    head = title or {"overall_loss": "MSE over all cells",
                     "relevant_loss": "squared error at the second one"}[column]
    ax.set_title(head + (f"\n{settings_text(settings)}" if settings else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_predictions(x, y_true, y_pred, path: str, title: str = "", *, max_samples: int = 4,
                     cells=None, settings: dict = None, max_cells: int = 32) -> str:
    """Input, prediction and ground truth side by side for the first few samples, on one colour
    scale [0, 1] with a colour bar.

    x, y_true, y_pred : host arrays (B, H, W) or (B, H, W, 1); values in [0, 1].
    cells     : optional host ints (B, 2): per sample the (row, column) of the cell that
                counts (the random-diagonal task's ``pos``), framed in red on every panel
    settings  : the run's settings, stated under the title (steps left out: the figure shows
                one moment of the run, which ``title`` names, e.g. "before training")
    max_cells : grids with a side above this are drawn as smooth images (cell edges would
                not show) and the cell that counts is circled instead of framed
    """
    arrays = []
    for name, a in (("x", x), ("y_true", y_true), ("y_pred", y_pred)):
        a = np.asarray(a, dtype=float)
        if a.ndim == 4 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim != 3:
            raise ValueError(f"{name}: expected shape (B, H, W) or (B, H, W, 1), got "
                             f"{np.shape(a)}")
        arrays.append(a)
    if not arrays[0].shape == arrays[1].shape == arrays[2].shape:
        raise ValueError(f"y_pred: expected shapes of x, y_true, y_pred to agree, got "
                         f"{[a.shape for a in arrays]}")
    if cells is not None:
        cells = np.asarray(cells)
        if cells.ndim != 2 or cells.shape[1] != 2 or len(cells) < arrays[0].shape[0]:
            raise ValueError(f"cells: expected (B, 2) row/column pairs, got {cells.shape}")
    n = min(max_samples, arrays[0].shape[0])
    large = max(arrays[0].shape[1:]) > max_cells
    fig, axes = plt.subplots(n, 3, figsize=(7.2, 2.2 * n), squeeze=False,
                             constrained_layout=True)
    image = None
    for i in range(n):
        for j, (label, a) in enumerate(zip(("input", "prediction", "ground truth"),
                                           (arrays[0], arrays[2], arrays[1]))):
            ax = axes[i, j]
            image = ax.imshow(a[i], vmin=0.0, vmax=1.0, cmap="viridis",
                              interpolation="antialiased" if large else "nearest")
            if cells is not None:
                r, c = (int(v) for v in cells[i])
                if large:
                    ax.plot(c, r, marker="o", markersize=10, markerfacecolor="none",
                            markeredgecolor="red", markeredgewidth=1.5)
                else:
                    ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False,
                                           edgecolor="red", linewidth=1.8))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(label, fontsize=10)
    fig.colorbar(image, ax=axes[:, -1].tolist(), shrink=0.8, label="value")
    lines = [title] if title else []
    if settings:
        lines.append(settings_text({k: v for k, v in settings.items() if k != "steps"}))
    if cells is not None:
        lines.append("red: the cell that counts (where the target holds the second one)")
    if lines:
        fig.suptitle("\n".join(lines), fontsize=9)
    return _save(fig, path)

def settings_text(s: dict) -> str:
    """A run's settings in one line, for a figure's subtitle (keys that are missing are left
    out): e.g. "grid 12, hidden 16, batch 16, lr 0.01, 8 epochs, float32, seed 0"."""
    parts = []
    for key, fmt in (("size", "grid {}"), ("hidden", "hidden {}"), ("batch", "batch {}"),
                     ("lr", "lr {}"), ("steps", "{} steps"), ("epochs", "{} epochs"),
                     ("train", "{} training samples"), ("dtype", "{}"), ("seed", "seed {}"),
                     ("backend", "{}")):
        if s.get(key) is not None:
            parts.append(fmt.format(s[key]))
    return ", ".join(parts)


def plot_histories(histories: dict, path: str, *, settings: dict = None, task: str = "",
                   val_label: str = "validation") -> str:
    """Per-epoch curves of :func:`mdlstm_np.fit` histories, one line per model: training and
    validation loss (log-y), and validation accuracy when the rows have it.

    histories : {model name: rows} (``History.rows``: dicts with "epoch", "loss", "val_loss",
                optionally "val_accuracy")
    """
    if not histories:
        raise ValueError("histories: expected at least one model's rows, got none")
    acc = all("val_accuracy" in rows[0] for rows in histories.values() if rows)
    fig, axes = plt.subplots(1, 2 if acc else 1, figsize=(11 if acc else 7, 4), squeeze=False)
    ax = axes[0, 0]
    drawn = []
    for i, (name, rows) in enumerate(histories.items()):
        e = [r["epoch"] for r in rows]
        color, dot = f"C{i}", marker(len(rows))
        drawn.append([max(r["loss"], 1e-12) for r in rows])
        ax.plot(e, drawn[-1], color=color, marker=dot, markersize=3, label=f"{name} train")
        if rows and "val_loss" in rows[0]:
            drawn.append([max(r["val_loss"], 1e-12) for r in rows])
            ax.plot(e, drawn[-1], color=color, linestyle="--", marker=dot, markersize=3,
                    label=f"{name} {val_label}")
        if acc:
            axes[0, 1].plot(e, [100 * r["val_accuracy"] for r in rows], color=color,
                            marker=dot, markersize=3, label=name)
    scale_y(ax, *drawn)
    epoch_axis(ax)
    ax.set(ylabel="loss", title=f"{task}: loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    if acc:
        epoch_axis(axes[0, 1])
        axes[0, 1].set(ylabel=f"{val_label} accuracy (%)", title=f"{task}: accuracy")
        axes[0, 1].grid(alpha=0.3)
        axes[0, 1].legend(fontsize=7)
    if settings:
        fig.suptitle(settings_text(settings), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_gaussian_fields(examples: dict, histories: dict, metrics: dict, path: str, *,
                         settings: dict = None) -> str:
    """The Gaussian-field comparison, one row per kind of field: an example field (image with
    a colour bar), the validation MSE of every model per epoch (log-y, with the "copy the
    current value" baseline dashed), the final validation MSE per model over all cells and
    over the interior (every column but the last, whose target is the artificial 0).

    examples  : {kind: (S, S) field}; histories: {(kind, model): rows};
    metrics   : {kind: {"models": {model: {"val_mse": ..., "val_mse_interior": ...}},
                        "copy_current_value_mse_interior": ...}}
    """
    kinds = list(examples)
    fig, axes = plt.subplots(len(kinds), 3, figsize=(12, 3.3 * len(kinds)), squeeze=False)
    for row, kind in enumerate(kinds):
        ax = axes[row, 0]
        im = ax.imshow(examples[kind], cmap="RdBu_r", interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.8, label="value (normalised)")
        ax.set(xticks=[], yticks=[], title=f"{kind}: a validation field")
        ax = axes[row, 1]
        names = list(metrics[kind]["models"])
        drawn = []
        for i, name in enumerate(names):
            rows = histories[(kind, name)]
            drawn.append([r["val_loss"] for r in rows])
            ax.plot([r["epoch"] for r in rows], drawn[-1], color=f"C{i}", marker="o",
                    markersize=3, label=name)
        copy = metrics[kind]["copy_current_value_mse_interior"]
        ax.axhline(copy, color="0.4", linestyle="--", linewidth=1,
                   label="copy the current value\n(interior cells)")
        scale_y(ax, *drawn, [copy])
        epoch_axis(ax)
        ax.set(ylabel="validation MSE", title=f"{kind}: predict the next value to the right")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        ax = axes[row, 2]
        x = np.arange(len(names))
        for offset, key, hatch, label in ((-0.2, "val_mse", None, "all cells"),
                                          (0.2, "val_mse_interior", "//",
                                           "interior (last column left out)")):
            vals = [metrics[kind]["models"][n][key] for n in names]
            ax.bar(x + offset, vals, width=0.38, color=[f"C{i}" for i in range(len(names))],
                   hatch=hatch, edgecolor="white" if hatch else None, label=label)
            for i, v in enumerate(vals):
                ax.text(i + offset, v, f"{v:.3f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels([n.replace("_SD_LSTM", "\nSD_LSTM") for n in names], fontsize=8)
        ax.set(ylabel="final validation MSE", title=f"{kind}: final MSE (hatched: interior)")
        top = max(max(v["val_mse"], v["val_mse_interior"])
                  for v in metrics[kind]["models"].values())
        ax.set_ylim(0, 1.4 * top)                     # room for the legend above the bars
        ax.legend(fontsize=7, loc="upper left")
    if settings:
        fig.suptitle("Gaussian random fields, " + settings_text(settings), fontsize=10)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=72),
                            suffix=".png")
    finally:
        plt.close(fig)


def confusion_matrix(y_true, y_pred, classes: int) -> np.ndarray:
    """(classes, classes) int64 counts: row = true class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_pred: expected the shape of y_true {y_true.shape}, got "
                         f"{y_pred.shape}")
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def plot_classification(images, y_true, y_pred, path: str, *, classes: int = 10,
                        title: str = "", max_errors: int = 24) -> str:
    """The confusion matrix (counts, row = true class) beside up to ``max_errors`` misclassified
    test images, each titled "true→predicted". images (N, H, W, 1) in [0, 1]; labels (N,)."""
    cm = confusion_matrix(y_true, y_pred, classes)
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))[:max_errors]
    cols = 6
    rows = max(1, -(-len(wrong) // cols))
    fig = plt.figure(figsize=(11, max(4.2, 1.2 * rows + 0.8)))
    grid = fig.add_gridspec(rows, 1 + cols, width_ratios=[cols * 0.9] + [1] * cols)
    ax = fig.add_subplot(grid[:, 0])
    im = ax.imshow(cm, cmap="Blues")
    for (i, j), n in np.ndenumerate(cm):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                    color="white" if n > cm.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", xticks=range(classes), yticks=range(classes),
           title=f"confusion matrix ({len(y_true) - int(np.trace(cm))} of {len(y_true)} wrong)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for k, idx in enumerate(wrong):
        a = fig.add_subplot(grid[k // cols, 1 + k % cols])
        a.imshow(np.asarray(images)[idx, ..., 0], cmap="gray_r", vmin=0, vmax=1)
        a.set_title(f"{int(y_true[idx])}→{int(y_pred[idx])}", fontsize=8, color="red")
        a.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
