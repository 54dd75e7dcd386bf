"""mdlstm_np.keras: the engine's layers in Keras 3, on the torch and the JAX Keras backends
(TensorFlow where it is installed). Each backend runs in its own interpreter, since Keras reads
KERAS_BACKEND when it is imported: Sequential and functional models, model.fit on the seed's
random-diagonal task (relevant loss below 0.05), .keras files saved and loaded, the engine's
weight names, and the engine's own gradients."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = r'''
import json, sys
import numpy as np
import keras
from mdlstm_np import MDLSTM as EngineMDLSTM
from mdlstm_np.keras import MDLSTM, MultiDirectionalMDLSTM
from mdlstm_np.demo.tasks import random_diagonal

out = {"backend": keras.backend.backend()}
keras.utils.set_random_seed(0)
# the seed's MD_LSTM: an MD-LSTM, then a per-cell dense sigmoid
model = keras.Sequential([keras.Input((8, 8, 1)), MDLSTM(16, ln=True, seed=0),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
x, y, _ = random_diagonal(16 * 50, 8, np.random.default_rng(0))
model.fit(x.astype("float32"), y.astype("float32"), batch_size=16, epochs=6, verbose=0)
xt, yt, pt = random_diagonal(128, 8, np.random.default_rng(9))
pred = np.asarray(model.predict(xt.astype("float32"), batch_size=128, verbose=0))
b = np.arange(128)
out["relevant_loss"] = float(np.mean((pred[b, pt[:, 0], pt[:, 1], 0]
                                      - yt[b, pt[:, 0], pt[:, 1], 0]) ** 2))
out["weight_names"] = [w.name for w in model.layers[0].weights]
out["engine_names"] = list(EngineMDLSTM(1, 16, ln=True).param_shapes())
model.save(sys.argv[1])
again = keras.models.load_model(sys.argv[1])
out["reload_equal"] = bool(np.array_equal(
    np.asarray(again.predict(xt.astype("float32"), batch_size=128, verbose=0)), pred))
# functional, multi-directional, float64: the gradient is the engine's
keras.config.set_floatx("float64")
inp = keras.Input((5, 4, 2))
rnn = MultiDirectionalMDLSTM(3, combine="sum", seed=1, engine_backend="numpy", dtype="float64")
fn = keras.Model(inp, rnn(inp))
xs = np.random.default_rng(2).standard_normal((2, 5, 4, 2))
params = {k: keras.ops.convert_to_numpy(w) for k, w in rnn.engine_weights.items()}
ref, cache = rnn.engine.forward(params, xs)
out["functional_equal"] = bool(np.allclose(keras.ops.convert_to_numpy(fn(xs)), ref, atol=1e-12))
dx_ref, _ = rnn.engine.backward(np.ones_like(ref), cache)
if out["backend"] == "jax":
    import jax
    import jax.numpy as jnp
    dx = jax.grad(lambda v: rnn._jax_fn({k: jnp.asarray(p) for k, p in params.items()},
                                        v).sum())(jnp.asarray(xs))
else:
    import torch
    t = torch.tensor(xs, requires_grad=True)
    fn(t).sum().backward()
    dx = t.grad.numpy()
out["dx_equal"] = bool(np.allclose(np.asarray(dx), dx_ref, atol=1e-12))
out["config_round_trip"] = MDLSTM.from_config(MDLSTM(4, cell="stable").get_config()).units == 4
print("RESULT " + json.dumps(out))
'''


def _available(module):
    return importlib.util.find_spec(module) is not None


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
def test_keras_layers_on_each_backend(backend, tmp_path):
    if not _available("keras"):
        pytest.skip("mdlstm_np.keras needs the keras extra (pip install 'mdlstm_np[keras]')")
    if not _available(backend):
        pytest.skip(f"the {backend} Keras backend is not installed")
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(ROOT), JAX_ENABLE_X64="1")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "model.keras")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    import json

    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert out["backend"] == backend
    assert out["relevant_loss"] < 0.05, out
    assert out["weight_names"] == out["engine_names"], out
    assert out["reload_equal"] and out["functional_equal"] and out["dx_equal"], out
    assert out["config_round_trip"]


def test_keras_module_says_which_extra_it_needs():
    text = (ROOT / "mdlstm_np" / "keras.py").read_text(encoding="utf-8")
    assert 'pip install "mdlstm_np[keras]"' in text
    text = (ROOT / "mdlstm_np" / "jax.py").read_text(encoding="utf-8")
    assert 'pip install "mdlstm_np[jax]"' in text
