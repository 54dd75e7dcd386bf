"""Cell variants: the per-wavefront elementwise math of an MD-LSTM.

A cell turns the packed pre-activations z of one wavefront and the predecessors' cell states
into the new hidden and cell states, and back. The sweep (``mdlstm_np/mdlstm.py``) owns
everything else: the input projection, the recurrent matmul, gathers and storage.

Interface of a cell object (see ``graves.py`` for the reference)::

    layout(ndim, hidden)         -> GateLayout
    param_shapes(ndim, hidden)   -> {name: shape} of the cell's own parameters (may be empty)
    init_params(ndim, hidden, xp_dtype_array_factory) -> {name: array}
    forward(be, lay, z, c_prev, p)         -> (h, c, step_cache)
    backward(be, lay, dh, dc, step, p, g)  -> (dz, dc_prev)    (adds into g for own params)
"""

from .graves import GravesCell

CELLS = {"graves": GravesCell}


def get_cell(name):
    """Cell object for a name (or pass a cell object through)."""
    if not isinstance(name, str):
        return name
    key = name.lower()
    if key not in CELLS:
        raise ValueError(f"cell: expected one of {', '.join(sorted(CELLS))}, got {name!r}")
    return CELLS[key]()
