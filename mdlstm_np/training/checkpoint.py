"""Checkpoints: everything a training run needs to continue, in one ``.npz`` file.

One file per model and run, written atomically (``atomic.py``: a temporary file in the same
folder, flushed to disk, then ``os.replace``), so a crash or kill -9 leaves the previous
checkpoint or the new one, never half of one. Its entries (plain ``.npy`` arrays, no pickle):

    meta                 uint8 (n,)   UTF-8 JSON: format, version, model name and settings,
                                      step (steps completed), dtype, package version, the
                                      optimiser's kind/hyper-parameters/step count, the data
                                      generator's ``bit_generator.state``, and the number of
                                      rows logged so far with the last one ("rows",
                                      "last_row"), to check the log against on resume
    param/<key>          the model's parameters after ``step`` steps, host numpy, model dtype
    init/<key>           the parameters before step 0 (for the "before training" figures)
    opt/<slot>/<key>     the optimiser's arrays (Adam: m, v; SGD: u), host numpy

The logged rows themselves stay in the run's TSV (flushed before every checkpoint): a
checkpoint's size does not grow with the run, so writing one every 100 steps stays cheap.

Arrays are stored on the host, so a checkpoint written by one backend loads on any other
(``be.asarray`` moves them); the values are the exact bits, so a resumed run continues bit for
bit on the same backend and dtype.

Errors: :class:`CheckpointError` (a ``ValueError``), one line naming the file and what is wrong:
unreadable (truncated, corrupted: the zip's CRC-32 of every entry is checked on reading), not a
checkpoint, or a mismatch with the run that wants it (other model, settings, keys, shapes,
dtype). Reading never writes anything.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Dict

import numpy as np

from .atomic import atomic_write

FORMAT = "mdlstm_np checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not belong to the run that wants it."""


@dataclass
class Checkpoint:
    """A checkpoint read back by :func:`load_checkpoint` (every array a host numpy array).

    meta           : the JSON metadata (see the module docstring)
    params         : {key: array} after ``meta["step"]`` steps
    initial_params : {key: array} before step 0 (may be empty)
    optimizer      : the optimiser's ``state_dict()`` with host arrays
    rng_state      : the data generator's ``bit_generator.state`` (a dict)
    n_rows, last_row : how many rows were logged before ``step``, and the last (a dict or
                     None)
    """

    meta: dict
    params: Dict[str, np.ndarray]
    initial_params: Dict[str, np.ndarray] = field(default_factory=dict)
    optimizer: dict = field(default_factory=dict)
    rng_state: dict = field(default_factory=dict)
    path: str = ""

    @property
    def n_rows(self) -> int:
        return int(self.meta.get("rows", 0))

    @property
    def last_row(self):
        return self.meta.get("last_row")

    @property
    def step(self) -> int:
        """Steps completed when it was written (the next step's 0-based index)."""
        return int(self.meta["step"])


def _host(be, arrays: dict) -> dict:
    return {k: np.asarray(be.to_numpy(v)) for k, v in arrays.items()}


def save_checkpoint(path: str, *, be, model_name: str, settings: dict, step: int, params: dict,
                    optimizer, rng: np.random.Generator, rows=(), initial_params=None,
                    extra: dict = None) -> str:
    """Write a checkpoint to ``path`` atomically; returns ``path``.

    be             : the backend the arrays live on (``be.to_numpy`` brings them to the host)
    model_name     : e.g. "MD_LSTM"; settings: JSON-able dict (model and training settings)
    step           : steps completed; params: {key: backend array}
    optimizer      : an object with ``state_dict()`` (``optim.Adam``, ``optim.SGD``)
    rng            : the data ``numpy.random.Generator`` (its state is stored, not advanced)
    rows           : the rows logged so far (only their number and the last are kept);
    initial_params : {key: array}
    extra          : more JSON-able metadata
    Raises OSError if the file cannot be written (then ``path`` is unchanged).
    """
    from .. import __version__

    params = _host(be, params)
    opt = optimizer.state_dict()
    dtypes = sorted({str(a.dtype) for a in params.values()})
    meta = {"format": FORMAT, "version": VERSION, "package_version": __version__,
            "model": model_name, "settings": settings, "step": int(step),
            "dtype": dtypes[0] if len(dtypes) == 1 else dtypes,
            "optimizer": {"kind": opt["kind"], "hyper": opt["hyper"], "t": opt["t"],
                          "slots": sorted(opt["slots"])},
            "rng": rng.bit_generator.state, "rows": len(rows),
            "last_row": dict(rows[-1]) if len(rows) else None, **(extra or {})}
    arrays = {"meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"),
                                    dtype=np.uint8)}
    arrays.update({f"param/{k}": v for k, v in params.items()})
    arrays.update({f"init/{k}": np.asarray(v) for k, v in (initial_params or {}).items()})
    for slot, slot_arrays in opt["slots"].items():
        arrays.update({f"opt/{slot}/{k}": v for k, v in _host(be, slot_arrays).items()})

    def writer(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())      # on disk before the rename makes it the checkpoint

    return atomic_write(path, writer, suffix=".npz")


def load_checkpoint(path: str) -> Checkpoint:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Returns a :class:`Checkpoint`. Raises :class:`CheckpointError` (one line, naming ``path``)
    if the file is missing, truncated, corrupted (CRC mismatch) or not a checkpoint.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {name: z[name] for name in z.files}     # reading checks every CRC-32
        meta = json.loads(bytes(data.pop("meta")).decode("utf-8"))
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - any fault of a damaged file is one clear error
        # A damaged zip container raises whatever its damaged field leads to: BadZipFile,
        # NotImplementedError ("zip file version", "compression method"), zlib.error,
        # OverflowError, struct.error, ValueError, KeyError, EOFError, UnicodeDecodeError ...
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"checkpoint {path}: cannot be read, it is truncated, corrupted "
                              f"or not a checkpoint ({type(e).__name__}: {reason})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a {FORMAT} file")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {meta.get('version')!r}, "
                              f"this package reads version {VERSION}")
    _check_meta(path, meta, data)
    out = Checkpoint(meta=meta, params={}, path=path)
    slots = {}
    for name, a in data.items():
        kind, _, key = name.partition("/")
        if kind == "param":
            out.params[key] = a
        elif kind == "init":
            out.initial_params[key] = a
        elif kind == "opt":
            slot, _, key = key.partition("/")
            slots.setdefault(slot, {})[key] = a
        else:
            raise CheckpointError(f"checkpoint {path}: unexpected entry {name!r}")
    opt = meta["optimizer"]
    out.optimizer = {"kind": opt.get("kind"), "hyper": opt.get("hyper"), "t": opt.get("t"),
                     "slots": {s: slots.get(s, {}) for s in opt.get("slots", [])}}
    out.rng_state = meta.get("rng", {})
    if not out.params or out.n_rows > out.step:
        raise CheckpointError(f"checkpoint {path}: inconsistent contents ({len(out.params)} "
                              f"parameters, {out.n_rows} rows for step {meta.get('step')!r})")
    return out


# what each metadata field must be, so that a damaged or hand-edited file fails here, in one
# line, and not later inside a resumed run
_META_TYPES = {"step": int, "rows": int, "optimizer": dict, "rng": dict, "settings": dict,
               "model": str}


def _check_meta(path, meta: dict, data: dict):
    for key, kind in _META_TYPES.items():
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointError(f"checkpoint {path}: metadata {key!r}: expected "
                                  f"{kind.__name__}, got {type(value).__name__}")
    if meta["step"] < 0 or meta["rows"] < 0:
        raise CheckpointError(f"checkpoint {path}: metadata step/rows: expected >= 0, got "
                              f"{meta['step']}/{meta['rows']}")
    opt = meta["optimizer"]
    if not isinstance(opt.get("slots", []), list) or not isinstance(opt.get("t", 0), int):
        raise CheckpointError(f"checkpoint {path}: metadata 'optimizer': expected slots (a "
                              f"list) and t (an int), got {opt!r}")
    if meta.get("last_row") is not None and not isinstance(meta["last_row"], dict):
        raise CheckpointError(f"checkpoint {path}: metadata 'last_row': expected a dict or "
                              f"null, got {type(meta['last_row']).__name__}")


def restore_training_state(ckpt: Checkpoint, *, be, dtype: str, optimizer,
                           rng: np.random.Generator) -> dict:
    """Put a checked checkpoint's training state back (after :func:`check_matches`): the
    optimiser's state and step size (a schedule's or a decay's last value), the data
    generator's state; returns the parameters as ``be`` arrays of ``dtype``.

    Raises :class:`CheckpointError` (one line) when the optimiser's or the generator's state
    does not fit this run (other keys, shapes or dtypes: ``load_state_dict`` checks them);
    nothing is changed then.
    """
    params = {k: be.asarray(v, dtype) for k, v in ckpt.params.items()}
    hyper = ckpt.optimizer.get("hyper") or {}
    lr = optimizer.lr
    try:
        optimizer.lr = hyper.get("lr", lr)   # load_state_dict compares the hyper-parameters
        optimizer.load_state_dict({**ckpt.optimizer, "slots": {
            s: {k: be.asarray(v) for k, v in arrs.items()}
            for s, arrs in ckpt.optimizer["slots"].items()}})
        rng.bit_generator.state = ckpt.rng_state
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever a damaged state leads to: one clear error
        optimizer.lr = lr
        raise CheckpointError(f"checkpoint {ckpt.path}: its optimiser or data generator "
                              f"state does not fit this run ({e})") from None
    return params


def rows_before(ckpt: Checkpoint, rows, log: str = "the log"):
    """The rows of a log that precede the checkpoint (``steps < ckpt.step``), checked against
    it: their number and the last row must be what the checkpoint recorded (a log that lost
    rows, or belongs to another run, is a :class:`CheckpointError`)."""
    kept = [r for r in rows if r["steps"] < ckpt.step]
    if len(kept) != ckpt.n_rows or (kept and kept[-1] != ckpt.last_row):
        raise CheckpointError(f"checkpoint {ckpt.path}: {log} has {len(kept)} rows before "
                              f"step {ckpt.step} that do not match the {ckpt.n_rows} it "
                              f"recorded")
    return kept


def check_matches(ckpt: Checkpoint, *, model_name: str, settings: dict, params: dict, be,
                  dtype: str) -> None:
    """Raise :class:`CheckpointError` unless ``ckpt`` belongs to this run.

    model_name, settings : as the run would save them (every key of ``settings`` must agree,
                           except "steps", which a resumed run may raise)
    params               : {key: array} of the model (keys, shapes, dtype compared)
    dtype                : the model's dtype name
    """
    where = f"checkpoint {ckpt.path}"
    if ckpt.meta.get("model") != model_name:
        raise CheckpointError(f"{where}: holds model {ckpt.meta.get('model')!r}, this run "
                              f"trains {model_name!r}")
    theirs = ckpt.meta.get("settings") or {}
    for k in sorted(set(settings) | set(theirs)):
        if k != "steps" and settings.get(k) != theirs.get(k):
            raise CheckpointError(f"{where}: was made with {k} = {theirs.get(k)!r}, this run "
                                  f"has {k} = {settings.get(k)!r}")
    if ckpt.meta.get("dtype") != dtype:
        raise CheckpointError(f"{where}: holds {ckpt.meta.get('dtype')} arrays, this run uses "
                              f"{dtype}")
    if set(ckpt.params) != set(params):
        raise CheckpointError(f"{where}: holds the parameters {sorted(ckpt.params)}, this model "
                              f"has {sorted(params)}")
    for k, v in params.items():
        a = ckpt.params[k]
        if a.shape != tuple(v.shape) or str(a.dtype) != be.dtype_name(v):
            raise CheckpointError(f"{where}: parameter {k!r} is {a.dtype} {a.shape}, this model "
                                  f"expects {be.dtype_name(v)} {tuple(v.shape)}")
