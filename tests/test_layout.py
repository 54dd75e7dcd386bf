"""The layout shows who each part is for, and the imports keep it so.

    the engine        mdlstm_np/*.py, cells/, backends/, data/, testing/
    the training API  mdlstm_np/training/
    the demo          mdlstm_np/demo/, demo.py, examples/

Rules read from the source (``ast``), so they hold for every module, present and future:
- neither the engine nor the training API imports from the demo's part;
- no module imports another module's private name (``from x import _y``).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "mdlstm_np"
MODULES = sorted(PKG.rglob("*.py"))


def part(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if rel[0] in ("demo", "training") else "engine"


def imports(path: Path):
    """(absolute module name, imported names) of every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = ["mdlstm_np", *path.relative_to(PKG).with_suffix("").parts]
    package = here[:-1] if path.name != "__init__.py" else here[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module, [a.name for a in node.names]


def violations(path: Path) -> list:
    out = []
    who = part(path)
    for module, names in imports(path):
        if who != "demo" and (module == "mdlstm_np.demo" or module.startswith("mdlstm_np.demo.")
                              or (module == "mdlstm_np" and "demo" in names)):
            out.append(f"the {who} imports from the demo: {module}")
        for name in names:
            if name.startswith("_") and not name.startswith("__"):
                out.append(f"private name {name} imported from {module}")
    return out


@pytest.mark.parametrize("path", MODULES, ids=[p.relative_to(PKG).as_posix() for p in MODULES])
def test_imports_keep_the_layout(path):
    assert violations(path) == [], path


def test_the_rules_can_fail(tmp_path, monkeypatch):
    fake = PKG / "training" / "fit.py"
    text = fake.read_text(encoding="utf-8")
    bad = tmp_path / "fit.py"
    bad.write_text(text + "\nfrom ..demo.train import _Log\n", encoding="utf-8")
    monkeypatch.setattr(Path, "relative_to",
                        lambda self, other, _r=Path.relative_to: (
                            _r(fake, other) if self == bad else _r(self, other)))
    found = violations(bad)
    assert any("imports from the demo" in v for v in found)
    assert any("private name _Log" in v for v in found)


def test_each_part_has_its_place():
    assert (PKG / "training" / "fit.py").is_file() and (PKG / "training" / "saving.py").is_file()
    assert (PKG / "demo" / "tasks.py").is_file() and (PKG / "nonfinite.py").is_file()
    assert not (PKG / "_moved.py").exists() and not (PKG / "experiment").exists()
