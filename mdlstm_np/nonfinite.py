"""Non-finite diagnostics of the MD-LSTM layer: where a NaN or inf first appeared, and what to do.

``MDLSTM.forward`` and ``backward`` (``check_finite=True``) call these after the sweep, never
inside it. The check itself is one reduction and one host sync per pass:

    probe = Σ (a·0) over every array checked        0 when everything is finite,
                                                    NaN as soon as one element is NaN or ±inf
                                                    (inf·0 = NaN; a sum of squares would
                                                    overflow and raise false alarms)

Only when the probe is NaN are the arrays searched, on the host, to name the culprit:

* forward: the first wavefront s (lowest s: the sweep runs s = 0, 1, …) whose h or c row is
  not finite, with the grid cell and the sample;
* backward: first the incoming gradient ``dout`` — a NaN there is bad input, not an unstable
  cell, and is reported as such, naming ``dout`` —, else every gradient checked (dx, each
  parameter's, dh0/dc0) and the first wavefront where ∂L/∂z became non-finite (highest s: the
  backward sweep runs from the last wavefront down to 0).

The advice names what this layer could change (a stable cell, layer norm, float64, a smaller
forget bias); ``tests/test_nonfinite.py`` pins every message.
"""

from __future__ import annotations

import numpy as np

from .sweep import DevicePlan
from .validate import NonFiniteError


def advice(layer) -> str:
    """What to do about a non-finite pass, for ``layer``'s cell, dtype and bias."""
    name = getattr(layer.cell, "name", "")
    fixes = []
    if name not in ("stable", "leakylp"):
        fixes.append("a stable cell (cell='stable', the default, or cell='leakylp')")
    if name == "ln_seed":
        fixes.append("the NaN-free layer norm (ln=True instead of ln='seed')")
    elif not name.startswith("ln"):
        fixes.append("layer norm (ln=True)")
    if layer.dtype == "float32":
        fixes.append("dtype='float64'")
    if getattr(layer.cell, "uses_bias", True):
        fixes.append(f"a smaller forget_bias (this layer: {layer.forget_bias!r})")
    fixes.append("smaller inputs or learning rate")
    return "What to do: " + ", or ".join(fixes) + "."


def first_bad(be, plan: DevicePlan, a_w, backward=False):
    """(wavefront s, raster cell, sample) of the first non-finite row of a_w (N(+1), B, F)
    in sweep order (forward: lowest s; backward: highest s), or None. Host side: runs only
    after a check failed."""
    xp, host = be.xp, plan.host
    N = host.ncells
    a = xp.reshape(a_w[:N, ...], (N, a_w.shape[1], -1))
    bad = ~be.to_numpy(xp.all(xp.isfinite(a), axis=2))  # (N, B)
    rows = np.nonzero(bad.any(axis=1))[0]
    if rows.size == 0:
        return None
    j = int(rows[-1] if backward else rows[0])
    starts = np.array([b[0] for b in host.bounds])
    s = int(np.searchsorted(starts, j, side="right") - 1)
    if backward:  # the first bad row the backward sweep met: the last of its wavefront
        j = int(rows[rows >= starts[s]][0])
    cellpos = tuple(int(v) for v in np.unravel_index(int(host.order[j]), host.shape))
    return s, cellpos, int(np.nonzero(bad[j])[0][0])


def check_state_finite(layer, plan: DevicePlan, h, c):
    """NonFiniteError unless h and c (N+1, B, H) are finite: one reduction, one sync."""
    be, xp = layer.be, layer.be.xp
    with np.errstate(invalid="ignore", over="ignore"):
        probe = xp.sum(h * 0 + c * 0)  # 0 when all finite, NaN otherwise (never overflows)
    if be.all_finite(probe):
        return
    last = len(plan.host.bounds) - 1
    where = []
    for name, a in (("cell state c", c), ("hidden state h", h)):
        hit = first_bad(be, plan, a)
        if hit is not None:
            where.append((hit[0], name, hit))
    s, name, (_, cellpos, b) = min(where, key=lambda t: t[0])
    why = (" (Graves' cell sums its n predecessors' states, which can grow like a path "
           "count along the diagonal)" if layer.cell.name.startswith("graves") else "")
    raise NonFiniteError(
        f"{layer!r}: the forward pass produced a non-finite {name} (NaN or inf), first on "
        f"wavefront {s} of 0..{last} (grid cell {cellpos}, sample {b}) with the "
        f"{getattr(layer.cell, 'name', layer.cell)!r} cell in {layer.dtype}: the state left "
        f"the floating-point range{why}. {advice(layer)}")


def check_grads_finite(layer, plan: DevicePlan, dx, grads, res, *, dout=None):
    """NonFiniteError unless dx and every gradient (and dh0/dc0) are finite (one reduction
    over all of them, one sync). When they are not and ``dout`` itself holds a NaN or inf,
    the error names ``dout`` as bad input instead of blaming the cell."""
    be, xp = layer.be, layer.be.xp
    arrays = [("x", dx)] + sorted(grads.items())
    arrays += [(k, v) for k, v in (("h0", res.dh0), ("c0", res.dc0)) if v is not None]
    with np.errstate(invalid="ignore", over="ignore"):
        probe = xp.sum(arrays[0][1] * 0)
        for _, v in arrays[1:]:
            probe = probe + xp.sum(v * 0)
    if be.all_finite(probe):
        return
    if dout is not None and not be.all_finite(dout):
        raise NonFiniteError(f"dout: expected finite values (the gradient coming into "
                             f"{layer!r}.backward), got NaN or inf; the layer did not make "
                             f"them: look at the loss or the layer after this one")
    bad = [k for k, v in arrays if not be.all_finite(v)]
    hit = None if res.dZ is None else first_bad(be, plan, res.dZ, backward=True)
    where = ("the sums over the grid overflowed (every ∂L/∂z is finite)" if hit is None
             else f"∂L/∂z first became non-finite on wavefront {hit[0]} (the backward "
                  f"sweep runs from wavefront {len(plan.host.bounds) - 1} down to 0; grid "
                  f"cell {hit[1]}, sample {hit[2]})")
    raise NonFiniteError(
        f"{layer!r}: the backward pass produced non-finite gradients (NaN or inf) of "
        f"{', '.join(bad)} from a finite forward pass with the "
        f"{getattr(layer.cell, 'name', layer.cell)!r} cell in {layer.dtype}: {where}. "
        f"{advice(layer)}")
