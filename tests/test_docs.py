"""Docs that match the code: every code block runs on its own, every cited path and name exists.

Two kinds of check, over ``README.md``, ``docs/*.md``, ``tests/README.md`` and every module's
source text under ``mdlstm_np/`` (docstrings and comments):

- each fenced ``python`` block of a Markdown page runs alone, in a fresh interpreter, from an
  empty folder (a reader copies one block, not the page);
- each file path (``mdlstm_np/sweep.py``, ``backends/numba_driver.py``, ``cells/graves.py``)
  exists, and each dotted name (``mdlstm_np.training.fit``, ``sweep.SweepResult``) names a
  module that exists and, after it, something that module defines.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "tests" / "README.md", *(ROOT / "docs").glob("*.md")])
PAGES = [p for p in PAGES if p.exists()]
MODULES = sorted((ROOT / "mdlstm_np").rglob("*.py"))
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for k, match in enumerate(FENCE.finditer(text)):
            line = text.count("\n", 0, match.start()) + 2
            yield pytest.param(page, match.group(1), id=f"{page.relative_to(ROOT)}:{line}")


NEEDS = {"torch": "torch", "jax": "jax", "keras": "keras"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A short ``python demo.py`` run's folder, for the blocks that load the demo's model."""
    out = tmp_path_factory.mktemp("demo") / "demo_out"
    from demo_run import run_demo

    done = run_demo("--steps", "2", "--size", "4", "--batch", "2", "--hidden", "3", "--backend",
                    "numpy", "--no-progress", "--out", out)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize("page, code", list(_blocks()))
def test_every_code_block_runs_alone(page, code, tmp_path, request):
    if "demo_out/" in code:                  # the reader ran `python demo.py` first
        import shutil

        shutil.copytree(request.getfixturevalue("demo_run"), tmp_path / "demo_out")
    for word, module in NEEDS.items():
        if re.search(rf"^\s*(import|from) [\w.]*\b{word}\b", code, re.M):
            if importlib.util.find_spec(module) is None:   # found, not imported: keras picks
                pytest.skip(f"this block needs {module} (its optional extra)")  # its backend
            if word == "torch" or word == "keras":                    # in the block itself
                pytest.importorskip("torch", reason="this block needs torch (its optional extra)")
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{page.name} block fails alone:\n{code}\n{done.stderr[-3000:]}"


# --- cited paths and names -------------------------------------------------------------------

PATH = re.compile(r"(?<![\w./-])((?:[\w-]+/)*[\w-]+\.(?:py|md|ipynb|sh|png))\b")
DOTTED = re.compile(r"`((?:mdlstm_np\.)?[a-z_][a-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")
PLAIN = re.compile(r"(?<![\w.`/])(mdlstm_np(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")  # without backticks
IN_FILE = re.compile(r"`+([A-Za-z_]\w*)(?:\(\))?`+(?:\s*(?:/|,|and)\s*`+[A-Za-z_]\w*(?:\(\))?`+)*"
                     r"\s*(?:\s(?:in|of|from)\s+|\()`*((?:[\w-]+/)*[\w-]+\.py)`*")
SEED_FILES = {"md_lstm.py", "main.py", "data_gen.py", "md_lstm_test.py"}  # the seed's own files


def _sources():
    for page in PAGES:
        yield page, page.read_text(encoding="utf-8")
    for module in MODULES:
        yield module, module.read_text(encoding="utf-8")


def _path_exists(cited: str, where: pathlib.Path) -> bool:
    if cited.startswith(("http", "www")):
        return True
    candidates = [ROOT / cited, where.parent / cited, ROOT / "mdlstm_np" / cited]
    if "/" not in cited:  # a bare file name: somewhere in the project
        return any(p.name == cited for p in ROOT.rglob(cited) if ".venv" not in p.parts)
    return any(p.exists() for p in candidates)


def _missing_paths():
    missing = []
    for source, text in _sources():
        for cited in set(PATH.findall(text)):
            if (cited.endswith(".png") and "/" not in cited) or cited in SEED_FILES:
                continue  # a file a run writes, or one of the seed's files
            if not _path_exists(cited, source):
                missing.append(f"{source.relative_to(ROOT)}: {cited}")
    return sorted(missing)


STEMS = {}
for _m in MODULES:
    if _m.name != "__init__.py":
        STEMS.setdefault(_m.stem, []).append(_m)


def _defines(module_file: pathlib.Path, name: str) -> bool:
    text = module_file.read_text(encoding="utf-8")
    return re.search(rf"(\bdef|\bclass)\s+{name}\b|^\s*{name}\s*[:=]|\bimport\b.*\b{name}\b"
                     rf"|^\s*self\.{name}\b|\b{name}\s*=", text, re.M) is not None


# our bridges share these packages' names; "model" is a variable in the examples
EXTERNAL = {"torch", "jax", "keras", "cupy", "numba", "model"}
NOT_NAMES = {"py", "md", "png", "ipynb", "sh", "npz", "json", "tsv", "csv", "keras", "txt", "gz",
             "current", "max"}  # file names (cgroup files too), not module attributes


def _dotted_ok(name: str) -> bool:
    parts = name.split(".")
    if parts[-1] in NOT_NAMES or parts[0] in EXTERNAL:
        return True
    if parts[0] == "mdlstm_np":
        for k in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:k]))
            except ImportError:
                continue
            for attr in parts[k:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
        return False
    files = STEMS.get(parts[0])
    if not files:  # not one of our modules (np.float32, layer.forward, ...)
        return True
    return any(_defines(f, parts[1]) for f in files)


def _missing_names():
    missing = []
    for source, text in _sources():
        for cited in set(DOTTED.findall(text)) | set(PLAIN.findall(text)):
            if not _dotted_ok(cited.rstrip(".")):
                missing.append(f"{source.relative_to(ROOT)}: {cited}")
        for match in IN_FILE.finditer(text):
            names = re.findall(r"`+([A-Za-z_]\w*)(?:\(\))?`+", match.group(0))
            files = _resolve(match.group(2), source)
            if not files:
                continue  # a missing file is the path check's to report
            for name in names:
                if not any(_defines(f, name) for f in files):
                    missing.append(f"{source.relative_to(ROOT)}: `{name}` in {match.group(2)}")
    return sorted(missing)


def _resolve(cited: str, where: pathlib.Path):
    if "/" not in cited:
        return [p for p in ROOT.rglob(cited) if ".venv" not in p.parts]
    return [p for p in (ROOT / cited, where.parent / cited, ROOT / "mdlstm_np" / cited)
            if p.exists()]


def test_every_cited_path_exists():
    missing = _missing_paths()
    assert not missing, "cited paths that do not exist:\n" + "\n".join(missing)


def test_every_cited_module_name_exists():
    missing = _missing_names()
    assert not missing, "cited names that do not exist:\n" + "\n".join(missing)


def test_the_citation_check_can_fail(tmp_path):
    assert not _dotted_ok("mdlstm_np.no_such_module.thing")
    assert not _dotted_ok("sweep.NoSuchThing")
    assert not _path_exists("mdlstm_np/no_such_file.py", ROOT / "README.md")
    assert IN_FILE.search("`sweep_forward`/`sweep_backward` in `mdlstm.py`").group(2) == "mdlstm.py"
    assert IN_FILE.search("``sweep_forward`` / ``sweep_backward`` (``mdlstm.py``)").group(2) == "mdlstm.py"
    assert not _defines(ROOT / "mdlstm_np" / "grid.py", "no_such_function")
    assert _dotted_ok("mdlstm_np.grid") and _path_exists("mdlstm_np/grid.py", ROOT / "README.md")
