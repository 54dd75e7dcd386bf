"""What every cell shares: a gate layout and, by default, no parameters of its own."""

from __future__ import annotations

from ..gates import GateLayout


class Cell:
    """Base of the cell variants (the interface is described in ``cells/__init__.py``).

    Subclasses set ``name`` and ``make_layout`` (a function (ndim, hidden) -> GateLayout) and
    write ``forward``/``backward``; cells with parameters of their own (peepholes, layer norm)
    also override ``param_shapes`` and ``init_value``.
    """

    name = "cell"
    uses_bias = True  # False: the layer has no b (the cell brings its own shift)
    make_layout = None

    def layout(self, ndim: int, hidden: int) -> GateLayout:
        return type(self).make_layout(ndim, hidden)

    def param_shapes(self, ndim: int, hidden: int) -> dict:
        return {}

    def init_value(self, key: str, shape):
        raise KeyError(f"cell {self.name!r} has no parameter {key!r}")
