"""Benchmark suite: MD-LSTM speed per backend, against this machine's own matmul peak.

    python -m benchmarks.bench                       # S, M, L and the sweep, numpy + numba
    python -m benchmarks.bench --quick               # a smoke run (S and a short sweep)
    python -m benchmarks.bench --configs XL --backends cupy
    OPENBLAS_NUM_THREADS=1 python -m benchmarks.bench   # one core: for a loaded machine

Prints the GEMM peak, the numba JIT cost (cold and cached, in subprocesses), the table, the
per-cell cost along the sweep and issue 3's four targets with PASS/FAIL.

What is timed (median and IQR over --repeats runs after one warm-up run; the warm-up's excess
over the median is reported as compile_s, the JIT compile / first-call cost):
  fwd    MDLSTM.forward
  fwdbwd MDLSTM.forward + backward
  train  the MD_LSTM model (the MDLSTM layer + sigmoid Dense head) forward, MSE loss,
         backward, Adam step
  (reference: the cell-by-cell forward of reference.py, small grids only)
for every cell (--cells): plain (Graves' cell, ln=False), ln_fixed (ln=True), ln_seed
(ln="seed"), stable, leakylp, peephole, and MD_LSTM = ``build_model("MD_LSTM")`` as the demo
builds it (its default cell). S and M time every cell (fwdbwd, train; fwd for plain too); L and
the sweep time the plain cell. "x numpy" = median / the numpy backend's median for the same
config, cell and kind. The warm-up run (which triggers numba's JIT) is never a timed run; the
JIT itself is measured in fresh processes (``jit_compile_seconds``), per cell.

FLOP count (multiply-add = 2 FLOPs; elementwise gate math not counted), per cell and sample,
with C channels, n grid axes, hidden H and G packed gates (the cell's layout: (n + 3)·H for
Graves' cells and layer norm, (n + 4)·H for stable and leakylp):
  fwd    2·G·(C + n·H)           input projection x W and recurrent Σ_d h(p⁻_d) U_d
  fwdbwd 2·G·(3·C + 3·n·H)       + dz Uᵀ (in the sweep), dU, dW, dx
  train  fwdbwd + 6·H            + the head's forward (2H) and backward (4H)
floor = FLOPs / peak, where peak is a large GEMM of the same dtype measured in the same run;
"x_floor" = median time / floor (1.0 would be matmul peak).

Memory: peak bytes allocated during one fwd+bwd (tracemalloc sees numpy's allocations). The
forward cache of the numba backend holds, per cell and sample, x (C), h and c (2H), the gate
activations (G) and tanh c (H) and the mask (1): C + (n + 6)·H + 1 numbers; the numpy
reference's per-wavefront step caches hold C + (2n + 6)·H (σ gates, g, the n gathered c(p⁻_d),
tanh c, h, c).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc

import numpy as np

from mdlstm_np.training.atomic import atomic_write
from mdlstm_np.backends import get_backend
from mdlstm_np.mdlstm import MDLSTM
from mdlstm_np.testing.reference import mdlstm_reference_forward

CONFIGS = {  # name: (side, batch, hidden, channels)
    "S": (8, 16, 16, 1),
    "M": (32, 16, 16, 1),
    "L": (128, 8, 32, 1),
    "XL": (256, 32, 64, 1),
}
CELLS = {  # name: MDLSTM keyword arguments (None: build_model("MD_LSTM") as the demo builds it)
    "plain": dict(cell="graves"),
    "ln_fixed": dict(cell="graves", ln=True),
    "ln_seed": dict(cell="graves", ln="seed"),
    "stable": dict(cell="stable"),
    "leakylp": dict(cell="leakylp"),
    "peephole": dict(cell="graves", peepholes=True),
    "MD_LSTM": None,
}
CELL_CONFIGS = ("S", "M")  # the configs that time every cell; the others time "plain"
SWEEP_SIDES = (8, 16, 32, 64, 128, 256)
SWEEP_BATCH, SWEEP_HIDDEN = 8, 16
SWEEP_NUMPY_MAX = 64  # the numpy backend joins the sweep up to this side (it is the slow one)
REFERENCE_MAX_CELLS = 32 * 32
FLAT_FROM = 32  # per-cell flatness is judged on sweep sides >= this


# --------------------------------------------------------------------------- timing
def _sync(be):
    be.synchronize()


def time_call(fn, be, repeats: int):
    """(median_s, iqr_s, first_s, min_s): one warm-up call, then ``repeats`` timed calls."""
    if be is not None and be.name == "cupy":  # CUDA events, not the host clock
        from cupyx.profiler import benchmark

        t0 = time.perf_counter()
        fn()
        _sync(be)
        first = time.perf_counter() - t0
        res = benchmark(fn, n_repeat=repeats, n_warmup=1)
        ts = np.asarray(res.gpu_times).ravel()
    else:
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        ts = np.asarray(ts)
    q1, med, q3 = np.percentile(ts, [25, 50, 75])
    return float(med), float(q3 - q1), float(first), float(np.min(ts))


def matmul_peak(dtype: str, size: int, repeats: int = 5) -> float:
    """GFLOP/s of a (size × size)·(size × size) GEMM in ``dtype`` (best of ``repeats``)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    a @ b
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size ** 3 / best / 1e9


def jit_compile_seconds(dtype: str, cells=("plain",)):
    """{cell: (cold, cached)}: seconds to build and run a tiny numba forward+backward of each
    cell in a fresh process, first with an empty numba cache (the compile), then again from
    the cache it left (the load). The first cell's time includes the imports and what the
    cells share (tanh, the driver's helpers). Subprocesses, so this run's own warm kernels do
    not hide the cost. None when numba fails."""
    cells = [c for c in cells if CELLS[c] is not None]  # MD_LSTM's cell is one of the others
    code = textwrap.dedent(f"""
        import time
        t0 = time.perf_counter()
        import numpy as np
        from mdlstm_np.mdlstm import MDLSTM
        for name, kw in {[(c, CELLS[c]) for c in cells]!r}:
            layer = MDLSTM(1, 2, ndim=2, backend="numba", dtype="{dtype}", **kw)
            p = layer.init_params(np.random.default_rng(0))
            out, cache = layer.forward(p, np.ones((2, 3, 3, 1), dtype="{dtype}"))
            layer.backward(out, cache)
            print("SECONDS", name, time.perf_counter() - t0)
            t0 = time.perf_counter()
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = []
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir,
                   PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        for _ in range(2):
            res = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                                 capture_output=True, text=True, timeout=1200)
            lines = [ln.split() for ln in res.stdout.splitlines() if ln.startswith("SECONDS")]
            if res.returncode != 0 or len(lines) != len(cells):
                return None
            out.append({name: float(t) for _, name, t in lines})
    return {c: (out[0][c], out[1][c]) for c in cells}


def flops_per_cell(kind: str, C: int, H: int, n: int = 2, G=None) -> float:
    G = (n + 3) * H if G is None else G
    if kind in ("fwd", "reference"):
        return 2.0 * G * (C + n * H)
    if kind == "fwdbwd":
        return 2.0 * G * (3 * C + 3 * n * H)
    return 2.0 * G * (3 * C + 3 * n * H) + 6.0 * H


# --------------------------------------------------------------------------- workloads
PLAIN_LARGE_SIDE = 64          # from this side up the plain cell is timed with ...
PLAIN_LARGE_FORGET_BIAS = -2.0  # ... this forget bias (make_model says why)


def make_model(be, cell, C, H, dtype, side=0):
    """The MD_LSTM model with cell ``cell`` (a CELLS name): MDLSTM + sigmoid Dense head.

    Graves' plain cell sums its n predecessors' states, f_1 c_1 + f_2 c_2, which grows like a
    path count along the diagonal: with forget bias 1 (the layer's default) its float32 state
    overflows from about 128×128 (standard-normal inputs), with forget bias 0 from about
    256×256, and the layer refuses it (NonFiniteError). On grids of side ≥ 64 the plain cell is
    therefore timed with forget bias −2 (Σ_d f_d ≈ 0.24: the state stays bounded). Its kernels
    have no data-dependent branches, so the time is the same as for any finite state."""
    from mdlstm_np.training.model import Model
    from mdlstm_np.demo.models import build_model
    from mdlstm_np.dense import Dense

    if CELLS[cell] is None:  # as the demo builds it
        return build_model("MD_LSTM", in_channels=C, hidden=H, backend=be, dtype=dtype)
    kw = dict(CELLS[cell])
    if cell == "plain" and side >= PLAIN_LARGE_SIDE:
        kw["forget_bias"] = PLAIN_LARGE_FORGET_BIAS
    rnn = MDLSTM(C, H, ndim=2, backend=be, dtype=dtype, **kw)
    return Model(rnn, Dense(H, 1, "sigmoid", backend=be, dtype=dtype), name=f"MD_LSTM/{cell}")


def workloads(be, side, B, H, C, dtype, kinds, cell="plain"):
    """({kind: zero-argument callable}, G) for one backend, size and cell."""
    rng = np.random.default_rng(0)
    layer = make_model(be, cell, C, H, dtype, side).rnn
    p = layer.init_params(rng)
    x_host = rng.standard_normal((B, side, side, C)).astype(dtype)
    x = be.asarray(x_host, dtype=dtype)
    dout = be.asarray(rng.standard_normal((B, side, side, H)).astype(dtype), dtype=dtype)
    out = {}
    if "fwd" in kinds:
        out["fwd"] = lambda: layer.forward(p, x)
    if "fwdbwd" in kinds:
        def fwdbwd():
            _, cache = layer.forward(p, x)
            return layer.backward(dout, cache)
        out["fwdbwd"] = fwdbwd
    if "train" in kinds:
        out["train"] = train_step(be, side, B, H, C, dtype, x, rng, cell)
    if "reference" in kinds:
        host = {k: be.to_numpy(v) for k, v in p.items()}
        out["reference"] = lambda: mdlstm_reference_forward(x_host, host["W"], host["U"],
                                                            host["b"])
    return out, layer.layout.size


def train_step(be, side, B, H, C, dtype, x, rng, cell="plain"):
    """One full training step of the MD_LSTM model with ``cell``: forward, MSE, backward, Adam."""
    from mdlstm_np.losses import mse
    from mdlstm_np.optim import Adam

    model = make_model(be, cell, C, H, dtype, side)
    params = model.init_params(rng)
    opt = Adam(params, lr=1e-3)
    t = be.asarray((rng.random((B, side, side, 1)) < 0.5).astype(dtype), dtype=dtype)

    def step():
        y, cache = model.forward(params, x)
        loss, dy = mse(be, y, t)
        _, grads = model.backward(dy, cache)
        opt.step(params, grads)
        return loss
    return step


def peak_memory(fn) -> int:
    """Peak bytes allocated (tracemalloc) while running ``fn`` once (host backends only)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return int(peak)


# --------------------------------------------------------------------------- driver
def plan_runs(configs, quick, cells=("plain",)):
    """[(config name, side, B, H, C, kinds, cell)] in run order."""
    runs = []
    for name in configs:
        if name == "sweep":
            sides = (8, 16, 32) if quick else SWEEP_SIDES
            for s in sides:
                runs.append((f"sweep{s}", s, SWEEP_BATCH, SWEEP_HIDDEN, 1, ("fwd", "fwdbwd"),
                             "plain"))
        else:
            side, B, H, C = CONFIGS[name]
            for cell in (cells if name in CELL_CONFIGS else ("plain",)):
                kinds = ("fwd", "fwdbwd", "train") if cell == "plain" else ("fwdbwd", "train")
                runs.append((name, side, B, H, C, kinds, cell))
            if name == "L":  # issue 9: the stable cell (the default) against the FLOP floor
                runs.append((name, side, B, H, C, ("fwdbwd",), "stable"))
    return runs


def get_backends(names, numba_threads=1):
    out = []
    for name in names:
        try:
            if name == "numba":
                get_backend("numba")  # raises when numba is missing
                from mdlstm_np.backends.numba import NumbaBackend

                out.append(NumbaBackend(threads=numba_threads))
                continue
            out.append(get_backend(name))
        except Exception as e:  # noqa: BLE001 - a missing optional backend is reported, not fatal
            print(f"# backend {name}: skipped ({type(e).__name__}: {e})", file=sys.stderr)
    return out


def run(args):
    configs = args.configs.split(",")
    for c in configs:
        if c not in CONFIGS and c != "sweep":
            raise ValueError(f"--configs: expected names from {', '.join([*CONFIGS, 'sweep'])}, "
                             f"got {c!r}")
    backends = get_backends(args.backends.split(","), args.numba_threads)
    peak = matmul_peak(args.dtype, 1024 if args.quick else 2048)
    print(f"# matmul peak ({args.dtype} GEMM, this run): {peak:.1f} GFLOP/s; "
          f"{os.cpu_count()} CPUs; numpy {np.__version__}; OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '')}; OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', '')}")
    for be in backends:
        if be.name == "numba":
            print(f"# numba backend: {be.threads} sweep thread(s) (batch chunks, for sweeps of "
                  f">= {be.min_work} gate values N·B·G); SciPy's OpenBLAS on 1 thread")
    rows = []
    numpy_ms = {}  # (config, cell, kind) -> the numpy backend's median
    for name, side, B, H, C, kinds, cell in plan_runs(configs, args.quick, args.cells):
        cells = side * side * B
        for be in backends:
            if name.startswith("sweep") and be.name == "numpy" and side > SWEEP_NUMPY_MAX:
                continue
            ks = list(kinds)
            if be is backends[0] and cells // B <= REFERENCE_MAX_CELLS and cell == "plain":
                ks.append("reference")
            fns, G = workloads(be, side, B, H, C, args.dtype, ks, cell)
            for kind, fn in fns.items():
                bb = None if kind == "reference" else be
                reps = args.repeats
                med, iqr, first, _ = time_call(fn, bb, 1)  # a probe: slow cases get fewer runs
                if med * reps > args.budget:
                    reps = max(3, int(args.budget / max(med, 1e-9)))
                med, iqr, _, fastest = time_call(fn, bb, reps)
                fl = flops_per_cell(kind, C, H, G=G) * cells
                backend = "reference" if kind == "reference" else be.name
                if backend == "numpy":
                    numpy_ms[name, cell, kind] = med
                base = numpy_ms.get((name, cell, kind))
                row = dict(config=name, cell=cell, side=side, batch=B, hidden=H, channels=C,
                           backend=backend, sweep=sweep_name(be, cell),
                           x_numpy=None if base is None else med / base,
                           kind=kind, dtype=args.dtype, repeats=reps, median_s=med, iqr_s=iqr,
                           min_s=fastest,
                           compile_s=max(first - med, 0.0), ns_per_cell=med / cells * 1e9,
                           cells_per_s=cells / med, gflops=fl / med / 1e9,
                           x_floor=med / (fl / (peak * 1e9)), peak_gflops=peak,
                           peak_mem_mb=None)
                if name == "L" and kind == "fwdbwd" and be.name != "cupy":
                    row["peak_mem_mb"] = peak_memory(fn) / 2 ** 20
                rows.append(row)
                print(format_row(row), flush=True)
    return rows, peak


def sweep_name(be, cell) -> str:
    """Which sweep runs ``cell`` on ``be`` (its fast one, or "reference")."""
    from mdlstm_np.cells import make_cell

    kw = CELLS[cell] or dict(cell="graves", ln=True)
    c = make_cell(kw["cell"], peepholes=kw.get("peepholes", False), ln=kw.get("ln", False))
    if CELLS[cell] is None:  # what build_model really built
        c = make_model(be, cell, 1, 2, "float32").rnn.cell
    return be.sweep_for(c).name


HEADER = (f"{'config':<8}{'cell':<10}{'backend':<10}{'kind':<8}{'median ms':>10}{'IQR ms':>8}"
          f"{'min ms':>8}"
          f"{'x numpy':>8}{'compile s':>10}{'ns/cell':>9}{'GFLOP/s':>8}{'x floor':>8}"
          f"{'mem MB':>7}  sweep")


def format_row(r) -> str:
    mem = "" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.0f}"
    xn = "" if r["x_numpy"] is None else f"{r['x_numpy']:.3f}"
    return (f"{r['config']:<8}{r['cell']:<10}{r['backend']:<10}{r['kind']:<8}"
            f"{r['median_s'] * 1e3:>10.3f}{r['iqr_s'] * 1e3:>8.3f}{r['min_s'] * 1e3:>8.3f}{xn:>8}"
            f"{r['compile_s']:>10.2f}{r['ns_per_cell']:>9.1f}{r['gflops']:>8.2f}"
            f"{r['x_floor']:>8.1f}{mem:>7}  {r['sweep']}")


def flatness(rows, kind="fwdbwd", backend="numba"):
    """(max/min of ns per cell over sweep sides >= FLAT_FROM, {side: ns/cell}) or (None, {})."""
    sweep = {r["side"]: r["ns_per_cell"] for r in rows
             if r["config"].startswith("sweep") and r["kind"] == kind
             and r["backend"] == backend and r["cell"] == "plain"}
    flat = [v for k, v in sweep.items() if k >= FLAT_FROM]
    if len(flat) < 2:
        return None, sweep
    return max(flat) / min(flat), sweep


ISSUE9_TARGETS = (  # (config, cell, train-step limit in ms), numba backend
    ("S", "MD_LSTM", 0.8), ("S", "plain", 0.5), ("S", "stable", 0.7),
    ("M", "MD_LSTM", 8.0), ("M", "plain", 6.0))


def targets(rows):
    """Issue 3's four targets and issue 9's train-step targets (numba backend):
    [(name, measured, limit, unit, passed)]."""
    def find(config, kind, backend="numba", cell="plain"):
        for r in rows:
            if (r["config"], r["kind"], r["backend"], r["cell"]) == (config, kind, backend,
                                                                     cell):
                return r
        return None

    out = []
    for config, cell, limit in ISSUE9_TARGETS:
        r = find(config, "train", cell=cell)
        if r:
            ms = r["median_s"] * 1e3
            out.append((f"{config} train step, {cell}", ms, limit, "ms", ms <= limit))
    s, m, big = find("S", "train"), find("M", "train"), find("L", "fwdbwd")
    if s:
        out.append(("S train step", s["median_s"] * 1e3, 1.0, "ms", s["median_s"] * 1e3 <= 1.0))
    if m:
        out.append(("M train step", m["median_s"] * 1e3, 10.0, "ms",
                    m["median_s"] * 1e3 <= 10.0))
    if big:
        out.append(("L fwd+bwd / FLOP floor", big["x_floor"], 4.0, "x", big["x_floor"] <= 4.0))
    big = find("L", "fwdbwd", cell="stable")
    if big:
        out.append(("L fwd+bwd / FLOP floor, stable", big["x_floor"], 5.0, "x",
                    big["x_floor"] <= 5.0))
    ratio, sweep = flatness(rows)
    if ratio is not None:
        out.append((f"ns/cell max/min, sides {FLAT_FROM}..{max(sweep)}", ratio, 2.0, "x",
                    ratio <= 2.0))
    return out


def summary(rows):
    """Lines: the per-cell cost along the sweep, then the targets with PASS/FAIL."""
    lines = []
    for kind in ("fwd", "fwdbwd"):
        ratio, sweep = flatness(rows, kind)
        if sweep:
            cells = "  ".join(f"{k}:{v:.0f}" for k, v in sorted(sweep.items()))
            flat = "" if ratio is None else f"  (max/min for sides >= {FLAT_FROM}: {ratio:.2f})"
            lines.append(f"sweep numba {kind} ns/cell by side  {cells}{flat}")
    for name, value, limit, unit, ok in targets(rows):
        lines.append(f"target {name:<34} {value:8.2f} {unit:<2} (<= {limit:g} {unit})  "
                     f"{'PASS' if ok else 'FAIL'}")
    return lines


def write_atomic(path, text) -> str:
    """Write ``text`` to ``path`` atomically (the package's atomic_write: no temporary file
    left behind, the mode a plain open() gives), creating the folder if needed."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    def writer(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, writer)


def save(rows, peak, args, extra):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    write_atomic(os.path.join(args.out, f"bench-{stamp}.csv"), buf.getvalue())
    meta = dict(peak_gflops=peak, dtype=args.dtype, cpus=os.cpu_count(),
                machine=platform.machine(), processor=platform.processor(),
                python=platform.python_version(), numpy=np.__version__,
                loadavg=os.getloadavg() if hasattr(os, "getloadavg") else None,
                argv=sys.argv[1:], **extra)
    write_atomic(os.path.join(args.out, f"bench-{stamp}.json"),
                 json.dumps(dict(meta=meta, rows=rows), indent=1))
    return stamp


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="numpy,numba,cupy",
                    help="comma list: numpy, numba, cupy (missing ones are skipped)")
    ap.add_argument("--configs", default="S,M,L,sweep", help="comma list of S, M, L, XL, sweep")
    ap.add_argument("--cells", default=",".join(CELLS),
                    help=f"comma list of cells timed at {', '.join(CELL_CONFIGS)}: "
                         f"{', '.join(CELLS)}")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeats", type=int, default=9, help="timed runs per measurement")
    ap.add_argument("--budget", type=float, default=8.0,
                    help="seconds per measurement; slow cases get fewer repeats (min 3)")
    ap.add_argument("--out", default=os.path.join("benchmarks", "results"))
    ap.add_argument("--quick", action="store_true", help="smoke run: S and sweep 8..32, 3 repeats")
    ap.add_argument("--numba-threads", type=int, default=1,
                    help="batch chunks the numba sweep runs side by side (default 1)")
    ap.add_argument("--no-compile", action="store_true",
                    help="skip the cold numba compile measurement (two subprocesses, ~20 s)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        raise ValueError(f"--repeats: expected a positive int, got {args.repeats}")
    if args.numba_threads < 1:
        raise ValueError(f"--numba-threads: expected a positive int, got {args.numba_threads}")
    args.cells = tuple(args.cells.split(","))
    for c in args.cells:
        if c not in CELLS:
            raise ValueError(f"--cells: expected names from {', '.join(CELLS)}, got {c!r}")
    if args.quick:
        args.configs, args.repeats = "S,sweep", min(args.repeats, 3)
    print(f"# loadavg before: {os.getloadavg()}")
    extra = {}
    if "numba" in args.backends.split(",") and not args.no_compile:
        jit = jit_compile_seconds(args.dtype, args.cells)
        if jit is not None:
            extra["jit_s"] = jit
            for cell, (cold, cached) in jit.items():
                print(f"# numba JIT {cell:<9} ({args.dtype}, fresh process, tiny fwd+bwd): "
                      f"{cold:5.1f} s with an empty cache (compile), {cached:4.1f} s from "
                      f"the cache")
            print("#   (the first cell's times include the imports; MD_LSTM's cell is ln_fixed)")
    print(HEADER)
    rows, peak = run(args)
    lines = summary(rows)
    for line in lines:
        print("# " + line)
    print(f"# loadavg after: {os.getloadavg()}")
    if rows:
        extra["summary"] = lines
        stamp = save(rows, peak, args, extra)
        print(f"# wrote {args.out}/bench-{stamp}.csv and .json")


if __name__ == "__main__":
    main()
