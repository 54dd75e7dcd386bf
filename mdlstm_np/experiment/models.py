"""The seed's three models: a recurrent layer followed by the per-cell sigmoid head.

    x (B, H, W, C) ──recurrent──▶ h (B, H, W, hidden) ──DenseSigmoid──▶ y (B, H, W, 1)

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

from typing import Any, NamedTuple, Tuple

from ..backends import get_backend
from ..head import DenseSigmoid
from ..mdlstm import MDLSTM
from ..sd import HorizontalSDLSTM, SnakeSDLSTM
from ..validate import check_dtype_name, check_positive_int

MODEL_NAMES = ("MD_LSTM", "HORIZONTAL_SD_LSTM", "SNAKE_SD_LSTM")


class ModelCache(NamedTuple):
    rnn: Any    # the recurrent layer's cache
    head: Any   # the head's cache


def _split(params: dict, prefix: str) -> dict:
    n = len(prefix)
    return {k[n:]: v for k, v in params.items() if k.startswith(prefix)}


class Model:
    """``recurrent`` then ``head``; forward/backward over one flat parameter dict.

    recurrent : a layer with init_params/forward/backward (MDLSTM, HorizontalSDLSTM, ...)
    head      : a :class:`DenseSigmoid` whose in_features is the recurrent layer's hidden size
    name      : shown in messages and file names
    """

    def __init__(self, recurrent, head, name: str = "model"):
        width = getattr(recurrent, "out_features", recurrent.hidden)  # 2ⁿH for concat layers
        if head.in_features != width:
            raise ValueError(f"head: expected in_features == the recurrent layer's output "
                             f"width ({width}), got {head.in_features}")
        if recurrent.dtype != head.dtype or recurrent.be.name != head.be.name:
            raise ValueError(f"head: expected the recurrent layer's backend/dtype "
                             f"({recurrent.be.name}/{recurrent.dtype}), got "
                             f"{head.be.name}/{head.dtype}")
        self.rnn, self.head, self.name = recurrent, head, name
        self.be, self.dtype = recurrent.be, recurrent.dtype

    def init_params(self, rng) -> dict:
        """Recurrent parameters first, then the head's, from one ``numpy.random.Generator``."""
        params = {f"rnn.{k}": v for k, v in self.rnn.init_params(rng).items()}
        params.update({f"head.{k}": v for k, v in self.head.init_params(rng).items()})
        return params

    def forward(self, params: dict, x) -> Tuple[Any, ModelCache]:
        """x: (B, H, W, C) backend array -> y: (B, H, W, 1) in (0, 1), cache."""
        h, rnn_cache = self.rnn.forward(_split(params, "rnn."), x)        # 1. (B, H, W, hidden)
        y, head_cache = self.head.forward(_split(params, "head."), h)     # 2. (B, H, W, 1)
        return y, ModelCache(rnn=rnn_cache, head=head_cache)

    def backward(self, dy, cache: ModelCache) -> Tuple[Any, dict]:
        """dy: (B, H, W, 1) = ∂loss/∂y -> dx: (B, H, W, C), dparams (keys like params)."""
        dh, dhead = self.head.backward(dy, cache.head)                    # 2. (B, H, W, hidden)
        dx, drnn = self.rnn.backward(dh, cache.rnn)                       # 1. (B, H, W, C)
        grads = {f"rnn.{k}": v for k, v in drnn.items()}
        grads.update({f"head.{k}": v for k, v in dhead.items()})
        return dx, grads


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
    head = DenseSigmoid(hidden, 1, backend=be, dtype=dtype)
    return Model(rnn, head, name=name)
