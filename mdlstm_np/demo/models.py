"""The seed's three models: a recurrent layer followed by the per-cell sigmoid head.

    x (B, H, W, C) ──recurrent──▶ h (B, H, W, hidden) ──Dense(sigmoid)──▶ y (B, H, W, 1)

Seed name            recurrent layer                                   forget bias
MD_LSTM              MDLSTM(ndim=2, ln=True): each cell sees its up     0.0 (the seed's MD cell)
                     and left neighbours, hence the whole top-left
                     quadrant; layer-normalised like the seed's cell
HORIZONTAL_SD_LSTM   HorizontalSDLSTM: one LSTM along each row          1.0 (TF LSTMCell default)
SNAKE_SD_LSTM        SnakeSDLSTM: one LSTM through the grid flattened   1.0 (TF LSTMCell default)
                     row by row (the second one is W+1 steps after the first)

The seed's MD cell is layer-normalised (docs/equations.md). MD_LSTM uses our NaN-free
formulation of it (``ln=True``, ``cells/layernorm.py``) by default; ``ln="seed"`` is the seed's
exact cell and ``ln=False`` Graves' plain cell (the one the numba and cupy hot loops
accelerate). Measured on the seed's experiment (numpy, float32, seeds 0-2): with ln=True the
relevant loss is 0.001-0.003 by step 500; the plain cell gets there too but one seed in three
was still at 0.07 at step 1000.

Parameters of a model are one flat dict, ``"rnn.<key>"`` for the recurrent layer and
``"head.<key>"`` for the head, so one optimiser and one finiteness check cover everything.
"""

from __future__ import annotations

from ..backends import get_backend
from ..dense import Dense
from ..mdlstm import MDLSTM
from ..sd import HorizontalSDLSTM, SnakeSDLSTM
from ..training.model import Model
from ..validate import check_dtype_name, check_positive_int

MODEL_NAMES = ("MD_LSTM", "HORIZONTAL_SD_LSTM", "SNAKE_SD_LSTM")


def build_model(name: str, *, in_channels: int = 1, hidden: int = 16, backend="auto",
                dtype="float32", ln=True) -> Model:
    """One of the seed's models by name (case-insensitive): see ``MODEL_NAMES``.

    ln : MD_LSTM's cell: True/"fixed" (default, layer-normalised like the seed's, NaN-free),
         "seed" (the seed's exact layer-norm cell) or False (Graves' plain cell). The SD
         baselines are TensorFlow's plain LSTMCell, as in the seed, whatever ``ln`` says.
    Returns a :class:`Model` mapping (B, H, W, in_channels) -> (B, H, W, 1).
    """
    if not isinstance(name, str) or name.upper() not in MODEL_NAMES:
        raise ValueError(f"model: expected one of {', '.join(MODEL_NAMES)}, got {name!r}")
    name = name.upper()
    in_channels = check_positive_int(in_channels, "in_channels")
    hidden = check_positive_int(hidden, "hidden")
    dtype = check_dtype_name(dtype)
    be = get_backend(backend)
    if name == "MD_LSTM":
        rnn = MDLSTM(in_channels, hidden, ndim=2, cell="graves", ln=ln, backend=be,
                     dtype=dtype, forget_bias=0.0)
    elif name == "HORIZONTAL_SD_LSTM":
        rnn = HorizontalSDLSTM(in_channels, hidden, backend=be, dtype=dtype, forget_bias=1.0)
    else:
        rnn = SnakeSDLSTM(in_channels, hidden, backend=be, dtype=dtype, forget_bias=1.0)
    head = Dense(hidden, 1, "sigmoid", backend=be, dtype=dtype)
    return Model(rnn, head, name=name)
