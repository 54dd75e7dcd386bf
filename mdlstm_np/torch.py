"""The engine's layers as PyTorch modules: hand-derived passes inside ``torch.autograd.Function``.

    from mdlstm_np.torch import MDLSTM, MultiDirectionalMDLSTM     # pip install "mdlstm_np[torch]"

Only this module imports torch; ``import mdlstm_np`` works without it.

How a call runs. ``module(x, sizes=None)`` with x (B, *S, C) -> out (B, *S, H') calls one
autograd Function (eager), or one custom operator ``mdlstm_np::engine_forward`` with its
registered autograd (under ``torch.compile``, which then traces the model around the layer and
calls the engine as one opaque op; its fake implementation gives the output's shape). Both
run the engine's own passes:

    forward:   p = {engine name: numpy/cupy view of each nn.Parameter}
               out, cache = layer.forward(p, view of x, sizes=sizes)     (cache kept on ctx)
    backward:  dx, grads = layer.backward(view of dout, cache)           (no recomputation)

Torch's autograd only chains these with the rest of the graph; nothing in the MD-LSTM is
differentiated by torch. Double backward is not supported: when a graph is being built
through the engine's backward (``create_graph=True``, e.g. a gradient penalty), backward
raises one RuntimeError, whatever the outer loss, instead of silently leaving out the
penalty's share of the gradients.

Like ``nn.LSTM``: ``copy.deepcopy``, ``pickle`` and ``torch.save(model)`` / ``torch.load`` keep
the module (its engine layers, which hold a backend module, are rebuilt from the settings);
``.double()``, ``.float()`` and ``.to(dtype)`` switch the engine's dtype with the parameters'
(float32 and float64; other dtypes are refused in one line); ``.to("cuda")`` / ``.cuda()`` run
the engine on cupy, and fail in one line naming the fix where cupy or the GPU is not usable.

Zero copies. CPU tensors cross as numpy views (``Tensor.numpy()`` on the detached tensor, and
``torch.from_numpy`` back); CUDA tensors cross as cupy arrays through DLPack, on torch's current
stream and device (written but not run here: the development machine has no GPU; see
``tests/test_torch.py::test_cuda_matches_cpu``). The engine's ``dtype`` policy is kept: no silent
casts, a float32 layer takes float32 tensors only. The output is the engine's array as it
comes, which may be a non-contiguous view ((B, *S, H') permuted from the engine's wavefront-
major store): use ``.reshape`` rather than ``.view`` on it, or ``.contiguous()`` for a copy.

Backends (``backend=``): "numpy" or "numba" run CPU tensors only, "cupy" CUDA tensors only,
"auto" (default) runs CPU tensors on numba when it is installed, else numpy (never cupy: a
CPU tensor is not moved), and CUDA tensors on cupy. An engine layer is built per backend (and
per CUDA device) the first time a tensor of that kind arrives; layers hold no parameters.

Parameters are ``nn.Parameter`` s in the engine's layout (shapes, gate order) and the engine's
names, except that "." (not allowed in a parameter name) becomes "_":

    engine "W", "U", "b", "w_f", "ln_gain"    ->  torch "W", "U", "b", "w_f", "ln_gain"
    engine "d0.W", "d3.b", "d1.w_o"           ->  torch "d0_W", "d3_b", "d1_w_o"

(``torch_name`` does the mapping; ``engine_params()`` / ``load_engine_params()`` speak engine
names.) Initial values are the engine's ``init_params``, drawn from a numpy Generator seeded
from torch's default generator, so ``torch.manual_seed`` fixes them.

The cache and in-place parameter updates. The engine's cache holds the very parameter arrays
forward used (views of the parameter tensors, no copy), and backward reads them (U, W, the
cell's own weights). An optimizer step between forward and backward would change them under
the cache. We do not copy: the Function saves the parameter tensors with ``save_for_backward``,
so torch's version counters catch any in-place change and backward raises torch's usual
"modified by an inplace operation" RuntimeError, exactly as for ``nn.Linear``. The ordinary
order (forward, backward, step) is unaffected, and no forward pays for a copy.

The cache (the layer's activations) lives as long as the graph: it is not freed after
backward, so that ``retain_graph=True`` (and ``gradcheck``) can run backward again.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import numpy as np

try:
    import torch
except ImportError as e:  # the one module of the package that needs torch
    raise ImportError('mdlstm_np.torch needs PyTorch, which is not installed: '
                      'pip install "mdlstm_np[torch]"') from e

from . import MDLSTM as EngineMDLSTM
from . import MultiDirectionalMDLSTM as EngineMultiDir
from . import get_backend
from .mdlstm import DEFAULT_DTYPE, DEFAULT_FORGET_BIAS
from .validate import check_dtype_name

__all__ = ["MDLSTM", "MultiDirectionalMDLSTM", "torch_name"]

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
BACKENDS = ("auto", "numpy", "numba", "cupy")
CPU_BACKENDS = ("numpy", "numba")


def torch_name(engine_name: str) -> str:
    """Engine parameter name -> ``nn.Parameter`` name: "d0.W" -> "d0_W" ("." is not allowed)."""
    return engine_name.replace(".", "_")


_cpu_auto_name = None


def _cpu_auto() -> str:
    """What "auto" means for a CPU tensor: "numba" when it is usable, else "numpy"."""
    global _cpu_auto_name
    if _cpu_auto_name is None:
        try:
            get_backend("numba")
            _cpu_auto_name = "numba"
        except ValueError:  # numba is not installed
            _cpu_auto_name = "numpy"
    return _cpu_auto_name


# --------------------------------------------------------------------------- tensor bridges
class CPUBridge:
    """CPU tensors <-> numpy arrays sharing their memory."""

    def to_engine(self, t):
        return t.detach().numpy()

    def from_engine(self, a):
        return torch.from_numpy(a)

    def scope(self, t):
        return contextlib.nullcontext()


class CUDABridge:
    """CUDA tensors <-> cupy arrays sharing their memory (DLPack), on torch's stream."""

    def __init__(self):
        import cupy

        self.cupy = cupy

    def to_engine(self, t):
        return self.cupy.from_dlpack(t.detach())

    def from_engine(self, a):
        return torch.from_dlpack(a)

    def scope(self, t):
        """Make t's device current for cupy and put cupy's work on torch's current stream,
        so engine kernels and torch ops are ordered without host synchronisation."""
        stack = contextlib.ExitStack()
        stack.enter_context(self.cupy.cuda.Device(t.device.index))
        stream = torch.cuda.current_stream(t.device)
        stack.enter_context(self.cupy.cuda.ExternalStream(stream.cuda_stream))
        return stack


# --------------------------------------------------------------------------- the operator
DOUBLE_BACKWARD = ("mdlstm_np.torch: double backward is not supported: a graph is being built "
                   "through the engine's hand-derived backward (create_graph=True, e.g. a gradient "
                   "penalty), which is not itself differentiable; compute the penalty without "
                   "create_graph through this layer, or use finite differences")


def refuse_double_backward():
    """Backward runs with grad mode on exactly when torch builds a graph of it
    (``create_graph=True``): then there is no correct answer to give, so raise. (While
    ``torch.compile`` traces the backward ahead of time, grad mode says nothing; a compiled
    graph refuses double backward itself.)"""
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        raise RuntimeError(DOUBLE_BACKWARD)


class EngineFunction(torch.autograd.Function):
    """out = layer(x; θ) with the engine's forward, and its backward as the vector-Jacobian
    product: the eager path (zero copies: the output is the engine's array). Inputs: engine
    layer, bridge, engine parameter names, host sizes (or None), x (B, *S, C), then the
    parameter tensors in the order of the names."""

    @staticmethod
    def forward(ctx, layer, bridge, names, sizes, x, *params):
        with bridge.scope(x):
            p = {k: bridge.to_engine(t) for k, t in zip(names, params)}  # views, no copies
            out, cache = layer.forward(p, bridge.to_engine(x), sizes=sizes)
            out_t = bridge.from_engine(out)  # (B, *S, H')
        ctx.layer, ctx.bridge, ctx.names, ctx.cache = layer, bridge, names, cache
        ctx.save_for_backward(*params)  # version counters guard the views the cache holds
        return out_t

    @staticmethod
    def backward(ctx, dout):
        refuse_double_backward()
        ctx.saved_tensors  # raises if a parameter was modified in place since forward
        with ctx.bridge.scope(dout):
            dx, grads = ctx.layer.backward(ctx.bridge.to_engine(dout.contiguous()), ctx.cache)
            dx_t = ctx.bridge.from_engine(dx) if ctx.needs_input_grad[4] else None
            dparams = [ctx.bridge.from_engine(grads[k]) if ctx.needs_input_grad[5 + j] else None
                       for j, k in enumerate(ctx.names)]
        return (None, None, None, None, dx_t, *dparams)


# The compiled path: the same passes as one opaque custom operator (torch.library), so that
# torch.compile traces the model around the layer and calls the engine as a black box.
# The engine layers the operator refers to by key (an engine layer holds configuration only),
# and the most recent forward caches, keyed by what the backward receives again: the layer, the
# input and parameter storages and their version counters. A cache that is no longer there (more
# than CACHE_SLOTS forward calls since) is recomputed by one more forward pass: slower, never
# wrong. Outputs depend only on the inputs, as torch.library requires.
_LAYERS: Dict[int, tuple] = {}
_CACHES: "OrderedDict[tuple, object]" = OrderedDict()
CACHE_SLOTS = 8


def _register_layer(layer, bridge) -> int:
    key = id(layer)
    _LAYERS[key] = (layer, bridge)
    return key


def _out_features(layer) -> int:
    return int(getattr(layer, "out_features", None) or layer.hidden)


def _cache_key(layer_key, x, params, sizes):
    return (layer_key, x.data_ptr(), x._version, tuple(x.shape),
            tuple((p.data_ptr(), p._version) for p in params),
            None if sizes is None else tuple(sizes.reshape(-1).tolist()))


def _forward(layer_key, x, params, sizes):
    layer, bridge = _LAYERS[layer_key]
    names = list(layer.param_shapes())
    host_sizes = None if sizes is None else sizes.detach().cpu().numpy()
    with bridge.scope(x):
        p = {k: bridge.to_engine(t) for k, t in zip(names, params)}  # views, no copies
        out, cache = layer.forward(p, bridge.to_engine(x), sizes=host_sizes)
        out_t = bridge.from_engine(out).contiguous()                  # (B, *S, H')
    key = _cache_key(layer_key, x, params, sizes)
    _CACHES[key] = cache
    _CACHES.move_to_end(key)
    while len(_CACHES) > CACHE_SLOTS:
        _CACHES.popitem(last=False)
    return out_t, key


@torch.library.custom_op("mdlstm_np::engine_forward", mutates_args=())
def engine_forward(x: torch.Tensor, params: List[torch.Tensor], layer_key: int,
                   sizes: Optional[torch.Tensor]) -> torch.Tensor:
    """out (B, *S, H') = the engine's forward of layer ``layer_key`` (cache kept aside)."""
    return _forward(layer_key, x, params, sizes)[0]


@engine_forward.register_fake
def _(x, params, layer_key, sizes):
    layer, _ = _LAYERS[layer_key]
    return x.new_empty((*x.shape[:-1], _out_features(layer)))


@torch.library.custom_op("mdlstm_np::engine_backward", mutates_args=())
def engine_backward(dout: torch.Tensor, x: torch.Tensor, params: List[torch.Tensor],
                    layer_key: int, sizes: Optional[torch.Tensor]
                    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """dx, [dθ] = the engine's backward, from forward's cache (recomputed if it is gone)."""
    layer, bridge = _LAYERS[layer_key]
    cache = _CACHES.get(_cache_key(layer_key, x, params, sizes))
    if cache is None:
        cache = _CACHES[_forward(layer_key, x, params, sizes)[1]]
    with bridge.scope(dout):
        dx, grads = layer.backward(bridge.to_engine(dout.contiguous()), cache)
        dx_t = bridge.from_engine(dx).contiguous()
        dparams = [bridge.from_engine(grads[k]).contiguous() for k in layer.param_shapes()]
    return dx_t, dparams


@engine_backward.register_fake
def _(dout, x, params, layer_key, sizes):
    return torch.empty_like(x), [torch.empty_like(p) for p in params]


def _setup_context(ctx, inputs, output):
    x, params, layer_key, sizes = inputs
    ctx.layer_key, ctx.sizes = layer_key, sizes
    ctx.save_for_backward(x, *params)  # version counters guard the cached views


def _backward(ctx, dout):
    refuse_double_backward()
    x, *params = ctx.saved_tensors  # raises if a parameter changed in place
    dx, dparams = engine_backward(dout, x, params, ctx.layer_key, ctx.sizes)
    return dx, list(dparams), None, None


engine_forward.register_autograd(_backward, setup_context=_setup_context)


# --------------------------------------------------------------------------- the modules
class EngineModule(torch.nn.Module):
    """What both modules share: parameters, backend choice, input checks (see module doc).

    Subclasses set ``engine_class`` and pass the engine constructor's keyword arguments.
    """

    engine_class = None

    def __init__(self, engine_args: tuple, engine_kwargs: dict, *, backend, dtype, rng):
        super().__init__()
        if not isinstance(backend, str) or backend.lower() not in BACKENDS:
            raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
        self.backend = backend.lower()
        self.dtype_name = check_dtype_name(dtype)
        self.torch_dtype = TORCH_DTYPES[self.dtype_name]
        self._engine_args, self._engine_kwargs = engine_args, dict(engine_kwargs)
        self._rebuild()  # engine layers: configuration, shapes, init; they hold no parameters
        self.names = {k: torch_name(k) for k in self.engine.param_shapes()}  # engine -> torch
        for k, shape in self.engine.param_shapes().items():
            self.register_parameter(self.names[k], torch.nn.Parameter(
                torch.empty(shape, dtype=self.torch_dtype)))
        self.reset_parameters(rng)

    def _build(self, backend_name):
        return self.engine_class(*self._engine_args, **self._engine_kwargs,
                                 backend=get_backend(backend_name), dtype=self.dtype_name)

    def _rebuild(self):
        """Fresh engine layers for the current dtype (they hold configuration only); the CPU
        one is built (and registered for the compiled path) now, not inside a traced call."""
        self.engine = self._build("numpy")
        self._engines = {}
        if self.backend != "cupy":
            self._engine_for(torch.device("cpu"))

    # ------------------------------------------------------------------ copies, dtype, device
    def __getstate__(self):
        """Pickle/deepcopy/torch.save: everything but the engine layers (they hold a backend
        module, which cannot be pickled); ``__setstate__`` rebuilds them."""
        state = dict(self.__dict__)
        state.pop("engine", None)
        state.pop("_engines", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._rebuild()

    def _apply(self, fn, recurse=True):
        """``.double()``, ``.float()``, ``.to(dtype/device)``, ``.cuda()``: the parameters move
        or convert as in any module, then the engine follows them (dtype) or is checked
        (device: CUDA tensors run on cupy). One-line errors name the fix."""
        try:
            out = super()._apply(fn, recurse)
        except (AssertionError, RuntimeError) as e:
            if "cuda" not in str(e).lower() and "CUDA" not in str(e):
                raise
            raise RuntimeError(
                f"{type(self).__name__}: cannot move to CUDA ({str(e).splitlines()[0]}); the "
                f"engine runs CUDA tensors on cupy: install a CUDA build of PyTorch and "
                f'pip install "mdlstm_np[cuda12]" (or [cuda13])') from None
        dtypes = {p.dtype for p in self.parameters(recurse=False)}
        if len(dtypes) == 1:
            dtype = dtypes.pop()
            name = {v: k for k, v in TORCH_DTYPES.items()}.get(dtype)
            if name is None:
                raise TypeError(f"{type(self).__name__}: dtype {dtype} is not supported: the "
                                f"engine runs in float32 or float64 (.float() or .double())")
            if name != self.dtype_name:
                self.dtype_name, self.torch_dtype = name, dtype
                self._rebuild()
        if any(p.device.type == "cuda" for p in self.parameters(recurse=False)):
            if self.backend in CPU_BACKENDS:
                raise ValueError(f"{type(self).__name__}: backend={self.backend!r} runs CPU "
                                 f"tensors only; build the module with backend='auto' or "
                                 f"'cupy' to run it on CUDA")
            from .backends.cupy import cupy_unavailable_reason

            reason = cupy_unavailable_reason()
            if reason is not None:
                raise RuntimeError(f"{type(self).__name__}: the engine runs CUDA tensors on "
                                   f"cupy, which is not usable here: {reason}")
        return out

    # ------------------------------------------------------------------ parameters
    def reset_parameters(self, rng=None):
        """Draw fresh parameters with the engine's ``init_params``.

        rng : numpy.random.Generator, or None: one seeded from torch's default generator.
        """
        if rng is None:
            rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,)).item()))
        self.load_engine_params(self.engine.init_params(rng))

    def engine_params(self) -> Dict[str, torch.nn.Parameter]:
        """{engine name: nn.Parameter}, e.g. {"d0.W": self.d0_W, ...}."""
        return {k: getattr(self, t) for k, t in self.names.items()}

    @torch.no_grad()
    def load_engine_params(self, params: dict):
        """Copy a parameter dict with engine names (numpy arrays or tensors) into the module.

        Raises ValueError on missing/unexpected keys or a wrong shape (values are cast to the
        module's dtype and device: this is a load, not a forward pass).
        """
        missing = sorted(set(self.names) - set(params))
        extra = sorted(set(params) - set(self.names))
        if missing or extra:
            raise ValueError(f"params: expected keys {sorted(self.names)}, missing {missing}, "
                             f"unexpected {extra}")
        for k, p in self.engine_params().items():
            v = params[k]
            v = v if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v))
            if tuple(v.shape) != tuple(p.shape):
                raise ValueError(f"params[{k!r}]: expected shape {tuple(p.shape)}, got "
                                 f"{tuple(v.shape)}")
            p.copy_(v)

    # ------------------------------------------------------------------ forward
    def _engine_for(self, device):
        """(engine layer, bridge) for tensors on ``device``; ValueError when the backend
        cannot run there."""
        if device.type == "cpu":
            if self.backend == "cupy":
                raise ValueError(f"x: expected a CUDA tensor (backend='cupy'), got a tensor on "
                                 f"{device}; use backend='auto' or move the module to CUDA")
            name, key = (self.backend if self.backend != "auto" else _cpu_auto()), None
        elif device.type == "cuda":
            if self.backend in CPU_BACKENDS:
                raise ValueError(f"x: expected a CPU tensor (backend={self.backend!r}), got a "
                                 f"tensor on {device}; use backend='cupy' or 'auto'")
            name, key = "cupy", device.index
        else:
            raise ValueError(f"x: expected a CPU or CUDA tensor, got a tensor on {device}")
        if (name, key) not in self._engines:
            if name == "cupy":
                get_backend("cupy")  # ValueError saying why, if cupy or the GPU is not usable
                bridge = CUDABridge()
                with bridge.scope(torch.empty(0, device=device)):
                    layer = self._build(name)
            else:  # the numpy engine is ``self.engine`` itself
                layer = self.engine if name == "numpy" else self._build(name)
                bridge = CPUBridge()
            self._engines[(name, key)] = (layer, bridge, _register_layer(layer, bridge))
        return self._engines[(name, key)]

    def _check_input(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.dtype != self.torch_dtype:
            raise TypeError(f"x: expected dtype {self.torch_dtype} (the layer's dtype; no silent "
                            f"casts), got {x.dtype}")
        for k, p in self.engine_params().items():
            if p.dtype != self.torch_dtype:
                raise TypeError(f"{self.names[k]}: expected dtype {self.torch_dtype} (the "
                                f"layer's dtype; convert the whole module with .float() or "
                                f".double()), got {p.dtype}")
            if p.device != x.device:
                raise ValueError(f"x: expected a tensor on {p.device} (where the layer's "
                                 f"parameters are), got a tensor on {x.device}")

    def forward(self, x, *, sizes=None):
        """x (B, S_1..S_n, C) -> out (B, S_1..S_n, H') of the layer's dtype, on x's device.

        sizes : (B, n) ints (tensor, array or list), optional: sample b occupies the box
            [0, sizes[b, d]) at the origin corner; padding gets zero output and gradient.
        Raises TypeError (not a tensor, wrong dtype) and ValueError (wrong shape, device,
        sizes, non-finite values) naming the argument.
        """
        self._check_input(x)
        layer, bridge, op_key = self._engine_for(x.device)
        if isinstance(sizes, torch.Tensor):
            sizes = sizes.detach().cpu().numpy()  # the engine checks sizes on the host
        names = list(layer.param_shapes())
        params = [getattr(self, self.names[k]) for k in names]
        if not torch.compiler.is_compiling():  # eager: zero copies
            return EngineFunction.apply(layer, bridge, names, None if sizes is None
                                        else np.asarray(sizes), x, *params)
        size_t = None if sizes is None else torch.as_tensor(np.asarray(sizes, dtype=np.int64))
        return engine_forward(x, params, op_key, size_t)

    def extra_repr(self) -> str:
        kw = ", ".join(f"{k}={v!r}" for k, v in self._engine_kwargs.items())
        args = ", ".join(str(a) for a in self._engine_args)
        return f"{args}, {kw}, backend={self.backend!r}, dtype={self.dtype_name!r}"


class MDLSTM(EngineModule):
    """``mdlstm_np.MDLSTM`` as a torch module: (B, *S, C) -> (B, *S, H).

    Arguments as for the engine's layer (in_channels, hidden, ndim, cell, peepholes, ln,
    forget_bias, dtype; ``backend`` see the module doc), plus ``rng``: a numpy Generator for
    the initial parameters (default: seeded from torch's generator). Parameters: the engine's
    ``W`` (C, G), ``U`` (n·H, G), ``b`` (G,) and the cell's own, under the engine's names.
    """

    engine_class = EngineMDLSTM

    def __init__(self, in_channels, hidden, ndim=2, *, cell=None, peepholes=False, ln=False,
                 forget_bias=DEFAULT_FORGET_BIAS, backend="auto", dtype=DEFAULT_DTYPE, rng=None):
        super().__init__((in_channels, hidden, ndim),
                         dict(cell=cell, peepholes=peepholes, ln=ln, forget_bias=forget_bias),
                         backend=backend, dtype=dtype, rng=rng)
        self.in_channels, self.hidden, self.ndim = in_channels, hidden, ndim
        self.out_features = hidden


class MultiDirectionalMDLSTM(EngineModule):
    """``mdlstm_np.MultiDirectionalMDLSTM`` as a torch module: (B, *S, C) -> (B, *S, D·H)
    (combine="concat") or (B, *S, H) (combine="sum").

    Arguments as for the engine's layer (plus ``backend``, ``rng`` as for :class:`MDLSTM`).
    Parameters: engine "d{k}.W" etc. registered as "d{k}_W" etc. (see ``torch_name``).
    """

    engine_class = EngineMultiDir

    def __init__(self, in_channels, hidden, ndim=2, *, combine="concat", directions="all",
                 cell=None, peepholes=False, ln=False, forget_bias=DEFAULT_FORGET_BIAS,
                 backend="auto", dtype=DEFAULT_DTYPE, rng=None):
        super().__init__((in_channels, hidden, ndim),
                         dict(combine=combine, directions=directions, cell=cell,
                              peepholes=peepholes, ln=ln, forget_bias=forget_bias),
                         backend=backend, dtype=dtype, rng=rng)
        self.in_channels, self.hidden, self.ndim = in_channels, hidden, ndim
        self.out_features = self.engine.out_features
