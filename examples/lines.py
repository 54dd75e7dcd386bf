"""Read lines of handwritten digits: the hierarchical MDRNN + CTC (Graves & Schmidhuber 2008).

    PYTHONPATH=. python examples/lines.py                 # the full run: 12000 steps or 14 min
    PYTHONPATH=. python examples/lines.py --steps 200 --out /tmp/lines

Trains ``mdlstm_np.demo.handwriting.HierarchicalMDRNN`` with CTC on lines composed from
scikit-learn's handwritten digits (``mdlstm_np.data.lines``; test lines use only digit images
never seen in training), with Adam, and writes to ``--out``:

    metrics.json          test_cer (greedy decoding, in [0, 1]), the untrained model's CER,
                          the time, and every setting
    curves.tsv            step, seconds, loss (mean CTC loss per line) of every step
    evals.tsv             step, seconds, test_cer of every evaluation
    learning_curves.png   the loss and the test CER against the step
    lines.png             test lines with the true and the predicted digit strings

Every file is written atomically (``mdlstm_np.training.atomic``). A bad flag prints one line
and exits with status 2.
"""

from __future__ import annotations

import json
import os
import sys

# small matrices: BLAS threads only add overhead on a shared 2-core machine (set before numpy)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from mdlstm_np.demo import cli  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

PROG = "lines.py"


def fail(message: str, status: int = 2):
    """One line on stderr (``PROG: error: ...``) and exit ``status`` (the shared CLI rule)."""
    cli.fail(PROG, message, status)


def parse_args(argv=None):
    p = cli.OneLineParser(prog=PROG, description="Train a hierarchical MDRNN with CTC to read lines of "
                                       "handwritten digits.")
    how_long = p.add_mutually_exclusive_group()
    how_long.add_argument("--steps", type=int, default=None,
                          help="Adam steps (default: 12000, or --time-limit first)")
    how_long.add_argument("--epochs", type=int, default=None,
                          help="passes over the training lines (instead of --steps)")
    p.add_argument("--batch", type=int, default=16, help="lines per minibatch (default: 16)")
    p.add_argument("--hidden", type=int, default=24,
                   help="hidden units per direction of the top MD-LSTM level (default: 24)")
    p.add_argument("--h1", type=int, default=4,
                   help="hidden units per direction of the first level (default: 4)")
    p.add_argument("--f2", type=int, default=16,
                   help="features of the tanh layer between the levels (default: 16)")
    p.add_argument("--forget-bias", type=float, default=-1.0,
                   help="initial forget-gate bias of both MD-LSTM levels (default: -1, which "
                        "keeps Graves' 2-D cell state bounded at the start; see README)")
    p.add_argument("--lr", type=float, default=6e-3, help="Adam step size (default: 0.006)")
    p.add_argument("--decay-at", type=float, default=0.7,
                   help="divide the step size by 10 once this fraction of the run (steps or "
                        "--time-limit, whichever is further along) is done; 1: at the very "
                        "end, i.e. never (default: 0.7)")
    p.add_argument("--refresh", type=int, default=3,
                   help="compose new training lines (from the same training digit images) "
                        "every this many epochs; 0: never (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="data and initialisation seed (0)")
    p.add_argument("--n-train", type=int, default=4000, help="training lines (default: 4000)")
    p.add_argument("--n-test", type=int, default=300, help="test lines (default: 300)")
    p.add_argument("--eval-every", type=int, default=1000,
                   help="test CER every so many steps (default: 1000)")
    p.add_argument("--time-limit", type=float, default=840.0,
                   help="stop training after this many seconds (default: 840, so that the whole "
                        "run, data and evaluations included, fits in 15 minutes)")
    p.add_argument("--backend", default="auto", choices=("auto", "numpy", "numba", "cupy"),
                   help="array backend (default: auto, numba on a CPU when installed)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="precision (default: float32)")
    p.add_argument("--out", default="lines_out", help="output folder (default: lines_out)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier run's results in --out (refused otherwise)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    for name in ("steps", "epochs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            fail(f"--{name}: expected an integer >= 1, got {getattr(args, name)}")
    for name in ("batch", "hidden", "h1", "f2", "n_train", "n_test", "eval_every"):
        if getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')}: expected an integer >= 1, got "
                 f"{getattr(args, name)}")
    if not (np.isfinite(args.lr) and args.lr > 0):
        fail(f"--lr: expected a number > 0, got {args.lr}")
    if not np.isfinite(args.forget_bias):
        fail(f"--forget-bias: expected a finite number, got {args.forget_bias}")
    if args.refresh < 0:
        fail(f"--refresh: expected an integer >= 0, got {args.refresh}")
    if not 0 < args.decay_at <= 1:
        fail(f"--decay-at: expected a number in (0, 1], got {args.decay_at}")
    if args.seed < 0:
        fail(f"--seed: expected an integer >= 0, got {args.seed}")
    if args.time_limit is not None and not args.time_limit > 0:
        fail(f"--time-limit: expected a number > 0, got {args.time_limit}")
    if args.steps is None and args.epochs is None:
        args.steps = 12000
    return args


RESULTS = ("curves.tsv", "evals.tsv", "learning_curves.png", "lines.png")  # + metrics.json


def _write_text(path, text):
    from mdlstm_np.training.atomic import atomic_write

    def writer(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    return atomic_write(path, writer)


def profile_step(result, batches=20, batch=16):
    """Seconds per training step spent in each layer's forward and backward, averaged over
    ``batches`` minibatches of test lines: {"rnn1 forward": s, …, "total": s}. Each layer's
    methods are wrapped with a timer on the model instance; "CTC, softmax, dense" is the rest."""
    import time

    model, params, test = result.model, result.params, result.test
    times = {}

    def timed(name, fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            out = fn(*a, **kw)
            times[name] = times.get(name, 0.0) + time.perf_counter() - t
            return out
        return wrapper

    names = ("sub1", "rnn1", "sub2", "ff", "rnn2", "collapse")
    for name in names:
        layer = getattr(model, name)
        layer.forward = timed(f"{name} forward", layer.forward)
        layer.backward = timed(f"{name} backward", layer.backward)
    from mdlstm_np.demo.handwriting import crop_batch as _crop

    rng = np.random.default_rng(0)
    total = 0.0
    try:
        for _ in range(batches):
            idx = rng.choice(len(test.sizes), size=min(batch, len(test.sizes)), replace=False)
            x, sizes, tg, tl = _crop(test, idx)
            t = time.perf_counter()
            model.loss(params, model.be.asarray(x, model.dtype), sizes, tg, tl)
            total += time.perf_counter() - t
    finally:
        for name in names:                               # unwrap: back to the class methods
            vars(getattr(model, name)).pop("forward", None)
            vars(getattr(model, name)).pop("backward", None)
    out = {k: v / batches for k, v in times.items()}
    out["CTC, softmax, dense"] = total / batches - sum(out.values())
    out["total"] = total / batches
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    from mdlstm_np.demo.handwriting import plot_curves, plot_lines, train_lines, write_logs

    from mdlstm_np.demo.runrecord import OutputError, prepare_output

    try:  # before training, by the demo's rule: another run's results only with --overwrite
        prepare_output(args.out, patterns=RESULTS, config_name="metrics.json",
                       overwrite=args.overwrite, need_bytes=2_000_000, can_resume=False)
    except OutputError as e:
        fail(str(e))
    try:
        result = train_lines(args.steps, epochs=args.epochs, batch=args.batch, h1=args.h1,
                             f2=args.f2, h2=args.hidden, lr=args.lr, seed=args.seed,
                             forget_bias=args.forget_bias, decay_at=args.decay_at,
                             refresh=args.refresh,
                             n_train=args.n_train, n_test=args.n_test, backend=args.backend,
                             dtype=args.dtype, eval_every=args.eval_every,
                             time_limit=args.time_limit, progress=not args.no_progress)
    except (ImportError, ValueError) as e:
        fail(str(e))
    except FloatingPointError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    write_logs(result, os.path.join(args.out, "curves.tsv"), os.path.join(args.out, "evals.tsv"))
    plot_curves(result, os.path.join(args.out, "learning_curves.png"))
    plot_lines(result, os.path.join(args.out, "lines.png"))
    profile = profile_step(result, batch=args.batch)
    metrics = dict(test_cer=float(result.test_cer), untrained_test_cer=float(result.untrained_cer),
                   train_seconds=round(result.seconds, 1),
                   steps_per_second=round(result.settings["steps_done"] / result.seconds, 2),
                   profile_seconds_per_step={k: round(v, 5) for k, v in profile.items()},
                   settings=result.settings)
    _write_text(os.path.join(args.out, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    share = sorted(((v / profile["total"], k) for k, v in profile.items() if k != "total"),
                   reverse=True)
    print("time per step: " + ", ".join(f"{k} {100 * f:.0f}%" for f, k in share[:4]))
    print(f"test CER {result.test_cer:.4f} (untrained {result.untrained_cer:.4f}) after "
          f"{result.settings['steps_done']} steps in {result.seconds:.0f} s; wrote {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
