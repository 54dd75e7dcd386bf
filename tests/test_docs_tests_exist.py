"""Every test a doc page names exists: the ids cited in docs/*.md, tests/README.md and the
README (``tests/test_x.py`` or ``tests/test_x.py::test_name``) against ``pytest --collect-only``."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [p for p in (ROOT / "README.md", ROOT / "tests" / "README.md",
                     *sorted((ROOT / "docs").glob("*.md"))) if p.exists()]
CITED = re.compile(r"(tests/test_\w+\.py)(?:::(\w+))?")


@pytest.fixture(scope="module")
def collected():
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", "tests"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    ids = {line.strip() for line in done.stdout.splitlines() if "::" in line}
    assert ids, done.stdout[-2000:] + done.stderr[-2000:]
    return ids


def cited_ids():
    out = set()
    for page in PAGES:
        for path, name in CITED.findall(page.read_text(encoding="utf-8")):
            out.add((page.relative_to(ROOT).as_posix(), path, name))
    return sorted(out)


def test_the_derivations_name_their_tests():
    text = (ROOT / "docs" / "derivations.md").read_text(encoding="utf-8")
    sections = re.split(r"\n## \d+\. ", text)[1:]
    assert len(sections) >= 11
    for section in sections:
        assert CITED.search(section), f"no test named in: {section.splitlines()[0]}"


def test_every_cited_test_exists(collected):
    missing = []
    for page, path, name in cited_ids():
        if not (ROOT / path).exists():
            missing.append(f"{page}: {path} (no such file)")
        elif name and not any(i == f"{path}::{name}" or i.startswith(f"{path}::{name}[")
                              for i in collected):
            missing.append(f"{page}: {path}::{name}")
    assert not missing, "cited tests that pytest does not collect:\n" + "\n".join(missing)


def test_the_check_can_fail(collected):
    assert not any(i.startswith("tests/test_ctc.py::test_no_such_test") for i in collected)
    assert any(i.startswith("tests/test_ctc.py::test_ctc_finite_differences") for i in collected)
