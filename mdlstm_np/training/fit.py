"""``fit``: train any grid model on your own arrays (epochs of shuffled minibatches, Adam).

    history = fit(model, X, Y, epochs=20, batch=32, lr=0.01, validation=(Xv, Yv))

Per epoch e (0-based):  order ← rng.permutation(N)
    per minibatch I of ``order``:
        x ← X[I] (then ``augment(x, rng)`` if given)       host → backend
        y, cache ← model.forward(θ, x);  L, dy ← loss(y, Y[I]);  dθ ← model.backward(dy, cache)
        guard: L and every dθ finite?  else raise TrainingDiverged, θ untouched
        θ ← Adam(θ, dθ) with the step size of ``lr_schedule``
    row ← {epoch, loss (the mean training loss of the epoch), val_loss, val_accuracy, seconds}
    checkpoint every ``checkpoint_every`` epochs and at the end (``checkpoint.py``)

Data: X is host numpy (N, *S, C), float32/float64 (cast to the model's dtype). Targets are
either per cell, Y (N, *S, K) floats (``loss="mse"``, e.g. with a per-cell head), or per
image, Y (N,) integer class labels (``loss="cross_entropy"``, softmax over a read-out's
(B, K) scores). ``loss="auto"`` picks cross_entropy for integer Y, mse otherwise. A callable
``loss(be, y, t) -> (L, dy)`` (backend arrays; L a 0-d array, dy = ∂L/∂y) replaces both.

Randomness: ``seed`` feeds one ``numpy.random.SeedSequence`` split in two: one stream
initialises the parameters, the other shuffles (and augments) the data. The same seed gives
the same run; the data stream's state is in every checkpoint, so ``resume=True`` continues an
interrupted run bit for bit (same backend and dtype): its epoch losses equal those of a run
that was never interrupted.

The finiteness guard is train.py's: L·0 + Σ dθ·0 is 0 when everything is finite and NaN
otherwise; one boolean per step crosses to the host.
"""

from __future__ import annotations

import math
import numbers
import os
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np
from tqdm.auto import tqdm

from ..losses import mse
from ..optim import Adam
from ..readout import softmax_cross_entropy
from .saving import spec_or_none
from .checkpoint import (CheckpointError, check_matches, load_checkpoint, restore_training_state,
                         save_checkpoint)
from ..validate import check_lr
from .guard import check_step_finite, diverged_from

LOSSES = ("auto", "mse", "cross_entropy")
SCHEDULES = ("constant", "cosine")


@dataclass
class History:
    """What :func:`fit` returns.

    rows           : one dict per epoch: "epoch" (1-based), "loss" (mean training loss),
                     "val_loss" and, for classification, "val_accuracy" (with validation),
                     "seconds" (the epoch's wall time)
    params         : the final parameters (backend arrays); initial_params: host copies
    model          : the model trained; name: its name in messages and checkpoints
    epoch          : epochs completed; stopped: True when ``should_stop`` ended the run early
    """

    rows: List[dict]
    params: Dict[str, object]
    initial_params: Dict[str, np.ndarray]
    model: object = None
    name: str = "model"
    epoch: int = 0
    stopped: bool = False
    checkpoint_path: Optional[str] = None
    loss_name: str = "mse"

    def __getitem__(self, key: str) -> List[float]:
        """One column over the epochs, e.g. ``history["val_loss"]`` (KeyError if absent)."""
        if not self.rows or key not in self.rows[0]:
            raise KeyError(f"history has no column {key!r} (it has "
                           f"{sorted(self.rows[0]) if self.rows else 'no rows'})")
        return [row[key] for row in self.rows]

    @property
    def loss(self) -> List[float]:
        return self["loss"]

    def predict(self, X, *, batch: int = 256, sizes=None) -> np.ndarray:
        """The trained model's outputs on host X (N, *S, C), as host numpy (see :func:`predict`)."""
        return predict(self.model, self.params, X, batch=batch, sizes=sizes)


# --------------------------------------------------------------------------- checks
def _check_model(model):
    missing = [a for a in ("init_params", "forward", "backward", "be", "dtype")
               if not hasattr(model, a)]
    if missing:
        raise TypeError(f"model: expected an object with init_params, forward, backward, be "
                        f"and dtype (e.g. Model(layer, head)), got "
                        f"{type(model).__name__} without {', '.join(missing)}")


def _check_x(X, name="X") -> np.ndarray:
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{name}: expected a host numpy array (N, *S, C), got "
                        f"{type(X).__name__}")
    if X.dtype.kind != "f":
        raise TypeError(f"{name}: expected a float array (float32 or float64), got dtype "
                        f"{X.dtype}")
    if X.ndim < 3 or X.shape[0] < 1 or 0 in X.shape:
        raise ValueError(f"{name}: expected shape (N, *S, C) with N >= 1 and at least one grid "
                         f"axis, got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{name}: expected finite values, found NaN or inf")
    return X


def _check_x_fits(model, X):
    """X's channel axis and grid rank against the model's first layer, so that an X without
    its channel axis is blamed on X (and not on Y, whose shape is checked against X's)."""
    from .model import in_width

    first = model.layers[0] if getattr(model, "layers", None) else None
    C = in_width(first) if first is not None else None
    ndim = getattr(first, "ndim", None)       # the rank of the grid the first layer reads
    if C is not None and X.shape[-1] != C:
        raise ValueError(f"X: expected samples (N, *S, C) with C = {C} channels (the first "
                         f"layer's input width) on the last axis, got shape {X.shape}")
    if isinstance(ndim, int) and X.ndim != ndim + 2:
        raise ValueError(f"X: expected {ndim + 2} axes (N, {ndim} grid axes, C) for the first "
                         f"layer's {ndim}-D grid, got shape {X.shape}")


def _check_checkpoint_path(checkpoint, resume):
    """Before step 0: the checkpoint's folder exists and is writable, and an existing
    checkpoint (another run's) is continued (``resume=True``), never replaced."""
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint: expected a file path, got {type(checkpoint).__name__}")
    folder = os.path.dirname(os.path.abspath(checkpoint))
    if not os.path.isdir(folder):
        raise ValueError(f"checkpoint: its folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"checkpoint: its folder {folder} is not writable")
    if os.path.exists(checkpoint) and not resume:
        raise ValueError(f"checkpoint: {checkpoint} exists (an earlier run's); pass "
                         f"resume=True to continue it, or remove it / choose another path to "
                         f"start over")


def _check_y(Y, X, loss, name="Y") -> np.ndarray:
    if not isinstance(Y, np.ndarray):
        raise TypeError(f"{name}: expected a host numpy array, got {type(Y).__name__}")
    N = X.shape[0]
    if Y.ndim == 0 or Y.shape[0] != N:
        raise ValueError(f"{name}: expected {N} targets (one per sample of X), got shape "
                         f"{Y.shape}")
    if loss == "cross_entropy":
        if Y.dtype.kind not in "iu" or Y.ndim != 1:
            raise TypeError(f"{name}: cross_entropy expects integer class labels of shape "
                            f"({N},), got {Y.dtype} {Y.shape}")
        if Y.min() < 0:
            raise ValueError(f"{name}: expected class labels >= 0, got {int(Y.min())}")
    elif loss == "mse":
        if Y.dtype.kind != "f" or Y.shape[1:-1] != X.shape[1:-1]:
            raise ValueError(f"{name}: mse expects float per-cell targets of shape "
                             f"{(N, *X.shape[1:-1], 'K')}, got {Y.dtype} {Y.shape}")
        if not np.isfinite(Y).all():
            raise ValueError(f"{name}: expected finite values, found NaN or inf")
    return Y


def _check_int(value, name, lo) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo:
        raise ValueError(f"{name}: expected an integer >= {lo}, got {value!r}")
    return int(value)


def _resolve_loss(loss, Y):
    if callable(loss):
        return getattr(loss, "__name__", "custom"), loss
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {', '.join(LOSSES)} or a callable "
                         f"(be, y, t) -> (loss, dy), got {loss!r}")
    if loss == "auto":
        loss = "cross_entropy" if isinstance(Y, np.ndarray) and Y.dtype.kind in "iu" else "mse"
    return loss, (softmax_cross_entropy if loss == "cross_entropy" else mse)


def _fingerprint(*arrays) -> int:
    """A CRC-32 of the data, so a checkpoint is not resumed on other arrays."""
    crc = 0
    for a in arrays:
        if a is not None:
            crc = zlib.crc32(np.ascontiguousarray(a).view(np.uint8), crc)
    return crc


# --------------------------------------------------------------------------- helpers
def predict(model, params: dict, X: np.ndarray, *, batch: int = 256, sizes=None) -> np.ndarray:
    """Host X (N, *S, C) -> host outputs (N, *S, K) or class scores (N, K), in batches
    (``model.predict``)."""
    return model.predict(params, _check_x(X), sizes, batch=batch)


def _settings(model, X, Y, *, loss_name, batch, lr, lr_schedule, seed, epochs, sizes):
    from .model import model_settings

    try:
        ms = model_settings(model)
    except AttributeError:
        ms = {"model": getattr(model, "name", type(model).__name__), "dtype": model.dtype}
    s = {**ms, "task": "fit", "X": list(X.shape), "Y": list(Y.shape), "loss": loss_name,
         "batch": batch, "lr": lr, "lr_schedule": lr_schedule, "seed": seed,
         "data_crc32": _fingerprint(X, Y, sizes), "optimizer": "Adam"}
    if lr_schedule != "constant":      # the schedule depends on the run's length
        s["epochs"] = epochs
    return s


def _evaluate(model, params, X, Y, loss_fn, loss_name, batch, sizes):
    """Mean loss (and accuracy for cross_entropy) of host X, Y; host floats."""
    be, xp = model.be, model.be.xp
    total, correct = 0.0, 0
    for i in range(0, len(X), batch):
        kw = {} if sizes is None else {"sizes": sizes[i:i + batch]}
        y, _ = model.forward(params, be.asarray(X[i:i + batch], model.dtype), **kw)
        t = Y[i:i + batch] if loss_name == "cross_entropy" else be.asarray(Y[i:i + batch],
                                                                           model.dtype)
        L, _ = loss_fn(be, y, t)
        total += float(L) * len(X[i:i + batch])
        if loss_name == "cross_entropy":
            correct += int((be.to_numpy(xp.argmax(y, axis=1)) == Y[i:i + batch]).sum())
    out = {"val_loss": total / len(X)}
    if loss_name == "cross_entropy":
        out["val_accuracy"] = correct / len(X)
    return out


# --------------------------------------------------------------------------- fit
def fit(model, X, Y, *, loss="auto", epochs: int = 10, batch: int = 32, lr: float = 0.01,
        lr_schedule: str = "constant", validation=None, seed: int = 0, progress: bool = True,
        checkpoint: Optional[str] = None, checkpoint_every: int = 1, resume: bool = False,
        sizes=None, augment: Optional[Callable] = None, validate_every: int = 1,
        should_stop: Optional[Callable[[int], bool]] = None) -> History:
    """Train ``model`` on host arrays with Adam; see the module docstring.

    model       : init_params(rng) / forward(params, x) / backward(dy, cache) -> (dx, grads),
                  with ``be`` and ``dtype`` (a :class:`GridModel`, ``build_model(...)``, ...)
    X           : host float array (N, *S, C)
    Y           : (N, *S, K) float per-cell targets, or (N,) integer class labels
    loss        : "auto", "mse", "cross_entropy" or callable (be, y, t) -> (L, dy)
    epochs, batch : ints >= 1 (the last minibatch of an epoch may be smaller)
    lr          : Adam's step size; lr_schedule "constant" or "cosine" (half cosine to 0)
    validation  : None, (Xv, Yv) or (Xv, Yv, sizes_v), checked like X, Y; evaluated after
                  every ``validate_every`` epochs and after the last ("val_loss", and
                  "val_accuracy" for cross_entropy; other epochs' rows have NaN there)
    seed        : int >= 0; progress: a tqdm bar over the steps
    checkpoint  : path of a ``.npz`` written every ``checkpoint_every`` epochs and at the end;
                  resume=True continues from it when it exists (from scratch otherwise)
    sizes       : (N, n) ints, per-sample extents (layers that support them)
    augment     : callable (x_batch, rng) -> x_batch, applied to training batches only
    should_stop : callable (epochs_done) -> bool, asked after every epoch; True saves a
                  checkpoint and returns early (History.stopped)
    Returns a :class:`History`. Raises TypeError/ValueError naming the bad argument before
    training, CheckpointError for a checkpoint of another run, TrainingDiverged when the loss
    or a gradient is not finite (that update is not applied).
    """
    _check_model(model)
    X = _check_x(X)
    _check_x_fits(model, X)
    loss_name, loss_fn = _resolve_loss(loss, Y)
    Y = _check_y(Y, X, loss_name)
    K = getattr(model, "out_features", None)             # a GridModel's outputs per cell/image
    if isinstance(K, int) and loss_name == "cross_entropy" and Y.max() >= K:
        raise ValueError(f"Y: expected class labels in [0, {K - 1}] (the model has {K} "
                         f"classes), got labels up to {int(Y.max())}")
    if isinstance(K, int) and loss_name == "mse" and Y.shape[-1] != K:
        raise ValueError(f"Y: expected {K} target(s) per cell (the model's outputs), got "
                         f"shape {Y.shape}")
    epochs = _check_int(epochs, "epochs", 1)
    batch = _check_int(batch, "batch", 1)
    seed = _check_int(seed, "seed", 0)
    checkpoint_every = _check_int(checkpoint_every, "checkpoint_every", 1)
    validate_every = _check_int(validate_every, "validate_every", 1)
    lr = check_lr(lr)
    if lr_schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule: expected one of {', '.join(SCHEDULES)}, got "
                         f"{lr_schedule!r}")
    if sizes is not None:
        sizes = np.asarray(sizes)
        if sizes.shape != (len(X), X.ndim - 2) or sizes.dtype.kind not in "iu":
            raise ValueError(f"sizes: expected integers of shape {(len(X), X.ndim - 2)}, got "
                             f"{sizes.dtype} {sizes.shape}")
    val = None
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
            raise TypeError("validation: expected (X_val, Y_val) or (X_val, Y_val, sizes_val)")
        Xv = _check_x(validation[0], "validation[0]")
        Yv = _check_y(validation[1], Xv, loss_name, "validation[1]")
        if Xv.shape[1:] != X.shape[1:]:
            raise ValueError(f"validation[0]: expected samples of shape {X.shape[1:]} like X, "
                             f"got {Xv.shape[1:]}")
        val = (Xv, Yv, None if len(validation) == 2 else np.asarray(validation[2]))
    if resume and checkpoint is None:
        raise ValueError("resume: needs checkpoint=path")
    if checkpoint is not None:
        _check_checkpoint_path(checkpoint, resume)
    if augment is not None and not callable(augment):
        raise TypeError(f"augment: expected a callable (x, rng) -> x, got {augment!r}")

    be = model.be
    name = getattr(model, "name", type(model).__name__)
    settings = _settings(model, X, Y, loss_name=loss_name, batch=batch, lr=lr,
                         lr_schedule=lr_schedule, seed=seed, epochs=epochs, sizes=sizes)
    init_ss, data_ss = np.random.SeedSequence(seed).spawn(2)
    params = model.init_params(np.random.default_rng(init_ss))
    initial = {k: be.to_numpy(v).copy() for k, v in params.items()}
    rng = np.random.default_rng(data_ss)
    opt = Adam(params, lr=lr)
    rows: List[dict] = []
    start = 0
    if resume and os.path.exists(checkpoint):
        ckpt = load_checkpoint(checkpoint)
        check_matches(ckpt, model_name=name, settings=settings, params=params, be=be,
                      dtype=model.dtype)
        if ckpt.step > epochs:
            raise CheckpointError(f"checkpoint {checkpoint}: is at epoch {ckpt.step}, beyond "
                                  f"this run's {epochs} epochs")
        params = restore_training_state(ckpt, be=be, dtype=model.dtype, optimizer=opt,
                                        rng=rng)   # the schedule's last step size included
        initial = dict(ckpt.initial_params) or initial
        rows = [dict(r) for r in ckpt.meta.get("history", [])]
        start = ckpt.step

    def save(done):
        if checkpoint is not None:
            save_checkpoint(checkpoint, be=be, model_name=name, settings=settings, step=done,
                            params=params, optimizer=opt, rng=rng, rows=rows,
                            initial_params=initial,
                            extra={"history": rows, "model_spec": spec_or_none(model)})

    N = len(X)
    steps_per_epoch = -(-N // batch)
    total = epochs * steps_per_epoch
    bar = tqdm(total=total, initial=start * steps_per_epoch, desc=name, unit="step",
               disable=not progress, dynamic_ncols=True)
    stopped, done = False, start
    try:
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            order = rng.permutation(N)
            loss_sum = 0.0
            for j, i in enumerate(range(0, N, batch)):
                step = epoch * steps_per_epoch + j
                idx = order[i:i + batch]
                xb = X[idx] if augment is None else augment(X[idx], rng)
                kw = {} if sizes is None else {"sizes": sizes[idx]}
                t = Y[idx] if loss_name == "cross_entropy" else be.asarray(Y[idx], model.dtype)
                try:
                    y, cache = model.forward(params, be.asarray(xb, model.dtype), **kw)
                    L, dy = loss_fn(be, y, t)
                    _, grads = model.backward(dy, cache)
                except (FloatingPointError, ValueError) as e:     # the layers' own checks
                    raise diverged_from(e, name, step, params, rows, initial) from None
                check_step_finite(be, L, grads, name=name,
                                  where=f"epoch {epoch + 1}, step {step}", step=step,
                                  params=params, rows=rows, initial=initial)
                if lr_schedule == "cosine":
                    opt.lr = lr * 0.5 * (1.0 + math.cos(math.pi * step / total))  # a Python float:
                    # a numpy float64 would promote float32 parameters (NEP 50)
                opt.step(params, grads)
                loss_sum = loss_sum + L * len(idx)             # stays on the device
                bar.update(1)
            row = {"epoch": epoch + 1, "loss": float(loss_sum) / N}
            if val is not None and (epoch + 1) % validate_every and epoch + 1 < epochs:
                row.update({"val_loss": float("nan")}, **(
                    {"val_accuracy": float("nan")} if loss_name == "cross_entropy" else {}))
            elif val is not None:
                row.update(_evaluate(model, params, val[0], val[1], loss_fn, loss_name, batch,
                                     val[2]))
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items()
                             if k not in ("epoch", "seconds")}, refresh=False)
            done = epoch + 1
            if should_stop is not None and done < epochs and should_stop(done):
                save(done)
                stopped = True
                break
            if done % checkpoint_every == 0 or done == epochs:
                save(done)
        else:
            if start == epochs:
                save(epochs)
    finally:
        bar.close()
    return History(rows=rows, params=params, initial_params=initial, model=model, name=name,
                   epoch=done, stopped=stopped, checkpoint_path=checkpoint, loss_name=loss_name)
