"""No silent NaN (issue 9): a non-finite state or gradient raises NonFiniteError, naming the
layer, the cell, the first wavefront where it happened and what to do.

The minimal case. ``MDLSTM(1, 1, ndim=2, cell="graves")`` with W = U = 0 and
b = [i 0 | f_1 1 | f_2 1 | o 0 | g 20] on a zero input: i = o = ½, f_1 = f_2 = σ(1) = 0.731,
g = 1, so c(y, x) = ½ + 0.731 (c(y−1, x) + c(y, x−1)) grows like (2·0.731)^s along the
diagonal. On a 121×121 grid (wavefronts 0..240) float32 overflows on wavefront 238; float64
gives ∂L/∂b = [11.021, 7.448, 7.448, 3656.927, 0] for dout = 1 (the numbers of issue 9).
Before the check, float32 returned ∂L/∂b = NaN everywhere without a word: h = o ⊙ tanh(inf)
= ½ hides the overflow in the forward output.
"""

import numpy as np
import pytest

from mdlstm_np import MDLSTM, MultiDirectionalMDLSTM
from mdlstm_np.backends.base import Backend
from mdlstm_np.validate import NonFiniteError
from mdlstm_np.backends import numba_available

try:
    import numba  # noqa: F401
    BACKENDS = ["numpy", "numba"]
except ImportError:
    BACKENDS = ["numpy"]


def minimal_case(side, dtype, backend="numpy", **kw):
    layer = MDLSTM(1, 1, ndim=2, cell="graves", dtype=dtype, backend=backend, **kw)
    p = {k: np.zeros_like(v) for k, v in layer.init_params(np.random.default_rng(0)).items()}
    p["b"][:] = np.array([0, 1, 1, 0, 20], dtype=dtype)
    return layer, p, np.zeros((1, side, side, 1), dtype=dtype)


def test_minimal_case_float64_gives_the_right_gradient():
    layer, p, x = minimal_case(121, "float64")
    out, cache = layer.forward(p, x)
    _, grads = layer.backward(np.ones_like(out), cache)
    np.testing.assert_allclose(grads["b"], [11.021, 7.448, 7.448, 3656.927, 0.0],
                               rtol=0, atol=5e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_minimal_case_float32_raises_naming_layer_cell_wavefront_and_fixes(backend):
    layer, p, x = minimal_case(121, "float32", backend)
    with pytest.raises(NonFiniteError) as info:
        layer.forward(p, x)
    msg = str(info.value)
    for words in ("MDLSTM(in_channels=1, hidden=1, ndim=2, cell='graves'", "forward pass",
                  "non-finite cell state c", "first on wavefront 238 of 0..240",
                  "'graves' cell in float32", "cell='stable'", "ln=True", "dtype='float64'",
                  "smaller forget_bias (this layer: 1.0)"):
        assert words in msg, (words, msg)
    assert isinstance(info.value, FloatingPointError)


def test_minimal_case_first_bad_wavefront_moves_with_the_grid():
    """Side 119 (last wavefront 236) is finite; side 120 overflows on its last wavefront,
    238, in c only (its h and, for dout = 1, even ∂L/∂b look finite: the check sees c)."""
    layer, p, x = minimal_case(119, "float32")
    out, cache = layer.forward(p, x)
    assert np.isfinite(np.asarray(cache.sweep_cache.c)).all()
    layer, p, x = minimal_case(120, "float32")
    with pytest.raises(NonFiniteError, match=r"wavefront 238 of 0\.\.238 \(grid cell \(119, 119\)"):
        layer.forward(p, x)


def test_check_finite_false_is_the_old_silent_behaviour():
    layer, p, x = minimal_case(121, "float32", check_finite=False)
    with np.errstate(over="ignore", invalid="ignore"):
        out, cache = layer.forward(p, x)
        _, grads = layer.backward(np.ones_like(out), cache)
    assert np.isfinite(out).all() and np.isnan(grads["b"]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_nonfinite_gradient_from_a_finite_forward_raises(backend):
    """dout at float32's largest value: the forward is fine, the weight-gradient sums over the
    grid overflow. The error names the gradients and the cell, once, after the sweep."""
    layer = MDLSTM(2, 3, ndim=2, cell="graves", dtype="float32", backend=backend)
    p = layer.init_params(np.random.default_rng(0))
    x = np.random.default_rng(1).random((2, 6, 5, 2), dtype=np.float32)
    out, cache = layer.forward(p, x)
    dout = np.full_like(out, np.finfo(np.float32).max)
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(NonFiniteError) as info:
        layer.backward(dout, cache)
    msg = str(info.value)
    assert "backward pass produced non-finite gradients" in msg and "'graves' cell" in msg
    assert "from a finite forward pass" in msg and "What to do" in msg
    assert "W" in msg.split("gradients (NaN or inf) of ")[1]


def test_seed_layer_norm_backward_names_the_first_wavefront_of_the_backward_sweep():
    """The seed's LN cell at zero input: finite forward, gradient ×316² per step backward."""
    layer = MDLSTM(1, 16, 2, ln="seed", dtype="float32")
    p = layer.init_params(np.random.default_rng(0))
    out, cache = layer.forward(p, np.zeros((2, 8, 8, 1), dtype=np.float32))
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    with np.errstate(all="ignore"), pytest.raises(NonFiniteError) as info:
        layer.backward(dout / dout.size, cache)
    msg = str(info.value)
    assert "'ln_seed' cell" in msg and "runs from wavefront 14 down to 0" in msg
    assert "ln=True instead of ln='seed'" in msg and "forget_bias" not in msg


def test_multidirectional_names_the_direction():
    layer = MultiDirectionalMDLSTM(1, 1, ndim=2, cell="graves", forget_bias=1.0)
    p = {k: np.zeros_like(v) for k, v in layer.init_params(np.random.default_rng(0)).items()}
    for k in layer.codes:
        p[f"d{k}.b"][:] = np.array([0, 1, 1, 0, 20], dtype=np.float32)
    with pytest.raises(NonFiniteError, match=r"MultiDirectionalMDLSTM, direction d0 .*"
                                             r"wavefront 238"):
        layer.forward(p, np.zeros((1, 121, 121, 1), dtype=np.float32))


class CountingBackend(Backend):
    """numpy, counting host synchronisations (``all_finite``)."""

    def __init__(self):
        super().__init__()
        self.syncs = 0

    def all_finite(self, a):
        self.syncs += 1
        return super().all_finite(a)


@pytest.mark.parametrize("side", [3, 17])
def test_the_check_is_one_probe_per_pass_whatever_the_grid(side):
    """Forward: x and each parameter are checked once on entry, then ONE probe after the sweep
    (no synchronisation per wavefront: the count does not grow with the grid). Backward: one."""
    be = CountingBackend()
    layer = MDLSTM(2, 3, ndim=2, backend=be)
    p = layer.init_params(np.random.default_rng(0))
    x = np.random.default_rng(1).random((1, side, side, 2), dtype=np.float32)
    out, cache = layer.forward(p, x)
    assert be.syncs == 1 + len(p) + 1
    be.syncs = 0
    layer.backward(np.ones_like(out), cache)
    assert be.syncs == 1


def test_a_weight_gradient_that_overflows_while_dx_stays_finite_is_caught():
    """Fault: the backward check looked only at dx. With dout = 1e36 on a 32×32 grid (float32)
    the sums over the grid dW and db overflow while every dx stays near 2e35."""
    layer = MDLSTM(1, 2, ndim=2)
    params = layer.init_params(np.random.default_rng(0))
    out, cache = layer.forward(params, np.ones((1, 32, 32, 1), np.float32))
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(NonFiniteError, match=r"non-finite gradients \(NaN or inf\) of W, b"):
            layer.backward(np.full(out.shape, 1e36, np.float32), cache)


def test_a_nan_in_dout_is_reported_as_bad_input_not_as_an_unstable_cell():
    layer = MDLSTM(1, 3, ndim=2)
    params = layer.init_params(np.random.default_rng(0))
    out, cache = layer.forward(params, np.ones((2, 4, 4, 1), np.float32))
    dout = np.ones(out.shape, np.float32)
    dout[1, 2, 3, 0] = np.nan
    with pytest.raises(NonFiniteError) as e:
        layer.backward(dout, cache)
    assert str(e.value).startswith("dout: expected finite values")
    assert "What to do" not in str(e.value) and "stable cell" not in str(e.value)


@pytest.mark.parametrize("backend", ["numpy"] + (["numba"] if numba_available() else []))
def test_a_weight_gradient_that_overflows_while_dx_is_finite_is_caught(backend):
    """Fault: the backward check looked only at dx. Inputs near float32's largest value with
    tiny input weights keep z ~ 1 (a finite forward, unsaturated gates): dx = dz Wᵀ stays
    tiny, but dW = Σ_cells xᵀ dz overflows. The guard names W and the grid sums."""
    layer = MDLSTM(1, 2, backend=backend)
    params = layer.init_params(np.random.default_rng(0))
    params["W"] = (params["W"] * np.float32(2e-38)).astype(np.float32)
    x = np.full((1, 8, 8, 1), 1e38, np.float32)
    raw = MDLSTM(1, 2, backend=backend, check_finite=False)
    h, cache = raw.forward(params, x)
    with np.errstate(over="ignore"):
        dx, grads = raw.backward(np.ones_like(h), cache)
    assert np.isfinite(dx).all() and not np.isfinite(grads["W"]).all()   # the case itself
    h, cache = layer.forward(params, x)
    with np.errstate(over="ignore"), pytest.raises(NonFiniteError, match=r"gradients .* of W"):
        layer.backward(np.ones_like(h), cache)
