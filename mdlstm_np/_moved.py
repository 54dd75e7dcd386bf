"""Old module paths keep working after the package was laid out in folders.

``import mdlstm_np.backend`` (and the other paths below) gives a small alias module whose
attributes are those of the module's new home, so ``from mdlstm_np.backend import
get_backend`` and ``from mdlstm_np.models import build_model`` work as they always did. New code
should import from the new homes (the README's "Reading the source" lists them).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types

MOVED = {  # old path -> new home
    "mdlstm_np.backend": "mdlstm_np.backends",
    "mdlstm_np.backend_numba": "mdlstm_np.backends.numba",
    "mdlstm_np.kernels_numba": "mdlstm_np.backends.numba_kernels",
    "mdlstm_np.backend_cupy": "mdlstm_np.backends.cupy",
    "mdlstm_np.backend_strict": "mdlstm_np.backends.strict",
    "mdlstm_np.layernorm": "mdlstm_np.norm",
    "mdlstm_np.models": "mdlstm_np.experiment.models",
    "mdlstm_np.tasks": "mdlstm_np.experiment.tasks",
    "mdlstm_np.tasks3d": "mdlstm_np.experiment.tasks3d",
    "mdlstm_np.train": "mdlstm_np.experiment.train",
    "mdlstm_np.plots": "mdlstm_np.experiment.plots",
    "mdlstm_np.atomic": "mdlstm_np.experiment.atomic",
    "mdlstm_np.reference": "mdlstm_np.testing.reference",
    "mdlstm_np.gradcheck": "mdlstm_np.testing.gradcheck",
}


class _Alias(types.ModuleType):
    """A module whose attributes are read from the module it stands for."""

    def __getattr__(self, name):
        return getattr(importlib.import_module(self.__moved_to__), name)

    def __dir__(self):
        return dir(importlib.import_module(self.__moved_to__))


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = _Alias(spec.name)
        module.__moved_to__ = MOVED[spec.name]
        return module

    def exec_module(self, module):
        importlib.import_module(module.__moved_to__)  # import errors surface here, as before


def install():
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())  # before any finder of an older checkout
