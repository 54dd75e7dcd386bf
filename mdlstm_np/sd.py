"""The seed's single-direction (SD) baselines: the MD-LSTM engine with n = 1.

There is no second LSTM here. An ordinary LSTM *is* the MD-LSTM of a 1-D grid (one forget
gate, one recurrent matrix; see ``cells/graves.py``), so each baseline only decides how a 2-D
grid (B, Hg, Wg, C) is read as 1-D sequences, runs ``MDLSTM(ndim=1)`` on them and puts the
outputs back on the grid:

* HORIZONTAL_SD_LSTM: every row is its own sequence, left to right.
      (B, Hg, Wg, C) -> (B·Hg, Wg, C) -> LSTM -> (B·Hg, Wg, H) -> (B, Hg, Wg, H)
  A cell sees only the cells to its left: it can never see the row above.
* SNAKE_SD_LSTM: the grid flattened in raster order is one sequence of Hg·Wg steps.
      (B, Hg, Wg, C) -> (B, Hg·Wg, C) -> LSTM -> (B, Hg·Wg, H) -> (B, Hg, Wg, H)
  Cell (r, c) sees everything before it in reading order; the cell diagonally above-left is
  Wg + 1 steps back.

TensorFlow's LSTMCell (the seed's SD cell) adds a forget bias of 1.0: the default here.
Backward is the reshape in reverse followed by the engine's own backward.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .mdlstm import MDLSTM
from .validate import DEFAULT_DTYPE, check_grid_input


class SDCache(NamedTuple):
    inner: Any        # the MDLSTM cache of the 1-D run
    grid_shape: tuple  # (B, Hg, Wg)


class _SequenceBaseline:
    """An MD-LSTM with n = 1 reading a 2-D grid as sequences (subclasses say how)."""

    ndim = 2              # the rank of the grid it reads (its inner MD-LSTM's is 1)

    def __init__(self, in_channels, hidden, *, forget_bias=1.0, backend="numpy",
                 dtype=DEFAULT_DTYPE):
        self.lstm = MDLSTM(in_channels, hidden, ndim=1, cell="graves",
                           forget_bias=forget_bias, backend=backend, dtype=dtype)
        self.be, self.dtype = self.lstm.be, self.lstm.dtype
        self.in_channels, self.hidden = self.lstm.in_channels, self.lstm.hidden

    def param_shapes(self):
        return self.lstm.param_shapes()

    def init_params(self, rng):
        """W (C, 4H), U (H, 4H), b (4H,), gate order [i | f | o | g]; see ``MDLSTM``."""
        return self.lstm.init_params(rng)

    def _sequences_shape(self, B, Hg, Wg):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, params, x):
        """x (B, Hg, Wg, C) -> out (B, Hg, Wg, H), cache."""
        check_grid_input(self.be, x, ndim=2, channels=self.in_channels, dtype=self.dtype)
        xp = self.be.xp
        B, Hg, Wg, C = x.shape
        seq = xp.reshape(x, (*self._sequences_shape(B, Hg, Wg), C))
        out, inner = self.lstm.forward(params, seq)
        return xp.reshape(out, (B, Hg, Wg, self.hidden)), SDCache(inner, (B, Hg, Wg))

    def backward(self, dout, cache: SDCache):
        """dout (B, Hg, Wg, H) -> dx (B, Hg, Wg, C), dparams."""
        xp = self.be.xp
        if not isinstance(cache, SDCache):
            raise TypeError(f"cache: expected the SDCache that forward returned, got "
                            f"{type(cache).__name__}")
        B, Hg, Wg = cache.grid_shape
        if tuple(dout.shape) != (B, Hg, Wg, self.hidden):
            raise ValueError(f"dout: expected shape {(B, Hg, Wg, self.hidden)}, got "
                             f"{tuple(dout.shape)}")
        dseq = xp.reshape(dout, (*self._sequences_shape(B, Hg, Wg), self.hidden))
        dx, grads = self.lstm.backward(dseq, cache.inner)
        return xp.reshape(dx, (B, Hg, Wg, self.in_channels)), grads


class HorizontalSDLSTM(_SequenceBaseline):
    """HORIZONTAL_SD_LSTM: each row of the grid is a separate left-to-right sequence."""

    def _sequences_shape(self, B, Hg, Wg):
        return (B * Hg, Wg)


class SnakeSDLSTM(_SequenceBaseline):
    """SNAKE_SD_LSTM: the raster-flattened grid is one sequence of Hg·Wg steps."""

    def _sequences_shape(self, B, Hg, Wg):
        return (B, Hg * Wg)


class SliceCache(NamedTuple):
    inner: Any
    shape: tuple      # (B, D, H, W)


class SliceWise2D:
    """A 2-D MD-LSTM run on every depth slice of a 3-D grid separately, the 3-D task's baseline:
    x (B, D, H, W, C) is read as B·D images (B·D, H, W, C); out (B, D, H, W, hidden).
    ``layer_kwargs`` go to the inner ``MDLSTM(in_channels, hidden, ndim=2, ...)``."""

    ndim = 3              # the rank of the grid it reads (its inner MD-LSTM's is 2)

    def __init__(self, in_channels, hidden, **layer_kwargs):
        self.layer = MDLSTM(in_channels, hidden, ndim=2, **layer_kwargs)
        self.be, self.dtype, self.hidden = self.layer.be, self.layer.dtype, hidden
        self.in_channels = in_channels

    def param_shapes(self):
        return self.layer.param_shapes()

    def init_params(self, rng):
        """The inner 2-D layer's parameters (see ``MDLSTM``)."""
        return self.layer.init_params(rng)

    def forward(self, params, x):
        xp = self.be.xp
        B, D, H, W, C = x.shape
        h, inner = self.layer.forward(params, xp.reshape(x, (B * D, H, W, C)))
        return xp.reshape(h, (B, D, H, W, self.hidden)), SliceCache(inner, (B, D, H, W))

    def backward(self, dh, cache: SliceCache):
        xp = self.be.xp
        B, D, H, W = cache.shape
        dx, grads = self.layer.backward(xp.reshape(dh, (B * D, H, W, self.hidden)), cache.inner)
        return xp.reshape(dx, (B, D, H, W, self.in_channels)), grads
