"""mdlstm_np: a Multi-Dimensional LSTM (Graves, Fernández & Schmidhuber 2007) written from
scratch, with every forward and backward pass derived by hand and checked against finite
differences.

Reading order: ``mdlstm.py`` (the layer), ``sweep.py`` (the wavefront recurrence and the
contract every backend's fast sweep follows), ``cells/graves.py`` (the cell), ``grid.py``
(the wavefront schedule). Who each part is for:

    the engine        the layers (mdlstm, multidir, sd, hierarchy, readout, dense), cells/,
                      sweep, grid, backends/, ctc, losses, optim, testing/ (test oracles)
    the training API  training/: Model, fit, save/load, checkpoints, the finiteness guard
    the demo          demo/: the seed's tasks and models, data plumbing, plots, the CLI
                      (``demo.py``, ``examples/``); nothing else imports from it
"""

from .backends import get_backend
from .mdlstm import MDLSTM
from .multidir import MultiDirectionalMDLSTM
from .sd import HorizontalSDLSTM, SnakeSDLSTM
from .dense import Dense
from .training import (CheckpointError, History, Model, TrainingDiverged, fit, load, predict,
                       save)

__all__ = ["get_backend", "MDLSTM", "MultiDirectionalMDLSTM", "HorizontalSDLSTM", "SnakeSDLSTM",
           "Dense", "Model", "fit", "predict", "save", "load", "History", "CheckpointError",
           "TrainingDiverged"]
__version__ = "0.1.0"
