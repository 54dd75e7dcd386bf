"""The numba backend: the numpy reference plus a jitted hot loop (work in progress, issue 3).

Until the kernels land, it is the numpy reference under another name.
"""

from .backend import Backend


class NumbaBackend(Backend):
    """The numpy backend whose Graves MD-LSTM sweep runs in a numba-jitted kernel."""

    name = "numba"
