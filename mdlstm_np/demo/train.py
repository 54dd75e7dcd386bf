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

Runs that lose nothing: the TSV is appended and flushed row by row; a checkpoint
(``checkpoint.py``: parameters, Adam's moments and step count, the data generator's state, the
rows) is written atomically every ``checkpoint_every`` steps and at the end; ``resume=True``
continues from it bit for bit; ``should_stop`` lets a caller (the demo's signal handler) end
the run cleanly at the end of a step, with a checkpoint.

Host syncs: a loss is brought to the host (``float``) only on logged steps. The finiteness guard
costs one boolean per step: it reduces ``L·0 + Σ_k Σ dθ_k·0``, which is 0 when everything is
finite and NaN as soon as any element is NaN or ±inf (inf·0 = NaN), without the false alarms a
sum of squares would give by overflowing. Only when it fires are the arrays searched one by one
to name the culprit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np
from tqdm.auto import tqdm

from ..losses import mse, relevant_loss
from ..optim import Adam
from ..training.atomic import atomic_write
from ..training.guard import TrainingDiverged, check_step_finite, diverged_from
from ..training.model import model_settings, sweep_name
from ..validate import check_lr, check_positive_int
from ..training.saving import spec_or_none
from ..training.checkpoint import (CheckpointError, check_matches, load_checkpoint,
                         restore_training_state, rows_before, save_checkpoint)
from .tasks import random_diagonal

COLUMNS = ("steps", "overall_loss", "time", "relevant_loss")


@dataclass
class TrainResult:
    """What :func:`train` returns.

    rows           : list of dicts with the keys ``COLUMNS`` (one per logged step)
    params         : final parameters (backend arrays)
    initial_params : the parameters before the first step, as host numpy copies
    model_name     : the model's name
    tsv_path, checkpoint_path : the files written (None: not asked for)
    stopped        : True when ``should_stop`` ended the run before ``steps``
    step           : steps completed (``steps`` unless stopped)
    """

    rows: List[dict]
    params: Dict[str, object]
    initial_params: Dict[str, np.ndarray]
    model_name: str
    tsv_path: Optional[str] = None
    stopped: bool = False                 # should_stop ended the run early
    step: int = 0                         # steps completed
    checkpoint_path: Optional[str] = None

    def column(self, name: str) -> np.ndarray:
        """One logged column as a float array, e.g. ``result.column("relevant_loss")``."""
        if name not in COLUMNS:
            raise ValueError(f"name: expected one of {', '.join(COLUMNS)}, got {name!r}")
        return np.array([row[name] for row in self.rows], dtype=np.float64)


def _format_row(row: dict) -> str:
    return (f"{row['steps']:04d}\t{row['overall_loss']!r}\t{row['time']!r}\t"
            f"{row['relevant_loss']!r}\n")


def write_tsv(rows: List[dict], path: str) -> str:
    """Write ``rows`` (dicts with ``COLUMNS``) tab-separated with a header, atomically.

    The file is written to a temporary file in the same folder and moved into place with
    ``os.replace``, so a reader never sees a half-written log.
    """
    def writer(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\t".join(COLUMNS) + "\n")
            for row in rows:
                f.write(_format_row(row))

    return atomic_write(path, writer, suffix=".tsv")


def read_tsv(path: str, *, partial_ok: bool = False) -> List[dict]:
    """Read a log written by :func:`write_tsv` (or appended by :func:`train`) back into rows.

    partial_ok : ignore a last line cut short (a run killed while appending it).
    Raises ValueError for a wrong header or a malformed row.
    """
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if tuple(header) != COLUMNS:
            raise ValueError(f"path: expected a header {COLUMNS}, got {tuple(header)}")
        lines = f.readlines()
    rows = []
    for i, line in enumerate(lines):
        try:
            if not line.endswith("\n"):
                raise ValueError("the line is cut short")
            s, *vals = line.rstrip("\n").split("\t")
            if len(vals) != len(COLUMNS) - 1:
                raise ValueError(f"expected {len(COLUMNS)} columns, got {len(vals) + 1}")
            rows.append({"steps": int(s), **{k: float(v) for k, v in zip(COLUMNS[1:], vals)}})
        except ValueError as e:
            if partial_ok and i == len(lines) - 1:
                break
            raise ValueError(f"path: row {i + 1} of {path} is malformed ({e})") from None
    return rows


def predict(model, params: dict, x: np.ndarray) -> np.ndarray:
    """Host x (B, H, W, C) -> host predictions (B, H, W, 1). ``params`` may be host arrays."""
    be = model.be
    device_params = {k: be.asarray(v, model.dtype) for k, v in params.items()}
    y, _ = model.forward(device_params, be.asarray(x, model.dtype))
    return be.to_numpy(y)


def run_settings(model, *, steps, batch, size, lr, seed) -> dict:
    """What a checkpoint of :func:`train` records and a resume must match (``steps`` apart):
    :func:`model_settings` plus the training settings."""
    return {**model_settings(model), "steps": int(steps), "batch": int(batch),
            "size": int(size), "lr": float(lr), "seed": int(seed), "optimizer": "Adam"}


def _check_model(model):
    from ..training.model import Model

    if not isinstance(model, Model):
        hint = ("; wrap a bare layer with its head, e.g. Model(layer, Dense(layer.hidden, "
                "1, 'sigmoid')), or use build_model(...)" if hasattr(model, "init_params") else "")
        raise TypeError(f"model: expected a mdlstm_np Model (a recurrent layer and a head, "
                        f"mapping (B, size, size, 1) -> (B, size, size, 1)), got "
                        f"{type(model).__name__}{hint}")
    first, last = model.layers[0], model.layers[-1]
    if getattr(first, "in_channels", 1) != 1 or getattr(last, "out_features", None) != 1:
        raise ValueError(f"model: expected 1 input and 1 output channel for the random-diagonal "
                         f"task, got {getattr(first, 'in_channels', '?')} and "
                         f"{getattr(last, 'out_features', '?')}")


class _Log:
    """The TSV, appended and flushed row by row (a crash keeps every row logged so far)."""

    def __init__(self, path: Optional[str], rows: List[dict]):
        self.f = None
        if path is not None:
            write_tsv(rows, path)                       # header (+ a resumed run's rows), atomic
            self.f = open(path, "a", encoding="utf-8")

    def append(self, row: dict):
        if self.f is not None:
            self.f.write(_format_row(row))
            self.f.flush()

    def close(self):
        if self.f is not None:
            self.f.close()


def train(model, *, steps: int = 1000, batch: int = 16, size: int = 8, lr: float = 0.01,
          seed: int = 0, log_every: int = 1, progress: bool = True,
          out_tsv: Optional[str] = None, checkpoint: Optional[str] = None,
          checkpoint_every: int = 100, resume: bool = False,
          should_stop: Optional[Callable[[int], bool]] = None) -> TrainResult:
    """Train ``model`` on the random-diagonal task with Adam(lr) — the seed's experiment.

    model     : a :class:`mdlstm_np.demo.models.Model` (input (B, size, size, 1))
    steps     : number of Adam steps (the seed: 1000)
    batch     : samples per step (16); size: grid side (8, at least 3)
    lr        : Adam's learning rate (0.01), a Python or numpy real
    seed      : integer seed for initial parameters and data
    log_every : log every n-th step (and always the last); the seed logs every step
    progress  : show a tqdm progress bar
    out_tsv   : if given, the log: created (header) before step 0, then each row appended and
                flushed as it is logged. Its folder must exist (checked before step 0).
    checkpoint: if given, a checkpoint file (``checkpoint.py``) written every
                ``checkpoint_every`` steps, at the end, and when ``should_stop`` stops the run
    resume    : continue from ``checkpoint`` (which must exist and match this model and these
                settings; ``steps`` may differ): parameters, Adam's state and the data
                generator are restored; ``out_tsv``'s rows before the checkpoint's step are
                checked against it, kept (rows logged after it, e.g. before a kill -9, are
                dropped: those steps run again) and continued. The losses then equal an
                uninterrupted run's bit for bit (same backend and dtype). Without ``out_tsv``
                the result's rows start at the checkpoint.
    should_stop : called with the number of steps done after every step; True stops the run
                there (a checkpoint is saved and the result has ``stopped=True``); after the
                last step the run is complete whatever it says

    Returns a :class:`TrainResult`. Raises :class:`TrainingDiverged` if the loss or a gradient
    is NaN/inf (it carries the last good parameters and the rows so far); TypeError/ValueError
    for bad arguments and :class:`~.checkpoint.CheckpointError` for an unusable checkpoint,
    all before step 0.
    """
    _check_model(model)
    steps = check_positive_int(steps, "steps")
    batch = check_positive_int(batch, "batch")
    size = check_positive_int(size, "size", minimum=3)
    log_every = check_positive_int(log_every, "log_every")
    checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
    seed = check_positive_int(seed, "seed", minimum=0)
    lr = check_lr(lr)
    if resume and checkpoint is None:
        raise ValueError("resume: expected a checkpoint path to resume from, got none")
    be, xp = model.be, model.be.xp
    name = getattr(model, "name", "model")
    settings = run_settings(model, steps=steps, batch=batch, size=size, lr=lr, seed=seed)

    init_ss, data_ss = np.random.SeedSequence(seed).spawn(2)
    params = model.init_params(np.random.default_rng(init_ss))
    initial = {k: be.to_numpy(v).copy() for k, v in params.items()}
    data_rng = np.random.default_rng(data_ss)
    opt = Adam(params, lr=lr)
    rows: List[dict] = []
    start = 0
    if resume:
        ckpt = load_checkpoint(checkpoint)
        check_matches(ckpt, model_name=name, settings=settings, params=params, be=be,
                      dtype=model.dtype)
        if ckpt.step > steps:
            raise CheckpointError(f"checkpoint {checkpoint}: is at step {ckpt.step}, beyond "
                                  f"this run's {steps} steps")
        params = restore_training_state(ckpt, be=be, dtype=model.dtype, optimizer=opt,
                                        rng=data_rng)
        initial = dict(ckpt.initial_params) or initial
        if out_tsv is not None:
            try:
                logged = read_tsv(out_tsv, partial_ok=True)
            except (OSError, ValueError) as e:
                raise CheckpointError(f"checkpoint {checkpoint}: its log {out_tsv} cannot be "
                                      f"read ({e})") from None
            rows = rows_before(ckpt, logged, out_tsv)
        start = ckpt.step

    def save(done):
        if checkpoint is not None:
            save_checkpoint(checkpoint, be=be, model_name=name, settings=settings, step=done,
                            params=params, optimizer=opt, rng=data_rng, rows=rows,
                            initial_params=initial,
                            extra={"sweep": sweep_name(model), "model_spec": spec_or_none(model)})

    log = _Log(out_tsv, rows)
    stopped, done = False, start
    bar = tqdm(range(start, steps), desc=name, disable=not progress, unit="step",
               dynamic_ncols=True, initial=start, total=steps)
    try:
        for step in bar:
            x, t, pos = random_diagonal(batch, size, data_rng)
            t0 = time.perf_counter()
            xb, tb = be.asarray(x, model.dtype), be.asarray(t, model.dtype)
            try:
                y, cache = model.forward(params, xb)              # (B, size, size, 1)
                loss, dy = mse(be, y, tb)
                _, grads = model.backward(dy, cache)
            except (FloatingPointError, ValueError) as e:         # the layer's own checks
                raise diverged_from(e, name, step, params, rows, initial) from None
            check_step_finite(be, loss, grads, name=name, where=f"step {step}", step=step,
                              params=params, rows=rows, initial=initial)
            before = dict(params)  # the optimiser replaces arrays, never changes them
            opt.step(params, grads)
            probe = None
            for v in params.values():
                probe = xp.sum(v * 0) if probe is None else probe + xp.sum(v * 0)
            if not be.all_finite(probe):  # the update itself overflowed (e.g. a huge lr)
                culprit = next(k for k in sorted(params) if not be.all_finite(params[k]))
                params.update(before)
                if step % log_every == 0:  # this step's loss is sound: keep it in the log
                    row = {"steps": step, "overall_loss": float(loss),
                           "time": time.perf_counter() - t0,
                           "relevant_loss": float(relevant_loss(be, y, tb, pos))}
                    rows.append(row)
                    log.append(row)
                raise TrainingDiverged(
                    f"{name}: the update of {culprit!r} is not finite (NaN or inf) at step "
                    f"{step}; stopped, keeping the parameters of the last good step",
                    step=step, name=culprit, params=params, rows=rows, initial_params=initial)
            be.synchronize()
            dt = time.perf_counter() - t0
            if step % log_every == 0 or step == steps - 1:
                row = {"steps": step, "overall_loss": float(loss), "time": dt,
                       "relevant_loss": float(relevant_loss(be, y, tb, pos))}
                rows.append(row)
                log.append(row)
                bar.set_postfix(loss=f"{row['overall_loss']:.4f}",
                                relevant=f"{row['relevant_loss']:.4f}", refresh=False)
            done = step + 1
            if should_stop is not None and should_stop(done) and done < steps:
                save(done)
                stopped = True
                break
            if done % checkpoint_every == 0 or done == steps:
                save(done)
        else:
            if start == steps:
                save(steps)
    finally:
        bar.close()
        log.close()
    return TrainResult(rows=rows, params=params, initial_params=initial, model_name=name,
                       tsv_path=out_tsv, stopped=stopped, step=done if stopped else steps,
                       checkpoint_path=checkpoint)
