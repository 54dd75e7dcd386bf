"""The benchmark's workloads run on every size it times (not its timings: speed is measured by
``python -m benchmarks.bench``, never by a test)."""

import numpy as np

from benchmarks import bench
from mdlstm_np.backends import get_backend


def test_every_timed_size_has_a_workload_the_layer_accepts():
    """Fault: with the layer's default forget bias 1 Graves' plain cell overflows float32 from
    about 128×128 and the layer refuses it, so ``python -m benchmarks.bench`` (L, XL, the sweep
    to 256) and the GPU check stopped with NonFiniteError at L. The large sizes time the plain
    cell with forget bias −2 (bounded state); the small ones keep the layer's defaults."""
    be = get_backend("numpy")
    for side in (8, 32, 64, 128, 256):
        rnn = bench.make_model(be, "plain", 1, 4, "float32", side).rnn
        large = side >= bench.PLAIN_LARGE_SIDE
        assert rnn.forget_bias == (bench.PLAIN_LARGE_FORGET_BIAS if large else 1.0)
    fns, G = bench.workloads(get_backend("numba"), 256, 1, 4, 1, "float32", ("fwdbwd",))
    dx, grads = fns["fwdbwd"]()                     # raised NonFiniteError before the fix
    assert np.isfinite(np.asarray(dx)).all()
    assert all(np.isfinite(np.asarray(g)).all() for g in grads.values())
    assert G == 5 * 4


def test_the_plan_times_the_stable_cell_at_L_against_the_flop_floor():
    runs = bench.plan_runs(["L"], quick=False, cells=("MD_LSTM",))
    assert [(r[0], r[-1], r[5]) for r in runs] == [("L", "plain", ("fwd", "fwdbwd", "train")),
                                                   ("L", "stable", ("fwdbwd",))]
    row = dict(config="L", kind="fwdbwd", backend="numba", cell="stable", x_floor=4.5)
    assert ("L fwd+bwd / FLOP floor, stable", 4.5, 5.0, "x", True) in bench.targets([row])
    row["x_floor"] = 5.5
    assert ("L fwd+bwd / FLOP floor, stable", 5.5, 5.0, "x", False) in bench.targets([row])
