"""mdlstm_np.jax: an engine layer as a JAX function (jax.custom_vjp around the engine's own
forward and backward, called through jax.pure_callback): jit, grad, check_grads, and equality
with the engine to rounding in float64."""

import importlib.util

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="mdlstm_np.jax needs the jax extra "
                                        "(pip install 'mdlstm_np[jax]')")
import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

from mdlstm_np import HorizontalSDLSTM, MDLSTM, MultiDirectionalMDLSTM, SnakeSDLSTM  # noqa: E402
from mdlstm_np.jax import as_jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="needs numba (the fast extra)"))]
LAYERS = {
    "mdlstm": lambda be: MDLSTM(2, 3, backend=be, dtype="float64"),
    "graves": lambda be: MDLSTM(2, 3, cell="graves", backend=be, dtype="float64"),
    "multidir": lambda be: MultiDirectionalMDLSTM(2, 2, backend=be, dtype="float64"),
    "horizontal": lambda be: HorizontalSDLSTM(2, 3, backend=be, dtype="float64"),
    "snake": lambda be: SnakeSDLSTM(2, 3, backend=be, dtype="float64"),
}


def _case(kind, backend, seed=0):
    layer = LAYERS[kind](backend)
    params = layer.init_params(np.random.default_rng(seed))
    x = np.random.default_rng(seed + 1).standard_normal((2, 3, 4, 2))
    return layer, params, x, {k: jnp.asarray(v) for k, v in params.items()}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_forward_and_gradients_equal_the_engine(kind, backend):
    layer, params, x, jp = _case(kind, backend)
    f = as_jax(layer)
    ref, cache = layer.forward(params, x)
    dout = np.random.default_rng(7).standard_normal(ref.shape)
    dx, grads = layer.backward(dout, cache)
    out, vjp = jax.vjp(lambda p, xx: f(p, xx), jp, jnp.asarray(x))
    gp, gx = vjp(jnp.asarray(dout))
    assert np.abs(np.asarray(out) - ref).max() <= 1e-12
    assert np.abs(np.asarray(gx) - dx).max() <= 1e-12
    for k in grads:
        assert np.abs(np.asarray(gp[k]) - grads[k]).max() <= 1e-12, k


@pytest.mark.parametrize("kind", ["mdlstm", "multidir", "snake"])
def test_check_grads_against_finite_differences(kind):
    _, _, x, jp = _case(kind, "numpy")
    f = as_jax(LAYERS[kind]("numpy"))
    check_grads(lambda p, xx: f(p, xx), (jp, jnp.asarray(x)), order=1, modes=["rev"])


def test_jit_and_grad_with_sizes():
    layer, params, x, jp = _case("mdlstm", "numpy")
    f = as_jax(layer)
    sizes = np.array([[3, 4], [2, 3]])
    loss = jax.jit(lambda p, xx: (f(p, xx, sizes=sizes) ** 2).sum())
    g = jax.jit(jax.grad(lambda p, xx: (f(p, xx, sizes=sizes) ** 2).sum()))(jp, jnp.asarray(x))
    out, cache = layer.forward(params, x, sizes=sizes)
    _, grads = layer.backward(2 * out, cache)
    assert float(loss(jp, jnp.asarray(x))) == pytest.approx(float((out ** 2).sum()), rel=1e-12)
    for k in grads:
        assert np.abs(np.asarray(g[k]) - grads[k]).max() <= 1e-12, k


def test_bad_inputs_name_the_argument():
    layer, _, x, jp = _case("mdlstm", "numpy")
    f = as_jax(layer)
    with pytest.raises(TypeError, match="x: expected dtype float64"):
        f(jp, jnp.asarray(x, dtype=jnp.float32))
    with pytest.raises(ValueError, match="params: expected a dict with keys"):
        f({"W": jp["W"]}, jnp.asarray(x))
    with pytest.raises(TypeError, match="sizes: expected a concrete host array"):
        jax.jit(lambda p, xx, s: f(p, xx, sizes=s))(jp, jnp.asarray(x), jnp.array([[3, 4]] * 2))
