"""A strict array-API backend for the tests: proof that the engine is backend-agnostic.

There is no GPU in CI, yet ``--backend cupy`` must work. The engine's layer code promises to
use only array-API-standard calls on ``be.xp`` plus the backend's own methods. This backend
holds it to that promise: its ``xp`` is ``array_api_strict``, a namespace that implements the
standard and *nothing else* (no ``np.newaxis``, no ``.astype`` shortcuts, no mixing with numpy
arrays: ``strict + numpy`` is a TypeError).

Device checking. A GPU backend has a second failure mode: mixing host and device arrays.
``array_api_strict`` has fake devices, and arrays on different devices cannot be combined. So
every array of this backend lives on ``Device("device1")``, not on the default device; a stray
``array_api_strict.zeros(...)`` (default device) or ``np.asarray(device_array)`` then fails
loudly, just as a stray numpy array would on cupy.

Like cupy's *current device*, the namespace this backend hands out (``be.xp``) creates new
arrays on the backend's device: ``be.xp.zeros(shape, dtype=...)`` lands on device1. Only code
that bypasses ``be.xp`` (e.g. ``a.__array_namespace__().zeros(...)``) gets the default device,
and then fails at its first operation with a device1 array.

Not for users: ``get_backend`` does not list it. Tests build it directly.
"""

from __future__ import annotations

import numpy as np

from .base import Backend

# Creation functions of the standard that take ``device=`` and have no array argument to copy
# it from (the ``*scalar_like`` functions keep their input's device by themselves).
_CREATION = ("arange", "asarray", "empty", "eye", "full", "linspace", "ones", "zeros")


class _OnDevice:
    """``array_api_strict`` whose creation functions default to one device (cupy-like)."""

    def __init__(self, xp, device):
        self._xp, self._device = xp, device

    def __getattr__(self, name):
        attr = getattr(self._xp, name)
        if name in _CREATION:
            def create(*args, device=None, **kwargs):
                return attr(*args, device=self._device if device is None else device, **kwargs)
            create.__name__ = name
            return create
        return attr

    def __repr__(self):
        return f"<array_api_strict on {self._device!r}>"


class StrictBackend(Backend):
    """Backend over ``array_api_strict`` with every array on a non-default fake device.

    device : the device name, ``"device1"`` by default; ``None`` keeps the default device
             (then host/device mixing is not detected, only non-standard calls).
    """

    name = "strict"

    def __init__(self, device="device1"):
        import array_api_strict as xs  # a test dependency: pip install array-api-strict

        self.raw = xs
        info = xs.__array_namespace_info__()
        self.host_device = info.default_device()
        self.device = self.host_device if device is None else xs.Device(device)
        super().__init__(_OnDevice(xs, self.device))
        self._array_type = type(xs.asarray(0.0))

    def asarray(self, a, dtype=None):
        """Host numpy data (or a strict array) -> a strict array on ``self.device``."""
        if dtype is not None:
            dtype = self.dtype(dtype)
        if isinstance(a, self._array_type):
            if a.device != self.device:
                raise ValueError(f"a: expected an array on {self.device!r}, got one on "
                                 f"{a.device!r} (host/device mixing)")
            return self.raw.asarray(a, dtype=dtype, copy=None)
        return self.raw.asarray(np.asarray(a), dtype=dtype, device=self.device)

    def to_numpy(self, a) -> np.ndarray:
        """The one explicit device -> host transfer (like ``cupy.asnumpy``)."""
        return np.asarray(a.to_device(self.host_device))

    def index(self, idx):
        return self.raw.asarray(np.ascontiguousarray(idx, dtype=np.int64), device=self.device)

    def is_array(self, a) -> bool:
        return isinstance(a, self._array_type)
