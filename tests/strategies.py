"""Hypothesis strategies shared by the gradient tests: small grids, sometimes exactly zero."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays


@st.composite
def grid_inputs(draw, ndim=None, max_side=5, max_batch=3, max_channels=3, max_cells=60):
    """(x, ndim) with x float64 of shape (B, *S, C): sides 1..max_side, values in [-2, 2].

    About one draw in four is exactly zero everywhere, and others get a zero region (a zero
    box at a random corner), the inputs that break the seed's layer-norm cell.
    """
    n = draw(st.sampled_from([1, 2, 3])) if ndim is None else ndim
    sides = draw(st.lists(st.integers(1, max_side), min_size=n, max_size=n)
                 .filter(lambda s: int(np.prod(s)) <= max_cells))
    B = draw(st.integers(1, max_batch))
    C = draw(st.integers(1, max_channels))
    kind = draw(st.sampled_from(["zero", "random", "random", "zero-region"]))
    shape = (B, *sides, C)
    if kind == "zero":
        return np.zeros(shape), n
    x = draw(arrays(np.float64, shape, elements=st.floats(-2, 2, allow_nan=False, width=64)))
    if kind == "zero-region":
        box = tuple(slice(0, draw(st.integers(1, s))) for s in sides)
        x[(slice(None), *box)] = 0.0
    return x, n
