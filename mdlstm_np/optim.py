"""Optimisers on parameter dicts: Adam (the seed's) and SGD with momentum.

Functional style: an optimiser holds only its own state (moments, step count); the caller owns
the parameters. ``opt.step(params, grads)`` computes each new array and assigns it back into the
dict, ``params[k] = params[k] − update``. No array is written in place, which keeps the code
array-API safe (some namespaces, e.g. JAX-like ones, forbid in-place writes) and means a shallow
copy of the dict taken before a step is a true snapshot of the old parameters.

Adam, as TensorFlow 1.x's ``AdamOptimizer`` computes it (the seed trains with it):

    t ← t + 1
    m ← β₁ m + (1 − β₁) g
    v ← β₂ v + (1 − β₂) g²
    α_t = α · √(1 − β₂ᵗ) / (1 − β₁ᵗ)          bias corrections folded into the step size
    θ ← θ − α_t · m / (√v + ε)               defaults α = 0.001, β₁ = 0.9, β₂ = 0.999, ε = 1e-8

(Kingma & Ba's Algorithm 1 divides by √v̂ + ε with v̂ = v / (1 − β₂ᵗ); TF's form above is the
paper's "efficient version" from Sec. 2 — the two differ only in where ε sits.)

SGD with momentum, as TF's ``MomentumOptimizer``:

    u ← μ u + g
    θ ← θ − α u                               μ = 0 is plain SGD

State for checkpoints: ``opt.state_dict()`` returns ``{"kind", "hyper", "t", "slots"}`` where
``slots`` maps a slot name ("m", "v" for Adam; "u" for SGD) to ``{param key: array}`` (the
optimiser's own arrays, on its device; a checkpoint copies them to the host).
``opt.load_state_dict(state)`` puts such a state back — host numpy or backend arrays — after
checking kind, hyper-parameters, keys, shapes and dtypes, so a resumed run takes bit for bit the
steps an uninterrupted one would.

Only array-API-standard operations (arithmetic, ``xp.sqrt``, ``xp.zeros_like``, ``xp.asarray``):
no numpy import.
"""

from __future__ import annotations

import math
import numbers


def _namespace(a):
    """The array namespace of ``a`` (numpy ≥ 2 and array-API-strict expose it; cupy arrays do
    not, so array-api-compat — installed with the cuda12 extra — supplies cupy's)."""
    ns = getattr(a, "__array_namespace__", None)
    if ns is not None:
        return ns()
    from array_api_compat import array_namespace

    return array_namespace(a)


def _zeros_like(a):
    """Zeros with the shape, dtype *and device* of ``a`` (``xp.zeros(shape)`` would land on the
    namespace's default device, which on a GPU or a strict test namespace may not be a's)."""
    return _namespace(a).zeros_like(a)


def _check_number(value, name, lo, hi, *, lo_open=False, hi_open=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name}: expected a number in {interval}, got {value!r}")
    return float(value)


def _check_grads(params, grads, keys):
    if not isinstance(params, dict) or not isinstance(grads, dict):
        raise TypeError(f"params, grads: expected dicts of arrays, got "
                        f"{type(params).__name__}, {type(grads).__name__}")
    if set(params) != keys or set(grads) != keys:
        raise ValueError(f"grads: expected the keys the optimiser was built with {sorted(keys)}, "
                         f"got params {sorted(params)}, grads {sorted(grads)}")
    for k in keys:
        if tuple(grads[k].shape) != tuple(params[k].shape):
            raise ValueError(f"grads[{k!r}]: expected shape {tuple(params[k].shape)}, got "
                             f"{tuple(grads[k].shape)}")


def _dtype_str(dtype) -> str:
    return str(dtype).rsplit(".", 1)[-1]          # "float32", also for a namespace's dtype


def _state_dict(opt, hyper: dict, slots: dict) -> dict:
    return {"kind": type(opt).__name__, "hyper": dict(hyper), "t": int(opt.t),
            "slots": {name: dict(arrays) for name, arrays in slots.items()}}


def _load_state_dict(opt, state, hyper: dict, slots: dict) -> dict:
    """Check ``state`` against ``opt`` and return ``{slot: {key: array}}`` on opt's device.

    Raises ValueError naming what differs (kind, a hyper-parameter, a key, a shape, a dtype);
    ``opt`` is left unchanged on error.
    """
    kind = type(opt).__name__
    if not isinstance(state, dict) or set(state) != {"kind", "hyper", "t", "slots"}:
        raise ValueError(f"state: expected a dict with keys hyper, kind, slots, t (from "
                         f"{kind}.state_dict()), got {state!r:.80}")
    if state["kind"] != kind:
        raise ValueError(f"state: expected the state of a {kind} optimiser, got "
                         f"{state['kind']!r}")
    for name, value in hyper.items():
        got = state["hyper"].get(name) if isinstance(state["hyper"], dict) else None
        if got != value:
            raise ValueError(f"state: expected {name} = {value!r} (this optimiser's), got {got!r}")
    t = state["t"]
    if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
        raise ValueError(f"state: expected a step count t >= 0, got {t!r}")
    got_slots = state["slots"]
    if not isinstance(got_slots, dict) or set(got_slots) != set(slots):
        raise ValueError(f"state: expected the slots {sorted(slots)}, got "
                         f"{sorted(got_slots) if isinstance(got_slots, dict) else got_slots!r}")
    out = {}
    for name, mine in slots.items():
        theirs = state["slots"][name]
        if not isinstance(theirs, dict) or set(theirs) != set(mine):
            raise ValueError(f"state: expected slot {name!r} to have the keys {sorted(mine)}, got "
                             f"{sorted(theirs) if isinstance(theirs, dict) else theirs!r}")
        out[name] = {}
        for k, ref in mine.items():
            a = theirs[k]
            if tuple(getattr(a, "shape", ())) != tuple(ref.shape):
                raise ValueError(f"state: expected {name}[{k!r}] of shape {tuple(ref.shape)}, got "
                                 f"{tuple(getattr(a, 'shape', ()))}")
            if _dtype_str(getattr(a, "dtype", None)) != _dtype_str(ref.dtype):
                raise ValueError(f"state: expected {name}[{k!r}] of dtype {ref.dtype}, got "
                                 f"{getattr(a, 'dtype', type(a).__name__)}")
            out[name][k] = _namespace(ref).asarray(a)   # host -> ref's device (no cast: same dtype)
    return out


class Adam:
    """Adam with TF's defaults (see the module docstring for the update).

    params : dict[str, array], the parameters to optimise (used for keys, shapes and dtypes).
    lr, beta1, beta2, eps : floats; α, β₁, β₂, ε.
    """

    def __init__(self, params: dict, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr = _check_number(lr, "lr", 0.0, math.inf, lo_open=True, hi_open=True)
        self.beta1 = _check_number(beta1, "beta1", 0.0, 1.0, hi_open=True)
        self.beta2 = _check_number(beta2, "beta2", 0.0, 1.0, hi_open=True)
        self.eps = _check_number(eps, "eps", 0.0, math.inf, hi_open=True)
        if not isinstance(params, dict) or not params:
            raise ValueError(f"params: expected a non-empty dict of arrays, got {params!r:.80}")
        self.keys = set(params)
        self.m = {k: _zeros_like(p) for k, p in params.items()}   # first moments, like θ
        self.v = {k: _zeros_like(p) for k, p in params.items()}   # second moments, like θ
        self.t = 0                                                 # steps taken

    def step(self, params: dict, grads: dict) -> dict:
        """One Adam step: replaces each ``params[k]`` with its updated array; returns ``params``.

        grads : dict with the same keys and shapes as ``params`` (∂loss/∂θ).
        """
        _check_grads(params, grads, self.keys)
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        lr_t = self.lr * math.sqrt(1.0 - b2 ** self.t) / (1.0 - b1 ** self.t)  # α_t (host float)
        for k in sorted(self.keys):
            g = grads[k]
            xp = _namespace(g)
            self.m[k] = b1 * self.m[k] + (1.0 - b1) * g                 # m ← β₁ m + (1 − β₁) g
            self.v[k] = b2 * self.v[k] + (1.0 - b2) * (g * g)           # v ← β₂ v + (1 − β₂) g²
            params[k] = params[k] - lr_t * self.m[k] / (xp.sqrt(self.v[k]) + self.eps)
        return params

    def _hyper(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def state_dict(self) -> dict:
        """{"kind": "Adam", "hyper": {lr, beta1, beta2, eps}, "t": steps taken,
        "slots": {"m": {key: array}, "v": {key: array}}} — the arrays are the optimiser's own
        (not copies; they are never written in place, so the dict stays a true snapshot)."""
        return _state_dict(self, self._hyper(), {"m": self.m, "v": self.v})

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (arrays may be host numpy; they move to this
        optimiser's device). Raises ValueError if kind, hyper-parameters, keys, shapes or
        dtypes differ; nothing changes then."""
        slots = _load_state_dict(self, state, self._hyper(), {"m": self.m, "v": self.v})
        self.m, self.v, self.t = slots["m"], slots["v"], int(state["t"])


class SGD:
    """SGD with (heavy-ball) momentum μ, as TF's MomentumOptimizer; μ = 0 is plain SGD.

    params : dict[str, array]; lr : α > 0; momentum : μ in [0, 1).
    """

    def __init__(self, params: dict, lr=0.01, momentum=0.0):
        self.lr = _check_number(lr, "lr", 0.0, math.inf, lo_open=True, hi_open=True)
        self.momentum = _check_number(momentum, "momentum", 0.0, 1.0, hi_open=True)
        if not isinstance(params, dict) or not params:
            raise ValueError(f"params: expected a non-empty dict of arrays, got {params!r:.80}")
        self.keys = set(params)
        self.u = {k: _zeros_like(p) for k, p in params.items()}   # velocity, like θ
        self.t = 0

    def step(self, params: dict, grads: dict) -> dict:
        """One step: ``u ← μ u + g; θ ← θ − α u`` for every key; returns ``params``."""
        _check_grads(params, grads, self.keys)
        self.t += 1
        for k in sorted(self.keys):
            self.u[k] = self.momentum * self.u[k] + grads[k]            # u ← μ u + g
            params[k] = params[k] - self.lr * self.u[k]                 # θ ← θ − α u
        return params

    def state_dict(self) -> dict:
        """{"kind": "SGD", "hyper": {lr, momentum}, "t": steps, "slots": {"u": {key: array}}}."""
        return _state_dict(self, {"lr": self.lr, "momentum": self.momentum}, {"u": self.u})

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`; ValueError (and no change) if anything differs."""
        slots = _load_state_dict(self, state, {"lr": self.lr, "momentum": self.momentum},
                                 {"u": self.u})
        self.u, self.t = slots["u"], int(state["t"])
