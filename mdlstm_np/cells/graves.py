"""Graves' MD-LSTM cell (Graves, Fernández & Schmidhuber 2007; Graves & Schmidhuber 2008).

Notation. We are at cell p of an n-D grid; p⁻_d is its predecessor along axis d (zero state
outside the grid). H is the hidden width, B the batch. The sweep hands us one wavefront of k
cells at a time, so every array below has shape (k, B, ·).

Forward (the sweep did step 1, z = x(p) W + b + Σ_d h(p⁻_d) U_d):

    2.  i = σ(z_i)      f_d = σ(z_fd)  (d = 1..n)      o = σ(z_o)      g = tanh(z_g)
    3.  c(p) = i ⊙ g + Σ_d f_d ⊙ c(p⁻_d)
    4.  h(p) = o ⊙ tanh(c(p))

Backward. The sweep hands us dh = ∂L/∂h(p) (from the output above and from all successors,
through their recurrent matmuls) and dc = ∂L/∂c(p) arriving from the successors through
*their* step 3 (f_d(p⁺_d) ⊙ dc(p⁺_d)). Local derivatives are written with outputs:
σ'(z) = σ(1 − σ), tanh'(z) = 1 − tanh².

    4'. do = dh ⊙ tanh(c)                 dc += dh ⊙ o ⊙ (1 − tanh²(c))
    3'. di = dc ⊙ g    dg = dc ⊙ i    df_d = dc ⊙ c(p⁻_d)    dc(p⁻_d) = dc ⊙ f_d   (to the sweep)
    2'. dz_{i,f,o} = d{i,f,o} ⊙ σ(1 − σ)  dz_g = dg ⊙ (1 − g²)

With n = 1 this is the ordinary LSTM without peepholes (TensorFlow's LSTMCell): the seed's
SD baselines are this cell on 1-D sequences.
"""

from __future__ import annotations

from typing import List, NamedTuple

from ..gates import GateLayout, graves_layout
from .base import Cell


class GravesStep(NamedTuple):
    """What the backward pass of one wavefront needs (all (k, B, ·))."""

    sig: object          # σ of [i | f_1..f_n | o], (k, B, (n+2)H)
    g: object            # tanh(z_g), (k, B, H)
    c_prev: List[object]  # c(p⁻_d) for d = 1..n, each (k, B, H)
    tanh_c: object       # tanh(c(p)), (k, B, H)


class GravesCell(Cell):
    name = "graves"

    make_layout = staticmethod(graves_layout)

    def forward(self, be, lay: GateLayout, z, c_prev, params):
        """z (k, B, G), c_prev: n arrays (k, B, H) -> h (k, B, H), c (k, B, H), GravesStep."""
        xp = be.xp
        n = lay.count("f")
        sig = be.sigmoid(z[..., lay.span("i", "o")])  # 2. i, f_1..f_n, o  (k, B, (n+2)H)
        g = xp.tanh(z[..., lay.slice("g")])  # 2. cell input
        c = sig[..., lay.slice("i")] * g  # 3. i ⊙ g ...
        for d in range(n):
            c = c + sig[..., lay.slice("f", d)] * c_prev[d]  # 3. ... + f_d ⊙ c(p⁻_d)
        tanh_c = xp.tanh(c)  # 4.
        h = sig[..., lay.slice("o")] * tanh_c  # 4. h = o ⊙ tanh(c)
        return h, c, GravesStep(sig, g, list(c_prev), tanh_c)

    def backward(self, be, lay: GateLayout, dh, dc, step: GravesStep, params, grads):
        """dh, dc (k, B, H) -> dz (k, B, G), dc_prev: n arrays (k, B, H)."""
        xp = be.xp
        sig, g, c_prev, tanh_c = step.sig, step.g, step.c_prev, step.tanh_c
        o = sig[..., lay.slice("o")]
        d_o = dh * tanh_c  # 4'. through h = o ⊙ tanh(c)
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c)  # 4'. ... and through tanh(c)
        return gates_backward(xp, lay, dc, d_o, sig, g, c_prev)  # 3'-2'.


def gates_backward(xp, lay: GateLayout, dc, d_o, sig, g, c_prev):
    """Steps 3'-2' of Graves' cell, shared with the layer-norm cell (its 4'-3').

    dc = ∂L/∂c(p) (all of it), d_o = ∂L/∂o, sig = σ[i | f_1..f_n | o], g = tanh(z_g), c_prev
    the n predecessor states -> (∂L/∂ packed pre-activations (k, B, G), dc(p⁻_d) list).
    """
    n = lay.count("f")
    i = sig[..., lay.slice("i")]
    d_i = dc * g  # 3'. through i ⊙ g
    d_g = dc * i
    d_f = [dc * c_prev[d] for d in range(n)]  # 3'. through f_d ⊙ c(p⁻_d)
    dc_prev = [dc * sig[..., lay.slice("f", d)] for d in range(n)]
    dsig = xp.concat([d_i, *d_f, d_o], axis=-1)  # packed like sig
    dz = xp.concat([dsig * sig * (1.0 - sig),  # 2'. σ' = σ(1 − σ)
                    d_g * (1.0 - g * g)], axis=-1)  # 2'. tanh' = 1 − g²
    return dz, dc_prev
