"""mdlstm_np: a Multi-Dimensional LSTM (Graves, Fernández & Schmidhuber 2007) written from
scratch, with every forward and backward pass derived by hand and checked against finite
differences. Start reading at ``mdlstm.py`` (the sweep) and ``cells/graves.py`` (the cell).
"""

from .backend import get_backend
from .mdlstm import MDLSTM
from .multidir import MultiDirectionalMDLSTM
from .sd import HorizontalSDLSTM, SnakeSDLSTM

__all__ = ["get_backend", "MDLSTM", "MultiDirectionalMDLSTM", "HorizontalSDLSTM", "SnakeSDLSTM"]
__version__ = "0.1.0"
