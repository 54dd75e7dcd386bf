"""Figures for the demo: loss curves of all models, predictions beside the ground truth.

Matplotlib runs with the non-interactive Agg backend (no display needed). Every figure is saved
atomically: to a temporary file in the target folder, then moved into place with ``os.replace``.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .atomic import atomic_write  # noqa: E402


def _save(fig, path: str) -> str:
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100,
                                                          bbox_inches="tight"), suffix=".png")
    finally:
        plt.close(fig)


def plot_losses(logs: dict, column: str, path: str, *, title: str = None) -> str:
    """One figure, one curve per model, log-scaled y.

    logs   : {model name: rows}, rows as :func:`mdlstm_np.train.train` logs them (dicts with
             "steps" and ``column``)
    column : "overall_loss" or "relevant_loss"
    """
    if column not in ("overall_loss", "relevant_loss"):
        raise ValueError(f"column: expected 'overall_loss' or 'relevant_loss', got {column!r}")
    if not logs:
        raise ValueError("logs: expected at least one model's rows, got none")
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rows in logs.items():
        s = np.array([r["steps"] for r in rows], dtype=float)
        v = np.array([r[column] for r in rows], dtype=float)
        ax.plot(s, np.maximum(v, 1e-12), label=name, linewidth=0.8)  # log axis: keep v > 0
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(column.replace("_", " "))
    ax.set_title(title or {"overall_loss": "MSE over all cells",
                           "relevant_loss": "squared error at the second one"}[column])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_predictions(x, y_true, y_pred, path: str, title: str = "", *, max_samples: int = 4) -> str:
    """Input, prediction and ground truth side by side for the first few samples.

    x, y_true, y_pred : host arrays (B, H, W) or (B, H, W, 1); values in [0, 1].
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
    n = min(max_samples, arrays[0].shape[0])
    fig, axes = plt.subplots(n, 3, figsize=(6.5, 2.2 * n), squeeze=False)
    for i in range(n):
        for j, (label, a) in enumerate(zip(("input", "prediction", "ground truth"),
                                           (arrays[0], arrays[2], arrays[1]))):
            ax = axes[i, j]
            ax.imshow(a[i], vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(label)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
