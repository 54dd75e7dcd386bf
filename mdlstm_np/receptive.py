"""Receptive fields: which input cells can change the output at one grid cell, and how much.

Notation. A model maps x (B, *S, C) to y (B, *S, K) (a :class:`~mdlstm_np.demo.models.Model`
or a bare layer: ``forward(params, x) -> (y, cache)``, ``backward(dy, cache) -> (dx, grads)``).
We look at one cell p of the grid. Its receptive-field map is

    R_b(q) = Σ_c | ∂( Σ_k y_k(b, p) ) / ∂x_c(b, q) |            one number per input cell q

computed with one backward pass:

    1.  y, cache = forward(params, x)
    2.  dy = e_p:  1 at cell p (every sample, every output channel), 0 elsewhere
    1'. dx = backward(dy, cache) = ∂(Σ_k y_k(p)) / ∂x            (B, *S, C)
    0.  R = Σ_c |dx|                                             (B, *S)

Samples are independent, so one pass gives every sample's map. Where the model cannot see,
R is *exactly* zero, not merely small: the backward sweep starts from dy, which is zero
away from p, and a cell q that is not an ancestor of p only ever receives zeros (the pull in
``sweep.py`` sums its successors' shares, all of which are zero by induction from the last
wavefront), and 0 times any finite number is 0. What each model can see from p = (r, c):

    MD_LSTM (one scan)        the quadrant {q : q ≤ p}, i.e. rows ≤ r and columns ≤ c
    HORIZONTAL_SD_LSTM        its own row, columns ≤ c
    SNAKE_SD_LSTM             the raster past: rows < r, and row r up to column c
    4-direction MD-LSTM       the whole grid (each corner's scan sees one quadrant)

(tests/test_receptive.py pins all four.) The picture of the three seed models side by side
explains the seed's result: in the random-diagonal task the target at p = (r+1, c) is fixed by
the first "one" at (r, c), directly above p. The MD-LSTM and the snake can see that cell; the
row LSTM cannot (``examples/receptive_fields.py`` draws it, ``docs/receptive_fields.png``).
"""

from __future__ import annotations

import numbers

import numpy as np

from .training.atomic import atomic_write


def _check_cell(cell, shape):
    """cell: a tuple of ints, one per grid axis, inside ``shape`` (negative ints count from
    the end, as numpy does) -> a tuple of non-negative ints."""
    try:
        entries = tuple(cell)
    except TypeError:
        raise TypeError(f"cell: expected a tuple of {len(shape)} ints, got "
                        f"{type(cell).__name__}") from None
    if len(entries) != len(shape) or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in entries):
        raise ValueError(f"cell: expected a tuple of {len(shape)} ints (one per grid axis of "
                         f"{tuple(shape)}), got {cell!r}")
    out = []
    for v, s in zip(entries, shape):
        if not -s <= v < s:
            raise ValueError(f"cell: expected a cell inside the grid {tuple(shape)}, got "
                             f"{cell!r}")
        out.append(int(v) % s)
    return tuple(out)


def receptive_field(model, params: dict, x, cell, *, average: bool = False) -> np.ndarray:
    """|∂ output at ``cell`` / ∂ input|, summed over input channels (see the module docstring).

    model   : anything with ``be``, ``dtype``, ``forward(params, x)`` and ``backward(dy, cache)``
              (a Model, MDLSTM, MultiDirectionalMDLSTM, HorizontalSDLSTM, SnakeSDLSTM)
    params  : the model's parameters (backend or host arrays)
    x       : input (B, *S, C), host numpy or backend array; converted to the model's dtype
    cell    : the grid cell p, a tuple of len(S) ints
    average : False -> (B, *S), one map per sample; True -> (*S), the mean over the batch

    Returns a host float64 array. The map is ∂(Σ_k y_k(p))/∂x: with K > 1 output channels the
    channels' derivatives are added before the absolute value is taken (one backward pass).
    """
    be = model.be
    xb = be.asarray(x, model.dtype)
    if xb.ndim < 3:
        raise ValueError(f"x: expected shape (B, *S, C) with at least one grid axis, got "
                         f"{tuple(xb.shape)}")
    p = _check_cell(cell, tuple(xb.shape[1:-1]))
    device_params = {k: be.asarray(v, model.dtype) for k, v in params.items()}
    y, cache = model.forward(device_params, xb)  # 1. y (B, *S, K)
    dy = np.zeros(tuple(y.shape), dtype=np.float64)
    dy[(slice(None), *p, slice(None))] = 1.0  # 2. one-hot at p, every sample and channel
    dx, _ = model.backward(be.asarray(dy, model.dtype), cache)  # 1'. (B, *S, C)
    r = np.abs(np.asarray(be.to_numpy(dx), dtype=np.float64)).sum(axis=-1)  # 0. (B, *S)
    return r.mean(axis=0) if average else r


def plot_receptive_fields(maps: dict, cell, path: str, *, title: str = None,
                          marks=None, floor: float = 1e-3) -> str:
    """Receptive-field maps side by side, one panel per model, saved atomically as a PNG.

    maps  : {model name: map}, each map (H, W) or (B, H, W) (then averaged over B), as
            returned by :func:`receptive_field`
    cell  : the cell p (row, column) the maps were taken at; framed in red on every panel
    path  : where the PNG goes (written to a temporary file, then moved into place)
    title : the figure's title
    marks : optional [((row, column), label), ...] further cells to circle (e.g. the input
            cell the output needs), labelled in the legend
    floor : each map is divided by its own maximum and drawn on a log colour scale from
            ``floor`` to 1; smaller non-zero values get the lowest colour, and cells where the
            map is exactly zero — cells the model cannot see at all — are drawn in grey

    Returns ``path``.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    if not isinstance(maps, dict) or not maps:
        raise ValueError("maps: expected a non-empty dict {model name: map}")
    if not (isinstance(floor, (int, float)) and 0 < floor < 1):
        raise ValueError(f"floor: expected a number in (0, 1), got {floor!r}")
    arrays = {}
    for name, m in maps.items():
        a = np.asarray(m, dtype=np.float64)
        if a.ndim == 3:
            a = a.mean(axis=0)
        if a.ndim != 2 or not np.isfinite(a).all():
            raise ValueError(f"maps[{name!r}]: expected a finite (H, W) or (B, H, W) array, "
                             f"got shape {np.shape(m)}")
        arrays[name] = a
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise ValueError(f"maps: expected maps of one shape, got {sorted(shapes)}")
    p = _check_cell(cell, shapes.pop())

    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.82")  # masked: exactly 0
    norm = LogNorm(vmin=floor, vmax=1.0)
    n = len(arrays)
    fig, axes = plt.subplots(1, n, figsize=(3.1 * n + 0.9, 3.4), squeeze=False,
                             constrained_layout=True)
    image = None
    for ax, (name, a) in zip(axes[0], arrays.items()):
        top = a.max()
        rel = a / top if top > 0 else a
        shown = np.ma.masked_where(rel == 0, np.maximum(rel, floor))
        image = ax.imshow(shown, cmap=cmap, norm=norm, interpolation="nearest")
        ax.add_patch(Rectangle((p[1] - 0.5, p[0] - 0.5), 1, 1, fill=False, edgecolor="red",
                               linewidth=2.0))
        for (r, c), _ in marks or ():
            ax.plot(c, r, marker="o", markersize=9, markerfacecolor="none",
                    markeredgecolor="white", markeredgewidth=1.6)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(image, ax=list(axes[0]), shrink=0.85)
    bar.set_label("|∂y(p)/∂x(q)| / max  (grey: exactly 0)")
    handles = [Line2D([], [], marker="s", linestyle="", markerfacecolor="none",
                      markeredgecolor="red", markersize=9, label=f"output cell p = {p}")]
    handles += [Line2D([], [], marker="o", linestyle="", markerfacecolor="none",
                       markeredgecolor="0.3", markersize=9, label=label)
                for _, label in marks or ()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               bbox_to_anchor=(0.5, -0.08), frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)

    def writer(tmp):
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")

    try:
        return atomic_write(path, writer, suffix=".png")
    finally:
        plt.close(fig)
