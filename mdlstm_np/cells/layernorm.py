"""The layer-normalised MD-LSTM cell: the seed's formulation, and ours without its NaN.

Notation. We are at cell p of an n-D grid; p⁻_d is its predecessor along axis d (zero state
outside the grid). H is the hidden width; the sweep hands us one wavefront of k cells, so every
array is (k, B, ·). The n + 3 gate blocks of z are packed [i | f_1..f_n | o | g] (``gates.py``);
block j has its own layer-norm gain and shift, rows j of ``ln_gain`` and ``ln_shift`` (n+3, H).
LN_κ(a) = (a − mean(a)) / sqrt(var(a) + κ) ⊙ gain + shift over the H entries of one block
(``mdlstm_np/norm.py``: forward, backward (★), and the bound ‖∂LN_κ/∂a‖ = 1/sqrt(var + κ)).

Forward (the sweep did step 1, z = x(p) W + Σ_d h(p⁻_d) U_d; there is no bias b: the LN
shifts are the biases, so ``uses_bias = False``):

    2.  a_j = LN_κ(z_j; gain_j, shift_j)      for each gate block j = i, f_1..f_n, o, g
    3.  i = σ(a_i)   f_d = σ(a_fd)   o = σ(a_o)   g = tanh(a_g)          (forget bias 0)
    4.  c(p) = i ⊙ g + Σ_d f_d ⊙ c(p⁻_d)                       (the carried c is not normalised)
    5.  ĉ = LN_κ(c(p); ln_c_gain, ln_c_shift)
    6.  h(p) = o ⊙ tanh(ĉ)

Backward, mirrored (dh from above and the successors, dc from the successors' step 4):

    6'. do = dh ⊙ tanh(ĉ)                   dĉ = dh ⊙ o ⊙ (1 − tanh²(ĉ))
    5'. dc += LN_κ-backward(dĉ)             (adds d ln_c_gain, d ln_c_shift)
    4'. di = dc ⊙ g   dg = dc ⊙ i   df_d = dc ⊙ c(p⁻_d)   dc(p⁻_d) = dc ⊙ f_d   (to the sweep)
    3'. da_{i,f,o} = d{i,f,o} ⊙ σ(1 − σ)    da_g = dg ⊙ (1 − g²)
    2'. dz_j = LN_κ-backward(da_j)          (adds d ln_gain, d ln_shift)

formulation="seed": κ = ε = 1e-5, the seed's cell (TensorFlow md_lstm.py), generalised to n
axes (n forget gates). formulation="fixed" (the default of ``ln=True``): κ = τ², τ = 1.

Why the seed's cell gives NaN on zero input
--------------------------------------------
With x ≡ 0, zero shifts and zero boundary state, z(p) = 0 at the origin, so a = shift = 0,
i = f = o = ½, g = 0, c = 0, h = 0 — and by induction the same at every cell: every one of the
(n + 4) layer norms of every cell sees an exactly constant vector (variance 0). There LN's
Jacobian is P/√ε (P the centring projection), the largest it can be: 1/√ε ≈ 316. Backward,
the gradient of a cell's h crosses the cell LN (×316, step 5b) into dc, the gate LNs (×316,
step 2b) into dz, and U_dᵀ into the predecessor's h: about (316² · |U| · σ') per diagonal step,
compounded along the H + W − 2 steps of a diagonal. Measured (examples/ln_zero_input.py,
hidden 16): float32 overflows to inf and then NaN already on 8×8; float64 reaches max |∂L/∂x|
≈ 7e57 on 8×8, 4e262 on 32×32, and overflows on 64×64. It is not a rounding artefact: the
function is smooth (ε > 0) and its true derivative is that large. The region around zero where
the forward map is linear has a radius of ~√ε on one cell and shrinks ~316² times per further
cell, so finite differences cannot resolve it (``tests/test_layernorm.py``). A bigger ε only
lowers the factor: ε = 0.1 still gives 1e23 on 32×32 and 4e50 on 64×64, just later. Nonzero
shifts would make the origin non-degenerate, but the shifts start at 0, and a zero-padded
corner (a reversed scan starting in padding) recreates the degenerate cells wherever the input
is zero and the state still zero: in float32 a 6×6 zero corner of a 16×16 task input gives NaN
in every scan direction.

The fix: a normaliser that cannot amplify
------------------------------------------
The mechanism is the amplification itself: LN's gain 1/sqrt(var + ε) is unbounded as the
signal spread goes to zero, and the recurrence multiplies it. So we bound it at the scale of
the nonlinearities it feeds. σ and tanh bend at |a| ≈ 1; LN's purpose is to put pre-
activations on that scale. We normalise by s = sqrt(var + τ²) with τ = 1 (κ = τ²):

    * spread ≫ τ: s ≈ std, exactly the seed's layer norm (scale invariant, unit output spread);
    * spread ≪ τ: s ≈ τ, the block is only centred, never magnified;
    * always: ‖∂LN/∂a‖ = 1/s ≤ 1/τ = 1: a layer norm never amplifies a gradient (beyond its
      learned |gain|, an ordinary weight). Zero input and zero corners are no longer special
      points: the map is smooth on the unit scale there, so finite differences with a step of
      1e-3 agree with the backward pass (tests/test_layernorm.py, tests/test_zero_input.py).

What remains at zero input is exactly Graves' plain cell (ln=False) on the same input: max
|∂L/∂θ| 0.25 / 0.82 / 46 / 3e5 on 8² / 16² / 32² / 64² grids against Graves' 0.25 / 0.76 / 34 /
4e5. That growth is not layer norm's: with forget bias 0, f_1 + f_2 = 1 at zero input, so the
c-path is marginal and the h-path pushes it over (Leifert 2016; the stable cells address it).
On the seed's task inputs the fixed cell trains at least as well as the seed's (issue 4's
closing note: relevant loss 0.0005 vs 0.0009–0.0016 after 1000 steps, 3 seeds each).

Candidates we measured and rejected (``python examples/ln_zero_input.py --sweep``, max |grad|
at zero input on 8² / 32² / 64²): a larger ε (1e-2: 2e15 / 8e74 / 1e156; 1e-1: 2e3 / 9e22 /
4e50) only delays the blow-up; a smaller floor τ = 0.3 (4e3 / 6e24 / 2e54) or 0.5 (5 / 3e10 /
4e24) still compounds, since 1/τ² per cell beats the marginal c-path. Leaving the recurrent
part unnormalised, or normalising x W and Σ h U separately (reasoned, not measured: it needs
the sweep to hand the cell two pre-activations), keeps layer norms on exactly-zero vectors
(x W ≡ 0, and Σ h U ≡ 0 while the state is zero), so dx is still ×1/√ε, and the cell LN inside
the recurrence still compounds. max(std, τ) is the same idea as ours with a kink at std = τ
(finite differences and second-order methods dislike kinks), so we take the smooth
sqrt(var + τ²).
"""

from __future__ import annotations

import math
from typing import List, NamedTuple

import numpy as np

from ..gates import GateLayout, graves_layout
from ..norm import LNCache, layer_norm, layer_norm_backward
from .graves import gates_backward

FORMULATIONS = ("fixed", "seed")
SEED_EPS = 1e-5  # the seed's (TensorFlow's layer_norm) ε
TAU = 1.0        # our floor on the normaliser: the scale at which σ and tanh bend


class LayerNormStep(NamedTuple):
    """What the backward pass of one wavefront needs (all (k, B, ·))."""

    gate_ln: LNCache      # step 2, on z viewed as (k, B, n+3, H)
    sig: object           # σ of [i | f_1..f_n | o], (k, B, (n+2)H)
    g: object             # tanh(a_g), (k, B, H)
    c_prev: List[object]  # c(p⁻_d) for d = 1..n, each (k, B, H)
    cell_ln: LNCache      # step 5, on c (k, B, H)
    tanh_c: object        # tanh(ĉ), (k, B, H)


class LayerNormCell:
    """Layer-normalised MD-LSTM cell (see the module docstring).

    formulation : "fixed" (default; κ = τ², NaN-free at zero input) or "seed" (κ = ε = 1e-5,
                  the seed's exact cell, whose gradient blows up at zero input — for study).
    tau         : τ > 0 of the fixed formulation (1.0); ignored by "seed".
    eps         : ε > 0 of the seed formulation (1e-5); ignored by "fixed".

    Own parameters: ln_gain, ln_shift (n+3, H) for the gate blocks in layout order, and
    ln_c_gain, ln_c_shift (H,) for the cell; gains start at 1, shifts at 0.
    """

    uses_bias = False

    def __init__(self, formulation: str = "fixed", *, tau: float = TAU, eps: float = SEED_EPS):
        if formulation not in FORMULATIONS:
            raise ValueError(f"formulation: expected one of {', '.join(FORMULATIONS)}, "
                             f"got {formulation!r}")
        for name, v in (("tau", tau), ("eps", eps)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v <= 0:
                raise ValueError(f"{name}: expected a finite number > 0, got {v!r}")
        self.formulation = formulation
        self.tau, self.eps = float(tau), float(eps)
        self.kappa = self.tau ** 2 if formulation == "fixed" else self.eps
        self.name = f"ln_{formulation}"

    def __repr__(self):
        extra = f"tau={self.tau}" if self.formulation == "fixed" else f"eps={self.eps}"
        return f"LayerNormCell({self.formulation!r}, {extra})"

    def layout(self, ndim: int, hidden: int) -> GateLayout:
        return graves_layout(ndim, hidden)

    def param_shapes(self, ndim: int, hidden: int) -> dict:
        return {"ln_gain": (ndim + 3, hidden), "ln_shift": (ndim + 3, hidden),
                "ln_c_gain": (hidden,), "ln_c_shift": (hidden,)}

    def init_value(self, key: str, shape):
        if key in ("ln_gain", "ln_c_gain"):
            return np.ones(shape)
        if key in ("ln_shift", "ln_c_shift"):
            return np.zeros(shape)
        raise KeyError(f"key: expected one of ln_gain, ln_shift, ln_c_gain, ln_c_shift, "
                       f"got {key!r}")

    def forward(self, be, lay: GateLayout, z, c_prev, params):
        """z (k, B, G), c_prev: n arrays (k, B, H) -> h (k, B, H), c (k, B, H), LayerNormStep."""
        xp = be.xp
        n, H = lay.count("f"), lay.hidden
        k, B, G = z.shape
        zb = xp.reshape(z, (k, B, G // H, H))  # one row per gate block
        a, gate_ln = layer_norm(xp, zb, params["ln_gain"], params["ln_shift"],
                                self.kappa)  # 2.
        a = xp.reshape(a, (k, B, G))
        sig = be.sigmoid(a[..., lay.span("i", "o")])  # 3. i, f_1..f_n, o  (k, B, (n+2)H)
        g = xp.tanh(a[..., lay.slice("g")])  # 3. cell input
        c = sig[..., lay.slice("i")] * g  # 4. i ⊙ g ...
        for d in range(n):
            c = c + sig[..., lay.slice("f", d)] * c_prev[d]  # 4. ... + f_d ⊙ c(p⁻_d)
        c_hat, cell_ln = layer_norm(xp, c, params["ln_c_gain"], params["ln_c_shift"],
                                    self.kappa)  # 5.
        tanh_c = xp.tanh(c_hat)
        h = sig[..., lay.slice("o")] * tanh_c  # 6. h = o ⊙ tanh(ĉ)
        return h, c, LayerNormStep(gate_ln, sig, g, list(c_prev), cell_ln, tanh_c)

    def backward(self, be, lay: GateLayout, dh, dc, step: LayerNormStep, params, grads):
        """dh, dc (k, B, H) -> dz (k, B, G), dc_prev: n arrays (k, B, H).

        Adds the gradients of ln_gain, ln_shift, ln_c_gain, ln_c_shift into ``grads``.
        """
        xp = be.xp
        H = lay.hidden
        sig, g, c_prev, tanh_c = step.sig, step.g, step.c_prev, step.tanh_c
        o = sig[..., lay.slice("o")]
        d_o = dh * tanh_c  # 6'. through h = o ⊙ tanh(ĉ)
        d_chat = dh * o * (1.0 - tanh_c * tanh_c)  # 6'. ... and through tanh(ĉ)
        d_c, d_cg, d_cs = layer_norm_backward(xp, d_chat, step.cell_ln)  # 5'.
        grads["ln_c_gain"] = grads["ln_c_gain"] + d_cg
        grads["ln_c_shift"] = grads["ln_c_shift"] + d_cs
        dc = dc + d_c
        # 4'-3'. through c = i ⊙ g + Σ_d f_d ⊙ c(p⁻_d) and the gate nonlinearities: exactly
        # Graves' steps 3b-2b, with the normalised a in place of z
        da, dc_prev = gates_backward(xp, lay, dc, d_o, sig, g, c_prev)
        k, B, G = da.shape
        dzb, d_g_ln, d_s_ln = layer_norm_backward(xp, xp.reshape(da, (k, B, G // H, H)),
                                                  step.gate_ln)  # 2'.
        grads["ln_gain"] = grads["ln_gain"] + d_g_ln
        grads["ln_shift"] = grads["ln_shift"] + d_s_ln
        return xp.reshape(dzb, (k, B, G)), dc_prev
