"""The training API users call: a model made of layers, ``fit``, save/load, checkpoints.

``model.py``       :class:`Model`, layers composed in order over one flat parameter dict
``fit.py``         :func:`fit`, the training loop (data, loss, evaluation, logging as arguments)
``guard.py``       the finiteness guard of a step (:class:`TrainingDiverged`)
``saving.py``      :func:`save` and :func:`load`: a trained model to a file and back
``checkpoint.py``  the one file format (npz + JSON metadata, no pickle) of checkpoints
``atomic.py``      atomic file writes: every file the package writes goes through it

Nothing here imports from ``mdlstm_np.demo`` (the demo's experiments).
"""

from .checkpoint import CheckpointError
from .fit import History, fit, predict
from .guard import TrainingDiverged
from .model import Model
from .saving import load, save

__all__ = ["Model", "fit", "predict", "save", "load", "History", "CheckpointError", "TrainingDiverged"]
