"""One step-label convention everywhere, and every fast kernel carries its reference's labels.

Convention (``mdlstm_np/sweep.py``): forward steps are numbered 1a, 1b, 2, …; the backward step
that reverses forward step k is labelled k', and a backward step done in parts names each part,
k'(part) (step 1b's backward: 1b'(share) on wavefront s, 1b'(pull) on s−1) — in every module
of the package: cells, the sweep, the layer, the read-outs, CTC, the hierarchy, the numba and
CUDA kernels. So a reader can put a kernel beside its reference and find each step.

Two rules hold in every module under ``mdlstm_np/``:
- a backward label k' names a forward step k that the same module labels too;
- a lettered sub-step comes after its siblings (2b needs 2a in the module): "kb" is never
  "the backward of k", the old mark this convention replaced (as are "k-b" and "kb-b").
"""

import inspect
import re
from pathlib import Path

import pytest

from mdlstm_np.backends import cupy as cupy_backend
from mdlstm_np.backends import cupy_kernels

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "mdlstm_np"

ONE = r"\d+[a-z]?(?:'(?:\([a-z]+\))?)?"
# a label: at the start of a comment ("# 4'." / "// 3'-2'.") or of an indented docstring line
COMMENT = re.compile(rf"(?:#|//)\s*({ONE}(?:\s*[-,/]\s*{ONE})*)\.(?:\s|$)")
DOCLINE = re.compile(rf"^\s+({ONE}(?:\s*[-,/]\s*{ONE})*)\.\s", re.M)


def labels(text: str) -> set:
    """Every step label in ``text`` (ranges such as 4'-2' give both ends)."""
    found = set()
    for rx in (COMMENT, DOCLINE):
        for group in rx.findall(text):
            found.update(re.findall(ONE, group))
    return found


def forward(ls):
    return {x for x in ls if "'" not in x}


def backward(ls):
    return {x for x in ls if "'" in x}


def reversed_step(label: str) -> str:
    """The forward step a backward label reverses: 4' -> 4, 1b'(pull) -> 1b."""
    return label.split("'")[0]


def source(path):
    return (PKG / path).read_text(encoding="utf-8")


# the Graves sweep: the reference is the cell's steps and the sweep's own (not the layer's 1a)
REFERENCE = labels(source("cells/graves.py")) | labels(source("sweep.py"))
REF_FWD = forward(REFERENCE) - {"1a"}
REF_BWD = backward(REFERENCE) - {"1a'"}


def _numba_sources():
    pytest.importorskip("numba")
    from mdlstm_np.backends import numba_kernels as nk

    return (inspect.getsource(nk.forward_sweep.py_func),
            inspect.getsource(nk.backward_sweep.py_func))


def _cuda_sources():
    sweep = cupy_backend.FusedSweep
    fwd = cupy_kernels.GATHER.body + cupy_kernels.FORWARD.body + inspect.getsource(sweep.forward)
    bwd = cupy_kernels.BACKWARD.body + inspect.getsource(sweep.backward)
    return fwd, bwd


def test_the_reference_has_the_steps_we_expect():
    assert REF_FWD == {"1b", "2", "3", "4", "5"}
    assert REF_BWD == {"1b'(pull)", "1b'(share)", "2'", "3'", "4'", "5'"}


@pytest.mark.parametrize("kernels", ["numba", "cuda"])
def test_kernels_carry_every_label_of_their_reference(kernels):
    fwd, bwd = _numba_sources() if kernels == "numba" else _cuda_sources()
    assert REF_FWD <= forward(labels(fwd)), REF_FWD - forward(labels(fwd))
    assert REF_BWD <= backward(labels(bwd)), REF_BWD - backward(labels(bwd))


def test_the_parity_check_can_fail():
    """A kernel source with one label removed is caught."""
    fwd, _ = _cuda_sources()
    broken = re.sub(r"// 3\. ", "// ", fwd)
    assert "3" in forward(labels(fwd)) and "3" not in forward(labels(broken))


EVERY_MODULE = sorted(p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py"))


def convention_errors(text: str) -> list:
    """What breaks the convention in one module's text (an empty list when nothing does)."""
    errors = []
    if re.search(r"(?:#|//)\s*\d+[a-z]?-b\b", text):
        errors.append("old 'k-b' mark")
    found = labels(text)
    fwd = forward(found)
    for lab in sorted(backward(found)):
        if reversed_step(lab) not in fwd:
            errors.append(f"{lab} reverses no forward step of this module")
    for lab in sorted(fwd):
        number, letter = re.fullmatch(r"(\d+)([a-z]?)", lab).groups()
        if letter and letter != "a" and f"{number}{chr(ord(letter) - 1)}" not in fwd:
            errors.append(f"{lab} has no sibling {number}{chr(ord(letter) - 1)} (an old 'kb' "
                          f"backward mark?)")
    return errors


@pytest.mark.parametrize("path", EVERY_MODULE)
def test_one_convention_in_every_module(path):
    """Each backward label k' reverses a forward step k labelled in the same module, and the
    old marks (k-b, kb for "backward of k") are gone."""
    assert convention_errors(source(path)) == [], path


def test_the_convention_check_can_fail():
    good = "    1. z = x W\n    2. y = tanh(z)\n    2'. dz = dy (1 - y²)\n    1'. dx = dz Wᵀ\n"
    assert convention_errors(good) == []
    assert convention_errors(good.replace("2'.", "2b.").replace("1'.", "1b."))  # old marks
    assert convention_errors(good.replace("1. z", "0. z"))          # 1' reverses nothing here
    assert convention_errors("    x = 1  # 3-b. old\n")
    assert not convention_errors("    # 1b. z\n    # 1a. zx\n    # 1b'(pull). dh\n")


# every numba cell kernel (numba_cells.py: the cell's row functions and the helpers they call)
# carries every label of its reference cell module
NUMBA_CELLS = {
    "layernorm": ("ln_forward", "ln_backward"),
    "stable": ("stable_forward", "stable_backward", "_mixture", "_mixture_backward"),
    "leakylp": ("leakylp_forward", "leakylp_backward", "_mixture", "_mixture_backward"),
    "peephole": ("peephole_forward", "peephole_backward"),
}


@pytest.mark.parametrize("module", sorted(NUMBA_CELLS))
def test_numba_cell_kernels_carry_every_label_of_their_cell(module):
    pytest.importorskip("numba")
    from mdlstm_np.backends import numba_cells

    ref = labels(source(f"cells/{module}.py"))
    text = "".join(inspect.getsource(getattr(numba_cells, f).py_func)
                   for f in NUMBA_CELLS[module])
    assert ref, module
    assert ref <= labels(text), ref - labels(text)


def test_numba_driver_carries_the_sweeps_labels():
    """The one driver of every numba cell sweep: the sweep's own steps, the cell's left open."""
    pytest.importorskip("numba")
    from mdlstm_np.backends import numba_driver

    fwd = labels(inspect.getsource(numba_driver.forward_template))
    bwd = labels(inspect.getsource(numba_driver.backward_template))
    assert {"1b", "5"} <= forward(fwd)
    assert {"1b'(pull)", "1b'(share)", "5'", "1a'"} <= backward(bwd)
