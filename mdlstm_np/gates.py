"""Gate packing: where each gate's pre-activations live inside the packed vector z.

All gates of a cell are computed by one matmul into one packed vector z of length G = (Σ
counts)·H. The order is defined once, here; layers and kernels ask a ``GateLayout`` for a
block's slice instead of re-slicing by hand.

Graves' MD-LSTM in n dimensions (docs/equations.md):  [ i | f_1 … f_n | o | g ],
G = (n + 3)·H.
The sigmoid gates come first and are contiguous, so one sigmoid covers ``z[..., :sig_end]``
and one tanh covers the cell input g.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class GateLayout:
    """Blocks of a packed gate vector.

    blocks : ((name, count), ...) in packing order, each block ``count·hidden`` wide.
    hidden : H, the width of one gate.
    """

    blocks: Tuple[Tuple[str, int], ...]
    hidden: int

    @property
    def size(self) -> int:
        """G, the packed width."""
        return sum(c for _, c in self.blocks) * self.hidden

    def offset(self, name: str) -> int:
        """Start (in units of H) of block ``name``."""
        start = 0
        for n, c in self.blocks:
            if n == name:
                return start
            start += c
        raise KeyError(f"gate {name!r} not in layout {[n for n, _ in self.blocks]}")

    def count(self, name: str) -> int:
        return dict(self.blocks)[name]

    def slice(self, name: str, d: int | None = None) -> slice:
        """Slice of block ``name`` (all of it), or of its ``d``-th gate (e.g. f_d)."""
        H = self.hidden
        start = self.offset(name)
        if d is None:
            return slice(start * H, (start + self.count(name)) * H)
        if not 0 <= d < self.count(name):
            raise IndexError(f"gate {name!r} has {self.count(name)} copies, asked for {d}")
        return slice((start + d) * H, (start + d + 1) * H)

    def span(self, first: str, last: str) -> slice:
        """One slice from the start of block ``first`` to the end of block ``last``."""
        return slice(self.slice(first).start, self.slice(last).stop)


def graves_layout(ndim: int, hidden: int) -> GateLayout:
    """[i | f_1..f_n | o | g] for Graves' n-D MD-LSTM cell."""
    return GateLayout(blocks=(("i", 1), ("f", ndim), ("o", 1), ("g", 1)), hidden=hidden)
