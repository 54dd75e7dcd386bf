"""Cell variants: the per-wavefront elementwise math of an MD-LSTM.

A cell turns the packed pre-activations z of one wavefront and the predecessors' cell states
into the new hidden and cell states, and back. The sweep (``mdlstm_np/sweep.py``) and the layer (``mdlstm.py``) own
everything else: the input projection, the recurrent matmul, gathers, masks and storage.

Interface of a cell object (``graves.py`` is the reference)::

    name                                   -> str
    uses_bias                              -> bool (False: the layer has no ``b``; the cell
                                              supplies its own shift, as layer norm does)
    layout(ndim, hidden)                   -> GateLayout
    param_shapes(ndim, hidden)             -> {name: shape} of the cell's own parameters
    init_value(name, shape)                -> host numpy array, the initial value
    forward(be, lay, z, c_prev, params)    -> (h, c, step_cache)
    backward(be, lay, dh, dc, step, params, grads) -> (dz, dc_prev)  (adds own-parameter
                                              gradients into grads)

z is (k, B, G) for the k cells of one wavefront, c_prev a list of n arrays (k, B, H).

Variants (``make_cell``): graves (default), with optional peepholes (Graves' layout); stable
(Leifert's λ-mixture, RETURNN's default); leakylp (Leifert); and layer-normalised cells
(``ln=True``: our NaN-free formulation; ``ln="seed"``: the seed's exact one, for study).
"""

from importlib import import_module

from .graves import GravesCell

# name -> (module, class); imported lazily so that each variant stays a separate small module
CELLS = {
    "graves": (".graves", "GravesCell"),
    "graves_peephole": (".peephole", "GravesPeepholeCell"),
    "stable": (".stable", "StableCell"),
    "leakylp": (".leakylp", "LeakyLPCell"),
    "ln": (".layernorm", "LayerNormCell"),
}
CELL_NAMES = ("graves", "stable", "leakylp")
LN_CHOICES = (False, True, "fixed", "seed")


def _load(key, **options):
    module, cls = CELLS[key]
    return getattr(import_module(module, __name__), cls)(**options)


def make_cell(cell="graves", *, peepholes=False, ln=False):
    """The cell object for a variant name and options (a cell object passes through).

    cell      : "graves", "stable" or "leakylp".
    peepholes : Graves' peephole connections (n + 2 weight vectors), graves cell only.
    ln        : False; True or "fixed" (layer norm, NaN-free at zero input); "seed" (the seed's
                exact layer-norm cell, which blows up at zero input — kept for study).
    """
    if not isinstance(cell, str):
        return cell
    key = cell.lower()
    if key not in CELL_NAMES:
        raise ValueError(f"cell: expected one of {', '.join(CELL_NAMES)}, got {cell!r}")
    if ln not in LN_CHOICES:
        raise ValueError(f"ln: expected one of False, True, 'fixed', 'seed', got {ln!r}")
    if ln is not False:
        if key != "graves" or peepholes:
            raise ValueError(f"ln: layer norm is available for cell='graves' without "
                             f"peepholes, got cell={cell!r}, peepholes={peepholes!r}")
        return _load("ln", formulation="seed" if ln == "seed" else "fixed")
    if peepholes:
        if key != "graves":
            raise ValueError(f"peepholes: available for cell='graves' only, got cell={cell!r}")
        return _load("graves_peephole")
    if key == "graves":
        return GravesCell()
    return _load(key)
