"""What each model sees: receptive fields of the seed's three models after brief training.

    PYTHONPATH=. python examples/receptive_fields.py                # ~20 s on 2 cores (numba)
    PYTHONPATH=. python examples/receptive_fields.py --steps 50 --out /tmp/rf.png

Trains MD_LSTM, SNAKE_SD_LSTM, HORIZONTAL_SD_LSTM (and a 4-direction MD-LSTM, unless
``--no-multidir``) on the random-diagonal task with ``mdlstm_np.demo.train.train``, then
takes one task sample with its ones at (r, c) and (r+1, c+1) and draws, for every model, the map
|∂y(p)/∂x(q)| over the input cells q at the cell that counts, p = (r+1, c) (where the target
holds the second one; ``mdlstm_np/receptive.py``). The target there is fixed by the first one
at (r, c), directly above p. The MD-LSTM's map covers the quadrant above-left of p, the snake's
everything before p in reading order, the row LSTM's only its own row to the left of p: it
cannot see the first one, which is why it never learns the task (the seed's result).

Writes the figure (default ``demo_out/receptive_fields.png``; ``docs/receptive_fields.png`` is
made with ``--out docs/receptive_fields.png --overwrite``) atomically, after checking before
training that its folder is writable and that it replaces no earlier figure unless
``--overwrite`` is given, and prints, per model, the
relevant loss at the end and how strongly p's output depends on the first one's input cell
(relative to the map's maximum).
"""

from __future__ import annotations

import os
import sys

# tiny matrices: BLAS threads only add overhead on a shared 2-core machine (set before numpy)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from mdlstm_np.demo import cli  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

PROG = "receptive_fields.py"
DEFAULT_OUT = os.path.join("demo_out", "receptive_fields.png")  # never the tracked docs/ figure


def fail(message: str, status: int = 2):
    """One line on stderr (``PROG: error: ...``) and exit ``status`` (the shared CLI rule)."""
    cli.fail(PROG, message, status)


def parse_args(argv=None):
    p = cli.OneLineParser(prog=PROG, description="Train the seed's models briefly and draw what each "
                                       "one sees (receptive fields).")
    p.add_argument("--steps", type=int, default=1000,
                   help="training steps (default: 1000, the seed's run; by 300 the snake has "
                        "not yet learned to look back)")
    p.add_argument("--size", type=int, default=8, help="grid side, >= 3 (default: 8)")
    p.add_argument("--hidden", type=int, default=16, help="hidden units (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--backend", default="auto", choices=("auto", "numpy", "numba", "cupy"),
                   help="array backend (default: auto, numba on a CPU when installed)")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help="the PNG to write (default: demo_out/receptive_fields.png)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (refused otherwise, before training)")
    p.add_argument("--no-multidir", action="store_true",
                   help="leave out the 4-direction MD-LSTM panel")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.steps < 1:
        fail(f"--steps: expected an integer >= 1, got {args.steps}")
    if args.size < 3:
        fail(f"--size: expected an integer >= 3, got {args.size}")
    if args.hidden < 1:
        fail(f"--hidden: expected an integer >= 1, got {args.hidden}")
    if args.seed < 0:
        fail(f"--seed: expected an integer >= 0, got {args.seed}")
    cli.check_output_file(PROG, args.out, args.overwrite, flag="out")
    return args


def four_direction_model(hidden, be, dtype):
    """A 4-direction MD-LSTM (Graves' cell, H/4 per direction, concatenated) + the seed's head."""
    from mdlstm_np.training.model import Model
    from mdlstm_np.dense import Dense
    from mdlstm_np.multidir import MultiDirectionalMDLSTM

    rnn = MultiDirectionalMDLSTM(1, max(1, hidden // 4), ndim=2, backend=be, dtype=dtype)
    return Model(rnn, Dense(rnn.out_features, 1, "sigmoid", backend=be, dtype=dtype),
                 name="4-direction MD-LSTM")


def main(argv=None) -> int:
    args = parse_args(argv)
    from mdlstm_np.backends import get_backend
    from mdlstm_np.demo.models import build_model
    from mdlstm_np.demo.tasks import random_diagonal
    from mdlstm_np.training.guard import TrainingDiverged
    from mdlstm_np.demo.train import train
    from mdlstm_np.receptive import plot_receptive_fields, receptive_field

    try:
        be = get_backend(args.backend, verbose=True)
    except (ImportError, RuntimeError, ValueError) as e:
        fail(f"--backend: {e}")
    dtype = "float32"
    models = [build_model(name, hidden=args.hidden, backend=be, dtype=dtype)
              for name in ("MD_LSTM", "SNAKE_SD_LSTM", "HORIZONTAL_SD_LSTM")]
    if not args.no_multidir:
        models.append(four_direction_model(args.hidden, be, dtype))

    # one sample of the task, the same for every model; p is the cell that counts
    x, _, pos = random_diagonal(1, args.size, np.random.default_rng(args.seed + 1))
    p = (int(pos[0, 0]), int(pos[0, 1]))  # (r+1, c): the target holds the second one here
    first = (p[0] - 1, p[1])  # (r, c): the first one, the input that decides the target

    maps, rows = {}, []
    for model in models:
        try:
            result = train(model, steps=args.steps, seed=args.seed, size=args.size,
                           log_every=max(1, args.steps // 50), progress=not args.no_progress)
        except TrainingDiverged as e:
            print(f"{PROG}: {e}", file=sys.stderr)
            return 1
        R = receptive_field(model, result.params, x, p)[0]  # (size, size)
        maps[model.name] = R
        tail = result.column("relevant_loss")[-5:]
        rows.append((model.name, float(np.median(tail)), float(R[first] / R.max())))

    title = (f"What the output at p = {p} depends on, after {args.steps} training steps "
             f"(random diagonal, {args.size}×{args.size}, hidden {args.hidden}, seed "
             f"{args.seed})")
    out = plot_receptive_fields(maps, p, args.out, title=title,
                                marks=[(first, f"first one {first}")])
    print(f"{'model':<22} {'relevant loss':>13} {'|dy(p)/dx(first one)| / max':>29}")
    for name, loss, at_first in rows:
        print(f"{name:<22} {loss:>13.4f} {at_first:>29.3g}")
    print(f"wrote {os.path.normpath(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
