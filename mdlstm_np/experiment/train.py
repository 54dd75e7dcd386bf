"""The seed's training loop: fresh random-diagonal batch each step, MSE, Adam.

Per step:  x, t, pos ← random_diagonal(...)   (host)
           y ← model(x);  L, dy ← mse(y, t);  dθ ← backward(dy)
           guard: L and every dθ finite?  else stop (see :class:`TrainingDiverged`)
           θ ← Adam(θ, dθ)

Logged rows have the seed's columns: ``steps, overall_loss, time, relevant_loss``; ``time`` is
the seconds one step took (host→device copy, forward, backward, update; not data generation),
like the seed's ``time() - grad_step_start_time``.

Randomness: ``seed`` feeds one ``numpy.random.SeedSequence`` split into two streams, one for
the initial parameters and one for the data, so every model trained with the same seed sees
the same batches.

Host syncs: a loss is brought to the host (``float``) only on logged steps. The finiteness guard
costs one boolean per step: it reduces ``L·0 + Σ_k Σ dθ_k·0``, which is 0 when everything is
finite and NaN as soon as any element is NaN or ±inf (inf·0 = NaN), without the false alarms a
sum of squares would give by overflowing. Only when it fires are the arrays searched one by one
to name the culprit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
from tqdm.auto import tqdm

from ..losses import mse, relevant_loss
from ..optim import Adam
from ..validate import check_positive_int
from .atomic import atomic_write
from .tasks import random_diagonal

COLUMNS = ("steps", "overall_loss", "time", "relevant_loss")


@dataclass
class TrainResult:
    """What :func:`train` returns.

    rows           : list of dicts with the keys ``COLUMNS`` (one per logged step)
    params         : final parameters (backend arrays)
    initial_params : the parameters before the first step, as host numpy copies
    model_name     : the model's name
    """

    rows: List[dict]
    params: Dict[str, object]
    initial_params: Dict[str, np.ndarray]
    model_name: str
    tsv_path: Optional[str] = None

    def column(self, name: str) -> np.ndarray:
        """One logged column as a float array, e.g. ``result.column("relevant_loss")``."""
        if name not in COLUMNS:
            raise ValueError(f"name: expected one of {', '.join(COLUMNS)}, got {name!r}")
        return np.array([row[name] for row in self.rows], dtype=np.float64)


class TrainingDiverged(RuntimeError):
    """Raised when the loss or a gradient is not finite; the bad update is *not* applied.

    Attributes: ``step`` (0-based), ``name`` (the loss or the offending parameter's key),
    ``params`` (the last good parameters: those the bad step started from), ``rows`` (the
    logged rows up to the previous step), ``initial_params``.
    """

    def __init__(self, message, *, step, name, params, rows, initial_params):
        super().__init__(message)
        self.step, self.name, self.params = step, name, params
        self.rows, self.initial_params = rows, initial_params


def write_tsv(rows: List[dict], path: str) -> str:
    """Write ``rows`` (dicts with ``COLUMNS``) tab-separated with a header, atomically.

    The file is written to a temporary file in the same folder and moved into place with
    ``os.replace``, so a reader never sees a half-written log.
    """
    def writer(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\t".join(COLUMNS) + "\n")
            for row in rows:
                f.write(f"{row['steps']:04d}\t{row['overall_loss']!r}\t{row['time']!r}\t"
                        f"{row['relevant_loss']!r}\n")

    return atomic_write(path, writer, suffix=".tsv")


def read_tsv(path: str) -> List[dict]:
    """Read a log written by :func:`write_tsv` back into rows."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if tuple(header) != COLUMNS:
            raise ValueError(f"path: expected a header {COLUMNS}, got {tuple(header)}")
        rows = []
        for line in f:
            s, *vals = line.rstrip("\n").split("\t")
            rows.append({"steps": int(s), **{k: float(v) for k, v in zip(COLUMNS[1:], vals)}})
    return rows


def predict(model, params: dict, x: np.ndarray) -> np.ndarray:
    """Host x (B, H, W, C) -> host predictions (B, H, W, 1). ``params`` may be host arrays."""
    be = model.be
    device_params = {k: be.asarray(v, model.dtype) for k, v in params.items()}
    y, _ = model.forward(device_params, be.asarray(x, model.dtype))
    return be.to_numpy(y)


def _nonfinite_culprit(be, loss, grads) -> str:
    if not be.all_finite(loss):
        return "loss"
    for k in sorted(grads):
        if not be.all_finite(grads[k]):
            return k
    return "?"


def train(model, *, steps: int = 1000, batch: int = 16, size: int = 8, lr: float = 0.01,
          seed: int = 0, log_every: int = 1, progress: bool = True,
          out_tsv: Optional[str] = None) -> TrainResult:
    """Train ``model`` on the random-diagonal task with Adam(lr) — the seed's experiment.

    model     : a :class:`mdlstm_np.models.Model` (input (B, size, size, 1))
    steps     : number of Adam steps (the seed: 1000)
    batch     : samples per step (16); size: grid side (8, at least 3)
    lr        : Adam's learning rate (0.01)
    seed      : integer seed for initial parameters and data
    log_every : log every n-th step (and always the last); the seed logs every step
    progress  : show a tqdm progress bar
    out_tsv   : if given, the log is written there (atomically) at the end, or on divergence

    Returns a :class:`TrainResult`. Raises :class:`TrainingDiverged` if the loss or a gradient
    is NaN/inf; it carries the last good parameters and the rows so far.
    """
    steps = check_positive_int(steps, "steps")
    batch = check_positive_int(batch, "batch")
    size = check_positive_int(size, "size", minimum=3)
    log_every = check_positive_int(log_every, "log_every")
    seed = check_positive_int(seed, "seed", minimum=0)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0 \
            or not np.isfinite(lr):
        raise ValueError(f"lr: expected a finite number > 0, got {lr!r}")
    be, xp = model.be, model.be.xp

    init_ss, data_ss = np.random.SeedSequence(seed).spawn(2)
    params = model.init_params(np.random.default_rng(init_ss))
    initial = {k: be.to_numpy(v).copy() for k, v in params.items()}
    data_rng = np.random.default_rng(data_ss)
    opt = Adam(params, lr=float(lr))
    rows: List[dict] = []

    bar = tqdm(range(steps), desc=getattr(model, "name", "train"), disable=not progress,
               unit="step", dynamic_ncols=True)
    try:
        for step in bar:
            x, t, pos = random_diagonal(batch, size, data_rng)
            t0 = time.perf_counter()
            xb, tb = be.asarray(x, model.dtype), be.asarray(t, model.dtype)
            y, cache = model.forward(params, xb)                  # (B, size, size, 1)
            loss, dy = mse(be, y, tb)
            _, grads = model.backward(dy, cache)
            probe = loss * 0
            for g in grads.values():
                probe = probe + xp.sum(g * 0)                     # NaN iff something is not finite
            if not be.all_finite(probe):
                name = _nonfinite_culprit(be, loss, grads)
                what = "the loss" if name == "loss" else f"the gradient of {name!r}"
                if out_tsv is not None:
                    write_tsv(rows, out_tsv)
                raise TrainingDiverged(
                    f"{getattr(model, 'name', 'model')}: {what} is not finite (NaN or inf) at "
                    f"step {step}; stopped before applying it, keeping the parameters of the "
                    f"last good step", step=step, name=name, params=params, rows=rows,
                    initial_params=initial)
            opt.step(params, grads)
            be.synchronize()
            dt = time.perf_counter() - t0
            if step % log_every == 0 or step == steps - 1:
                row = {"steps": step, "overall_loss": float(loss), "time": dt,
                       "relevant_loss": float(relevant_loss(be, y, tb, pos))}
                rows.append(row)
                bar.set_postfix(loss=f"{row['overall_loss']:.4f}",
                                relevant=f"{row['relevant_loss']:.4f}", refresh=False)
    finally:
        bar.close()
    if out_tsv is not None:
        write_tsv(rows, out_tsv)
    return TrainResult(rows=rows, params=params, initial_params=initial,
                       model_name=getattr(model, "name", "model"), tsv_path=out_tsv)
