"""3-D MD-LSTM vs a 2-D MD-LSTM run slice by slice, on the volumetric random diagonal.

    PYTHONPATH=. python examples/demo3d.py                 # about a minute of CPU time
    PYTHONPATH=. python examples/demo3d.py --steps 50      # a quick look

The task (``mdlstm_np/tasks3d.py``): two ones at (z, r, c) and (z+1, r+1, c+1) in a size³
volume, target = input shifted one column left. Predicting the second one's target needs the
first one, which lies in the *previous depth slice*:

    3-D   MDLSTM(ndim=3) over (B, D, H, W, 1)                sees all q ≤ p, slice z included
    2-D   MDLSTM(ndim=2) over (B·D, H, W, 1), per slice      sees only its own slice

Both feed the seed's per-cell sigmoid head and train with the seed's recipe (MSE over all
cells, Adam lr 0.01, batch 16). The 3-D model's relevant loss falls; the 2-D model's cannot.
Prints a table of the relevant loss (median over windows of steps) and writes the loss curves
to ``demo_out/demo3d.png`` (matplotlib Agg, written to a temp file and moved into place) and
the run's record inside it: a PNG text chunk "mdlstm_np.config" holding JSON (settings, backend
and sweep per model, versions, command line; ``PIL.Image.open(path).text`` reads it).

Before step 1: every flag is checked (one line on stderr, exit status 2), the memory a step
needs is estimated (``mdlstm_np/demo/memory.py``) and the output folder is created,
test-written and checked for room; an earlier run's figure is replaced only with --overwrite.
"""

from __future__ import annotations

import json
import os
import sys
import time

# The matrices here are tiny ((k·B, 3H)·(3H, 6H) per wavefront): BLAS threads only add
# synchronisation overhead (3-4x more CPU time on 2 cores). Set before numpy loads BLAS.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mdlstm_np.training.atomic import atomic_write  # noqa: E402
from mdlstm_np.demo.cli import MAX_STEPS, OneLineParser, fail, integer, number  # noqa: E402
from mdlstm_np.dense import Dense  # noqa: E402
from mdlstm_np.losses import mse  # noqa: E402
from mdlstm_np.mdlstm import MDLSTM  # noqa: E402
from mdlstm_np.sd import SliceWise2D  # noqa: E402
from mdlstm_np.training.model import Model  # noqa: E402
from mdlstm_np.optim import Adam  # noqa: E402
from mdlstm_np.demo.tasks3d import random_diagonal_3d, relevant_index  # noqa: E402


def build(kind: str, hidden: int) -> Model:
    kw = dict(cell="graves", dtype="float64")  # the cell and precision this comparison used
    rnn = MDLSTM(1, hidden, ndim=3, **kw) if kind == "3-D" else SliceWise2D(1, hidden, **kw)
    return Model(rnn, Dense(hidden, 1, "sigmoid", dtype="float64"), name=kind)


class Diverged(RuntimeError):
    """The loss or a gradient is NaN/inf; ``hist`` holds the steps done before it."""

    def __init__(self, message, hist):
        super().__init__(message)
        self.hist = hist


def train(kind: str, args, log_every: int):
    """Train one model; returns (steps, overall loss, relevant loss) lists and seconds."""
    init_rng = np.random.default_rng([args.seed, 0])
    data_rng = np.random.default_rng([args.seed, 1])  # both models see the very same batches
    model = build(kind, args.hidden)
    be, xp = model.be, model.be.xp
    params = model.init_params(init_rng)
    opt = Adam(params, lr=args.lr)
    shape = (args.size,) * 3
    hist = {"step": [], "loss": [], "relevant": []}
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, t, pos = random_diagonal_3d(args.batch, args.size, data_rng)
        x, t = be.asarray(x, dtype="float64"), be.asarray(t, dtype="float64")
        y, cache = model.forward(params, x)
        loss, dy = mse(be, y, t)
        _, grads = model.backward(dy, cache)
        bad = [k for k, g in (("loss", loss), *sorted(grads.items())) if not be.all_finite(g)]
        if bad:  # the guard of mdlstm_np.demo.train: never apply a NaN/inf update
            raise Diverged(f"{kind}: {bad[0]} is not finite (NaN or inf) at step {step}; "
                           f"stopped before applying it", hist)
        opt.step(params, grads)
        idx = be.index(relevant_index(pos, shape))
        d = be.take(xp.reshape(y, (-1,)), idx) - be.take(xp.reshape(t, (-1,)), idx)
        hist["step"].append(step)
        hist["loss"].append(float(loss))
        hist["relevant"].append(float(xp.sum(d * d)) / args.batch)
        if step % log_every == 0 or step == args.steps:
            print(f"  {kind}  step {step:5d}  loss {hist['loss'][-1]:.5f}  relevant "
                  f"{np.median(hist['relevant'][-log_every:]):.4f}", flush=True)
    return hist, time.perf_counter() - t0


def save_plot(path, hists, record=None):
    """The loss curves to ``path`` (PNG, atomically); ``record`` (a dict) goes into the PNG as a
    text chunk "mdlstm_np.config" (JSON): the figure carries the settings that made it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdlstm_np.demo.plots import marker, scale_y, settings_text

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for kind, h in hists.items():
        for ax, key in zip(axes, ("relevant", "loss")):
            ax.plot(h["step"], h[key], lw=0.6, alpha=0.35, marker=marker(len(h[key])),
                    markersize=3)
            k = 25  # running median, to see the trend through the per-batch noise
            med = [np.median(h[key][max(0, i - k):i + 1]) for i in range(len(h[key]))]
            ax.plot(h["step"], med, lw=1.8, label=kind, color=ax.lines[-1].get_color())
    for ax, key, title in zip(axes, ("relevant", "loss"),
                              ("relevant loss (second one's target)", "overall MSE")):
        scale_y(ax, *(h[key] for h in hists.values()))
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.legend()
    if record is not None:
        fig.suptitle(settings_text(record.get("settings", record)), fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:  # atomic: readers see the old file or the complete new one
        meta = {"Software": "mdlstm_np examples/demo3d.py"}
        if record is not None:
            meta["mdlstm_np.config"] = json.dumps(record, sort_keys=True)
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", metadata=meta),
                     suffix=".png")
    finally:
        plt.close(fig)


PROG = "demo3d.py"


def parse_args(argv=None):
    """The flags; a bad one is one line on stderr and exit status 2 (before any work)."""
    ap = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=integer(1, MAX_STEPS), default=800,
                    help="Adam steps per model (800)")
    ap.add_argument("--size", type=integer(3), default=5, help="volume edge, >= 3 (5)")
    ap.add_argument("--hidden", type=integer(1), default=16, help="hidden units (16)")
    ap.add_argument("--batch", type=integer(1), default=16, help="batch size (16)")
    ap.add_argument("--lr", type=number, default=0.01, help="Adam's learning rate (0.01)")
    ap.add_argument("--seed", type=integer(0, 2 ** 63 - 1), default=0, help="random seed (0)")
    ap.add_argument("--out", default="demo_out/demo3d.png",
                    help="the figure (PNG; it carries the run's settings as a text chunk)")
    ap.add_argument("--overwrite", action="store_true", help="replace an earlier run's figure")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    args.argv = argv
    if os.path.isdir(args.out) or not os.path.basename(args.out):
        ap.error(f"--out: expected a file name for the figure, got the folder {args.out!r}")
    return args


def preflight(args):
    """Before step 1: memory for the larger model, then the output folder (created, written,
    room, no other run's figure unless --overwrite). Returns the run's record (settings, seed,
    backend and sweep per model, versions, command line), which the figure carries. Exits 2
    with one line when something does not fit."""
    from mdlstm_np.demo.memory import check_memory, estimate_model_bytes
    from mdlstm_np.demo.runrecord import (OutputError, command_line, prepare_output,
                                               versions)

    models = {kind: build(kind, args.hidden) for kind in ("3-D", "2-D")}
    need = max(estimate_model_bytes(m, (args.size,) * 3, args.batch) for m in models.values())
    try:
        check_memory(need, models["3-D"].be, what=f"a training step ({args.size}^3 volumes, "
                                                   f"batch {args.batch}, hidden {args.hidden})")
    except MemoryError as e:
        fail(PROG, str(e))
    folder = os.path.dirname(os.path.abspath(args.out))
    name = os.path.basename(args.out)
    try:
        prepare_output(folder, patterns=(name,), config_name=name, overwrite=args.overwrite,
                       need_bytes=600_000, can_resume=False)
    except OutputError as e:
        fail(PROG, str(e))
    config = {"program": PROG, "command": command_line(os.path.abspath(__file__), args.argv),
              "cwd": os.getcwd(),
              "settings": {k: v for k, v in vars(args).items() if k != "argv"},
              "seed": args.seed, "versions": versions(),
              "models": {k: {"backend": m.be.name, "dtype": m.dtype,
                             "sweep": m.be.sweep_for(_layer(m).cell).name,
                             "layer": type(m.rnn).__name__} for k, m in models.items()}}
    for kind, info in config["models"].items():
        print(f"{kind}: backend {info['backend']}, sweep {info['sweep']}")
    return config


def _layer(model):
    return getattr(model.rnn, "layer", model.rnn)


def main(argv=None):
    args = parse_args(argv)
    record = preflight(args)
    log_every = max(1, args.steps // 6)
    hists, secs = {}, {}
    for kind in ("3-D", "2-D"):
        print(f"training the {kind} MD-LSTM ({args.steps} steps, {args.size}³ volumes)")
        try:
            hists[kind], secs[kind] = train(kind, args, log_every)
        except Diverged as e:  # keep what was done: the curves up to the bad step
            hists[kind] = e.hist
            if any(h["step"] for h in hists.values()):
                save_plot(args.out, {k: h for k, h in hists.items() if h["step"]}, record)
                print(f"wrote {args.out} (the steps before it)")
            print(f"{PROG}: {e}", file=sys.stderr)
            sys.exit(1)

    w = max(1, args.steps // 10)  # windows of 10 % of the run
    print(f"\nrelevant loss, median over steps (window {w}):")
    print(f"{'steps':>13} | {'3-D MD-LSTM':>11} | {'2-D per slice':>13} | 3-D / 2-D")
    for lo in sorted({0, args.steps // 2 - w // 2, args.steps - w}):
        lo = max(0, lo)
        a = float(np.median(hists["3-D"]["relevant"][lo:lo + w]))
        b = float(np.median(hists["2-D"]["relevant"][lo:lo + w]))
        print(f"{lo + 1:>6}-{lo + w:<6} | {a:11.4f} | {b:13.4f} | {a / b:9.3f}")
    print(f"time: 3-D {secs['3-D']:.1f} s, 2-D {secs['2-D']:.1f} s")
    save_plot(args.out, hists, record)
    print(f"wrote {args.out}")
    return hists


if __name__ == "__main__":
    main()
