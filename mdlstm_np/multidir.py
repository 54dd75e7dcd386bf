"""Multi-directional MD-LSTM: 2ⁿ scans of an n-D grid, one from each corner, each with its own
weights (Graves, Fernández & Schmidhuber 2007, Sec. 3.2).

Why. A single MD-LSTM at cell p sees only the "past" quadrant {q : q ≤ p}. Scanning from all
2ⁿ corners and combining the results gives every cell context from the whole grid.

Notation. A direction is the set F of axes it flips. P_F is the permutation of grid cells that
reverses each sample's box along the axes in F (defined below); MDLSTM_F is a single-direction
layer (``mdlstm.py``) with its own parameters θ_F. For each direction F, in one call:

    1.  x̃_F = P_F x                        the input seen from F's corner, which becomes the origin
    2.  h̃_F = MDLSTM_F(x̃_F; sizes)         the ordinary origin-corner sweep (same sizes mask)
    3.  h_F = P_F h̃_F                      back to the original layout (P_F is its own inverse)
    4.  out = [h_F1 | h_F2 | …]            combine="concat": (B, *S, D·H), blocks in list order
        out = Σ_F h_F                      combine="sum":    (B, *S, H)

Backward, the mirror image. P_F is a permutation, so its transpose is its inverse, and it is
an involution, so its inverse is itself: the backward of a gather by P_F is the same gather.

    4'. dh_F = dout[…, block F]   (concat)      dh_F = dout   (sum)
    3'. dh̃_F = P_F dh_F
    2'. dx̃_F, dθ_F = MDLSTM_F.backward(dh̃_F)
    1'. dx = Σ_F P_F dx̃_F

Variable-size batches. Sample b occupies the box [0, L_b1) × … × [0, L_bn) at the origin corner
of the padded grid (``sizes[b] = L_b``). Its scan from F's corner must start at *its own*
corner, not at the padded grid's, so P_F reverses the sample's box within itself:

    along every flipped axis d ∈ F:  j  ->  L_bd − 1 − j        for cells inside the box
    cells outside the box (padding) stay where they are

After step 1 the flipped sample again sits at the origin, so the layer's ``sizes`` mask applies
unchanged; each sample's result equals running it alone (``tests/test_variable_size.py``).
Without ``sizes``, L_bd = S_d and P_F is the plain flip ``x[..., ::-1, ...]``.

P_F is one ``take`` over the flattened (B·N) cell axis with an index built on the host (numpy,
like ``grid.py``) and cached per (shape, flips, batch, sizes): array-API friendly, no scatter.

Direction codes and parameter names. Direction ``k`` (0 ≤ k < 2ⁿ) flips axis d (d = 0 for the
first grid axis) when binary digit d of k, counted from the *left* of its n-digit binary
form, is 1; its parameters are ``"d{k}.W"``, ``"d{k}.U"``, ``"d{k}.b"`` (+ the cell's own).
In 2-D (axes: height, width):

    d0 = 00  from the top-left     (the plain MDLSTM)     d1 = 01  from the top-right
    d2 = 10  from the bottom-left                         d3 = 11  from the bottom-right

``directions`` accepts "all" (codes 0 … 2ⁿ−1 in order) or a list of direction tuples, one
entry per axis: ``+1`` / ``-1`` (forward / reversed) or ``False`` / ``True`` (flipped?), e.g.
``[(1, 1), (-1, -1)]`` or ``[(False, False), (True, True)]`` for codes 0 and 3.
"""

from __future__ import annotations

import numbers
from typing import Any, List, NamedTuple, Tuple

import numpy as np

from .mdlstm import MDLSTM
from .validate import (NonFiniteError, check_grid_input, check_params, check_positive_int,
                       check_sizes)

COMBINES = ("concat", "sum")


# --------------------------------------------------------------------------- direction specs
def direction_code(flips: Tuple[bool, ...]) -> int:
    """Flip flags (one per axis, axis 0 first) -> direction code k (axis 0 = leftmost bit)."""
    k = 0
    for f in flips:
        k = 2 * k + int(f)
    return k


def direction_flips(code: int, ndim: int) -> Tuple[bool, ...]:
    """Direction code k -> flip flags, one per axis (axis 0 first)."""
    return tuple(bool((code >> (ndim - 1 - d)) & 1) for d in range(ndim))


def _is_bool(v) -> bool:
    return isinstance(v, (bool, np.bool_))


def parse_directions(directions, ndim: int) -> List[Tuple[bool, ...]]:
    """``"all"`` or a list of direction tuples -> a list of flip-flag tuples (see module doc)."""
    if isinstance(directions, str):
        if directions != "all":
            raise ValueError(f"directions: expected 'all' or a list of direction tuples, got "
                             f"{directions!r}")
        return [direction_flips(k, ndim) for k in range(2 ** ndim)]
    try:
        specs = list(directions)
    except TypeError:
        raise TypeError(f"directions: expected 'all' or a list of direction tuples, got "
                        f"{type(directions).__name__}") from None
    if not specs:
        raise ValueError("directions: expected at least one direction, got an empty list")
    out = []
    for spec in specs:
        try:
            entries = tuple(spec)
        except TypeError:
            raise ValueError(f"directions: expected a tuple of {ndim} entries (+1/-1 or "
                             f"bools) per direction, got {spec!r}") from None
        if len(entries) != ndim:
            raise ValueError(f"directions: expected {ndim} entries per direction (one per "
                             f"axis), got {spec!r}")
        if all(_is_bool(v) for v in entries):
            flips = tuple(bool(v) for v in entries)
        elif all(isinstance(v, numbers.Integral) and not _is_bool(v) and v in (1, -1)
                 for v in entries):
            flips = tuple(int(v) == -1 for v in entries)
        else:
            raise ValueError(f"directions: expected entries that are all +1/-1 or all bools, "
                             f"got {spec!r}")
        if flips in out:
            raise ValueError(f"directions: expected distinct directions, got {spec!r} twice")
        out.append(flips)
    return out


# --------------------------------------------------------------------------- the flip P_F
def flip_index(shape: Tuple[int, ...], flips: Tuple[bool, ...], batch: int,
               sizes=None) -> np.ndarray:
    """Host gather index of P_F over the flattened (B·N) cell axis: (B·N,) int64.

    Row b·N + r of the result is the flattened source of raster cell r of sample b: inside the
    sample's box it is the cell mirrored along every flipped axis, outside it is r itself.
    The map is an involution (applying it twice is the identity).
    """
    n, N = len(shape), int(np.prod(shape))
    L = np.broadcast_to(np.asarray(shape), (batch, n)) if sizes is None else sizes  # (B, n)
    coords = np.stack(np.unravel_index(np.arange(N), shape), axis=0)  # (n, N) raster order
    src = np.broadcast_to(coords[:, None, :], (n, batch, N)).copy()  # (n, B, N)
    inside = (coords[:, None, :] < L.T[:, :, None]).all(axis=0)  # (B, N) in the sample's box
    for d in range(n):
        if flips[d]:
            mirrored = L[:, d, None] - 1 - coords[d][None, :]  # (B, N) j -> L_bd − 1 − j
            src[d] = np.where(inside, mirrored, src[d])
    flat = np.ravel_multi_index(tuple(src), shape)  # (B, N)
    return (flat + N * np.arange(batch)[:, None]).reshape(-1)


def _device_flip(be, shape, flips, batch, sizes):
    """``flip_index`` converted to the backend once (per shape, flips, batch and sizes; the
    backend's bounded per-shape cache: variable-size batches make a new key every batch)."""
    key = (tuple(shape), flips, batch, None if sizes is None else sizes.tobytes())
    return be.shape_cache("flip_index").get_or_make(
        key, lambda: be.index(flip_index(shape, flips, batch, sizes)))


def apply_flip(be, a, idx):
    """P_F a for a grid array a (B, *S, F): one gather over the flattened cell axis."""
    xp = be.xp
    shape = tuple(a.shape)
    flat = xp.reshape(a, (-1, shape[-1]))  # (B·N, F)
    return xp.reshape(be.take(flat, idx), shape)


# --------------------------------------------------------------------------- the layer
class MultiDirCache(NamedTuple):
    """What ``MultiDirectionalMDLSTM.backward`` needs (one entry per direction, list order)."""

    caches: List[Any]   # the single-direction layer's cache of each direction
    flips: List[Any]    # the device gather index of each P_F, (B·N,)
    out_shape: tuple    # (B, *S, F_out)


class MultiDirectionalMDLSTM:
    """2ⁿ (or a chosen subset of) MD-LSTM scans of an n-D grid, combined per cell.

    Parameters
    ----------
    in_channels, hidden, ndim : as for :class:`MDLSTM` (hidden H is per direction).
    combine : ``"concat"`` (default): out (B, *S, D·H), direction blocks in the order of
        ``directions``; ``"sum"``: out (B, *S, H).
    directions : ``"all"`` (2ⁿ, codes 0 … 2ⁿ−1) or a list of direction tuples (module doc).
    **layer_kwargs : passed to every direction's :class:`MDLSTM` (cell, peepholes, ln,
        forget_bias, backend, dtype).

    Attributes: ``directions`` (flip tuples), ``codes`` (direction codes, the "d{k}." key
    prefixes), ``out_features`` (D·H or H), ``layer`` (the shared single-direction layer
    object; it holds no parameters, so one serves every direction).
    """

    def __init__(self, in_channels, hidden, ndim=2, *, combine="concat", directions="all",
                 **layer_kwargs):
        ndim = check_positive_int(ndim, "ndim")
        if combine not in COMBINES:
            raise ValueError(f"combine: expected one of {', '.join(COMBINES)}, got {combine!r}")
        self.layer = MDLSTM(in_channels, hidden, ndim, **layer_kwargs)
        self.in_channels, self.hidden, self.ndim = in_channels, hidden, ndim
        self.combine = combine
        self.directions = parse_directions(directions, ndim)
        self.codes = [direction_code(f) for f in self.directions]
        self.be, self.dtype = self.layer.be, self.layer.dtype
        self.out_features = hidden * (len(self.directions) if combine == "concat" else 1)

    # ------------------------------------------------------------------ parameters
    def _prefix(self, code) -> str:
        return f"d{code}."

    def param_shapes(self) -> dict:
        inner = self.layer.param_shapes()
        return {self._prefix(k) + name: shape for k in self.codes
                for name, shape in inner.items()}

    def init_params(self, rng: np.random.Generator) -> dict:
        """Fresh parameters: each direction initialised like an MDLSTM, in list order."""
        params = {}
        for k in self.codes:
            params.update({self._prefix(k) + name: v
                           for name, v in self.layer.init_params(rng).items()})
        return params

    def split_params(self, params: dict, code: int) -> dict:
        """The single-direction parameter dict of direction ``code`` (prefix removed)."""
        pre = self._prefix(code)
        return {name[len(pre):]: v for name, v in params.items() if name.startswith(pre)}

    # ------------------------------------------------------------------ forward
    def forward(self, params, x, *, sizes=None):
        """x (B, S_1..S_n, C) -> out (B, S_1..S_n, D·H) (concat) or (…, H) (sum), cache.

        sizes (B, n) ints, optional: sample b occupies [0, sizes[b, d]) along each axis d at
        the origin corner; padding is masked (zero output and gradient) and every direction's
        scan starts at the sample's own corner.
        """
        be, xp = self.be, self.be.xp
        check_grid_input(be, x, ndim=self.ndim, channels=self.in_channels, dtype=self.dtype)
        check_params(be, params, self.param_shapes(), self.dtype)
        B, S = x.shape[0], tuple(x.shape[1:-1])
        if sizes is not None:
            sizes = check_sizes(be.to_numpy(sizes) if be.is_array(sizes) else sizes, B, S)
        outs, caches, flips = [], [], []
        for k, f in zip(self.codes, self.directions):
            idx = _device_flip(be, S, f, B, sizes)
            x_f = apply_flip(be, x, idx)  # 1. x̃_F = P_F x
            try:
                h_f, cache = self.layer.forward(self.split_params(params, k), x_f,
                                                sizes=sizes)  # 2. the origin-corner sweep
            except NonFiniteError as e:  # name the direction too
                raise NonFiniteError(f"MultiDirectionalMDLSTM, direction d{k} (flips "
                                     f"{f}): {e}") from None
            outs.append(apply_flip(be, h_f, idx))  # 3. h_F = P_F h̃_F
            caches.append(cache)
            flips.append(idx)
        if self.combine == "concat":  # 4. combine
            out = xp.concat(outs, axis=-1) if len(outs) > 1 else outs[0]
        else:
            out = outs[0]
            for h in outs[1:]:
                out = out + h
        return out, MultiDirCache(caches, flips, tuple(out.shape))

    # ------------------------------------------------------------------ backward
    def backward(self, dout, cache: MultiDirCache):
        """dout (B, S_1..S_n, F_out) -> dx (B, S_1..S_n, C), dparams {"d{k}.name": array}."""
        be = self.be
        if not isinstance(cache, MultiDirCache) or len(cache.caches) != len(self.codes):
            raise TypeError(f"cache: expected the MultiDirCache of {len(self.codes)} "
                            f"direction(s) that forward returned, got "
                            f"{type(cache).__name__}"
                            + (f" of {len(cache.caches)}" if isinstance(cache, MultiDirCache)
                               else ""))
        if tuple(dout.shape) != cache.out_shape:
            raise ValueError(f"dout: expected shape {cache.out_shape}, got {tuple(dout.shape)}")
        H = self.hidden
        dx, grads = None, {}
        for j, (k, idx, c) in enumerate(zip(self.codes, cache.flips, cache.caches)):
            if self.combine == "concat":  # 4'. this direction's block of dout
                dh = dout[..., j * H:(j + 1) * H]
            else:
                dh = dout
            dh_f = apply_flip(be, dh, idx)  # 3'. dh̃_F = P_F dh_F
            try:
                dx_f, g = self.layer.backward(dh_f, c)  # 2'.
            except NonFiniteError as e:
                raise NonFiniteError(f"MultiDirectionalMDLSTM, direction d{k}: {e}") from None
            dx_k = apply_flip(be, dx_f, idx)  # 1'. P_F dx̃_F, summed over directions
            dx = dx_k if dx is None else dx + dx_k
            grads.update({self._prefix(k) + name: v for name, v in g.items()})
        return dx, grads
