"""The multi-dimensional LSTM layer: one scan of an n-D grid from its origin corner.

Equations (Graves, Fernández & Schmidhuber 2007, Sec. 3; Graves' cell in ``cells/graves.py``,
the other cells in ``mdlstm_np/cells``). At cell p of an n-D grid, with predecessors p⁻_d
(zero — or the given initial state — outside the grid):

    1.  z(p) = x(p) W + b + Σ_d h(p⁻_d) U_d              W (C, G), U_d (H, G), b (G,)
    2-4.     (h(p), c(p)) = cell(z(p), c(p⁻_1), …, c(p⁻_n))

Shapes: x (B, S_1, …, S_n, C) -> h (B, S_1, …, S_n, H). The n recurrent matrices are stored
stacked, U = [U_1; …; U_n] of shape (n·H, G), so step 1's recurrent part is one matmul of the
concatenated predecessor states [h(p⁻_1) | … | h(p⁻_n)] (k·B, n·H) with U.

What the layer does around the sweep (``sweep.py``: steps 1b-5 and their mirror):

    0.  cells in wavefront order (``grid.py``): x (B, *S, C) -> x_w (N, B, C)
    1a. zx = x W + b for *all* cells: one (N·B, C)·(C, G) matmul before the sweep
        sweep.forward: 1b, 2-4, 5 per wavefront          (the backend's fast sweep, or the
        sweep.backward: 1b'(pull), 5', 4'-2', 1b'(share) per wavefront      reference sweep; same contract)
    1a'. dW = x_wᵀ dZ      db = Σ dZ      dU = [h(p⁻_1) | … | h(p⁻_n)]ᵀ dZ      dx = dZ Wᵀ
         whole-grid matmuls after the sweep (unless the sweep fused them: FusedWeightGrads)
    0'. back to raster order: (N, B, ·) -> (B, *S, ·)

Defaults: cell "stable", forget_bias 1.0, dtype float32 — finite by construction
--------------------------------------------------------------------------------
A fresh layer built with defaults gives finite outputs and gradients on float32 input in
[0, 1) of any size up to 1024×1024 (``tests/test_stability.py``,
``test_defaults_are_finite_*``). The reasons, cell by cell:

* Graves' cell adds its n predecessors' states, c(p) = i⊙g + Σ_d f_d⊙c(p⁻_d): with forget
  gates f the state of wavefront s grows like (n·f)^s, a binomial path count. Measured with
  a fresh ``MDLSTM(3, 8, ndim=2, cell="graves")`` on a [0, 1) image, float32 (issue 9):
  NaN gradients at 320×320, NaN outputs at 1024×1024, and with forget_bias 1.0 NaN
  gradients from 128×128; the minimal case (W = U = 0, b_f = 1, i = o = ½, g = 1) leaves
  float32 on a 121×121 grid. No default of Graves' cell is safe at these sizes.
* The stable cell (Leifert et al. 2016, ``cells/stable.py``) mixes the predecessors
  convexly, c(p) = i⊙g + f⊙Σ_d λ̂_d⊙c(p⁻_d) with Σ_d λ̂_d = 1, so |c| ≤ s + 1 on wavefront
  s for *any* weights and input (≤ 2047 on 1024×1024), and ≤ 1/(1 − f_max) while the forget
  gates stay below f_max. Backward, the Jacobian of the carried state sums to f ≤ 1 over
  the predecessors, so the gradient carried through c is a sub-probability random walk:
  each dout injection reaches every cell with total weight ≤ 1 (along the carried state
  alone, |∂L/∂c| ≤ Σ |dout| over the grid). The recurrent h-path through U is an ordinary
  RNN Jacobian, bounded by the weights, not by the cell; the measured numbers below show
  it small at the default initialisation and not growing with the grid.
* forget_bias 1.0: f = σ(1) = 0.73 at initialisation, a memory of ~1/(1 − f) ≈ 3.7 cells
  along the mixture (TensorFlow's and Jozefowicz et al. 2015's recommendation for LSTMs;
  0.0 gives f = ½, a memory of 2 cells). For the stable cell it only moves the bound
  1/(1 − f) (3.7 against 2.0), never past s + 1; for Graves' cell it is what breaks
  float32 at 128×128.
* float32: the cost of every backend's hot loop and of GPUs is half that of float64, and
  the state bound above makes float64's range unnecessary.

Measured (fresh ``MDLSTM(3, 8, ndim=2)``, [0, 1) float32 image, dout = 1, numpy):

    grid         forget_bias   max |c|   max |out|   max |dx|   max |db|   max |db| / N
    256×256      0.0           0.44      0.21        0.51       3.9e4      0.60
    1024×1024    0.0           0.47      0.22        0.52       6.3e5      0.60
    128×128      1.0           0.65      0.30        0.94       2.0e4      1.19
    256×256      1.0           0.65      0.29        0.93       7.9e4      1.21
    1024×1024    1.0           0.70      0.31        0.93       1.3e6      1.22
    512×512, 4 directions 1.0  1.32      0.41        2.06       4.0e5      1.5

|c| stays far below its bound, dx does not grow with the grid, and the parameter
gradients are sums of N bounded terms (~1.2 per cell): 10³² below float32's range.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .backends import get_backend
from .cells import make_cell
from .nonfinite import check_grads_finite, check_state_finite
from .sweep import DevicePlan, device_plan, sizes_mask
from .validate import (DEFAULT_DTYPE, check_array, check_bool, check_dtype_name,
                       check_finite_number, check_grid_input, check_params, check_positive_int,
                       check_state)

DEFAULT_CELL = "stable"       # see "Defaults" in the module docstring
DEFAULT_FORGET_BIAS = 1.0


class MDLSTMCache(NamedTuple):
    """Everything ``MDLSTM.backward`` needs (named, never unpacked by position)."""

    plan: DevicePlan
    x_w: Any            # (N, B, C) the input in wavefront order
    params: dict        # a snapshot: the dict of the arrays forward used (see ``forward``)
    sweep: Any          # the object that ran the sweep (reference or a backend's fast one)
    sweep_cache: Any    # what that sweep's forward returned (fields h, c at least)
    batch: int
    has_state: bool
    mask: Any           # (N, B, 1) 1 inside each sample's box, 0 outside; None: no masking
    layer: tuple        # the signature of the layer that made it (``MDLSTM.signature``)

    @property
    def hot(self) -> bool:
        """True when a backend's fast sweep (not the reference) ran."""
        return self.sweep.name != "reference"


class MDLSTM:
    """Multi-dimensional LSTM layer over n-D grids (one scan direction, from the origin corner).

    Parameters
    ----------
    in_channels : C, channels of the input's last axis.
    hidden : H, width of the hidden and cell state.
    ndim : n ≥ 1, number of grid axes (1: an ordinary LSTM over sequences).
    cell : cell variant, ``"stable"`` (the default, see "Defaults" in the module docstring), ``"graves"``, ``"leakylp"``,
        or a cell object. None (the default) means "stable", or "graves" when ``ln`` or
        ``peepholes`` ask for a variant only Graves' cell has.
    peepholes : Graves' peephole connections (graves cell only); True or False.
    ln : layer-normalised cell: False, True (NaN-free formulation) or "seed" (the seed's).
    forget_bias : initial value of the forget-gate biases, a finite real number (TensorFlow's
        LSTMCell adds a constant 1.0 to z_f; starting b_f at 1.0 gives identical training).
    backend : ``"numpy"``, ``"numba"``, ``"cupy"``, ``"auto"`` or a Backend.
    dtype : ``"float32"`` (default) or ``"float64"``; inputs and parameters must match (no
        silent casts).
    check_finite : True (default): ``forward`` raises :class:`NonFiniteError` when the sweep
        produced a NaN or inf state, ``backward`` when a gradient is NaN or inf (one reduction
        per pass, after the sweep; ``nonfinite.py``). False only to study an overflow.

    Raises TypeError/ValueError naming the argument for a wrong one (a string or NaN
    ``forget_bias``, a non-bool ``peepholes``, an unknown cell, ...).

    Parameters (``init_params``): W (C, G), U (n·H, G), b (G,) plus the cell's own, if any.
    The gate order and G come from the cell (``layer.layout``, ``gates.py``): graves (with or
    without peepholes) [i | f_1..f_n | o | g], G = (n+3)H; stable [i | f | o | λ_1..λ_n | g] and
    leakylp [f | ω₀ | ω₁ | λ_1..λ_n | g], G = (n+4)H (4H for n = 1, no λ); the layer-norm
    cells have no b (their shift is the bias). Peepholes add w_i (H,), w_f (n, H), w_o (H,).
    Initialisation: W and U uniform in ±sqrt(6 / (C + n·H + G)) (Glorot, as TensorFlow's
    LSTMCell treats its stacked [x, h] kernel), b = 0 except the block named "f" (the forget
    gate; for leakylp the leak) = forget_bias.
    """

    def __init__(self, in_channels, hidden, ndim=2, *, cell=None, peepholes=False,
                 ln=False, forget_bias=DEFAULT_FORGET_BIAS, backend="numpy",
                 dtype=DEFAULT_DTYPE, check_finite=True):
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.hidden = check_positive_int(hidden, "hidden")
        self.ndim = check_positive_int(ndim, "ndim")
        self.dtype = check_dtype_name(dtype)
        self.forget_bias = check_finite_number(forget_bias, "forget_bias")
        peepholes = check_bool(peepholes, "peepholes")
        self.check_finite = check_bool(check_finite, "check_finite")
        self.be = get_backend(backend)
        if cell is None:  # the default; ln and peepholes exist for Graves' cell only
            cell = "graves" if (peepholes or ln is not False) else DEFAULT_CELL
        self.cell = make_cell(cell, peepholes=peepholes, ln=ln)
        self.peepholes, self.ln = peepholes, ln   # the constructor's choices (``config``)
        self.layout = self.cell.layout(self.ndim, self.hidden)

    def __repr__(self):
        return (f"MDLSTM(in_channels={self.in_channels}, hidden={self.hidden}, "
                f"ndim={self.ndim}, cell={getattr(self.cell, 'name', self.cell)!r}, "
                f"dtype={self.dtype!r}, backend={self.be.name!r})")

    def config(self) -> dict:
        """The constructor's arguments (JSON-able), for ``mdlstm_np.save``; the cell by its name
        (a cell object of one's own cannot be saved: ValueError)."""
        name = getattr(self.cell, "name", None)
        if self.ln is not False or self.peepholes:
            name = "graves"                       # make_cell builds the variant from ln/peepholes
        if name not in ("graves", "stable", "leakylp"):
            raise ValueError(f"cell: a cell object of one's own ({type(self.cell).__name__}) "
                             f"cannot be saved; use a cell by name")
        return {"in_channels": self.in_channels, "hidden": self.hidden, "ndim": self.ndim,
                "cell": name, "peepholes": self.peepholes, "ln": self.ln,
                "forget_bias": self.forget_bias, "check_finite": self.check_finite}

    @property
    def signature(self) -> tuple:
        """What a cache must match to be this layer's: (C, H, n, cell, dtype, backend)."""
        return (self.in_channels, self.hidden, self.ndim, getattr(self.cell, "name", None),
                self.dtype, self.be.name)

    # ------------------------------------------------------------------ parameters
    def param_shapes(self) -> dict:
        C, H, n, G = self.in_channels, self.hidden, self.ndim, self.layout.size
        shapes = {"W": (C, G), "U": (n * H, G)}
        if getattr(self.cell, "uses_bias", True):
            shapes["b"] = (G,)
        shapes.update(self.cell.param_shapes(n, H))
        return shapes

    def init_params(self, rng: np.random.Generator) -> dict:
        """Fresh parameters (see the class docstring), as backend arrays of ``self.dtype``."""
        C, H, n, G = self.in_channels, self.hidden, self.ndim, self.layout.size
        limit = np.sqrt(6.0 / (C + n * H + G))
        host = {"W": rng.uniform(-limit, limit, (C, G)),
                "U": rng.uniform(-limit, limit, (n * H, G))}
        if "b" in self.param_shapes():
            host["b"] = np.zeros(G)
            if "f" in dict(self.layout.blocks):
                host["b"][self.layout.slice("f")] = self.forget_bias
        for key, shape in self.cell.param_shapes(n, H).items():
            host[key] = self.cell.init_value(key, shape)
        return {k: self.be.asarray(v, dtype=self.dtype) for k, v in host.items()}

    # ------------------------------------------------------------------ forward
    def forward(self, params, x, *, h0=None, c0=None, sizes=None):
        """x (B, S_1..S_n, C) -> out (B, S_1..S_n, H), cache.

        h0, c0 (B, H), optional: the state every predecessor outside the grid contributes
        (zeros when omitted). For n = 1 this is the usual LSTM initial state.
        sizes (B, n) ints, optional: sample b occupies the box [0, sizes[b, d]) of the padded
        grid. Cells outside it are masked: zero state, zero output, zero gradient, so each
        sample's result equals running it alone.

        The cache holds a snapshot of ``params`` (a new dict of the same arrays), so backward
        returns the gradient at the parameters forward used even after the caller (an
        optimiser) has replaced entries of its dict. Arrays changed *in place* are not copied.
        Raises TypeError / ValueError naming the argument for wrong types, dtypes, shapes or
        non-finite values (x, every params entry, h0, c0), and :class:`NonFiniteError` naming
        the layer, the cell and the first bad wavefront when the sweep produced a NaN or inf
        state (``check_finite``; one reduction over h and c after the sweep).
        """
        be, xp = self.be, self.be.xp
        check_grid_input(be, x, ndim=self.ndim, channels=self.in_channels, dtype=self.dtype)
        check_params(be, params, self.param_shapes(), self.dtype)
        params = dict(params)  # the snapshot (see the docstring)
        B, S, C, H, G = x.shape[0], tuple(x.shape[1:-1]), self.in_channels, self.hidden, \
            self.layout.size
        check_state(be, h0, name="h0", batch=B, hidden=H, dtype=self.dtype)
        check_state(be, c0, name="c0", batch=B, hidden=H, dtype=self.dtype)
        plan = device_plan(be, S)
        N = plan.host.ncells
        mask = None if sizes is None else sizes_mask(be, plan, sizes, B, self.dtype)  # (N,B,1)
        # 0. cells in wavefront order, batch inside: (B, N, C) -> (N, B, C)
        x_w = be.take(xp.permute_dims(xp.reshape(x, (B, N, C)), (1, 0, 2)), plan.order)
        # 1a. input projection of every cell at once
        # (tensordot, not @: numpy's matmul leaves BLAS when the inner size C is 1, the seed's
        # case, and is then ~4x slower; tensordot always reaches the GEMM)
        zx = xp.reshape(xp.tensordot(xp.reshape(x_w, (N * B, C)), params["W"], axes=1),
                        (N, B, G))
        if "b" in params:
            zx += params["b"]  # zx is fresh: add in place, no second (N, B, G) array
        h = xp.zeros((N + 1, B, H), dtype=x.dtype)  # row N: the boundary state
        c = xp.zeros((N + 1, B, H), dtype=x.dtype)
        if h0 is not None:
            h[N, ...] = h0
        if c0 is not None:
            c[N, ...] = c0
        sweep = be.sweep_for(self.cell, masked=mask is not None)  # fast, or the reference
        sweep_cache = sweep.forward(cell=self.cell, layout=self.layout, plan=plan, zx=zx,
                                    params=params, h=h, c=c, mask=mask)  # 1b-5.
        if self.check_finite:  # one reduction after the sweep, never inside it
            check_state_finite(self, plan, sweep_cache.h, sweep_cache.c)
        out = self._to_grid(sweep_cache.h[:N, ...], plan, B, S)  # 0'.
        cache = MDLSTMCache(plan=plan, x_w=x_w, params=params, sweep=sweep,
                            sweep_cache=sweep_cache, batch=B,
                            has_state=h0 is not None or c0 is not None, mask=mask,
                            layer=self.signature)
        return out, cache

    # ------------------------------------------------------------------ backward
    def backward(self, dout, cache: MDLSTMCache, *, return_state=False):
        """dout (B, S_1..S_n, H) -> dx (B, S_1..S_n, C), dparams {name: array}.

        With ``return_state=True`` also returns (dh0, dc0), each (B, H) (None when the forward
        pass was given no initial state). Raises TypeError/ValueError for a dout of another
        dtype or shape than the forward output, and for a ``cache`` that is not this layer's
        (another MDLSTM's: other channels, width, grid rank, cell, dtype or backend);
        :class:`NonFiniteError` when a gradient is NaN or inf (``check_finite``).
        """
        be, xp = self.be, self.be.xp
        self._check_cache(cache)
        plan, params, B = cache.plan, cache.params, cache.batch
        N, S, H, C, G, n = plan.host.ncells, plan.host.shape, self.hidden, self.in_channels, \
            self.layout.size, self.ndim
        check_array(be, dout, name="dout", shape=(B, *S, H), dtype=self.dtype)
        # 0. dout in wavefront order
        dout_w = be.take(xp.permute_dims(xp.reshape(dout, (B, N, H)), (1, 0, 2)), plan.order)
        grads = {k: xp.zeros(v.shape, dtype=v.dtype) for k, v in params.items()
                 if k not in ("W", "U", "b")}  # the cell's own parameters, accumulated
        res = cache.sweep.backward(cell=self.cell, layout=self.layout, plan=plan,
                                   dout_w=dout_w, cache=cache.sweep_cache, params=params,
                                   grads=grads, want_state=cache.has_state, mask=cache.mask,
                                   x_w=cache.x_w)  # 1b'(pull), 5', 4'-2', 1b'(share).
        if res.fused is not None:  # 1a' done by the sweep while dz was in cache
            grads.update(W=res.fused.W, U=res.fused.U)
            if res.fused.b is not None:
                grads["b"] = res.fused.b
            dx_w = res.fused.dx_w
        else:  # 1a'. whole-grid weight gradients
            dZ2 = xp.reshape(res.dZ, (N * B, G))
            grads["W"] = xp.reshape(cache.x_w, (N * B, C)).T @ dZ2
            if "b" in params:
                grads["b"] = xp.sum(dZ2, axis=0)
            h_all = cache.sweep_cache.h
            h_prev = [be.take(h_all, plan.pred_all[d]) for d in range(n)]  # (N, B, H) each
            hp = xp.concat(h_prev, axis=-1) if n > 1 else h_prev[0]
            grads["U"] = xp.reshape(hp, (N * B, n * H)).T @ dZ2
            dx_w = xp.reshape(dZ2 @ params["W"].T, (N, B, C))
        dx = self._to_grid(dx_w, plan, B, S)  # 0'.
        if self.check_finite:  # once, at the end
            check_grads_finite(self, plan, dx, grads, res, dout=dout)
        if return_state:
            return dx, grads, (res.dh0, res.dc0)
        return dx, grads

    # ------------------------------------------------------------------ checks
    def _check_cache(self, cache):
        """``cache`` must come from ``forward`` of a layer like this one (TypeError/ValueError)."""
        if not isinstance(cache, MDLSTMCache):
            raise TypeError(f"cache: expected the MDLSTMCache that {self!r}.forward returned, "
                            f"got {type(cache).__name__}")
        if cache.layer != self.signature:
            names = ("in_channels", "hidden", "ndim", "cell", "dtype", "backend")
            want = ", ".join(f"{k}={v!r}" for k, v in zip(names, self.signature))
            got = ", ".join(f"{k}={v!r}" for k, v in zip(names, cache.layer))
            raise ValueError(f"cache: expected a cache of this layer ({want}), got one of "
                             f"another layer ({got})")

    def _to_grid(self, a_w, plan: DevicePlan, B, S):
        """(N, B, F) in wavefront order -> (B, *S, F) in raster order."""
        xp = self.be.xp
        a = xp.permute_dims(self.be.take(a_w, plan.inverse), (1, 0, 2))
        return xp.reshape(a, (B, *S, a.shape[-1]))
