"""Reproduce the seed's experiment: the random-diagonal task with MD_LSTM and the two
single-direction baselines; or another task with ``--task``.

    python demo.py                       # all three models, the seed's settings, 1000 steps
    python demo.py --model md_lstm --steps 200 --backend numpy --out my_run
    python demo.py --resume my_run       # continue an interrupted run to its configured steps
    python demo.py --task gaussian       # the seed's Gaussian random fields (~3 min, numba)
    python demo.py --task digits         # 8x8 handwritten digits (~3-5 min, numba)
    python demo.py --task diagonal3d     # the random diagonal in 5x5x5 volumes (~1 min)

Tasks (``--task``, default diagonal):
    diagonal     the seed's random-diagonal task, trained step by step by
                 ``demo/train.py`` (fresh batches each step; its checkpoint, resume and
                 signal handling are described below)
    gaussian     Gaussian random fields, isotropic and anisotropic, predict the next value to
                 the right: MD_LSTM, HORIZONTAL_SD_LSTM, SNAKE_SD_LSTM with a linear head
    digits       scikit-learn's digits, fixed split: MD4_LSTM (4 scans), MD_LSTM,
                 HORIZONTAL_SD_LSTM, SNAKE_SD_LSTM, mean-pooling read-out, softmax
    diagonal3d   MD_LSTM_3D against MD_LSTM_2D_SLICES on the volumetric random diagonal
The last three train with ``mdlstm_np.fit`` (epochs over a fixed data set: --epochs, --train,
--val; --steps and --ln are the diagonal task's only); ``demo/demotasks.py``.
They write config.json, metrics.json, checkpoint_<task>_<MODEL>.npz (every
--checkpoint-every epochs, default 1; --resume continues them epoch by epoch) and one figure
(gaussian_fields.png, digits_curves.png, losses_3d.png). metrics.json for digits holds
"test_accuracy": {model: accuracy in [0, 1]}. --task lines (the hierarchical MDRNN with CTC)
trains for --steps and checkpoints every --checkpoint-every steps (default 100).

Writes to --out (default demo_out/), one run per folder (the diagonal task):
    config.json                        every setting, the seed, the backend and sweep of each
                                       model, the versions of Python, numpy, numba, cupy and
                                       mdlstm_np, the command line (and each resume)
    out_<MODEL>.tsv                    columns steps, overall_loss, time, relevant_loss;
                                       appended and flushed as rows are logged
    checkpoint_<MODEL>.npz             parameters, Adam's state, the data generator's state,
                                       the rows: every --checkpoint-every steps and at the end
    losses_overall.png                 MSE over all cells, every model on one figure (log-y)
    losses_relevant.png                squared error at the second one, every model
    predictions_<MODEL>_before.png     input | prediction | ground truth, before training
    predictions_<MODEL>_after.png      the same samples after training (or where it stopped)
    receptive_fields.png               |d output / d input| at the cell that counts, per model
    metrics.json                       per model: steps done, final overall loss, median
                                       relevant loss over the last 100 logged steps

Before step 1 the demo checks every flag, that --out can be created and written and has room,
that the folder holds no other run's results (else --overwrite, or --resume), and that the run
fits in memory (estimate: ``mdlstm_np/demo/memory.py``). Ctrl-C (SIGINT) or SIGTERM stops
at the end of the current step, saves a checkpoint, the log and the figures, prints where they
are and how to resume, and exits with 130 / 143. After kill -9, --resume continues from the last
checkpoint (at most --checkpoint-every steps are redone); the losses of an interrupted and
resumed run equal an uninterrupted run's bit for bit (same backend and dtype).

Exit status: 0 done; 1 a model stopped by NaN/inf; 2 bad input (one line on stderr, before any
training); 130 / 143 interrupted by SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import glob
import os
import signal
import sys
import time

# The matrices are tiny: extra BLAS threads only add synchronisation (much more so on a shared
# machine). Set before numpy loads BLAS; a value the user exported wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from mdlstm_np.demo.cli import MAX_STEPS, OneLineParser  # noqa: E402
from mdlstm_np.demo.cli import fail as _fail  # noqa: E402
from mdlstm_np.demo.cli import parse_integer as integer  # noqa: E402

PROG = "demo.py"
RESULT_PATTERNS = ("out_*.tsv", "checkpoint_*.npz", "losses_*.png", "predictions_*.png",
                   "metrics.json", "receptive_fields.png", "gaussian_fields.png",
                   "digits_curves.png", "digits_errors.png", "learning_curves.png", "lines.png")
TASKS = ("diagonal", "gaussian", "digits", "diagonal3d", "lines")
# Tests only: "SIGINT:7" sends SIGINT to this process when its 7th training step (counted over
# all models trained by this process) is done, so an interruption lands at a known step.
SIGNAL_HOOK = "MDLSTM_NP_DEMO_SIGNAL_AT"
FIT_CHECKPOINT_EVERY = 1   # the epoch tasks' default --checkpoint-every, in epochs (lines: steps)


class _Parser(OneLineParser):
    """argparse, but errors are one line (``demo.py: error: ...``) and exit status 2."""


def fail(message: str, status: int = 2):
    _fail(PROG, message, status)


def number(text: str) -> float:
    try:
        return float(text)          # range checked with the other settings (also on --resume)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


SETTINGS = ("model", "backend", "steps", "size", "batch", "hidden", "lr", "seed", "dtype", "ln",
            "checkpoint_every")


def build_parser(suppress: bool = False) -> argparse.ArgumentParser:
    """The demo's flags; ``suppress``: no defaults (tells which flags were given)."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    p = _Parser(prog=PROG, description="Train the seed's models on the random-diagonal task, "
                                       "or on another task (--task).",
                argument_default=argparse.SUPPRESS if suppress else None,
                epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default=d("diagonal"), choices=TASKS,
                   help="diagonal (default, the seed's), " + ", ".join(TASKS[1:-1])
                   + f" or {TASKS[-1]}")
    p.add_argument("--epochs", type=integer, default=d(None),
                   help="passes over the training set (not diagonal; default per task)")
    p.add_argument("--train", type=integer, default=d(None), metavar="N",
                   help="training samples (not diagonal; default per task)")
    p.add_argument("--val", type=integer, default=d(None), metavar="N",
                   help="validation/test samples (not diagonal; default per task)")
    p.add_argument("--model", default=d("all"),
                   help="one of the task's models (listed below; any case) or all "
                        "(default: all)")
    p.add_argument("--backend", default=d("auto"), help="auto|numpy|numba|cupy (default: auto)")
    p.add_argument("--steps", type=integer, default=d(1000), help="training steps (default: 1000)")
    p.add_argument("--size", type=integer, default=d(8), help="grid side, >= 3 (default: 8)")
    p.add_argument("--batch", type=integer, default=d(16), help="batch size (default: 16)")
    p.add_argument("--hidden", type=integer, default=d(16), help="hidden units (default: 16)")
    p.add_argument("--lr", type=number, default=d(0.01),
                   help="Adam learning rate (default: 0.01)")
    p.add_argument("--seed", type=integer, default=d(0), help="random seed (default: 0)")
    p.add_argument("--dtype", default=d("float32"), choices=("float32", "float64"),
                   help="float32 (default, like the seed) or float64")
    p.add_argument("--out", default=d("demo_out"), help="output folder (default: demo_out)")
    p.add_argument("--ln", default=d("fixed"), choices=("fixed", "seed", "off"),
                   help="MD_LSTM's cell: layer-normalised like the seed's but NaN-free "
                        "(fixed, default), the seed's exact LN cell (seed), or Graves' plain "
                        "cell (off: the one the numba/cupy hot loops accelerate)")
    p.add_argument("--checkpoint-every", type=integer, default=d(100), metavar="N",
                   help="save a checkpoint every N steps, and at the end (default: 100; "
                        "gaussian, digits, diagonal3d: every N epochs, default 1)")
    p.add_argument("--resume", metavar="DIR", default=d(None),
                   help="continue the run recorded in DIR (its config.json) to its steps "
                        "or epochs, with its settings (any task)")
    p.add_argument("--overwrite", action="store_true", default=d(False),
                   help="replace the results of another run in --out")
    p.add_argument("--no-progress", action="store_true", default=d(False),
                   help="no progress bar")
    return p


def _epilog() -> str:
    from mdlstm_np.demo.demotasks import TASK_DEFAULTS, TASK_FILES, TASK_MODELS
    from mdlstm_np.demo.models import MODEL_NAMES

    lines = ["tasks, their models (--model: one of them, any case, or all) and defaults:",
             f"  diagonal    {', '.join(MODEL_NAMES)}",
             "              --steps 1000 --size 8 --batch 16 --hidden 16 --lr 0.01"]
    for task, d in TASK_DEFAULTS.items():
        lines += [f"  {task:<11} {', '.join(TASK_MODELS[task])}",
                  f"              --epochs {d['epochs']} --size {d['size']} --train {d['train']} "
                  f"--val {d['val']} --batch {d['batch']} --hidden {d['hidden']} --lr {d['lr']}"]
    lines += ["backends: auto (numba on a CPU when installed, cupy on a GPU), numpy, numba, cupy",
              "files written in --out:",
              "  every task   config.json, metrics.json",
              "  diagonal     out_<MODEL>.tsv, checkpoint_<MODEL>.npz, losses_overall.png,",
              "               losses_relevant.png, predictions_<MODEL>_before/after.png,",
              "               receptive_fields.png",
              "  other tasks  checkpoint_<task>_<MODEL>.npz and"]
    lines += [f"    {task:<11}{text}" for task, text in TASK_FILES.items()]
    return "\n".join(lines)


def parse_args(argv=None):
    """(args, given): the parsed flags and the names of those given on the command line."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    given = set(vars(build_parser(suppress=True).parse_args(argv)))
    return args, given


def check_settings(s: dict) -> list:
    """Check the settings (a dict of the SETTINGS); returns the model names. ValueError (one
    line) on the first problem."""
    from mdlstm_np.demo.models import MODEL_NAMES
    from mdlstm_np.validate import check_positive_int

    for name, lo, hi in (("steps", 1, MAX_STEPS), ("size", 3, None), ("batch", 1, None),
                         ("hidden", 1, None), ("seed", 0, 2 ** 63 - 1),
                         ("checkpoint_every", 1, None)):
        value = check_positive_int(s[name], name, lo)
        if hi is not None and value > hi:
            raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {value}")
    if not (isinstance(s["lr"], float) and np.isfinite(s["lr"]) and s["lr"] > 0):
        raise ValueError(f"lr: expected a finite number > 0, got {s['lr']!r}")
    if s["dtype"] not in ("float32", "float64") or s["ln"] not in ("fixed", "seed", "off"):
        raise ValueError(f"dtype/ln: unexpected {s['dtype']!r}/{s['ln']!r}")
    if s["backend"].lower() not in ("auto", "numpy", "numba", "cupy"):
        raise ValueError(f"backend: expected one of auto, numpy, numba, cupy, "
                         f"got {s['backend']!r}")
    if s["model"].lower() == "all":
        return list(MODEL_NAMES)
    if s["model"].upper() in MODEL_NAMES:
        return [s["model"].upper()]
    raise ValueError(f"model: expected one of {', '.join(MODEL_NAMES)} or all, "
                     f"got {s['model']!r}")


def output_bytes(models, steps: int) -> int:
    """About how many bytes the run writes: per model the log (~80 B a row), two checkpoints'
    worth (the new one is written beside the old one: parameters, initial parameters and
    Adam's two moments, plus the rows) and two prediction figures; two loss figures."""
    from mdlstm_np.demo.memory import parameter_count

    total = 2 * 100_000 + 16_384
    for m in models:
        itemsize = 8 if m.dtype == "float64" else 4
        ckpt = 4 * parameter_count(m) * itemsize + 32 * steps + 16_384
        total += 80 * steps + 2 * ckpt + 2 * 60_000
    return total


def summary_table(logs: dict) -> str:
    """logs: {name: rows} -> a small fixed-width table."""
    head = f"{'model':<20} {'relevant loss*':>15} {'overall loss':>13} {'ms/step':>9}"
    lines = [head, "-" * len(head)]
    for name, rows in logs.items():
        rel = np.array([r["relevant_loss"] for r in rows[-100:]])
        tot = rows[-1]["overall_loss"]
        ms = 1000.0 * float(np.median([r["time"] for r in rows]))
        lines.append(f"{name:<20} {float(np.median(rel)):>15.4f} {tot:>13.4f} {ms:>9.1f}")
    lines.append("* median over the last 100 logged steps; ms/step: median step time")
    return "\n".join(lines)


class _Stop:
    """SIGINT/SIGTERM handler: remember the first signal; training stops after its step."""

    def __init__(self):
        self.signum, self.count = None, 0
        hook = os.environ.get(SIGNAL_HOOK, "")
        self.hook = None
        if hook:
            name, _, at = hook.partition(":")
            self.hook = (getattr(signal, name), int(at))

    def __call__(self, signum, frame):
        if self.signum is None:
            self.signum = signum

    def should_stop(self, done: int) -> bool:
        self.count += 1
        if self.hook is not None and self.count == self.hook[1]:
            os.kill(os.getpid(), self.hook[0])
            for _ in range(1000):            # let Python run the handler before we look
                if self.signum is not None:
                    break
                time.sleep(0.001)
        return self.signum is not None


def demo_advice(message: str, s: dict) -> str:
    """A non-finite run's message with the layer's advice (cell=, ln=, forget_bias=: options
    of the API that no flag of this task sets) replaced by what the demo's flags can change."""
    head, sep, _ = message.partition("What to do:")
    if not sep:
        return message
    fixes = []
    if s.get("dtype") == "float32":
        fixes.append("--dtype float64")
    if s.get("task", "diagonal") == "diagonal" and s.get("ln") != "fixed":
        fixes.append("--ln fixed")
    fixes.append(f"a smaller --lr (this run: {s.get('lr')})")
    fixes.append(f"a smaller --size (this run: {s.get('size')})")
    return head + "What to do in the demo: " + ", or ".join(fixes) + "."


def _disk_full(args, error) -> int:
    """One line for a disk that filled up during a run: the folder, the checkpoints that are
    kept (every checkpoint is written atomically: the last complete one stays), how to
    resume. Exit status 1."""
    out = args.resume if args.resume is not None else args.out
    kept = sorted(glob.glob(os.path.join(out, "checkpoint_*.npz"))) if os.path.isdir(out) else []
    keep = (f"the last checkpoints are kept ({', '.join(os.path.basename(k) for k in kept)})"
            if kept else "no checkpoint had been written yet")
    print(f"{PROG}: no space left on the device of {out} ({error.filename or 'a write'}); "
          f"{keep}; free some space, then continue with: python demo.py --resume {out}",
          file=sys.stderr)
    return 1


def main(argv=None) -> int:
    """Run the demo with ``argv`` (default ``sys.argv[1:]``); returns the exit status (bad
    input exits with 2 through SystemExit)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, given = parse_args(argv)
    args.argv = argv
    stop = _Stop()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _main(args, given, stop)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        return _disk_full(args, e)
    finally:                               # a caller (a test) gets its own handlers back
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _recorded_task(folder: str) -> str:
    """The task of the run recorded in ``folder`` (--resume): one line, exit 2, when there is
    no readable demo.py record there."""
    from mdlstm_np.demo.runrecord import OutputError, read_config

    try:
        config = read_config(folder)
    except OutputError as e:
        fail(str(e))
    task = config.get("task", "diagonal")   # the diagonal task's record predates the key
    if task not in TASKS or config.get("program", PROG) != PROG:
        fail(f"resume: {os.path.join(folder, 'config.json')} is not a demo.py record")
    return task


def _main(args, given, stop) -> int:
    task = _recorded_task(args.resume) if args.resume is not None else args.task
    if task != "diagonal":
        return _main_fit_task(args, given, stop, task)
    for flag in ("epochs", "train", "val"):
        if flag in given:
            fail(f"{flag}: only for the tasks trained by epochs (gaussian, digits, diagonal3d); "
                 f"the diagonal task trains for --steps")
    from mdlstm_np.backends import get_backend
    from mdlstm_np.training.checkpoint import (CheckpointError, check_matches,
                                                 load_checkpoint, rows_before)
    from mdlstm_np.demo.memory import check_memory, estimate_model_bytes
    from mdlstm_np.demo.models import build_model
    from mdlstm_np.demo.runrecord import (OutputError, command_line, prepare_output,
                                               read_config, versions, write_config)
    from mdlstm_np.training.model import model_settings, sweep_name
    from mdlstm_np.demo.train import read_tsv, run_settings

    # ---- settings: the flags, or the recorded run's (one line, exit 2, on the first problem)
    if args.resume is not None:
        extra = sorted(given - {"resume", "no_progress"})
        if extra:
            fail(f"resume: --{extra[0].replace('_', '-')} cannot be combined with --resume "
                 f"(the run's settings are in {os.path.join(args.resume, 'config.json')})")
        try:
            config = read_config(args.resume)
            settings = {k: config["settings"][k] for k in SETTINGS}
            settings["backend"] = config.get("backend", settings["backend"])
        except OutputError as e:
            fail(str(e))
        except (KeyError, TypeError):
            fail(f"resume: {os.path.join(args.resume, 'config.json')} is not a demo.py record")
        out = args.resume
    else:
        settings = {k: getattr(args, k) for k in SETTINGS}
        out = args.out
    try:
        names = check_settings(settings)
    except (ValueError, TypeError) as e:
        fail(str(e))
    s = settings
    try:
        be = get_backend(s["backend"].lower(), verbose=True)
    except (ValueError, TypeError) as e:
        fail(str(e))
    except Exception as e:  # cupy missing, no GPU, driver trouble: say so in one line
        fail(f"backend: {s['backend']!r} is not usable here ({type(e).__name__}: {e})")
    print(f"backend: {be.name}, dtype: {s['dtype']}")
    try:
        models = {name: build_model(name, in_channels=1, hidden=s["hidden"], backend=be,
                                    dtype=s["dtype"], ln={"off": False}.get(s["ln"], s["ln"]))
                  for name in names}
    except (ValueError, TypeError) as e:
        fail(str(e))
    for name, model in models.items():
        print(f"{name}: backend {be.name}, sweep {sweep_name(model)}")

    # ---- will it fit: memory, then the output folder (nothing is written before both pass)
    need = max(estimate_model_bytes(m, (s["size"], s["size"]), s["batch"])
               for m in models.values())
    try:
        check_memory(need, be, what=f"a training step (grid {s['size']}x{s['size']}, batch "
                                    f"{s['batch']}, hidden {s['hidden']}, {s['dtype']})")
    except MemoryError as e:
        fail(str(e))
    ckpt_path = {n: os.path.join(out, f"checkpoint_{n}.npz") for n in names}
    tsv_path = {n: os.path.join(out, f"out_{n}.tsv") for n in names}
    train_kw = dict(steps=s["steps"], batch=s["batch"], size=s["size"], lr=s["lr"],
                    seed=s["seed"])
    if args.resume is not None:              # every checkpoint must fit before anything runs
        for name, model in models.items():
            if os.path.exists(ckpt_path[name]):
                try:
                    params = model.init_params(np.random.default_rng(0))
                    ckpt = load_checkpoint(ckpt_path[name])
                    check_matches(ckpt, model_name=name, settings=run_settings(model, **train_kw),
                                  params=params, be=be, dtype=model.dtype)
                    rows_before(ckpt, read_tsv(tsv_path[name], partial_ok=True), tsv_path[name])
                except CheckpointError as e:
                    fail(str(e))
                except (OSError, ValueError) as e:
                    fail(f"resume: the log {tsv_path[name]} cannot be read ({e})")
    try:
        prepare_output(out, patterns=RESULT_PATTERNS, overwrite=args.overwrite,
                       resume=args.resume is not None,
                       need_bytes=output_bytes(models.values(), s["steps"]),
                       flag="resume" if args.resume is not None else "out")
    except OutputError as e:
        fail(str(e))
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    command = command_line(os.path.abspath(__file__), args.argv)
    if args.resume is not None:
        config.setdefault("resumed", []).append({"at": now, "command": command})
    else:
        config = {"program": PROG, "command": command, "cwd": os.getcwd(), "started": now,
                  "settings": {**settings, "out": out, "overwrite": args.overwrite},
                  "seed": s["seed"], "backend": be.name, "versions": versions(),
                  "resumed": []}
    config["models"] = {n: {**model_settings(m), "backend": be.name, "sweep": sweep_name(m)}
                        for n, m in models.items()}
    written = [write_config(out, config)]
    return run(models, s, out, train_kw, tsv_path, ckpt_path, written, stop,
               resume=args.resume is not None, progress=not args.no_progress)


def run(models, s, out, train_kw, tsv_path, ckpt_path, written, stop, *, resume, progress):
    """Train each model (resuming from its checkpoint where one exists), then make the figures
    and the summary from this run's files."""
    from mdlstm_np.demo.plots import plot_losses, plot_predictions
    from mdlstm_np.demo.tasks import random_diagonal
    from mdlstm_np.training.guard import TrainingDiverged
    from mdlstm_np.demo.train import predict, read_tsv, train

    # a fixed set of samples for the before/after pictures, apart from the training stream
    x_show, y_show, pos_show = random_diagonal(4, s["size"],
                                               np.random.default_rng([s["seed"], 7]))
    status, stopped_at, trained = 0, None, {}
    for name, model in models.items():
        if stop.signum is not None:
            break
        try:
            res = train(model, **train_kw, progress=progress, out_tsv=tsv_path[name],
                        checkpoint=ckpt_path[name], checkpoint_every=s["checkpoint_every"],
                        resume=resume and os.path.exists(ckpt_path[name]),
                        should_stop=stop.should_stop)
        except TrainingDiverged as e:
            print(f"{PROG}: {demo_advice(str(e), s)}", file=sys.stderr)
            written.append(tsv_path[name])
            status = 1
            continue
        written += [tsv_path[name], ckpt_path[name]]
        trained[name] = (model, res.params)
        title = f"{name} after {res.step} of {s['steps']} steps"
        for when, params, label in (("before", res.initial_params, f"{name} before training"),
                                    ("after", res.params, title)):
            path = os.path.join(out, f"predictions_{name}_{when}.png")
            plot_predictions(x_show, y_show, predict(model, params, x_show), path, title=label,
                             cells=pos_show, settings=s)
            written.append(path)
        if res.stopped:
            stopped_at = (name, res.step)
            break

    # figures and summary from this run's logs only (a resumed run's earlier rows included)
    logs = {n: read_tsv(tsv_path[n]) for n in models if os.path.exists(tsv_path[n])}
    logs = {n: rows for n, rows in logs.items() if rows}
    if logs:
        for column, stem in (("overall_loss", "overall"), ("relevant_loss", "relevant")):
            written.append(plot_losses(logs, column, os.path.join(out, f"losses_{stem}.png"),
                                       settings=s))
    if trained:
        written.append(receptive_figure(trained, x_show, pos_show, out, s))
    written.append(write_metrics(out, diagonal_metrics(logs, s)))
    if stop.signum is not None:
        signame = signal.Signals(stop.signum).name
        where = f" at step {stopped_at[1]} of {s['steps']} of {stopped_at[0]}" if stopped_at \
            else ""
        print(f"{PROG}: stopped by {signame}{where}; the log, checkpoints and figures are in "
              f"{os.path.abspath(out)}; continue with: python {PROG} --resume {out}",
              file=sys.stderr)
        return 128 + stop.signum
    if logs:
        print()
        print(summary_table(logs))
    print(f"\nwrote {len(written)} files to {os.path.abspath(out)}:")
    for path in dict.fromkeys(written):
        print(f"  {os.path.basename(path)}")
    return status


def receptive_figure(trained: dict, x, pos, out: str, s: dict) -> str:
    """receptive_fields.png: |∂y(p)/∂x(q)| of every trained model at the cell that counts, p =
    the target position of the first shown sample's second one; the first one is circled."""
    from mdlstm_np.receptive import plot_receptive_fields, receptive_field

    p = (int(pos[0, 0]), int(pos[0, 1]))
    maps = {name: receptive_field(model, params, x[:1], p, average=True)
            for name, (model, params) in trained.items()}
    return plot_receptive_fields(
        maps, p, os.path.join(out, "receptive_fields.png"),
        title=f"what each model sees at the cell that counts (after {s['steps']} steps)",
        marks=[((p[0] - 1, p[1]), "the first one (fixes the target at p)")])


def diagonal_metrics(logs: dict, s: dict) -> dict:
    """metrics.json of the diagonal task, from the logs: per model the steps done, the last
    overall loss and the median relevant loss over the last 100 logged steps."""
    models = {}
    for name, rows in logs.items():
        models[name] = {"steps": rows[-1]["steps"] + 1,
                        "overall_loss": rows[-1]["overall_loss"],
                        "relevant_loss_median_last_100": float(np.median(
                            [r["relevant_loss"] for r in rows[-100:]]))}
    return {"task": "diagonal", "settings": {k: s[k] for k in SETTINGS}, "models": models}


def write_metrics(out: str, metrics: dict) -> str:
    """``out/metrics.json``, written atomically (sorted keys); returns the path."""
    import json

    from mdlstm_np.training.atomic import atomic_write

    def writer(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=1, sort_keys=True)
            f.write("\n")

    return atomic_write(os.path.join(out, "metrics.json"), writer, suffix=".json")


def _main_fit_task(args, given, stop, task) -> int:
    """--task gaussian | digits | diagonal3d | lines (or --resume of such a run): settings,
    output folder, ``demotasks.RUNNERS``."""
    from mdlstm_np.backends import get_backend
    from mdlstm_np.training.checkpoint import CheckpointError
    from mdlstm_np.demo.demotasks import (RUNNERS, TASK_DEFAULTS, TASK_MODELS,
                                                checkpoint_paths)
    from mdlstm_np.demo.runrecord import (OutputError, command_line, prepare_output,
                                               read_config, versions, write_config)
    from mdlstm_np.validate import check_positive_int

    resume = args.resume is not None
    if resume:                               # the recorded run's settings, nothing else
        extra = sorted(given - {"resume", "no_progress"})
        if extra:
            fail(f"resume: --{extra[0].replace('_', '-')} cannot be combined with --resume "
                 f"(the run's settings are in {os.path.join(args.resume, 'config.json')})")
        config = read_config(args.resume)
        try:
            s = {k: config["settings"][k] for k in (*TASK_DEFAULTS[task], "seed", "dtype",
                                                     "checkpoint_every", "backend")}
            recorded = list(config["settings"]["models"])
        except (KeyError, TypeError):
            fail(f"resume: {os.path.join(args.resume, 'config.json')} is not a demo.py record")
        s["task"] = task
        out = args.resume
    else:
        for flag in ("ln",) + (("steps",) if task != "lines" else ()):
            if flag in given:
                fail(f"{flag}: only for the diagonal task; --task {task} trains for --epochs "
                     f"with mdlstm_np.fit")
        if task == "lines" and "steps" in given and "epochs" in given:
            fail("epochs: --task lines trains for --steps or for --epochs, not both "
                 f"(got --steps {args.steps} and --epochs {args.epochs})")
        s = dict(TASK_DEFAULTS[task])
        s.update({k: getattr(args, k) for k in ("size", "batch", "hidden", "lr", "epochs",
                                                 "train", "val", "steps") if k in given})
        s.update(seed=args.seed, dtype=args.dtype, backend=args.backend, task=task,
                 checkpoint_every=args.checkpoint_every if "checkpoint_every" in given
                 else args.checkpoint_every if task == "lines" else FIT_CHECKPOINT_EVERY)
        out = args.out
    try:
        bounds = [("epochs", 1), ("size", 3), ("batch", 1), ("hidden", 1), ("train", 1),
                  ("val", 1), ("checkpoint_every", 1)] + ([("steps", 1)] if task == "lines"
                                                          else [])
        for name, lo in bounds:
            s[name] = check_positive_int(s[name], name, lo)
        if not (np.isfinite(s["lr"]) and s["lr"] > 0):
            raise ValueError(f"lr: expected a finite number > 0, got {s['lr']!r}")
        if task == "digits" and (s["size"] != 8 or s["train"] > 898 or s["val"] > 899):
            raise ValueError(f"digits: the images are 8x8 (--size 8), with at most 898 training "
                             f"and 899 test images, got size {s['size']}, train {s['train']}, "
                             f"val {s['val']}")
    except (ValueError, TypeError) as e:
        fail(str(e))
    models = TASK_MODELS[task]
    wanted = args.model.upper()
    if resume:
        names = recorded
        if not names or any(n not in models for n in names):
            fail(f"resume: {os.path.join(out, 'config.json')} names models {names!r}, expected "
                 f"some of {', '.join(models)}")
    elif wanted == "ALL":
        names = list(models)
    elif wanted in models:
        names = [wanted]
    else:
        fail(f"model: expected one of {', '.join(models)} or all for --task {task}, got "
             f"{args.model!r}")
    if s["backend"].lower() not in ("auto", "numpy", "numba", "cupy"):
        fail(f"backend: expected one of auto, numpy, numba, cupy, got {s['backend']!r}")
    try:
        be = get_backend(s["backend"].lower(), verbose=True)
    except (ValueError, TypeError) as e:
        fail(str(e))
    except Exception as e:
        fail(f"backend: {s['backend']!r} is not usable here ({type(e).__name__}: {e})")
    s["backend"] = be.name
    print(f"task: {task}, backend: {be.name}, dtype: {s['dtype']}, models: {', '.join(names)}")
    from mdlstm_np.demo.memory import check_memory, estimate_data_bytes

    try:                                     # the data sets first: they can dwarf a step
        check_memory(estimate_data_bytes(task, s), None,
                     what=f"the {task} task's data (train {s['train']}, val {s['val']}, size "
                          f"{s['size']}, {s['dtype']})",
                     advice="use a smaller --train, --val or --size")
    except MemoryError as e:
        fail(str(e))
    if resume:                               # every checkpoint must load before anything runs
        for name in names:
            for path in checkpoint_paths(out, task, name):
                if os.path.exists(path):
                    try:
                        check_recorded_checkpoint(path, name)
                    except CheckpointError as e:
                        fail(str(e))
    try:
        prepare_output(out, patterns=RESULT_PATTERNS, overwrite=args.overwrite, resume=resume,
                       need_bytes=5_000_000, flag="resume" if resume else "out")
    except OutputError as e:
        fail(str(e))
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    command = command_line(os.path.abspath(__file__), args.argv)
    if resume:
        config.setdefault("resumed", []).append({"at": now, "command": command})
    else:
        config = {"program": PROG, "command": command, "cwd": os.getcwd(), "started": now,
                  "task": task, "settings": dict(s, models=names), "seed": s["seed"],
                  "backend": be.name, "versions": versions(), "resumed": []}
    written = [write_config(out, config)]
    run_s = dict(s, progress=not args.no_progress, should_stop=stop.should_stop, resume=resume)
    t0 = time.perf_counter()
    try:
        metrics, files, stopped = RUNNERS[task](run_s, names, out, be)
    except CheckpointError as e:                 # a checkpoint of other settings (--resume)
        fail(str(e))
    except Exception as e:                       # TrainingDiverged, NonFiniteError, ...
        from mdlstm_np.training.guard import TrainingDiverged

        if not isinstance(e, (TrainingDiverged, FloatingPointError)) and \
                "not finite" not in str(e):
            raise
        print(f"{PROG}: {demo_advice(str(e), s)}", file=sys.stderr)
        return 1
    metrics = {"task": task, "settings": s, "seconds": time.perf_counter() - t0,
               "stopped": bool(stopped), **metrics}
    written += files + [write_metrics(out, metrics)]
    if stopped and stop.signum is not None:
        print(f"{PROG}: stopped by {signal.Signals(stop.signum).name}; the checkpoints and "
              f"metrics so far are in {os.path.abspath(out)}; continue with: python {PROG} "
              f"--resume {out}", file=sys.stderr)
        return 128 + stop.signum
    print()
    print(fit_summary(task, metrics))
    print(f"\nwrote {len(written)} files to {os.path.abspath(out)}:")
    for path in dict.fromkeys(written):
        print(f"  {os.path.basename(path)}")
    return 0


def check_recorded_checkpoint(path: str, name: str) -> None:
    """A --resume of an epoch task: the checkpoint at ``path`` loads (not truncated or
    corrupted) and belongs to model ``name``; else CheckpointError (one line). Its settings,
    shapes and dtype are checked against the model when ``fit`` resumes it."""
    from mdlstm_np.training.checkpoint import CheckpointError, load_checkpoint

    held = load_checkpoint(path).meta.get("model")
    if held != name:
        raise CheckpointError(f"checkpoint {path}: holds model {held!r}, this run trains "
                              f"{name!r}")


def fit_summary(task: str, metrics: dict) -> str:
    """The results of a --task gaussian/digits/diagonal3d run as a small table."""
    if task == "lines":
        lines = [f"{'model':<20} {'test CER':>9} {'untrained':>10} {'seconds':>8}",
                 f"{'HIERARCHICAL_MDRNN':<20} {metrics['test_cer']:>9.4f} "
                 f"{metrics['untrained_test_cer']:>10.4f} "
                 f"{metrics['models']['HIERARCHICAL_MDRNN']['seconds']:>8.0f}"]
    elif task == "digits":
        lines = [f"{'model':<20} {'test accuracy':>13} {'seconds':>8}"]
        for name, m in metrics["models"].items():
            lines.append(f"{name:<20} {100 * m['test_accuracy']:>12.2f}% {m['seconds']:>8.0f}")
    elif task == "gaussian":
        lines = [f"{'field':<12} {'model':<20} {'val MSE':>8} {'interior':>9}"]
        for kind in ("isotropic", "anisotropic"):
            for name, m in metrics[kind]["models"].items():
                lines.append(f"{kind:<12} {name:<20} {m['val_mse']:>8.4f} "
                             f"{m['val_mse_interior']:>9.4f}")
            lines.append(f"{kind:<12} {'copy current value':<20} {'':>8} "
                         f"{metrics[kind]['copy_current_value_mse_interior']:>9.4f}")
        lines.append("interior: every column but the last (whose target is 0)")
    else:
        lines = [f"{'model':<20} {'val MSE':>9} {'relevant MSE':>13}"]
        for name, m in metrics["models"].items():
            lines.append(f"{name:<20} {m['val_mse']:>9.5f} {m['val_relevant_mse']:>13.5f}")
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:          # `python demo.py | head`: the reader left, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
