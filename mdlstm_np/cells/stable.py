"""The λ-stable MD-LSTM cell (Leifert et al. 2016, JMLR 17(97); RETURNN's default MD-LSTM).

Why. Graves' cell adds the n predecessor states, c(p) = i⊙g + Σ_d f_d⊙c(p⁻_d). With forget
gates near 1 the state counts the monotone paths into p, a binomial coefficient: c(y, x) =
C(y+x+2, y+1) − 1 in 2-D with saturated gates (``tests/test_stability.py``), and the gradient
∂c(p)/∂c(q) grows the same way. The stable cell replaces the sum by a *convex mixture*.

Notation. We are at cell p of an n-D grid; p⁻_d is its predecessor along axis d (zero state,
or the given initial state, outside the grid). Arrays are (k, B, ·) for the k cells of one
wavefront; ⊙ is elementwise. Gates, packed [ i | f | o | λ_1..λ_n | g ] (G = (n + 4)·H; for
n = 1 the λ block is dropped, see below):

Forward (the sweep did step 1, z = x(p) W + b + Σ_d h(p⁻_d) U_d):

    2.  i, f, o, λ_d = σ(z_·)                       g = tanh(z_g)
    3a. λ̂_d = λ_d / Σ_e λ_e                          mixture weights: λ̂_d > 0, Σ_d λ̂_d = 1
    3b. c⁻ = Σ_d λ̂_d ⊙ c(p⁻_d)                      a convex combination of the predecessors
    3c. c(p) = i ⊙ g + f ⊙ c⁻                        ONE forget gate, on the mixture
    4.  h(p) = o ⊙ tanh(c(p))

Bound. |c⁻| ≤ max_d |c(p⁻_d)|, |i⊙g| < 1 and f < 1, so with zero boundary state
|c(p)| < 1 + max_d |c(p⁻_d)|, i.e. |c(p)| ≤ s + 1 on wavefront s = Σ_d p_d: at most *linear*
growth (reached when every gate saturates at exactly 1.0 in floating point), against
Graves' binomial growth. If every forget gate stays ≤ f_max < 1, |c| ≤ 1/(1 − f_max).
The Jacobian ∂c(p)/∂c(p⁻_d) = f ⊙ λ̂_d sums to f ≤ 1 over d, so the gradient through the
carried state cannot explode either (Leifert 2016, Sec. 5).

n = 1: λ̂_1 = 1, so c⁻ = c(p⁻_1) and the cell *is* Graves' cell (and TensorFlow's LSTMCell);
the useless λ gate is left out so that even the parameters coincide (pinned by a test).

Backward. dh = ∂L/∂h(p), dc = ∂L/∂c(p) from the sweep; σ' = σ(1 − σ), tanh' = 1 − tanh².

    4'.  do = dh ⊙ tanh(c)                      dc += dh ⊙ o ⊙ (1 − tanh²(c))
    3c'. di = dc ⊙ g    dg = dc ⊙ i    df = dc ⊙ c⁻    dc⁻ = dc ⊙ f
    3b'. dλ̂_d = dc⁻ ⊙ c(p⁻_d)                  dc(p⁻_d) = dc⁻ ⊙ λ̂_d   (to the sweep)
    3a'. dz_λd = λ̂_d ⊙ (1 − λ_d) ⊙ dc⁻ ⊙ (c(p⁻_d) − c⁻)           (derived below)
    2'.  dz_{i,f,o} = d{i,f,o} ⊙ σ(1 − σ)      dz_g = dg ⊙ (1 − g²)

Deriving 3ab (the normalised sigmoids). Write S = Σ_e λ_e, so λ̂_d = λ_d / S and

    ∂λ̂_d/∂λ_e = δ_de / S − λ_d / S² = (δ_de − λ̂_d) / S
    dλ_e = Σ_d dλ̂_d (δ_de − λ̂_d) / S = (dλ̂_e − Σ_d λ̂_d dλ̂_d) / S.

With dλ̂_d = dc⁻ ⊙ c(p⁻_d) the inner sum is dc⁻ ⊙ Σ_d λ̂_d c(p⁻_d) = dc⁻ ⊙ c⁻, hence
dλ_e = dc⁻ ⊙ (c(p⁻_e) − c⁻) / S: a predecessor gains weight when its state is above the
mixture and the loss wants a larger c⁻. Then dz_λe = dλ_e ⊙ λ_e(1 − λ_e), and λ_e / S = λ̂_e
cancels the division: dz_λe = λ̂_e ⊙ (1 − λ_e) ⊙ dc⁻ ⊙ (c(p⁻_e) − c⁻). (Check: multiplying
every λ_e by the same factor leaves λ̂ unchanged, and indeed Σ_e λ_e dλ_e = 0.)

Computing 3a without 0/0. ``be.sigmoid`` rounds σ(z) to exactly 0 below z ≈ −37 (float64)
or −17 (float32). If all n λ pre-activations are that negative, λ_d / S is 0/0 = NaN, although
the limit is perfectly defined. So we compute the same ratio as a softmax of log-sigmoids:

    λ̂_d = exp(ℓ_d) / Σ_e exp(ℓ_e),    ℓ_d = log σ(z_λd) = min(z, 0) − log1p(exp(−|z|))

shifted by max_e ℓ_e as usual. Nothing overflows and the denominator is ≥ 1 (pinned by a
test with z_λ = −1000). The backward above needs only λ̂ and σ, so it is unchanged.
"""

from __future__ import annotations

from typing import List, NamedTuple

from ..gates import GateLayout
from .base import Cell


def stable_layout(ndim: int, hidden: int) -> GateLayout:
    """[i | f | o | λ_1..λ_n | g]; for n = 1 [i | f | o | g] (Graves' layout)."""
    lam = (("lam", ndim),) if ndim > 1 else ()
    return GateLayout(blocks=(("i", 1), ("f", 1), ("o", 1), *lam, ("g", 1)), hidden=hidden)


# --------------------------------------------------------------- the λ-mixture (steps 3a, 3b)
def _log_sigmoid(xp, z):
    """log σ(z) = min(z, 0) − log1p(exp(−|z|)), finite for every finite z."""
    return (z - xp.abs(z)) * 0.5 - xp.log1p(xp.exp(-xp.abs(z)))


def mixture_forward(be, z_lam: List[object], c_prev: List[object]):
    """3a-3b. z_lam, c_prev: n arrays (k, B, H) -> c⁻ (k, B, H), λ̂ (n arrays, or None if n = 1).

    (With n = 1, z_lam is empty and c⁻ = c(p⁻_1).)
    """
    xp = be.xp
    if len(c_prev) == 1:
        return c_prev[0], None
    ell = [_log_sigmoid(xp, z) for z in z_lam]  # 3a. ℓ_d = log λ_d
    top = ell[0]
    for e in ell[1:]:
        top = xp.maximum(top, e)  # 3a. shift: the largest exp(·) is 1
    ex = [xp.exp(e - top) for e in ell]
    total = ex[0]
    for e in ex[1:]:
        total = total + e  # 3a. ≥ 1, never 0
    lam_hat = [e / total for e in ex]  # 3a. λ̂_d = λ_d / Σ_e λ_e
    c_mix = lam_hat[0] * c_prev[0]
    for d in range(1, len(c_prev)):
        c_mix = c_mix + lam_hat[d] * c_prev[d]  # 3b. c⁻ = Σ_d λ̂_d ⊙ c(p⁻_d)
    return c_mix, lam_hat


def mixture_backward(dc_mix, lam_hat, sig_lam, c_prev, c_mix):
    """3bb-3ab. dc⁻ (k, B, H) -> dz_λ (n arrays; empty if n = 1), dc(p⁻_d) (n arrays).

    lam_hat, sig_lam (λ̂_d and λ_d = σ(z_λd)), c_prev: n arrays (k, B, H); c_mix: c⁻.
    """
    if lam_hat is None:  # n = 1: c⁻ = c(p⁻_1)
        return [], [dc_mix]
    dc_prev = [dc_mix * lh for lh in lam_hat]  # 3b'. through λ̂_d ⊙ c(p⁻_d)
    dz_lam = [lam_hat[d] * (1.0 - sig_lam[d]) * dc_mix * (c_prev[d] - c_mix)  # 3a'. see above
              for d in range(len(c_prev))]
    return dz_lam, dc_prev


# --------------------------------------------------------------- the cell
class StableStep(NamedTuple):
    """What the backward pass of one wavefront needs (all (k, B, ·))."""

    sig: object           # σ of [i | f | o | λ_1..λ_n], (k, B, (n+3)H) ((3H) for n = 1)
    g: object             # tanh(z_g), (k, B, H)
    c_prev: List[object]  # c(p⁻_d), n arrays (k, B, H)
    lam_hat: object       # λ̂_d, n arrays (k, B, H); None for n = 1
    c_mix: object         # c⁻, (k, B, H)
    tanh_c: object        # tanh(c(p)), (k, B, H)


class StableCell(Cell):
    name = "stable"

    make_layout = staticmethod(stable_layout)

    def forward(self, be, lay: GateLayout, z, c_prev, params):
        """z (k, B, G), c_prev: n arrays (k, B, H) -> h (k, B, H), c (k, B, H), StableStep."""
        xp = be.xp
        n = len(c_prev)
        last = "lam" if n > 1 else "o"
        sig = be.sigmoid(z[..., lay.span("i", last)])  # 2. i, f, o, λ_1..λ_n (offset 0 of z)
        g = xp.tanh(z[..., lay.slice("g")])  # 2. cell input
        z_lam = [z[..., lay.slice("lam", d)] for d in range(n)] if n > 1 else []
        c_mix, lam_hat = mixture_forward(be, z_lam, c_prev)  # 3a-3b. c⁻
        c = sig[..., lay.slice("i")] * g + sig[..., lay.slice("f")] * c_mix  # 3c.
        tanh_c = xp.tanh(c)
        h = sig[..., lay.slice("o")] * tanh_c  # 4. h = o ⊙ tanh(c)
        return h, c, StableStep(sig, g, list(c_prev), lam_hat, c_mix, tanh_c)

    def backward(self, be, lay: GateLayout, dh, dc, step: StableStep, params, grads):
        """dh, dc (k, B, H) -> dz (k, B, G), dc_prev: n arrays (k, B, H)."""
        xp = be.xp
        sig, g, c_prev, lam_hat = step.sig, step.g, step.c_prev, step.lam_hat
        c_mix, tanh_c = step.c_mix, step.tanh_c
        n = len(c_prev)
        i, f, o = (sig[..., lay.slice(k)] for k in ("i", "f", "o"))
        d_o = dh * tanh_c  # 4'. through h = o ⊙ tanh(c)
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c)  # 4'. ... and through tanh(c)
        d_i = dc * g  # 3c'. through i ⊙ g
        d_g = dc * i
        d_f = dc * c_mix  # 3c'. through f ⊙ c⁻
        dc_mix = dc * f
        sig_lam = [sig[..., lay.slice("lam", d)] for d in range(n)] if n > 1 else []
        dz_lam, dc_prev = mixture_backward(dc_mix, lam_hat, sig_lam, c_prev, c_mix)  # 3b'-3a'.
        sig_ifo = sig[..., lay.span("i", "o")]
        dz_ifo = xp.concat([d_i, d_f, d_o], axis=-1) * sig_ifo * (1.0 - sig_ifo)  # 2'. σ'
        dz_g = d_g * (1.0 - g * g)  # 2'. tanh' = 1 − g²
        dz = xp.concat([dz_ifo, *dz_lam, dz_g], axis=-1)  # packed [i | f | o | λ.. | g]
        return dz, dc_prev
