"""Save a trained model and load it back: ``mdlstm_np.save`` and ``mdlstm_np.load``.

    mdlstm_np.save(path, model, params)              # writes path (atomically)
    model, params = mdlstm_np.load(path)             # any backend: load(path, backend="numba")
    y = model.predict(params, X)                     # host arrays in, host arrays out

One file format for saved models and training checkpoints (``checkpoint.py``: an ``.npz`` of
plain ``.npy`` arrays and UTF-8 JSON metadata, no pickle). A checkpoint written by ``fit`` or by
any demo task carries the same model description, so ``load`` reads it too: the trained model
of a demo run folder is ``load("<out>/checkpoint_<MODEL>.npz")`` (the diagonal task) or
``load("<out>/checkpoint_<task>_<MODEL>.npz")``.

The model description (``meta["model_spec"]``) is the model's name, its layers' names and, per
layer, its class name and constructor arguments (JSON); the backend is chosen on loading, the
dtype is the saved one. Only the package's own layers are described (``LAYERS`` below); a
model with a layer or a cell object of one's own is saved by its parameters alone
(``save_checkpoint``) and cannot be loaded by ``load`` (the error says why).

Errors: ``CheckpointError`` (one line, naming the file) for a missing, damaged, foreign or
newer-format file, or one without a model description; ValueError from ``save`` for a model
that cannot be described.
"""

from __future__ import annotations

import numpy as np

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def _mdlstm_options(layer) -> dict:
    """An inner MDLSTM's keyword arguments (cell, peepholes, ln, forget_bias, check_finite)."""
    config = layer.config()
    return {k: config[k] for k in ("cell", "peepholes", "ln", "forget_bias", "check_finite")}


def _multidir(layer) -> dict:
    return {"in_channels": layer.in_channels, "hidden": layer.hidden, "ndim": layer.ndim,
            "combine": layer.combine, "directions": [list(f) for f in layer.directions],
            **_mdlstm_options(layer.layer)}


def _sd(layer) -> dict:
    return {"in_channels": layer.in_channels, "hidden": layer.hidden,
            "forget_bias": layer.lstm.forget_bias}


# class name -> (module, the constructor arguments of a layer of it)
LAYERS = {
    "MDLSTM": ("mdlstm_np.mdlstm", lambda l: l.config()),
    "MultiDirectionalMDLSTM": ("mdlstm_np.multidir", _multidir),
    "HorizontalSDLSTM": ("mdlstm_np.sd", _sd),
    "SnakeSDLSTM": ("mdlstm_np.sd", _sd),
    "SliceWise2D": ("mdlstm_np.sd", lambda l: {"in_channels": l.in_channels,
                                               "hidden": l.hidden,
                                               **_mdlstm_options(l.layer)}),
    "Dense": ("mdlstm_np.dense", lambda l: {"in_features": l.in_features,
                                            "out_features": l.out_features,
                                            "activation": l.activation}),
    "LastCellReadout": ("mdlstm_np.readout", lambda l: {"in_features": l.in_features,
                                                        "num_classes": l.num_classes}),
    "SumScoresReadout": ("mdlstm_np.readout", lambda l: {"in_features": l.in_features,
                                                         "num_classes": l.num_classes}),
    "MeanPoolReadout": ("mdlstm_np.readout", lambda l: {"in_features": l.in_features,
                                                        "num_classes": l.num_classes}),
    "BlockSubsample": ("mdlstm_np.hierarchy", lambda l: {"block": list(l.block)}),
    "CollapseVertical": ("mdlstm_np.hierarchy", lambda l: {}),
    "SequenceLogSoftmax": ("mdlstm_np.hierarchy", lambda l: {}),
}


def model_spec(model) -> dict:
    """The JSON description of ``model`` (see the module docstring). Raises ValueError naming
    the layer that cannot be described."""
    layers = []
    for name, layer in zip(model.names, model.layers):
        kind = type(layer).__name__
        if kind not in LAYERS or type(layer).__module__ != LAYERS[kind][0]:
            raise ValueError(f"model: layer {name!r} ({type(layer).__module__}.{kind}) is not "
                             f"one of the package's layers, so it cannot be described; save "
                             f"its parameters with save_checkpoint")
        layers.append({"class": kind, "args": LAYERS[kind][1](layer)})
    return {"name": model.name, "names": list(model.names), "layers": layers,
            "dtype": model.dtype}


def build_from_spec(spec: dict, *, backend="numpy"):
    """The model a description describes (fresh layers, no parameters) on ``backend``."""
    import importlib

    from .model import Model

    layers = []
    for entry in spec["layers"]:
        module, _ = LAYERS[entry["class"]]
        cls = getattr(importlib.import_module(module), entry["class"])
        layers.append(cls(**entry["args"], backend=backend, dtype=spec["dtype"]))
    return Model(*layers, names=spec["names"], name=spec["name"])


class _NoOptimizer:
    """A saved model carries no optimiser state (the checkpoint format's empty slot)."""

    @staticmethod
    def state_dict():
        return {"kind": None, "hyper": {}, "t": 0, "slots": {}}


def save(path: str, model, params: dict) -> str:
    """Write ``model`` and ``params`` to ``path`` (``.npz``, atomically); returns ``path``.

    model  : a :class:`~mdlstm_np.Model` of the package's layers
    params : {name: array} as from ``model.init_params`` or training (any backend)
    Raises ValueError for a model that cannot be described or params that are not the model's
    (other keys or shapes); OSError if the file cannot be written (``path`` unchanged then).
    """
    spec = model_spec(model)
    shapes = model.param_shapes()
    got = {k: tuple(getattr(v, "shape", ())) for k, v in params.items()}
    if got != {k: tuple(s) for k, s in shapes.items()}:
        raise ValueError(f"params: expected the model's parameters {sorted(shapes)} with "
                         f"shapes {shapes}, got {got}")
    return save_checkpoint(path, be=model.be, model_name=model.name, settings={}, step=0,
                           params=params, optimizer=_NoOptimizer(),
                           rng=np.random.default_rng(0), extra={"model_spec": spec})


def load(path: str, *, backend="numpy"):
    """Read a model saved by :func:`save`, or the model of a ``fit``/demo checkpoint.

    Returns ``(model, params)``: the model rebuilt on ``backend`` ("numpy", "numba", "cupy",
    "auto") in its saved dtype, and its parameters as ``backend`` arrays (bit for bit the
    saved ones). Raises :class:`CheckpointError` (one line naming ``path``) for a missing,
    damaged, foreign or newer-format file, or one that carries no model description.
    """
    ckpt = load_checkpoint(path)
    spec = ckpt.meta.get("model_spec")
    if not isinstance(spec, dict):
        raise CheckpointError(f"checkpoint {path}: it carries no model description (written "
                              f"by an older version, or a model with a layer of one's own); "
                              f"rebuild the model and read its parameters with "
                              f"load_checkpoint")
    try:
        model = build_from_spec(spec, backend=backend)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: its model description cannot be built "
                              f"({type(e).__name__}: {e})") from None
    shapes = model.param_shapes()
    if {k: tuple(v.shape) for k, v in ckpt.params.items()} != \
            {k: tuple(s) for k, s in shapes.items()}:
        raise CheckpointError(f"checkpoint {path}: its parameters do not match its model "
                              f"description")
    params = {k: model.be.asarray(ckpt.params[k], model.dtype) for k in shapes}
    return model, params


def spec_or_none(model):
    """``model_spec(model)``, or None when the model cannot be described (a checkpoint of such
    a model still resumes; only ``load`` refuses it)."""
    try:
        return model_spec(model)
    except (ValueError, AttributeError, TypeError):
        return None
