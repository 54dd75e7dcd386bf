"""The LeakyLP MD-LSTM cell (Leifert et al. 2016, JMLR 17(97), "leaky lowpass" cell).

Idea. The state is a leaky low-pass filter of the cell input: each step keeps a fraction f of
the (convexly mixed) predecessor state and lets 1 − f of the new input in. Both weights are
non-negative and sum to 1, so the state never leaves [−1, 1]: no growth at all, in any
dimension, for any weights. There is no input gate (1 − f plays its part) and the output
reads both the new state and the mixed old one through two gates ω₀, ω₁.

Notation. We are at cell p of an n-D grid; p⁻_d is its predecessor along axis d (zero state,
or the given initial state, outside the grid). Arrays are (k, B, ·) for the k cells of one
wavefront; ⊙ is elementwise. Gates, packed [ f | ω₀ | ω₁ | λ_1..λ_n | g ] (G = (n + 4)·H; for
n = 1 the λ block is dropped since λ̂_1 = 1), the sigmoid gates contiguous.

Forward (the sweep did step 1, z = x(p) W + b + Σ_d h(p⁻_d) U_d):

    2.  f, ω₀, ω₁, λ_d = σ(z_·)                     g = tanh(z_g)
    3a. λ̂_d = λ_d / Σ_e λ_e                          (``stable.mixture_forward``)
    3b. c⁻ = Σ_d λ̂_d ⊙ c(p⁻_d)
    3c. c(p) = (1 − f) ⊙ g + f ⊙ c⁻                  convex: |c| ≤ max(|g|, |c⁻|) ≤ 1
    4a. a = ω₀ ⊙ c(p) + ω₁ ⊙ c⁻
    4b. h(p) = tanh(a)

Bound. By induction over the wavefronts: the boundary state is 0, |g| < 1, and 3b, 3c are
convex combinations, so |c(p)| ≤ 1 everywhere (and |a| ≤ 2). Two caveats, both pinned by
tests: a user-given initial state c0 with |c0| > 1 is mixed in like any predecessor, so then
the bound is max(1, |c0|); and floating-point rounding of the convex combination can overshoot
1 by an ulp or so when g saturates at exactly 1.0.

Backward. dh = ∂L/∂h(p), dc = ∂L/∂c(p) from the sweep; σ' = σ(1 − σ), tanh' = 1 − tanh².

    4b'. da = dh ⊙ (1 − h²)
    4a'. dω₀ = da ⊙ c    dω₁ = da ⊙ c⁻    dc += da ⊙ ω₀    dc⁻ = da ⊙ ω₁
    3c'. df = dc ⊙ (c⁻ − g)    dg = dc ⊙ (1 − f)    dc⁻ += dc ⊙ f
    3b'. dc(p⁻_d) = dc⁻ ⊙ λ̂_d                                      (to the sweep)
    3a'. dz_λd = λ̂_d ⊙ (1 − λ_d) ⊙ dc⁻ ⊙ (c(p⁻_d) − c⁻)     (derived in ``stable.py``)
    2'.  dz_{f,ω₀,ω₁} = d· ⊙ σ(1 − σ)          dz_g = dg ⊙ (1 − g²)

Note that c⁻ reaches the loss along two routes, through the new state (3c) and directly
through the output (4a); dc⁻ collects both before the mixture's backward.
"""

from __future__ import annotations

from typing import List, NamedTuple

from ..gates import GateLayout
from .base import Cell
from .stable import mixture_backward, mixture_forward


def leakylp_layout(ndim: int, hidden: int) -> GateLayout:
    """[f | ω₀ | ω₁ | λ_1..λ_n | g]; the λ block is dropped for n = 1."""
    lam = (("lam", ndim),) if ndim > 1 else ()
    return GateLayout(blocks=(("f", 1), ("omega0", 1), ("omega1", 1), *lam, ("g", 1)),
                      hidden=hidden)


class LeakyLPStep(NamedTuple):
    """What the backward pass of one wavefront needs (all (k, B, ·))."""

    sig: object           # σ of [f | ω₀ | ω₁ | λ_1..λ_n], (k, B, (n+3)H) ((3H) for n = 1)
    g: object             # tanh(z_g), (k, B, H)
    c_prev: List[object]  # c(p⁻_d), n arrays (k, B, H)
    lam_hat: object       # λ̂_d, n arrays (k, B, H); None for n = 1
    c_mix: object         # c⁻, (k, B, H)
    c: object             # c(p), (k, B, H)
    h: object             # h(p) = tanh(a), (k, B, H)


class LeakyLPCell(Cell):
    name = "leakylp"

    make_layout = staticmethod(leakylp_layout)

    def forward(self, be, lay: GateLayout, z, c_prev, params):
        """z (k, B, G), c_prev: n arrays (k, B, H) -> h (k, B, H), c (k, B, H), LeakyLPStep."""
        xp = be.xp
        n = len(c_prev)
        last = "lam" if n > 1 else "omega1"
        sig = be.sigmoid(z[..., lay.span("f", last)])  # 2. f, ω₀, ω₁, λ_1..λ_n (offset 0)
        g = xp.tanh(z[..., lay.slice("g")])  # 2. cell input
        z_lam = [z[..., lay.slice("lam", d)] for d in range(n)] if n > 1 else []
        c_mix, lam_hat = mixture_forward(be, z_lam, c_prev)  # 3a-3b. c⁻
        f = sig[..., lay.slice("f")]
        c = (1.0 - f) * g + f * c_mix  # 3c. leaky low-pass step
        a = sig[..., lay.slice("omega0")] * c + sig[..., lay.slice("omega1")] * c_mix  # 4a.
        h = xp.tanh(a)  # 4b.
        return h, c, LeakyLPStep(sig, g, list(c_prev), lam_hat, c_mix, c, h)

    def backward(self, be, lay: GateLayout, dh, dc, step: LeakyLPStep, params, grads):
        """dh, dc (k, B, H) -> dz (k, B, G), dc_prev: n arrays (k, B, H)."""
        xp = be.xp
        sig, g, c_prev, lam_hat = step.sig, step.g, step.c_prev, step.lam_hat
        c_mix, c, h = step.c_mix, step.c, step.h
        n = len(c_prev)
        f, w0, w1 = (sig[..., lay.slice(k)] for k in ("f", "omega0", "omega1"))
        da = dh * (1.0 - h * h)  # 4b'. tanh' = 1 − h²
        d_w0 = da * c  # 4a'. through ω₀ ⊙ c
        d_w1 = da * c_mix  # 4a'. through ω₁ ⊙ c⁻
        dc = dc + da * w0  # 4a'. the new state's share of the output
        dc_mix = da * w1  # 4a'. c⁻'s direct share of the output ...
        d_f = dc * (c_mix - g)  # 3c'. ∂c/∂f = c⁻ − g
        d_g = dc * (1.0 - f)  # 3c'. through (1 − f) ⊙ g
        dc_mix = dc_mix + dc * f  # 3c'. ... plus its share through f ⊙ c⁻
        sig_lam = [sig[..., lay.slice("lam", d)] for d in range(n)] if n > 1 else []
        dz_lam, dc_prev = mixture_backward(dc_mix, lam_hat, sig_lam, c_prev, c_mix)  # 3b'-3a'.
        sig_fw = sig[..., lay.span("f", "omega1")]
        dz_fw = xp.concat([d_f, d_w0, d_w1], axis=-1) * sig_fw * (1.0 - sig_fw)  # 2'. σ'
        dz_g = d_g * (1.0 - g * g)  # 2'. tanh' = 1 − g²
        dz = xp.concat([dz_fw, *dz_lam, dz_g], axis=-1)  # packed [f | ω₀ | ω₁ | λ.. | g]
        return dz, dc_prev
