"""Any two of the package's layers at their defaults compose.

Every public layer is built with nothing but its sizes (default backend, default dtype float32);
each one whose output is a 2-D grid of 4 features is followed by every layer that reads one,
and the pair must build as a ``Model`` and run forward and backward on a float32 batch. Before
the defaults were unified, a float32 recurrent layer followed by a float64 ``Dense``, read-out,
``BlockSubsample`` or SD layer was refused.
"""

import numpy as np
import pytest

import mdlstm_np
from mdlstm_np.hierarchy import BlockSubsample, CollapseVertical
from mdlstm_np.readout import LastCellReadout, MeanPoolReadout, SumScoresReadout

F = 4
GRID_TO_GRID = {      # (B, H, W, F) -> (B, H, W, F)
    "MDLSTM": lambda: mdlstm_np.MDLSTM(F, F),
    "MultiDirectionalMDLSTM": lambda: mdlstm_np.MultiDirectionalMDLSTM(F, 1),
    "HorizontalSDLSTM": lambda: mdlstm_np.HorizontalSDLSTM(F, F),
    "SnakeSDLSTM": lambda: mdlstm_np.SnakeSDLSTM(F, F),
    "Dense": lambda: mdlstm_np.Dense(F, F, "tanh"),
    "BlockSubsample": lambda: BlockSubsample((1, 1)),
}
READERS = {**GRID_TO_GRID,   # layers that read a (B, H, W, F) grid
           "LastCellReadout": lambda: LastCellReadout(F, 3),
           "SumScoresReadout": lambda: SumScoresReadout(F, 3),
           "MeanPoolReadout": lambda: MeanPoolReadout(F, 3),
           "CollapseVertical": lambda: CollapseVertical()}


def test_every_layer_defaults_to_float32_on_numpy():
    for name, make in READERS.items():
        layer = make()
        assert (layer.dtype, layer.be.name) == ("float32", "numpy"), name


@pytest.mark.parametrize("second", sorted(READERS))
@pytest.mark.parametrize("first", sorted(GRID_TO_GRID))
def test_two_layers_at_their_defaults_compose(first, second):
    model = mdlstm_np.Model(GRID_TO_GRID[first](), READERS[second]())
    params = model.init_params(np.random.default_rng(0))
    x = np.random.default_rng(1).random((2, 3, 4, F)).astype(np.float32)
    y, cache = model.forward(params, x)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    dx, grads = model.backward(np.ones_like(y), cache)
    assert dx.shape == x.shape and dx.dtype == np.float32
    assert set(grads) == set(params)
