"""Backends: one object owns the array module ``xp`` and the few primitives the engine needs.

Layers never import numpy or cupy. They receive a backend and write ``be.xp.tanh(...)``,
``be.take(...)``, ``a @ b``. The code in the layers sticks to the Python array API standard
(``xp.reshape``, ``xp.permute_dims``, ``xp.concat``, ``xp.take``, slicing), so that one body of
code serves numpy, cupy and a strict array-API namespace used in the tests to prove that no
stray numpy call is hiding in the reference path.

Backends
--------
``numpy``  the readable reference (this module).
``numba``  the numpy backend plus a jitted hot loop for the Graves MD-LSTM sweep
           (``mdlstm_np/backend_numba.py``); everything else falls back to the reference.
``cupy``   arrays on a CUDA GPU (``mdlstm_np/backend_cupy.py``).
``auto``   cupy if a GPU is really usable, else numba if installed, else numpy.

``get_backend(name)`` is the public way in.
"""

from __future__ import annotations

import warnings

import numpy as np

from .validate import DTYPES


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

    def hot_loop(self, direction: str, cell, masked: bool = False):
        """A faster sweep for ``cell`` ("forward" or "backward"), or None: use the reference.

        ``masked``: the call carries a variable-size mask (a hot loop may not support it).

        Faster backends override this for the cells they cover and fall back to the
        reference sweep in ``mdlstm.py`` for the rest.
        """
        return None


def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


_NAMES = ("auto", "numpy", "numba", "cupy")
_warned_no_numba = False


def get_backend(name="auto", *, verbose: bool = False) -> Backend:
    """Return the backend called ``name``: "auto", "numpy", "numba" or "cupy".

    A :class:`Backend` instance is passed through unchanged. ``"auto"`` picks cupy only when a
    GPU is really usable, then numba, then numpy; with ``verbose`` it says which it picked.
    """
    global _warned_no_numba
    if isinstance(name, Backend):
        return name
    if not isinstance(name, str) or name.lower() not in _NAMES:
        raise ValueError(f"backend: expected one of {', '.join(_NAMES)}, got {name!r}")
    name = name.lower()
    if name == "numpy":
        return Backend()
    if name == "numba":
        if not numba_available():
            raise ValueError("backend: 'numba' needs the numba package (pip install numba)")
        from .backend_numba import NumbaBackend

        return NumbaBackend()
    if name == "cupy":
        from .backend_cupy import CupyBackend

        return CupyBackend()
    # auto
    try:
        from .backend_cupy import CupyBackend, cupy_unavailable_reason

        if cupy_unavailable_reason() is None:
            be = CupyBackend()
            if verbose:
                print("backend: auto picked cupy (a CUDA GPU is usable)")
            return be
    except ImportError:
        pass
    if numba_available():
        from .backend_numba import NumbaBackend

        if verbose:
            print("backend: auto picked numba (no usable GPU)")
        return NumbaBackend()
    if not _warned_no_numba:
        warnings.warn("numba is not installed: using the slower numpy backend "
                      "(pip install numba for the fast CPU path)", stacklevel=2)
        _warned_no_numba = True
    return Backend()
