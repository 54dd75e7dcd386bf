"""The README's code examples run as written (docs that match the code)."""

import pathlib
import re

import pytest
from demo_run import run_demo

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def after_the_demo(tmp_path, monkeypatch):
    """A folder where a (short) ``python demo.py`` has run: the README loads its model from
    demo_out/."""
    r = run_demo("--steps", "2", "--size", "4", "--batch", "2", "--hidden", "3", "--backend",
                 "numpy", "--no-progress", "--out", tmp_path / "demo_out", timeout=300)
    assert r.returncode == 0, r.stderr
    monkeypatch.chdir(tmp_path)


def test_readme_python_examples_run(after_the_demo):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 5
    namespace = {}
    exec("import numpy as np\nrng = np.random.default_rng(0)\n", namespace)
    for block in blocks:  # later blocks may use names from earlier ones, as a reader would
        exec(compile(block, str(README), "exec"), namespace)


def test_readme_starts_with_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    fence = lines.index("```bash")
    demo, tests = lines[fence + 1], lines[fence + 2]
    assert demo.endswith("python demo.py") and tests.endswith("python -m pytest")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert tests.replace("-q ", "") in ci.replace("-q ", "")  # CI runs the README's command
