"""Backends: where the arrays live and which sweep runs each cell.

``base.py``           ``Backend``, the numpy reference: ``xp`` = numpy, every cell on the
                      reference sweep (``mdlstm_np/sweep.py``).
``numba.py``          the reference plus jitted sweeps (kernels in ``numba_kernels.py``).
``cupy.py``           arrays on a CUDA GPU, fused sweeps (kernel sources in ``cupy_kernels.py``).
``strict.py``         the reference on ``array_api_strict`` (tests: no stray numpy call).

``get_backend(name)`` is the public way in: "numpy", "numba", "cupy" or "auto" (cupy if a GPU
is really usable, else numba if installed, else numpy).
"""

from __future__ import annotations

import warnings

from .base import Backend


def numba_available() -> bool:
    """True when numba imports (the fast CPU backend is possible)."""
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
    Raises ValueError for an unknown name or a backend that cannot run here (one line: why).
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
        from .numba import NumbaBackend

        return NumbaBackend()
    if name == "cupy":
        from .cupy import CupyBackend

        return CupyBackend()
    # auto
    from .cupy import CupyBackend, cupy_unavailable_reason

    if cupy_unavailable_reason() is None:
        be = CupyBackend()
        if verbose:
            print("backend: auto picked cupy (a CUDA GPU is usable)")
        return be
    if numba_available():
        from .numba import NumbaBackend

        if verbose:
            print("backend: auto picked numba (no usable GPU)")
        return NumbaBackend()
    if not _warned_no_numba:
        warnings.warn("numba is not installed: using the slower numpy backend "
                      "(pip install numba for the fast CPU path)", stacklevel=2)
        _warned_no_numba = True
    return Backend()


__all__ = ["Backend", "get_backend", "numba_available"]
