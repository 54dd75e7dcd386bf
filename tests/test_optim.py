"""Adam and SGD against hand-computed first steps, and convergence on a quadratic."""

import math

import numpy as np
import pytest

from mdlstm_np.optim import SGD, Adam


def test_adam_first_two_steps_by_hand():
    p = {"w": np.array([1.0, -2.0])}
    g1, g2 = np.array([0.5, -1.0]), np.array([0.1, 0.3])
    opt = Adam(p, lr=0.1)
    opt.step(p, {"w": g1})
    # t=1: m = 0.1 g, v = 0.001 g², α_1 = 0.1·√0.001/0.1 → step = α_1·m/(√v+ε) ≈ 0.1·sign(g)
    m, v = 0.1 * g1, 0.001 * g1 ** 2
    a1 = 0.1 * math.sqrt(1 - 0.999) / (1 - 0.9)
    expected = np.array([1.0, -2.0]) - a1 * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(p["w"], expected, rtol=1e-12)
    np.testing.assert_allclose(p["w"], [0.9, -1.9], rtol=1e-6)   # Adam's first step: lr·sign(g)
    opt.step(p, {"w": g2})
    m = 0.9 * m + 0.1 * g2
    v = 0.999 * v + 0.001 * g2 ** 2
    a2 = 0.1 * math.sqrt(1 - 0.999 ** 2) / (1 - 0.9 ** 2)
    expected = expected - a2 * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(p["w"], expected, rtol=1e-12)


def test_adam_keeps_dtype_and_does_not_write_in_place():
    w = np.ones(3, dtype=np.float32)
    p = {"w": w}
    Adam(p, lr=0.01).step(p, {"w": np.ones(3, dtype=np.float32)})
    assert p["w"].dtype == np.float32
    assert np.all(w == 1.0)                     # the old array is a snapshot, untouched


def test_sgd_momentum_by_hand():
    p = {"w": np.array([1.0]), "b": np.array([[0.0, 1.0]])}
    opt = SGD(p, lr=0.5, momentum=0.9)
    g = {"w": np.array([2.0]), "b": np.array([[1.0, -1.0]])}
    opt.step(p, g)                               # u = g; θ -= 0.5 g
    np.testing.assert_allclose(p["w"], [0.0])
    np.testing.assert_allclose(p["b"], [[-0.5, 1.5]])
    opt.step(p, g)                               # u = 0.9 g + g = 1.9 g; θ -= 0.95 g
    np.testing.assert_allclose(p["w"], [-1.9])
    np.testing.assert_allclose(p["b"], [[-1.45, 2.45]])


@pytest.mark.parametrize("make", [lambda p: Adam(p, lr=0.05), lambda p: SGD(p, lr=0.05, momentum=0.9),
                                  lambda p: SGD(p, lr=0.1)])
def test_converges_on_a_quadratic(make):
    # L = ½ Σ d ⊙ (θ − θ*)², ill-conditioned diagonal, minimum at θ*
    target = np.array([3.0, -1.0, 0.5])
    d = np.array([1.0, 4.0, 0.5])
    p = {"theta": np.zeros(3)}
    opt = make(p)
    for _ in range(2000):
        opt.step(p, {"theta": d * (p["theta"] - target)})
    np.testing.assert_allclose(p["theta"], target, atol=1e-3)


def test_bad_arguments():
    p = {"w": np.zeros(2)}
    with pytest.raises(ValueError, match="lr: expected a number in"):
        Adam(p, lr=0)
    with pytest.raises(ValueError, match="beta1"):
        Adam(p, beta1=1.0)
    with pytest.raises(ValueError, match="momentum"):
        SGD(p, momentum=-0.1)
    with pytest.raises(ValueError, match="params: expected a non-empty dict"):
        Adam({})
    opt = Adam(p)
    with pytest.raises(ValueError, match="grads: expected the keys"):
        opt.step(p, {"v": np.zeros(2)})
    with pytest.raises(ValueError, match=r"grads\['w'\]: expected shape \(2,\)"):
        opt.step(p, {"w": np.zeros(3)})
