"""Graves' MD-LSTM cell with peephole connections (Graves & Schmidhuber 2008, Sec. 2.1.1).

Notation. We are at cell p of an n-D grid; p⁻_d is its predecessor along axis d (zero state,
or the given initial state, outside the grid). H is the hidden width, B the batch; the sweep
hands us one wavefront of k cells, so every array is (k, B, ·). ⊙ is the elementwise product.
The peephole weights are vectors (a diagonal matrix each), n + 2 of them per layer:

    w_i (H,)      one input-gate vector, shared by all axes, looking at Σ_d c(p⁻_d)
    w_f (n, H)    row d: forget gate d looks at its own axis only, c(p⁻_d)
    w_o (H,)      the output gate looks at the *current* state c(p)

Forward (the sweep did step 1, z = x(p) W + b + Σ_d h(p⁻_d) U_d; same packing as the plain
cell, [i | f_1..f_n | o | g], so W, U, b mean the same thing with and without peepholes):

    2a. c_sum = Σ_d c(p⁻_d)
    2b. i = σ(z_i + w_i ⊙ c_sum)     f_d = σ(z_fd + w_f[d] ⊙ c(p⁻_d))     g = tanh(z_g)
    3.  c(p) = i ⊙ g + Σ_d f_d ⊙ c(p⁻_d)
    4a. o = σ(z_o + w_o ⊙ c(p))                      (o needs c(p): computed after step 3)
    4b. h(p) = o ⊙ tanh(c(p))

Backward, the same numbers in reverse. dh = ∂L/∂h(p) and dc = ∂L/∂c(p) come from the sweep
(dc: the successors' shares through their steps 2b and 3). σ' = σ(1 − σ), tanh' = 1 − tanh².

    4b'. do = dh ⊙ tanh(c)                      dc += dh ⊙ o ⊙ (1 − tanh²(c))
    4a'. dz_o = do ⊙ o(1 − o)                   dc += dz_o ⊙ w_o      dw_o += Σ dz_o ⊙ c(p)
    3'. di = dc ⊙ g    dg = dc ⊙ i    df_d = dc ⊙ c(p⁻_d)    dc(p⁻_d) = dc ⊙ f_d
    2b'. dz_i = di ⊙ i(1 − i)    dz_fd = df_d ⊙ f_d(1 − f_d)    dz_g = dg ⊙ (1 − g²)
        dc(p⁻_d) += dz_fd ⊙ w_f[d]             dw_f[d] += Σ dz_fd ⊙ c(p⁻_d)
                                                dw_i += Σ dz_i ⊙ c_sum
    2a'. dc(p⁻_d) += dz_i ⊙ w_i                 (c_sum feeds every axis equally)

(Σ in the weight gradients runs over the k cells and the batch: the vectors are shared.)

Initialisation: all peephole weights start at 0, so a fresh layer computes exactly what the
plain Graves cell computes with the same W, U, b (pinned by a test); training moves them only
where looking at the state helps. With n = 1 this is the classic peephole LSTM (Gers 2002).
"""

from __future__ import annotations

from typing import List, NamedTuple

import numpy as np

from ..gates import GateLayout, graves_layout
from .base import Cell


class PeepholeStep(NamedTuple):
    """What the backward pass of one wavefront needs (all (k, B, ·))."""

    sig_if: object        # σ of [i | f_1..f_n] (with peepholes), (k, B, (n+1)H)
    o: object             # output gate, (k, B, H)
    g: object             # tanh(z_g), (k, B, H)
    c_prev: List[object]  # c(p⁻_d) for d = 1..n, each (k, B, H)
    c_sum: object         # Σ_d c(p⁻_d), (k, B, H)
    c: object             # c(p), (k, B, H)
    tanh_c: object        # tanh(c(p)), (k, B, H)


class GravesPeepholeCell(Cell):
    name = "graves_peephole"

    make_layout = staticmethod(graves_layout)

    def param_shapes(self, ndim: int, hidden: int) -> dict:
        return {"w_i": (hidden,), "w_f": (ndim, hidden), "w_o": (hidden,)}

    def init_value(self, key: str, shape):
        if key not in ("w_i", "w_f", "w_o"):
            raise KeyError(key)
        return np.zeros(shape)  # 0: starts as the plain cell (see the module docstring)

    def forward(self, be, lay: GateLayout, z, c_prev, params):
        """z (k, B, G), c_prev: n arrays (k, B, H) -> h (k, B, H), c (k, B, H), PeepholeStep."""
        xp = be.xp
        n = lay.count("f")
        c_sum = c_prev[0]
        for d in range(1, n):
            c_sum = c_sum + c_prev[d]  # 2a. Σ_d c(p⁻_d)
        peep = xp.concat([params["w_i"] * c_sum]  # 2b. what i and f_d see of the state
                         + [params["w_f"][d, :] * c_prev[d] for d in range(n)], axis=-1)
        sig_if = be.sigmoid(z[..., lay.span("i", "f")] + peep)  # 2b. i, f_1..f_n
        g = xp.tanh(z[..., lay.slice("g")])  # 2b. cell input
        # sig_if starts at offset 0 of z, so the layout's slices index it as well
        c = sig_if[..., lay.slice("i")] * g  # 3. i ⊙ g ...
        for d in range(n):
            c = c + sig_if[..., lay.slice("f", d)] * c_prev[d]  # 3. ... + f_d ⊙ c(p⁻_d)
        o = be.sigmoid(z[..., lay.slice("o")] + params["w_o"] * c)  # 4a. o sees the new state
        tanh_c = xp.tanh(c)
        h = o * tanh_c  # 4b. h = o ⊙ tanh(c)
        return h, c, PeepholeStep(sig_if, o, g, list(c_prev), c_sum, c, tanh_c)

    def backward(self, be, lay: GateLayout, dh, dc, step: PeepholeStep, params, grads):
        """dh, dc (k, B, H) -> dz (k, B, G), dc_prev: n arrays (k, B, H).

        Adds the peephole gradients into grads["w_i"], grads["w_f"], grads["w_o"].
        """
        xp = be.xp
        n = lay.count("f")
        sig_if, o, g, c_prev = step.sig_if, step.o, step.g, step.c_prev
        c_sum, c, tanh_c = step.c_sum, step.c, step.tanh_c
        i = sig_if[..., lay.slice("i")]
        f = [sig_if[..., lay.slice("f", d)] for d in range(n)]
        d_o = dh * tanh_c  # 4b'. through h = o ⊙ tanh(c)
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c)  # 4b'. ... and through tanh(c)
        dz_o = d_o * o * (1.0 - o)  # 4a'. σ' = o(1 − o)
        dc = dc + dz_o * params["w_o"]  # 4a'. through the output peephole w_o ⊙ c
        grads["w_o"] = grads["w_o"] + xp.sum(dz_o * c, axis=(0, 1))  # 4a'. shared vector
        d_i = dc * g  # 3'. through i ⊙ g
        d_g = dc * i
        d_f = [dc * c_prev[d] for d in range(n)]  # 3'. through f_d ⊙ c(p⁻_d)
        dc_prev = [dc * f[d] for d in range(n)]
        dz_if = xp.concat([d_i, *d_f], axis=-1) * sig_if * (1.0 - sig_if)  # 2b'. σ' = σ(1 − σ)
        dz_i = dz_if[..., lay.slice("i")]
        dz_f = [dz_if[..., lay.slice("f", d)] for d in range(n)]
        dz_g = d_g * (1.0 - g * g)  # 2b'. tanh' = 1 − g²
        dc_prev = [dc_prev[d] + dz_f[d] * params["w_f"][d, :]  # 2b'. via w_f[d] ⊙ c(p⁻_d)
                   + dz_i * params["w_i"]  # 2a'. through w_i ⊙ Σ_d c(p⁻_d)
                   for d in range(n)]
        grads["w_f"] = grads["w_f"] + xp.stack(
            [xp.sum(dz_f[d] * c_prev[d], axis=(0, 1)) for d in range(n)], axis=0)  # 2b'.
        grads["w_i"] = grads["w_i"] + xp.sum(dz_i * c_sum, axis=(0, 1))  # 2b'.
        dz = xp.concat([dz_if, dz_o, dz_g], axis=-1)  # packed [i | f_1..f_n | o | g]
        return dz, dc_prev
