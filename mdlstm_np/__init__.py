"""mdlstm_np: a Multi-Dimensional LSTM (Graves, Fernández & Schmidhuber 2007) written from
scratch, with every forward and backward pass derived by hand and checked against finite
differences.

Reading order: ``mdlstm.py`` (the layer), ``sweep.py`` (the wavefront recurrence and the
contract every backend's fast sweep follows), ``cells/graves.py`` (the cell), ``grid.py``
(the wavefront schedule). Backends in ``backends/``, the seed's experiment in ``experiment/``,
test oracles in ``testing/``.
"""

from . import _moved
from .backends import get_backend
from .experiment.models import Model, build_model
from .mdlstm import MDLSTM
from .multidir import MultiDirectionalMDLSTM
from .sd import HorizontalSDLSTM, SnakeSDLSTM
from .experiment.gridmodel import DenseLinear, GridModel  # noqa: E402  (after the layers)
from .experiment.fit import History, fit, predict  # noqa: E402

_moved.install()

__all__ = ["get_backend", "MDLSTM", "MultiDirectionalMDLSTM", "HorizontalSDLSTM", "SnakeSDLSTM",
           "Model", "build_model", "GridModel", "DenseLinear", "fit", "predict", "History"]
__version__ = "0.1.0"
