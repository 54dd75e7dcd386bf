"""Data-parallel training of the seed's MD-LSTM with torch DistributedDataParallel.

    python examples/ddp.py --steps 200                                     # one process
    python -m torch.distributed.run --nproc-per-node 2 examples/ddp.py --steps 200
    python -m torch.distributed.run --nnodes 2 --node-rank R --nproc-per-node 4 \\
        --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 examples/ddp.py    # on each machine

Model: ``mdlstm_np.torch.MDLSTM`` (1 -> hidden channels on a 2-D grid; Graves' plain cell unless
--ln) -> per-cell dense layer + sigmoid (``torch.nn.Linear``) -> mean squared error, trained
with Adam on the seed's random-diagonal task (``mdlstm_np/tasks.py`` describes it; the few
lines below draw it the same way). The MD-LSTM's forward and backward are the engine's.

Data parallelism. Every rank draws the *same* global batch of --batch samples from a generator
seeded by (--seed, step) and keeps its own shard, rows [r·b, (r+1)·b) with b = batch / world.
Each rank's loss is the mean over its shard, DDP averages the gradients over the ranks, and the
shards have equal size, so the averaged gradient is the gradient of the mean loss over the
whole global batch: a step on W processes is the single-process step on the concatenated batch
(``tests/test_torch.py`` checks the parameters after a step). The global batch does not depend
on the number of processes, so runs with different world sizes see the same samples.

Devices. CPU tensors and the gloo backend by default; with --device cuda each rank uses
cuda:LOCAL_RANK, NCCL, and the engine's cupy backend (DLPack, no copies).

Output (rank 0): the configuration, the loss every --log-every steps (averaged over ranks) and
the median time of a training step (forward, backward with the gradient all-reduce, Adam),
after --warmup steps. --threads sets torch's intra-op threads per process, 1 by default: the
engine does the heavy work in numpy/numba and torch's own ops here are tiny; on a busy 2-core
machine torch's default of 2 threads made a single-process 8×8 step ~60 ms instead of ~2 ms
(threads waiting for a core at every small op). NumPy's OpenBLAS threads behave the same way:
torch.distributed.run sets OMP_NUM_THREADS=1 for its processes; for one process on a busy
machine set it yourself (with --ln fixed: ~7-12 ms per step with it, ~40-60 ms without).
--save PATH writes the final state_dict, the losses and the step times
and the run's record under "config" (settings, world size, versions, command line) with
``torch.save``, atomically (a temporary file, then a rename); an existing PATH is replaced
only with --overwrite. Every rank waits for that save before it tears its process group down.
Before step 1: bad arguments, a --save folder that cannot be written or has no room, and a
step that cannot fit in memory are each one line on stderr, exit status 2.
"""

from __future__ import annotations

import gc
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

from mdlstm_np.training.atomic import atomic_write
from mdlstm_np.demo.cli import MAX_STEPS, OneLineParser, integer, number
from mdlstm_np.demo.cli import fail as _fail
from mdlstm_np.torch import MDLSTM

PROG = "ddp.py"


def fail(message, status=2):
    """One line on stderr (``ddp.py: error: ...``), exit ``status``."""
    _fail(PROG, message, status)


def parse_args(argv):
    p = OneLineParser(prog=PROG, description="Data-parallel MD-LSTM training (DDP).")
    p.add_argument("--steps", type=integer(1, MAX_STEPS), default=100, help="Adam steps (100)")
    p.add_argument("--batch", type=integer(1), default=16,
                   help="global batch, split evenly over the processes (16)")
    p.add_argument("--size", type=integer(3), default=8, help="grid side, >= 3 (8)")
    p.add_argument("--hidden", type=integer(1), default=16, help="MD-LSTM width (16)")
    p.add_argument("--lr", type=number, default=0.01, help="Adam's step size (0.01)")
    p.add_argument("--seed", type=integer(0, 2 ** 63 - 1), default=0,
                   help="parameters and data (0)")
    p.add_argument("--ln", choices=("off", "fixed", "seed"), default="off",
                   help="layer-normalised cell (off: Graves' plain cell, the numba hot loop)")
    p.add_argument("--backend", choices=("auto", "numpy", "numba", "cupy"), default="auto")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--threads", type=integer(1, 4096), default=1,
                   help="torch intra-op threads per process (1; see the module doc)")
    p.add_argument("--warmup", type=integer(0, MAX_STEPS), default=3,
                   help="steps left out of the timing (3)")
    p.add_argument("--log-every", type=integer(1), default=10)
    p.add_argument("--save", metavar="PATH",
                   help="rank 0 writes state_dict, losses, times and the run's config")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier --save file")
    args = p.parse_args(argv)
    args.argv = list(argv)
    if args.save is not None and (os.path.isdir(args.save) or not os.path.basename(args.save)):
        fail(f"--save: expected a file name, got the folder {args.save!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        fail("--device: cuda requested, but torch sees no CUDA device")
    return args


def preflight(args, world: int, rank: int):
    """Before step 1 (and before joining the process group): this process's share of the
    memory (``mdlstm_np/demo/memory.py``, the engine's cache for batch/world samples),
    and on rank 0 the --save folder (created, written, room, no earlier file unless
    --overwrite). Returns the run's record (settings, world size, versions, command line),
    which --save stores as "config". One line and exit 2 when something fails."""
    from mdlstm_np.demo.memory import check_memory, estimate_training_bytes
    from mdlstm_np.demo.runrecord import (OutputError, command_line, prepare_output,
                                               versions)

    hidden, n = args.hidden, 2
    need = estimate_training_bytes(grid=(args.size, args.size), batch=-(-args.batch // world),
                                   hidden=hidden, gates=n + 3, layer_norm=args.ln != "off",
                                   itemsize=8 if args.dtype == "float64" else 4,
                                   params=(1 + n * hidden + 1) * (n + 3) * hidden + hidden + 1)
    available = None
    if args.device == "cuda":
        available = (torch.cuda.mem_get_info()[0], "free on the GPU")
    try:
        check_memory(need, available=available,
                     what=f"a training step per process ({args.size}x{args.size}, batch "
                          f"{args.batch}/{world}, hidden {hidden}, {args.dtype})")
    except MemoryError as e:
        fail(str(e))
    config = {"program": PROG, "command": command_line(os.path.abspath(__file__), args.argv),
              "cwd": os.getcwd(),
              "settings": {k: v for k, v in vars(args).items() if k != "argv"},
              "seed": args.seed, "world": world,
              "versions": {**versions(), "torch": str(torch.__version__)}}
    if rank != 0 or args.save is None:
        return config
    folder, name = os.path.dirname(os.path.abspath(args.save)), os.path.basename(args.save)
    try:
        prepare_output(folder, patterns=(name,), config_name=name, flag="save",
                       overwrite=args.overwrite, can_resume=False,
                       need_bytes=600_000 + 64 * args.steps + 16 * hidden * hidden * 8)
    except OutputError as e:
        fail(str(e))
    return config


def global_batch(seed: int, step: int, batch: int, size: int):
    """The seed's random-diagonal task: x, t float64 (batch, size, size, 1).

    Background uniform [0, 0.1); ones at (r, c) and (r+1, c+1), r, c in [1, size−2]; the
    target is the input shifted one column left. Drawn from (seed, step) alone, so every rank
    draws the same global batch.
    """
    rng = np.random.default_rng([seed, step])
    x = rng.uniform(0.0, 0.1, size=(batch, size, size, 1))
    r = rng.integers(1, size - 1, size=batch)
    c = rng.integers(1, size - 1, size=batch)
    b = np.arange(batch)
    x[b, r, c, 0] = 1.0
    x[b, r + 1, c + 1, 0] = 1.0
    return x, np.roll(x, -1, axis=2)


def save_to(obj, path):
    """``torch.save`` through an open file: given a path, torch names the archive's inner folder
    after the file, which a temporary name (".tmp_…") makes invalid."""
    with open(path, "wb") as f:
        torch.save(obj, f)


class Net(torch.nn.Module):
    """x (B, S, S, 1) -> MD-LSTM (B, S, S, H) -> σ(h V + a) (B, S, S, 1): the seed's MD_LSTM."""

    def __init__(self, hidden, *, ln, backend, dtype):
        super().__init__()
        self.rnn = MDLSTM(1, hidden, 2, cell="graves",  # the seed's MD_LSTM: Graves' cell
                          ln={"off": False, "fixed": True, "seed": "seed"}[ln],
                          backend=backend, dtype=dtype)
        self.head = torch.nn.Linear(hidden, 1, dtype=self.rnn.torch_dtype)

    def forward(self, x):
        return torch.sigmoid(self.head(self.rnn(x)))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    distributed = "WORLD_SIZE" in os.environ  # set by torch.distributed.run
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    config = preflight(args, int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("RANK", 0)))
    device = torch.device("cuda", local_rank) if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    model = net = opt = None
    try:
        if args.batch % world:
            fail(f"--batch: expected a multiple of the {world} processes, got {args.batch}")
        shard = slice(rank * args.batch // world, (rank + 1) * args.batch // world)

        torch.manual_seed(args.seed)  # identical initial parameters on every rank
        try:
            net = Net(args.hidden, ln=args.ln, backend=args.backend, dtype=args.dtype).to(device)
        except (ValueError, TypeError) as e:
            fail(str(e))
        model = net
        if distributed:
            model = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[local_rank] if device.type == "cuda" else None)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        dtype = net.rnn.torch_dtype
        if rank == 0:
            print(f"world {world}, global batch {args.batch} ({args.batch // world} per "
                  f"process), {args.size}x{args.size}, hidden {args.hidden}, ln {args.ln}, "
                  f"backend {args.backend}, {device}, {args.dtype}", flush=True)

        losses, times = [], []
        for step in range(args.steps):
            x, t = global_batch(args.seed, step, args.batch, args.size)
            xb = torch.from_numpy(x[shard]).to(device, dtype)
            tb = torch.from_numpy(t[shard]).to(device, dtype)
            t0 = time.perf_counter()
            loss = torch.mean((model(xb) - tb) ** 2)  # the mean over this rank's shard
            opt.zero_grad(set_to_none=True)
            loss.backward()  # DDP: gradients averaged over the ranks here
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
            if step % args.log_every == 0 or step == args.steps - 1:
                mean_loss = loss.detach().clone()
                if distributed:  # for the log only: the global batch's mean loss
                    dist.all_reduce(mean_loss)
                    mean_loss /= world
                losses.append((step, float(mean_loss)))
                if rank == 0:
                    print(f"step {step:5d}  loss {losses[-1][1]:.6f}", flush=True)
        timed = np.array(times[args.warmup:] or times) * 1e3
        if rank == 0:
            q1, med, q3 = np.percentile(timed, [25, 50, 75])
            print(f"step time: median {med:.2f} ms (IQR {q1:.2f}-{q3:.2f}) over {timed.size} "
                  f"steps", flush=True)
            if args.save:  # atomic: an interrupted save leaves the old file or none
                result = {"state_dict": net.state_dict(), "losses": losses, "times": times,
                          "world": world, "config": config}
                atomic_write(args.save, lambda tmp: save_to(result, tmp))
        if distributed:
            # No rank leaves while rank 0 is still saving: a rank that exits early closes its
            # connections, and the launcher stops the others when one ends.
            dist.barrier()
    finally:
        if distributed:
            # Tear the process group down while the interpreter is fully alive.
            # destroy_process_group only drops torch.distributed's own references; DDP's
            # reducer (inside the wrapped model) keeps the gloo group and its worker threads
            # until it is garbage-collected. Left to interpreter shutdown, those threads can be
            # destroyed after Python is half torn down, and a rank aborts ("terminate called
            # without an active exception", SIGABRT) after a run that succeeded. So the
            # holders are dropped and collected first, then the group is destroyed. The
            # all-reduced tensors (mean_loss) stay alive until then: a gloo worker that drops
            # the last reference to a tensor with a Python object must take the GIL.
            model = net = opt = None
            gc.collect()
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
