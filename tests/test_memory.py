"""The memory estimate of ``demo/memory.py`` against peaks measured with tracemalloc."""

import tracemalloc

import numpy as np
import pytest

from mdlstm_np.demo.memory import (available_bytes, check_memory, estimate_model_bytes,
                                         human)
from mdlstm_np.training.model import Model
from mdlstm_np.demo.models import build_model
from mdlstm_np.demo.tasks import random_diagonal
from mdlstm_np.dense import Dense
from mdlstm_np.losses import mse
from mdlstm_np.multidir import MultiDirectionalMDLSTM
from mdlstm_np.optim import Adam


def measured_peak(model, size, batch):
    """Peak traced bytes of two training steps (data, forward, backward, Adam)."""
    params = model.init_params(np.random.default_rng(0))
    opt, rng, be = Adam(params, lr=0.01), np.random.default_rng(1), model.be
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(2):
            x, t, _ = random_diagonal(batch, size, rng)
            xb, tb = be.asarray(x, model.dtype), be.asarray(t, model.dtype)
            y, cache = model.forward(params, xb)
            _, dy = mse(be, y, tb)
            _, grads = model.backward(dy, cache)
            opt.step(params, grads)
            del y, cache, dy, grads, xb, tb
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def four_directions(hidden, dtype):
    rnn = MultiDirectionalMDLSTM(1, hidden, 2, backend="numpy", dtype=dtype)
    return Model(rnn, Dense(rnn.out_features, 1, "sigmoid", backend="numpy", dtype=dtype), name="MD4")


CASES = [  # (model factory, size, batch)
    (lambda: build_model("MD_LSTM", hidden=16, backend="numpy", dtype="float32"), 8, 16),
    (lambda: build_model("MD_LSTM", hidden=8, backend="numpy", dtype="float64", ln=False), 16, 8),
    (lambda: build_model("MD_LSTM", hidden=32, backend="numpy", dtype="float32", ln="seed"), 12, 4),
    (lambda: build_model("HORIZONTAL_SD_LSTM", hidden=8, backend="numpy", dtype="float64"), 16, 8),
    (lambda: build_model("SNAKE_SD_LSTM", hidden=4, backend="numpy", dtype="float64"), 20, 2),
    (lambda: four_directions(8, "float32"), 10, 4),
]


@pytest.mark.parametrize("make, size, batch", CASES)
def test_estimate_bounds_the_measured_peak_within_a_factor_2_5(make, size, batch):
    model = make()
    peak = measured_peak(model, size, batch)
    estimate = estimate_model_bytes(model, (size, size), batch)
    assert peak <= estimate <= 2.5 * peak, (human(peak), human(estimate))


def test_a_run_that_cannot_fit_is_refused_in_one_line():
    model = build_model("MD_LSTM", hidden=16, backend="numpy", dtype="float32")
    need = estimate_model_bytes(model, (3000, 3000), 16)
    assert need > 100 * 2 ** 30                              # exact Python ints, no overflow
    avail, _ = available_bytes()
    if avail is None:
        pytest.skip("the available memory cannot be told here")
    with pytest.raises(MemoryError) as info:
        check_memory(need, what="MD_LSTM")
    msg = str(info.value)
    assert "\n" not in msg and human(need) in msg and "GiB" in msg
    check_memory(estimate_model_bytes(model, (8, 8), 16))  # the seed's run fits
