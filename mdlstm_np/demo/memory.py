"""How much memory a training step needs, and how much there is: checked before step 1.

The estimate (bytes, numpy reference sweep; one training step = forward, backward, Adam):

    M = D · s · B · N · H · k  +  48 · B · N  +  2048 · F · D  +  8 · s · P  +  256 KiB

    D  directions (1 for the one-direction layers, up to 2ⁿ for a multi-directional one)
    s  bytes per number: 4 (float32) or 8 (float64)
    B  batch size;  N = S₁·…·Sₙ cells of the grid;  H hidden units per direction
    k  numbers kept per cell, sample and hidden unit: 5·g for a cell with g gates per unit
       (g = G/H: n+3 for Graves' cell, n+4 for the stable and leakylp cells), plus 10 for a
       layer-normalised cell. The cache holds the pre-activations z (g·H), the gate values
       (g·H), h and c; backward adds ∂z (g·H) and the running ∂h, ∂c; 5·g covers that with room
       for the temporaries of the widest step.
    48·B·N       the task's host batch (input and target in float64, and np.roll's copy)
    2048·F·D     the per-wavefront bookkeeping (index arrays, small per-step arrays); F is the
                 number of wavefronts: S₁+…+Sₙ−n+1 for an n-D layer, W for the row-by-row
                 baseline (its rows run in parallel), H·W for the snake (one cell per step)
    8·s·P        the P parameters: θ, Adam's m and v, the gradient and the update's
                 temporaries (matters for a wide layer: P grows as H²)
    256 KiB      fixed: the plan's tables for small grids, Python objects

``tests/test_memory.py`` measures the peak with ``tracemalloc`` (which sees numpy's allocations)
for several grids, batches, widths, cells and dtypes and checks peak ≤ M ≤ 2.5·peak (measured:
1.2-1.9). The numba and cupy sweeps keep the same cache; cupy's M is compared with the GPU's
free memory.
"""

from __future__ import annotations

import math
import os
from typing import Tuple

FIXED_BYTES = 256 * 1024


def estimate_training_bytes(*, grid: Tuple[int, ...], batch: int, hidden: int, gates: float,
                            layer_norm: bool, directions: int = 1, itemsize: int = 4,
                            wavefronts: int = None, params: int = 0) -> int:
    """The formula of the module docstring (see there); returns bytes as an int.

    grid : the grid's side lengths (S₁, …, Sₙ); gates : g = G/H; itemsize : 4 or 8.
    wavefronts : F, default S₁+…+Sₙ−n+1; params : P, the number of parameters.
    Big numbers stay exact (Python ints), no overflow.
    """
    N = math.prod(int(s) for s in grid)
    F = wavefronts if wavefronts is not None else sum(int(s) for s in grid) - len(grid) + 1
    k = 5 * gates + (10 if layer_norm else 0)
    return int(directions * itemsize * batch * N * hidden * k + 48 * batch * N
               + 2048 * F * directions + 8 * itemsize * params + FIXED_BYTES)


def estimate_model_bytes(model, grid: Tuple[int, ...], batch: int) -> int:
    """:func:`estimate_training_bytes` for a :class:`~.models.Model` (or any object with
    ``rnn`` and ``dtype``) on a grid (S₁, …, Sₙ) and batch B, reading D, H, g, the cell and F off
    the model's layers."""
    rnn = model.rnn
    layer = getattr(rnn, "lstm", None) or getattr(rnn, "layer", None) or rnn
    directions = len(getattr(rnn, "directions", ())) or 1
    hidden = getattr(layer, "hidden", getattr(rnn, "hidden", 1))
    layout = getattr(layer, "layout", None)
    gates = layout.size / hidden if layout is not None else 6
    cell = getattr(layer, "cell", None)
    layer_norm = "layernorm" in type(cell).__module__ if cell is not None else False
    kind = type(rnn).__name__
    wavefronts = None
    if kind == "SnakeSDLSTM":
        wavefronts = math.prod(grid)
    elif kind == "HorizontalSDLSTM":
        wavefronts = grid[-1]
    itemsize = 8 if str(model.dtype) == "float64" else 4
    nparams = parameter_count(model)
    return estimate_training_bytes(grid=tuple(grid), batch=batch, hidden=hidden, gates=gates,
                                   layer_norm=layer_norm, directions=directions,
                                   itemsize=itemsize, wavefronts=wavefronts, params=nparams)


def parameter_count(model) -> int:
    """The number of parameters of a model (from ``param_shapes``, nothing allocated)."""
    total = 0
    for part in (model.rnn, getattr(model, "head", None)):
        shapes = part.param_shapes() if hasattr(part, "param_shapes") else {}
        total += sum(math.prod(s) for s in shapes.values())
    return total


def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return None if text == "max" else int(text)
    except (OSError, ValueError):
        return None


def available_bytes(be=None) -> Tuple[int, str]:
    """(bytes, what) the run may use: the GPU's free memory for a cupy backend, else the host's
    MemAvailable (``/proc/meminfo``), lowered to the cgroup's room (``memory.max`` −
    ``memory.current``) when there is a limit. (None, reason) when it cannot be told."""
    if be is not None and str(getattr(be, "name", "")).startswith("cupy"):
        try:
            import cupy

            free, _ = cupy.cuda.runtime.memGetInfo()
            return int(free), "free on the GPU"
        except Exception as e:  # pragma: no cover - GPU machines only
            return None, f"unknown ({type(e).__name__})"
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None, "unknown"
    limit = _read_int("/sys/fs/cgroup/memory.max")
    used = _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None and limit - used < avail:
        return max(0, limit - used), "available to this container"
    return avail, "available"


def human(n: int) -> str:
    """Bytes as a short text: 1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_memory(need: int, be=None, what: str = "the run", available=None,
                 advice: str = "use a smaller --size, --batch or --hidden") -> None:
    """Raise MemoryError (one line) when ``need`` bytes exceed what :func:`available_bytes`
    reports (or ``available``, a pair (bytes, what) the caller measured, e.g. a torch
    device's); ``advice`` ends the message. Nothing happens when the available memory cannot be
    told."""
    avail, how = available if available is not None else available_bytes(be)
    if avail is not None and need > avail:
        raise MemoryError(f"memory: {what} needs about {human(need)} (estimate), "
                          f"{human(avail)} is {how}; {advice}")


# bytes per grid cell that generating a data set holds at its peak, beyond the stored arrays:
# the Gaussian fields go through float64 white noise, two complex128 FFT arrays and a float64
# field (8 + 16 + 16 + 16 + 8 bytes); the other tasks' generators hold about one float64 copy
GENERATION_BYTES = {"gaussian": 64, "diagonal3d": 8, "digits": 8, "lines": 8}
LINE_PIXELS = 20 * 80        # the lines task's line images (20 px high, up to 80 px wide)


def estimate_data_bytes(task: str, s: dict) -> int:
    """Bytes the data of a demo task holds (train and validation inputs and targets, plus the
    generator's peak while it makes the largest set), from the settings ``s`` (size, train,
    val, dtype). The gaussian task keeps both kinds' data sets (isotropic, axis-aligned)."""
    item = 4 if s.get("dtype", "float32") == "float32" else 8
    n = int(s.get("train", 0)) + int(s.get("val", 0))
    size = int(s.get("size", 8))
    cells = {"gaussian": size ** 2, "diagonal3d": size ** 3, "digits": 64,
             "lines": LINE_PIXELS}.get(task, size ** 2)
    sets = 2 if task == "gaussian" else 1
    stored = sets * n * cells * 2 * item                    # inputs and targets
    peak = max(int(s.get("train", 0)), int(s.get("val", 0))) * cells * GENERATION_BYTES.get(
        task, 8)
    return stored + peak
