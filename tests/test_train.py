"""The training loop: reproducibility, logging, the NaN/inf guard, TSV round trip."""

import numpy as np
import pytest

from mdlstm_np.demo.models import build_model
from mdlstm_np.training.guard import TrainingDiverged
from mdlstm_np.demo.train import COLUMNS, read_tsv, train

SMALL = dict(steps=6, batch=2, size=4, lr=0.01, progress=False)


def small_model(name="MD_LSTM"):
    return build_model(name, hidden=3, backend="numpy", dtype="float64")


def test_same_seed_same_run_and_log_every(tmp_path):
    a = train(small_model(), seed=3, **SMALL)
    b = train(small_model(), seed=3, log_every=4, out_tsv=str(tmp_path / "b.tsv"), **SMALL)
    assert [r["steps"] for r in a.rows] == list(range(6))
    assert [r["steps"] for r in b.rows] == [0, 4, 5]              # every 4th and the last
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    for ra in a.rows:
        for rb in b.rows:
            if ra["steps"] == rb["steps"]:
                assert ra["overall_loss"] == rb["overall_loss"]
    back = read_tsv(str(tmp_path / "b.tsv"))
    assert [tuple(r) for r in back] == [COLUMNS] * 3
    assert [r["relevant_loss"] for r in back] == [r["relevant_loss"] for r in b.rows]
    c = train(small_model(), seed=4, **SMALL)
    assert c.rows[0]["overall_loss"] != a.rows[0]["overall_loss"]


def test_initial_params_are_a_snapshot():
    res = train(small_model(), seed=0, **SMALL)
    assert set(res.initial_params) == set(res.params)
    assert any(not np.array_equal(res.initial_params[k], res.params[k]) for k in res.params)


def test_nonfinite_gradient_stops_and_keeps_last_good_params(tmp_path):
    model = small_model("SNAKE_SD_LSTM")
    backward, seen = model.backward, []

    def poisoned(dy, cache):                     # the gradient of head.V turns NaN at step 3
        dx, grads = backward(dy, cache)
        seen.append({k: v.copy() for k, v in grads.items()})
        if len(seen) == 4:
            grads["head.V"] = grads["head.V"] * np.nan
        return dx, grads

    model.backward = poisoned
    ref = train(small_model("SNAKE_SD_LSTM"), seed=1, **{**SMALL, "steps": 3})
    tsv = tmp_path / "log.tsv"
    with pytest.raises(TrainingDiverged, match=r"gradient of 'head.V' is not finite .* step 3") \
            as info:
        train(model, seed=1, out_tsv=str(tsv), **SMALL)
    e = info.value
    assert e.step == 3 and e.name == "head.V" and len(e.rows) == 3
    for k in ref.params:                         # exactly the parameters after 3 good steps
        np.testing.assert_array_equal(e.params[k], ref.params[k])
    assert len(read_tsv(str(tsv))) == 3


@pytest.mark.parametrize("kwargs, words", [
    ({"steps": 0}, "steps: expected an integer >= 1, got 0"),
    ({"size": 2}, "size: expected an integer >= 3, got 2"),
    ({"lr": 0.0}, "lr: expected a finite number > 0"),
    ({"seed": -1}, "seed: expected an integer >= 0"),
])
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        train(small_model(), **{**SMALL, "seed": 0, **kwargs})
