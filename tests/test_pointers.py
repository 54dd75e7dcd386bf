"""Every file and every ``module.name`` that a docstring or comment of the package cites
exists, so the source's pointers never lead to code that has moved.

Checked: ``path.py`` citations in double back-quotes (looked up beside the citing module, in
``mdlstm_np/``, ``mdlstm_np/*/``, and the repository's top-level folders) and
``module.Name`` citations whose module is one of the package's (``sweep.FusedWeightGrads``),
which must name an attribute of that module."""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "mdlstm_np"
SOURCES = sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)
FILE = re.compile(r"``((?:[\w.-]+/)*[\w-]+\.(?:py|md|ipynb|sh))``")
DOTTED = re.compile(r"``([a-z_][a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)``")
MODULES = {}
for p in SOURCES:
    if p.name != "__init__.py":
        MODULES.setdefault(p.stem, []).append(
            ".".join(p.relative_to(ROOT).with_suffix("").parts))
# module names that are also other libraries' (cupy.asnumpy, torch.compile, keras ...), a
# cgroup file (memory.max) or a variable in examples (model.fit): not checked as ours
AMBIGUOUS = {"cupy", "torch", "jax", "keras", "numba", "memory", "model"}
SEARCH = [PKG, *[d for d in PKG.iterdir() if d.is_dir()], ROOT, ROOT / "tests",
          ROOT / "docs", ROOT / "examples", ROOT / "benchmarks"]


def missing_files(path: Path, text: str) -> list:
    out = []
    for cited in FILE.findall(text):
        places = [path.parent / cited] + [d / cited for d in SEARCH]
        if not any(p.exists() for p in places):
            out.append(cited)
    return out


def missing_names(text: str) -> list:
    out = []
    for module, name in DOTTED.findall(text):
        if module not in MODULES or module in AMBIGUOUS or name in ("py", "md"):
            continue
        found = False
        for dotted in MODULES[module]:
            try:
                found = found or hasattr(importlib.import_module(dotted), name)
            except ImportError:
                found = True              # an optional dependency: cannot tell, do not fail
        if not found:
            out.append(f"{module}.{name}")
    return out


@pytest.mark.parametrize("path", SOURCES, ids=[p.relative_to(PKG).as_posix() for p in SOURCES])
def test_every_pointer_exists(path):
    text = path.read_text(encoding="utf-8")
    assert missing_files(path, text) + missing_names(text) == [], path


def test_the_check_can_fail():
    text = "see ``mdlstm_np/layernorm.py`` and ``mdlstm.FusedWeightGrads``"
    assert missing_files(PKG / "cells" / "layernorm.py", text) == ["mdlstm_np/layernorm.py"]
    assert missing_names(text) == ["mdlstm.FusedWeightGrads"]
