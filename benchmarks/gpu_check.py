"""The cupy-vs-CPU table of the GPU check (``benchmarks/gpu_check.sh`` runs it).

    python -m benchmarks.gpu_check --from-bench DIR   # table from benchmarks.bench's output
    python -m benchmarks.gpu_check --time DIR          # own timing of a full training step
    python -m benchmarks.gpu_check --cells DIR         # every cell and the default model
    python -m benchmarks.gpu_check --cell-steps DIR    # every cell's train step, S M L XL
    python -m benchmarks.gpu_check --torch-cuda        # the torch bridge on CUDA tensors

``--cell-steps`` is the table of the GPU check: a full training step (the layer, MSE, the hand
backward, Adam) of every cell, float32, at S, M, L and XL, on cupy (CUDA events) and on the
CPU backend (numba, else numpy), medians and the ratio. Compile time is left out (one warm-up
call each); a time budget (``--budget``, seconds) bounds the whole table: what does not fit is
printed as "skipped (budget)", never silently dropped.

``--torch-cuda`` runs the torch bridge on CUDA tensors: ``torch.autograd.gradcheck`` of the
MD-LSTM module in float64 on the GPU (the engine on cupy, tensors crossing by DLPack), and the
same forward and backward inside a side stream (``torch.cuda.stream``), which must equal the
default stream's: the bridge must run on torch's current stream.

``--cells`` covers every cell (Graves, peepholes, layer norm fixed and seed, stable, LeakyLP),
the default ``MDLSTM`` and the default ``MD_LSTM`` model: which sweep ran on cupy (fused or
reference), the worst relative error of the output and every gradient against numpy
(float64, with sizes and an initial state), and forward + backward times at M, float32.

``--from-bench`` reads the CSV/JSON rows that ``python -m benchmarks.bench`` wrote to DIR and
pivots them: one row per (configuration, measurement), the cupy and CPU medians, and their ratio.
It only assumes rows that name a backend, a configuration and a median; columns it does not
recognise are ignored.

``--time`` is the self-contained fallback (used when the benchmark suite is missing or fails):
a full training step of MD_LSTM (forward, head, MSE, backward, Adam) at S, M, L and XL, float32,
on cupy (timed with CUDA events around each step, after warm-up) and on the CPU backend (numba,
else numpy; ``time.perf_counter``). Configurations as in the benchmark suite:

    S  8×8 batch 16 hidden 16     M  32×32 batch 16 hidden 16
    L  128×128 batch 8 hidden 32  XL 256×256 batch 32 hidden 64   (1 input channel)
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

CONFIGS = {"S": (8, 16, 16), "M": (32, 16, 16), "L": (128, 8, 32), "XL": (256, 32, 64)}
REPS = {"S": 20, "M": 10, "L": 5, "XL": 3}


# --------------------------------------------------------------------------- from the suite
def _rows(folder: Path):
    rows = []
    for path in sorted(folder.rglob("*")):
        try:
            if path.suffix == ".json":
                data = json.loads(path.read_text())
                if isinstance(data, dict):
                    data = next((v for v in data.values() if isinstance(v, list)), [data])
                rows += [r for r in data if isinstance(r, dict)]
            elif path.suffix == ".csv":
                with path.open() as f:
                    rows += list(csv.DictReader(f))
        except (ValueError, OSError) as e:
            print(f"gpu_check: skipping {path}: {e}", file=sys.stderr)
    return rows


def _key(row, *candidates):
    for c in candidates:
        for k in row:
            if k.lower() == c:
                return k
    return None


def table_from_bench(folder: Path) -> str:
    rows = _rows(folder)
    if not rows:
        raise ValueError(f"--from-bench: no CSV/JSON rows under {folder}")
    r0 = rows[0]
    kb = _key(r0, "backend")
    kc = _key(r0, "config", "configuration", "name", "case")
    km = _key(r0, "measure", "measurement", "mode", "phase", "what", "kind", "op")
    kt = next((k for k in r0 if "median" in k.lower()), None)
    if not (kb and kc and kt):
        raise ValueError(f"--from-bench: expected backend/config/median columns, got {list(r0)}")
    med = {}
    for r in rows:
        try:
            med[(str(r[kc]), str(r[km]) if km else "", str(r[kb]).lower())] = float(r[kt])
        except (TypeError, ValueError, KeyError):
            continue
    cases = sorted({(c, m) for c, m, _ in med}, key=lambda cm: (list(CONFIGS).index(cm[0])
                                                                 if cm[0] in CONFIGS else 99, cm))
    cpu = "numba" if any(b == "numba" for *_, b in med) else "numpy"
    lines = [f"{'config':<8} {'measurement':<22} {'cupy':>12} {cpu:>12} {'cpu/cupy':>9}",
             f"{'':<8} {'':<22} {'(' + kt + ')':>12}"]
    for c, m in cases:
        g, h = med.get((c, m, "cupy")), med.get((c, m, cpu))
        ratio = f"{h / g:9.1f}" if g and h else f"{'-':>9}"
        lines.append(f"{c:<8} {m:<22} {_fmt(g):>12} {_fmt(h):>12} {ratio}")
    return "\n".join(lines)


def _fmt(v):
    return "-" if v is None else f"{v:.4g}"


# --------------------------------------------------------------------------- own timing
def _step_fn(backend, side, batch, hidden):
    from mdlstm_np.losses import mse
    from mdlstm_np.demo.models import build_model
    from mdlstm_np.optim import Adam

    model = build_model("MD_LSTM", hidden=hidden, backend=backend, dtype="float32")  # the
    # default model: layer-normalised cell (fused on cupy)
    be = model.be
    rng = np.random.default_rng(0)
    params = model.init_params(rng)
    x = be.asarray(rng.random((batch, side, side, 1)), dtype="float32")
    t = be.asarray((rng.random((batch, side, side, 1)) > 0.5).astype(np.float32), "float32")
    state = {"opt": None, "note": ""}
    try:
        state["opt"] = Adam(params)
    except Exception as e:  # reported in the table, the step is then timed without Adam
        state["note"] = f"no Adam ({type(e).__name__})"

    def step():
        y, cache = model.forward(params, x)
        loss, dy = mse(be, y, t)
        _, grads = model.backward(dy, cache)
        if state["opt"] is not None:
            state["opt"].step(params, grads)
        return loss

    return be, step, state


def time_backend(backend, name, reps):
    side, batch, hidden = CONFIGS[name]
    be, step, state = _step_fn(backend, side, batch, hidden)
    t0 = time.perf_counter()
    step()
    be.synchronize()
    first = time.perf_counter() - t0  # includes JIT/kernel compilation
    times = []
    if be.name == "cupy":
        import cupy

        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        for _ in range(reps):
            start.record()
            step()
            stop.record()
            stop.synchronize()
            times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    else:
        for _ in range(reps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    return {"config": name, "backend": be.name, "measure": "train_step",
            "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "first_call_s": first, "reps": reps, "note": state["note"]}


def own_timing(out: Path, configs):
    from mdlstm_np.backends import get_backend, numba_available

    cpu = "numba" if numba_available() else "numpy"
    rows = []
    for name in configs:
        for backend in ("cupy", cpu):
            reps = REPS[name] if backend == "cupy" else max(2, REPS[name] // 2)
            r = time_backend(get_backend(backend), name, reps)
            print(f"  {name:<3} {backend:<6} median {r['median_s'] * 1e3:10.2f} ms "
                  f"(first call {r['first_call_s']:.2f} s) {r['note']}", flush=True)
            rows.append(r)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_step.json").write_text(json.dumps(rows, indent=1))
    return table_from_bench(out)


# --------------------------------------------------------------------------- every cell
CELLS = {"graves": dict(cell="graves"), "peepholes": dict(cell="graves", peepholes=True),
         "ln_fixed": dict(ln=True), "ln_seed": dict(ln="seed"), "stable": dict(cell="stable"),
         "leakylp": dict(cell="leakylp"), "default": dict()}


def _cell_run(backend, kwargs, dtype, *, B=3, S=(7, 6), H=4, C=2, seed=0):
    """Forward + backward of one layer: host {name: array}, the sweep's name."""
    from mdlstm_np import MDLSTM

    layer = MDLSTM(C, H, ndim=len(S), backend=backend, dtype=dtype, **kwargs)
    be = layer.be
    rng = np.random.default_rng(seed)
    params = layer.init_params(rng)
    for key in layer.cell.param_shapes(len(S), H):  # move own parameters off 1s and 0s
        params[key] = be.asarray(be.to_numpy(params[key]) + 0.3 * rng.standard_normal(
            params[key].shape), dtype=dtype)
    x = be.asarray(rng.standard_normal((B, *S, C)), dtype=dtype)
    kw = dict(h0=be.asarray(rng.standard_normal((B, H)), dtype=dtype),
              c0=be.asarray(rng.standard_normal((B, H)), dtype=dtype),
              sizes=np.array([S] + [[max(1, s - 2) for s in S]] * (B - 1)))
    out, cache = layer.forward(params, x, **kw)
    dout = be.asarray(rng.standard_normal(tuple(out.shape)), dtype=dtype)
    dx, grads, state = layer.backward(dout, cache, return_state=True)
    res = {"out": out, "dx": dx, "dh0": state[0], "dc0": state[1],
           **{f"d{k}": v for k, v in grads.items()}}
    return {k: be.to_numpy(v) for k, v in res.items()}, cache.sweep.name


def _time_once(be, step) -> float:
    """Seconds of one call of ``step``: CUDA events around it on cupy (device time), the wall
    clock up to ``be.synchronize()`` elsewhere."""
    if be.name == "cupy":
        import cupy

        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        step()
        stop.record()
        stop.synchronize()
        return cupy.cuda.get_elapsed_time(start, stop) / 1e3
    t0 = time.perf_counter()
    step()
    be.synchronize()
    return time.perf_counter() - t0


def _time_layer(backend, kwargs, reps=5, side=32, batch=16, hidden=16):
    """Median seconds of forward + backward at M (float32), after one warm-up call."""
    from mdlstm_np import MDLSTM

    layer = MDLSTM(1, hidden, ndim=2, backend=backend, dtype="float32", **kwargs)
    be = layer.be
    params = layer.init_params(np.random.default_rng(0))
    x = be.asarray(np.random.default_rng(1).random((batch, side, side, 1)), dtype="float32")

    def step():
        out, cache = layer.forward(params, x)
        layer.backward(out, cache)

    step()
    be.synchronize()
    times = []
    for _ in range(reps):
        times.append(_time_once(be, step))
    return statistics.median(times)


def cells_table(out: Path) -> str:
    from mdlstm_np.backends import get_backend, numba_available

    cpu = "numba" if numba_available() else "numpy"
    gpu = get_backend("cupy")
    rows = []
    lines = [f"{'cell':<10} {'cupy sweep':<16} {'max rel err':>11} {'cupy ms':>9} "
             f"{cpu + ' ms':>9} {'cpu/cupy':>8}   (error: float64 vs numpy; times: M, "
             f"float32, forward + backward)"]
    for name, kwargs in CELLS.items():
        ref, _ = _cell_run(get_backend("numpy"), kwargs, "float64")
        got, sweep = _cell_run(gpu, kwargs, "float64")
        err = max(float(np.max(np.abs(got[k] - ref[k]), initial=0.0)
                        / max(np.max(np.abs(ref[k]), initial=0.0), 1e-30)) for k in ref)
        t_gpu = _time_layer(gpu, kwargs)
        t_cpu = _time_layer(get_backend(cpu), kwargs, reps=3)
        rows.append({"cell": name, "sweep": sweep, "max_rel_err": err, "cupy_s": t_gpu,
                     "cpu_s": t_cpu, "cpu": cpu})
        lines.append(f"{name:<10} {sweep:<16} {err:11.2e} {t_gpu * 1e3:9.2f} "
                     f"{t_cpu * 1e3:9.2f} {t_cpu / t_gpu:8.1f}")
        print(lines[-1], flush=True)
    model = {b: time_backend(get_backend(b), "M", 5 if b == "cupy" else 3) for b in ("cupy", cpu)}
    lines.append(f"MD_LSTM (the default model), full training step at M: cupy "
                 f"{model['cupy']['median_s'] * 1e3:.2f} ms, {cpu} "
                 f"{model[cpu]['median_s'] * 1e3:.2f} ms")
    out.mkdir(parents=True, exist_ok=True)
    (out / "cells.json").write_text(json.dumps({"cells": rows, "model": list(model.values())},
                                               indent=1))
    return "\n".join(lines)


# --------------------------------------------------------------------------- every cell's step
def _layer_step_fn(backend, kwargs, side, batch, hidden):
    """One training step of an MD-LSTM layer: forward, MSE, the hand backward, Adam."""
    from mdlstm_np import MDLSTM
    from mdlstm_np.losses import mse
    from mdlstm_np.optim import Adam

    layer = MDLSTM(1, hidden, ndim=2, backend=backend, dtype="float32", **kwargs)
    be = layer.be
    rng = np.random.default_rng(0)
    params = layer.init_params(rng)
    x = be.asarray(rng.random((batch, side, side, 1)), dtype="float32")
    t = be.asarray(rng.random((batch, side, side, hidden)) * 0.1, dtype="float32")
    opt = Adam(params)

    def step():
        out, cache = layer.forward(params, x)
        loss, dy = mse(be, out, t)
        _, grads = layer.backward(dy, cache)
        opt.step(params, grads)
        return loss

    return be, step


def _median_step(be, step, reps, deadline):
    """Median seconds of ``step`` after one warm-up call; fewer repetitions near the deadline
    (at least one). The warm-up's own time is kept apart (it includes compilation)."""
    t0 = time.perf_counter()
    step()
    be.synchronize()
    first = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        if times and time.monotonic() + statistics.median(times) > deadline:
            break
        times.append(_time_once(be, step))
    return statistics.median(times), len(times), first


def format_cell_steps(rows, gpu="cupy", cpu="numba") -> str:
    """The table: one line per (configuration, cell), both medians in ms and their ratio."""
    lines = [f"{'config':<22} {'cell':<10} {gpu + ' ms':>10} {cpu + ' ms':>10} "
             f"{cpu + '/' + gpu:>12}   (float32 train step, medians; compile time excluded)"]
    for r in rows:
        g, c = r.get(gpu), r.get(cpu)
        ratio = f"{c / g:12.1f}" if g and c else f"{'-':>12}"
        cols = [f"{v * 1e3:10.3f}" if v else f"{r.get(b + '_note', '-'):>10}"
                for v, b in ((g, gpu), (c, cpu))]
        lines.append(f"{r['config']:<22} {r['cell']:<10} {cols[0]} {cols[1]} {ratio}")
    return "\n".join(lines)


def cell_steps_table(out: Path, configs=("S", "M", "L", "XL"), budget=240.0, gpu="cupy",
                     cpu=None, sizes=None) -> str:
    """Every cell's training step on ``gpu`` and ``cpu`` at each configuration (``sizes``:
    name -> (side, batch, hidden), default ``CONFIGS``), within ``budget`` seconds."""
    from mdlstm_np.backends import get_backend, numba_available

    sizes = sizes or CONFIGS
    cpu = cpu or ("numba" if numba_available() else "numpy")
    deadline = time.monotonic() + budget
    rows = []
    for name in configs:
        side, batch, hidden = sizes[name]
        for cell, kwargs in CELLS.items():
            row = {"config": f"{name} {side}x{side} B{batch} H{hidden}", "cell": cell}
            for backend in dict.fromkeys((gpu, cpu)):
                if time.monotonic() > deadline - 5:
                    row[f"{backend}_note"] = "skipped"
                    continue
                try:
                    be, step = _layer_step_fn(get_backend(backend), kwargs, side, batch, hidden)
                    reps = REPS.get(name, 3) if backend == gpu else max(1, REPS.get(name, 3) // 4)
                    row[backend], row[f"{backend}_reps"], row[f"{backend}_first_s"] = \
                        _median_step(be, step, reps, deadline)
                except Exception as e:  # noqa: BLE001 - reported in the table, the rest goes on
                    row[f"{backend}_note"] = type(e).__name__
            rows.append(row)
            print(format_cell_steps([row], gpu, cpu).splitlines()[1], flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cell_steps.json").write_text(json.dumps(rows, indent=1))
    return format_cell_steps(rows, gpu, cpu)


# --------------------------------------------------------------------------- torch on CUDA
def torch_bridge_check(device="cuda") -> str:
    """gradcheck of the torch module on ``device`` tensors (float64), and the same pass on a
    side stream equal to the default stream's (CUDA only). Returns a one-line summary; raises
    AssertionError on a mismatch."""
    import torch

    from mdlstm_np.torch import MDLSTM as TorchMDLSTM

    torch.manual_seed(0)
    backend = "cupy" if device == "cuda" else "numpy"
    m = TorchMDLSTM(2, 3, 2, backend=backend, dtype="float64").to(device)
    x = torch.rand(2, 3, 4, 2, dtype=torch.float64, device=device, requires_grad=True)
    ok = torch.autograd.gradcheck(lambda t: m(t), (x,), eps=1e-6, atol=1e-6)
    out = m(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    note = f"gradcheck on {device}: {ok}"
    if device == "cuda":
        side = torch.cuda.Stream()
        with torch.cuda.stream(side):
            out2 = m(x)
            (g2,) = torch.autograd.grad(out2.sum(), x)
        side.synchronize()
        assert torch.equal(out, out2) and torch.equal(g, g2), "side stream differs"
        note += "; side stream = default stream"
    return note


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--from-bench", type=Path, help="folder written by benchmarks.bench --out")
    g.add_argument("--time", type=Path, help="time a training step; write DIR/train_step.json")
    g.add_argument("--cells", type=Path, help="every cell and the default model on cupy; "
                                              "write DIR/cells.json")
    g.add_argument("--cell-steps", type=Path, help="every cell's train step on cupy and the "
                                                   "CPU; write DIR/cell_steps.json")
    g.add_argument("--torch-cuda", action="store_true", help="the torch bridge on CUDA tensors")
    p.add_argument("--configs", default="S,M,L,XL", help="with --time, --cell-steps "
                                                          "(default: S,M,L,XL)")
    p.add_argument("--budget", type=float, default=240.0, help="with --cell-steps: seconds")
    a = p.parse_args(argv)
    try:
        if a.from_bench:
            print(table_from_bench(a.from_bench))
        elif a.cells:
            print(cells_table(a.cells))
        elif a.torch_cuda:
            print(torch_bridge_check("cuda"))
        elif a.cell_steps:
            configs = [c.strip().upper() for c in a.configs.split(",")]
            bad = [c for c in configs if c not in CONFIGS]
            if bad:
                raise ValueError(f"--configs: expected names from {list(CONFIGS)}, got {bad}")
            print(cell_steps_table(a.cell_steps, configs, a.budget))
        else:
            configs = [c.strip().upper() for c in a.configs.split(",")]
            bad = [c for c in configs if c not in CONFIGS]
            if bad:
                raise ValueError(f"--configs: expected names from {list(CONFIGS)}, got {bad}")
            print(own_timing(a.time, configs))
    except ValueError as e:
        print(f"gpu_check: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
