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


@pytest.mark.parametrize("make", [lambda p: Adam(p, lr=0.05),
                                  lambda p: SGD(p, lr=0.05, momentum=0.9)])
def test_state_dict_round_trip_continues_bit_for_bit(make):
    """A fresh optimiser given another's state_dict (as host copies) takes the very same steps."""
    rng = np.random.default_rng(0)
    p = {"a": rng.normal(size=(3, 2)).astype(np.float32), "b": rng.normal(size=4)}
    grads = [{k: rng.normal(size=v.shape).astype(v.dtype) for k, v in p.items()} for _ in range(6)]
    opt = make(p)
    for g in grads[:3]:
        opt.step(p, g)
    state = opt.state_dict()
    host = {**state, "slots": {s: {k: np.array(v) for k, v in arrs.items()}
                               for s, arrs in state["slots"].items()}}
    q = {k: v.copy() for k, v in p.items()}
    other = make(q)
    other.load_state_dict(host)
    assert other.t == 3
    for g in grads[3:]:
        opt.step(p, g)
        other.step(q, g)
    for k in p:
        np.testing.assert_array_equal(p[k], q[k])
        assert q[k].dtype == p[k].dtype


def test_load_state_dict_refuses_a_mismatch_and_changes_nothing():
    p = {"w": np.zeros(2)}
    opt = Adam(p, lr=0.01)
    opt.step(p, {"w": np.ones(2)})
    good = opt.state_dict()
    cases = [({**good, "kind": "SGD"}, "state of a Adam"),
             ({**good, "hyper": {**good["hyper"], "lr": 0.5}}, "lr = 0.01"),
             ({**good, "t": -1}, "step count"),
             ({**good, "slots": {"m": good["slots"]["m"]}}, "slots"),
             ({**good, "slots": {**good["slots"], "v": {"x": np.zeros(2)}}}, "keys"),
             ({**good, "slots": {**good["slots"], "v": {"w": np.zeros(3)}}}, "shape"),
             ({**good, "slots": {**good["slots"], "v": {"w": np.zeros(2, np.float32)}}}, "dtype"),
             ("junk", "expected a dict")]
    fresh = Adam({"w": np.zeros(2)}, lr=0.01)
    for state, words in cases:
        with pytest.raises(ValueError, match=words):
            fresh.load_state_dict(state)
        assert fresh.t == 0 and not fresh.m["w"].any()


def test_numpy_scalar_learning_rates_are_accepted():
    p = {"w": np.zeros(2)}
    assert Adam(p, lr=np.float32(0.5)).lr == 0.5
    assert SGD(p, lr=np.float64(0.25)).lr == 0.25
