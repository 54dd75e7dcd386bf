"""The seed's layer-norm cell on zero input, before and after the fix.

    PYTHONPATH=. python examples/ln_zero_input.py            # gradient magnitudes (seconds)
    PYTHONPATH=. python examples/ln_zero_input.py --sweep    # + the candidate fixes we rejected
    PYTHONPATH=. python examples/ln_zero_input.py --train    # + train the 8×8 task, both cells

Bad flags (``--steps -3``, ``--seeds 0``): one line on stderr, exit status 2, before any work.

Model: MDLSTM(1 → 16, 2-D, layer-normalised cell) → per-cell dense sigmoid head, the seed's
MD_LSTM. Loss: the seed's MSE against the task's target, which for x ≡ 0 is t ≡ 0. We print
max |∂L/∂θ| for every parameter and the input. "nonfinite" means inf or NaN appeared.

The layer's finiteness guard (``check_finite=True``, the default) refuses such a pass with a
``NonFiniteError`` naming the first bad wavefront. That error is this script's subject, not a
crash: the column "guard" reports what the guarded layer says, and the magnitudes beside it
come from the same pass with the guard off (``check_finite=False``), so the numbers that blew
up can be seen. The script exits 0.

Zero-padded corners: the input is the random-diagonal task with a zero box in one corner; a
scan that starts in that corner (emulated by flipping the input, which is what a reversed scan
direction is) meets the degenerate cells first.
"""

from __future__ import annotations

import re
import sys
import time

import numpy as np

from mdlstm_np.cells.layernorm import LayerNormCell
from mdlstm_np.demo.cli import MAX_STEPS, OneLineParser, fail, integer
from mdlstm_np.dense import Dense
from mdlstm_np.losses import mse
from mdlstm_np.mdlstm import MDLSTM
from mdlstm_np.training.model import Model
from mdlstm_np.demo.tasks import random_diagonal
from mdlstm_np.validate import NonFiniteError

FLIPS = {"top-left": (), "top-right": (2,), "bottom-left": (1,), "bottom-right": (1, 2)}


def ln_model(cell, *, hidden=16, dtype="float64", backend="numpy", check_finite=False):
    """The seed's MD_LSTM with a layer-normalised cell (``cell``: "fixed", "seed" or a cell
    object; "graves": the plain cell without layer norm, the yardstick). ``check_finite``:
    the layer's guard, off by default here so that the non-finite numbers can be measured."""
    if cell in ("fixed", "seed"):
        cell = LayerNormCell(cell)
    elif cell == "graves":
        from mdlstm_np.cells.graves import GravesCell
        cell = GravesCell()
    rnn = MDLSTM(1, hidden, 2, cell=cell, backend=backend, dtype=dtype,
                 check_finite=check_finite)
    return Model(rnn, Dense(hidden, 1, "sigmoid", backend=backend, dtype=dtype),
                 name=f"MD_LSTM[{cell.name}]")


def grad_magnitudes(model, x, t, seed=0):
    """max |∂L/∂θ| per parameter (and "x") for the seed's MSE; inf if anything is not finite."""
    be = model.be
    params = model.init_params(np.random.default_rng(seed))
    with np.errstate(all="ignore"):
        y, cache = model.forward(params, be.asarray(x, model.dtype))
        _, dy = mse(be, y, be.asarray(t, model.dtype))
        dx, grads = model.backward(dy, cache)
    grads["x"] = dx
    out = {}
    for k, g in grads.items():
        g = np.asarray(be.to_numpy(g), dtype=np.float64)
        out[k] = float(np.abs(g).max()) if np.isfinite(g).all() else float("inf")
    return out


def guard_verdict(cell, x, t, *, dtype, seed=0):
    """What the guarded layer (``check_finite=True``) says of one forward+backward pass:
    "finite", or "NonFiniteError@w" with w the first wavefront the error names."""
    try:
        grad_magnitudes(ln_model(cell, dtype=dtype, check_finite=True), x, t, seed)
    except NonFiniteError as error:
        wave = re.search(r"wavefront (\d+)", str(error))
        return f"NonFiniteError@{wave.group(1)}" if wave else "NonFiniteError"
    return "finite"


def zero_corner_input(size, corner, box, seed=0):
    """A task batch with a box×box zero block in ``corner``, flipped so that corner becomes
    the origin: running the one-direction layer on it is the scan that starts in ``corner``
    (a multi-directional layer's direction), which meets the zero block first."""
    x, t, _ = random_diagonal(4, size, np.random.default_rng(seed))
    axes = FLIPS[corner]
    x, t = (np.flip(x, axes), np.flip(t, axes)) if axes else (x, t)  # corner -> origin
    x = x.copy()
    x[:, :box, :box] = 0.0  # the zero-padded corner the scan starts in
    return x, t.copy()


def fmt(v):
    return "nonfinite" if not np.isfinite(v) else f"{v:.3g}"


def table_zero_input(sizes=(8, 32), dtypes=("float32", "float64")):
    keys = ["rnn.W", "rnn.U", "rnn.ln_gain", "rnn.ln_shift", "rnn.ln_c_gain", "rnn.ln_c_shift",
            "head.V", "head.a", "x"]
    print("all-zero input, batch 2: max |grad| per parameter (guard: what the guarded layer "
          "raises, @ its first bad wavefront)")
    print(f"{'cell':6} {'dtype':8} {'grid':6} {'guard':>18} "
          + " ".join(f"{k:>13}" for k in keys))
    for form in ("seed", "fixed"):
        for dtype in dtypes:
            for s in sizes:
                x = np.zeros((2, s, s, 1))
                m = grad_magnitudes(ln_model(form, dtype=dtype), x, x)
                verdict = guard_verdict(form, x, x, dtype=dtype)
                cols = " ".join(f"{fmt(m[k]):>13}" for k in keys)
                print(f"{form:6} {dtype:8} {f'{s}x{s}':6} {verdict:>18} {cols}")


def table_corners(size=16, box=6, dtype="float32"):
    print(f"\n{size}x{size} task input with a {box}x{box} zero corner, {dtype}: max over "
          f"parameters of max |grad| [guard], scanning from each corner")
    for form in ("seed", "fixed"):
        row = []
        for corner in FLIPS:
            x, t = zero_corner_input(size, corner, box)
            worst = max(grad_magnitudes(ln_model(form, dtype=dtype), x, t).values())
            row.append(f"{corner}: {fmt(worst)} [{guard_verdict(form, x, t, dtype=dtype)}]")
        print(f"{form:6} " + "   ".join(row))


def table_sweep(sizes=(8, 16, 32, 64)):
    """The candidates: larger ε only delays; a floor τ must be ~1 not to compound. The last
    row is the plain cell: what is left at τ = 1 is its growth, not layer norm's."""
    print("\ncandidates, all-zero input, float64: max over parameters of max |grad|")
    cands = [("seed eps=1e-5", LayerNormCell("seed")),
             ("seed eps=1e-2", LayerNormCell("seed", eps=1e-2)),
             ("seed eps=1e-1", LayerNormCell("seed", eps=1e-1)),
             ("fixed tau=0.1", LayerNormCell("fixed", tau=0.1)),
             ("fixed tau=0.3", LayerNormCell("fixed", tau=0.3)),
             ("fixed tau=0.5", LayerNormCell("fixed", tau=0.5)),
             ("fixed tau=1 *", LayerNormCell("fixed", tau=1.0)),
             ("graves, no LN", "graves")]
    print(f"{'':15}" + "".join(f"{f'{s}x{s}':>12}" for s in sizes))
    for label, cell in cands:
        vals = []
        for s in sizes:
            x = np.zeros((1, s, s, 1))
            vals.append(max(grad_magnitudes(ln_model(cell), x, x).values()))
        print(f"{label:15}" + "".join(f"{fmt(v):>12}" for v in vals))


def train_compare(steps=1000, seeds=(0, 1, 2), backend="numpy"):
    from mdlstm_np.training.guard import TrainingDiverged
    from mdlstm_np.demo.train import train

    print(f"\nrandom diagonal 8x8, batch 16, hidden 16, Adam 0.01, {steps} steps, float32")
    print("median relevant loss over the windows (steps), per seed")
    windows = [(400, 500), (900, 1000)] if steps >= 1000 else [(steps // 2, steps)]
    for form in ("seed", "fixed"):
        for seed in seeds:
            t0 = time.perf_counter()
            try:
                model = ln_model(form, dtype="float32", backend=backend, check_finite=True)
                res = train(model, steps=steps, seed=seed, progress=False)
            except TrainingDiverged as e:
                print(f"{form:6} seed={seed}  diverged: {e}")
                continue
            rel, overall = res.column("relevant_loss"), res.column("overall_loss")
            med = "  ".join(f"rel[{a}:{b}]={np.median(rel[a:b]):.4f}" for a, b in windows)
            print(f"{form:6} seed={seed}  {med}  overall[last100]={np.median(overall[-100:]):.4f}"
                  f"  ({time.perf_counter() - t0:.0f} s)")


PROG = "ln_zero_input.py"


def parse_args(argv=None):
    """The flags; a bad one is one line on stderr and exit status 2, before any work."""
    ap = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", action="store_true", help="also print the candidate fixes")
    ap.add_argument("--train", action="store_true", help="also train both cells on the task")
    ap.add_argument("--steps", type=integer(1, MAX_STEPS), default=1000,
                    help="training steps with --train (1000)")
    ap.add_argument("--seeds", type=integer(1, 1000), default=3,
                    help="seeds 0 .. N-1 with --train (3)")
    return ap.parse_args(argv)


def preflight(args):
    """The largest step this script takes must fit in memory (one line, exit 2, if not):
    the 64×64 float64 sweep, and with --train the 8×8 task at batch 16. It writes no files."""
    from mdlstm_np.demo.memory import check_memory, estimate_model_bytes

    need = estimate_model_bytes(ln_model("seed"), (64 if args.sweep else 32,) * 2, 4)
    if args.train:
        need = max(need, estimate_model_bytes(ln_model("seed", dtype="float32"), (8, 8), 16))
    try:
        check_memory(need, what="the largest step")
    except MemoryError as e:
        fail(PROG, str(e))


def main(argv=None):
    a = parse_args(argv)
    preflight(a)
    table_zero_input()
    table_corners()
    if a.sweep:
        table_sweep()
    if a.train:
        train_compare(a.steps, tuple(range(a.seeds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
