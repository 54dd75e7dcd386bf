"""The numpy reference backend: one object owns the array module ``xp`` and the few primitives
the engine needs, and answers which sweep runs a given cell.

Layers never import numpy or cupy. They receive a backend and write ``be.xp.tanh(...)``,
``be.take(...)``, ``a @ b``. The code in the layers sticks to the Python array API standard
(``xp.reshape``, ``xp.permute_dims``, ``xp.concat``, ``xp.take``, slicing), so that one body of
code serves numpy, cupy and a strict array-API namespace used in the tests to prove that no
stray numpy call is hiding in the reference path.

Fast sweeps. ``be.sweep_for(cell)`` hands the layer the sweep to run (``mdlstm_np/sweep.py``
defines the contract): the backend's fast sweep registered for ``type(cell)``, else the
reference sweep. This base class registers none; ``backends/numba.py`` and ``backends/cupy.py``
register theirs in ``fast_sweeps``.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..sweep import ReferenceSweep
from ..validate import DTYPES


class Backend:
    """The numpy reference backend.

    Attributes
    ----------
    name : str
        ``"numpy"``, ``"numba"``, ``"cupy"`` or ``"strict"`` (tests only).
    xp : module
        The array namespace.
    """

    name = "numpy"

    def __init__(self, xp=np):
        self.xp = xp

    # ----------------------------------------------------------------- conversion
    def asarray(self, a, dtype=None):
        """Host or device data -> an array of this backend (copying only when needed)."""
        if dtype is not None:
            dtype = self.dtype(dtype)
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a) -> np.ndarray:
        """Backend array -> numpy array on the host (the only place data leaves a device)."""
        return np.asarray(a)

    def dtype(self, name):
        """``"float32"`` / ``"float64"`` (or a dtype object) -> this namespace's dtype."""
        return getattr(self.xp, str(np.dtype(name)) if not isinstance(name, str) else name)

    def dtype_name(self, a) -> str:
        """The dtype of array ``a`` as a plain string ("float32")."""
        for name in DTYPES:
            if a.dtype == self.dtype(name):
                return name
        return str(a.dtype)

    def index(self, idx: np.ndarray):
        """A host integer index array -> an index array usable by ``take`` on this backend."""
        return self.xp.asarray(np.ascontiguousarray(idx, dtype=np.int64))

    def is_array(self, a) -> bool:
        return isinstance(a, np.ndarray)

    # ----------------------------------------------------------------- primitives
    def sigmoid(self, x):
        """Overflow-free logistic function that keeps the dtype: σ(x) = tanh(x/2)/2 + 1/2."""
        return self.xp.tanh(x * 0.5) * 0.5 + 0.5

    def take(self, a, idx):
        """Gather rows: ``a[idx]`` along axis 0 (``idx`` from :meth:`index`)."""
        return self.xp.take(a, idx, axis=0)

    def all_finite(self, a) -> bool:
        """True when every element is finite (one host sync: call it outside hot loops)."""
        return bool(self.xp.all(self.xp.isfinite(a)))

    def synchronize(self):
        """Wait for queued device work (no-op on the CPU)."""

    # ----------------------------------------------------------------- sweeps
    def fast_sweeps(self) -> dict:
        """{cell class: fast sweep object} this backend accelerates (none: the reference)."""
        return {}

    def sweep_for(self, cell, *, masked: bool = False):
        """The sweep that runs ``cell`` here: a registered fast sweep, else the reference.

        masked: the call carries a variable-size mask (every sweep here supports it; a fast
        sweep that does not may say so with ``supports_mask = False``).
        """
        fast = self.fast_sweeps().get(type(cell))
        if fast is not None and (not masked or getattr(fast, "supports_mask", True)):
            return fast
        return self.reference_sweep

    @property
    def reference_sweep(self) -> ReferenceSweep:
        if "_reference_sweep" not in self.__dict__:
            self._reference_sweep = ReferenceSweep(self)
        return self._reference_sweep

    # ----------------------------------------------------------------- per-shape caches
    cache_shapes = 64  # grid shapes remembered per backend (see ``shape_cache``)

    def shape_cache(self, name: str) -> "LRU":
        """A bounded per-shape cache called ``name`` on this backend (plans, index arrays).

        Variable-size images bring a new grid shape almost every batch; every per-shape cache
        keeps the ``cache_shapes`` most recently used shapes and forgets the rest.
        """
        caches = self.__dict__.setdefault("_shape_caches", {})
        if name not in caches:
            caches[name] = LRU(self.cache_shapes)
        return caches[name]


class LRU:
    """A dict that keeps its ``maxsize`` most recently used entries (``get_or_make``)."""

    def __init__(self, maxsize: int):
        self.maxsize, self._data = int(maxsize), OrderedDict()

    def get_or_make(self, key, make):
        """The entry for ``key``, made by ``make()`` (and the oldest entry dropped) if new."""
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        value = make()
        self._data[key] = value
        if len(self._data) > self.maxsize:
            self._data.popitem(last=False)
        return value

    def __len__(self):
        return len(self._data)
