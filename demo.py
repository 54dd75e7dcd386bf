"""Reproduce the seed's experiment: the random-diagonal task with MD_LSTM and the two
single-direction baselines.

    python demo.py                       # all three models, the seed's settings, 1000 steps
    python demo.py --model md_lstm --steps 200 --backend numpy --out my_run

Writes to --out (default demo_out/):
    out_<MODEL>.tsv                    columns steps, overall_loss, time, relevant_loss
    losses_overall.png                 MSE over all cells, every model on one figure (log-y)
    losses_relevant.png                squared error at the second one, every model
    predictions_<MODEL>_before.png     input | prediction | ground truth, before training
    predictions_<MODEL>_after.png      the same samples after training

Bad input: one line on stderr, exit status 2. A run stopped by NaN/inf: exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

PROG = "demo.py"


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (``demo.py: error: ...``) and exit status 2."""

    def error(self, message):
        fail(message)


def fail(message: str, status: int = 2):
    print(f"{PROG}: error: {message}".replace("\n", " "), file=sys.stderr)
    sys.exit(status)


def parse_args(argv=None):
    p = _Parser(prog=PROG, description="Train the seed's models on the random-diagonal task.")
    p.add_argument("--model", default="all",
                   help="MD_LSTM, HORIZONTAL_SD_LSTM, SNAKE_SD_LSTM (any case) or all "
                        "(default: all)")
    p.add_argument("--backend", default="auto", help="auto|numpy|numba|cupy (default: auto)")
    p.add_argument("--steps", type=int, default=1000, help="training steps (default: 1000)")
    p.add_argument("--size", type=int, default=8, help="grid side, >= 3 (default: 8)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default: 16)")
    p.add_argument("--hidden", type=int, default=16, help="hidden units (default: 16)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default: 0.01)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="float32 (default, like the seed) or float64")
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--ln", default="fixed", choices=("fixed", "seed", "off"),
                   help="MD_LSTM's cell: layer-normalised like the seed's but NaN-free "
                        "(fixed, default), the seed's exact LN cell (seed), or Graves' plain "
                        "cell (off: the one the numba/cupy hot loops accelerate)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def summary_table(results: dict) -> str:
    """results: {name: TrainResult} -> a small fixed-width table."""
    head = f"{'model':<20} {'relevant loss*':>15} {'overall loss':>13} {'ms/step':>9}"
    lines = [head, "-" * len(head)]
    for name, res in results.items():
        rel = res.column("relevant_loss")[-100:]
        tot = res.column("overall_loss")
        ms = 1000.0 * float(np.median(res.column("time")))
        lines.append(f"{name:<20} {float(np.median(rel)):>15.4f} {tot[-1]:>13.4f} {ms:>9.1f}")
    lines.append("* median over the last 100 logged steps; ms/step: median step time")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mdlstm_np.backends import get_backend
    from mdlstm_np.experiment.models import MODEL_NAMES, build_model
    from mdlstm_np.experiment.plots import plot_losses, plot_predictions
    from mdlstm_np.experiment.tasks import random_diagonal
    from mdlstm_np.experiment.train import TrainingDiverged, predict, train
    from mdlstm_np.validate import check_positive_int

    # ---- check every input before any work (one line, exit 2, on the first problem)
    try:
        for name, minimum in (("steps", 1), ("size", 3), ("batch", 1), ("hidden", 1),
                              ("seed", 0)):
            check_positive_int(getattr(args, name), name, minimum)
        if not (np.isfinite(args.lr) and args.lr > 0):
            raise ValueError(f"lr: expected a finite number > 0, got {args.lr!r}")
        if args.model.lower() == "all":
            names = list(MODEL_NAMES)
        elif args.model.upper() in MODEL_NAMES:
            names = [args.model.upper()]
        else:
            raise ValueError(f"model: expected one of {', '.join(MODEL_NAMES)} or all, "
                             f"got {args.model!r}")
        if args.backend.lower() not in ("auto", "numpy", "numba", "cupy"):
            raise ValueError(f"backend: expected one of auto, numpy, numba, cupy, "
                             f"got {args.backend!r}")
    except (ValueError, TypeError) as e:
        fail(str(e))
    try:
        be = get_backend(args.backend.lower(), verbose=True)
    except (ValueError, TypeError) as e:
        fail(str(e))
    except Exception as e:  # cupy missing, no GPU, driver trouble: say so in one line
        fail(f"backend: {args.backend!r} is not usable here ({type(e).__name__}: {e})")
    print(f"backend: {be.name}, dtype: {args.dtype}")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        fail(f"out: cannot create folder {args.out!r} ({e.strerror})")

    # a fixed set of samples for the before/after pictures, apart from the training stream
    x_show, y_show, _ = random_diagonal(4, args.size, np.random.default_rng([args.seed, 7]))

    results, written, status = {}, [], 0
    for name in names:
        try:
            model = build_model(name, in_channels=1, hidden=args.hidden, backend=be,
                                dtype=args.dtype, ln={"off": False}.get(args.ln, args.ln))
            tsv = os.path.join(args.out, f"out_{name}.tsv")
            try:
                res = train(model, steps=args.steps, batch=args.batch, size=args.size,
                            lr=args.lr, seed=args.seed, progress=not args.no_progress,
                            out_tsv=tsv)
            except TrainingDiverged as e:
                print(f"{PROG}: {e}", file=sys.stderr)
                written.append(tsv)
                status = 1
                continue
        except (ValueError, TypeError) as e:
            fail(str(e))
        written.append(tsv)
        results[name] = res
        for when, params in (("before", res.initial_params), ("after", res.params)):
            path = os.path.join(args.out, f"predictions_{name}_{when}.png")
            y_pred = predict(model, params, x_show)
            plot_predictions(x_show, y_show, y_pred, path,
                             title=f"{name} {when} training ({args.steps} steps)")
            written.append(path)

    if results:
        logs = {name: res.rows for name, res in results.items()}
        for column, stem in (("overall_loss", "overall"), ("relevant_loss", "relevant")):
            written.append(plot_losses(logs, column, os.path.join(args.out,
                                                                  f"losses_{stem}.png")))
        print()
        print(summary_table(results))
    print(f"\nwrote {len(written)} files to {os.path.abspath(args.out)}:")
    for path in written:
        print(f"  {os.path.basename(path)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
