"""Everything that writes a file: atomic (old content or new, never half), no temporary file left
behind, the mode a plain ``open()`` would give, and logs that read back exactly as written.

Each test names the fault it catches; each was checked by putting the fault back once.
"""

import os
import stat

import numpy as np
import pytest

from mdlstm_np.training.atomic import atomic_write
from mdlstm_np.demo.plots import plot_losses, plot_predictions
from mdlstm_np.demo.train import COLUMNS, read_tsv, write_tsv


def _rows(n=4):
    """Rows with a different value in every column (so a swap of any two columns shows)."""
    return [{"steps": 10 * i + 1, "overall_loss": 0.5 + i, "time": 1e-3 * (i + 7),
             "relevant_loss": 3.25 + 2 * i} for i in range(n)]


def _text_writer(text):
    def writer(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return writer


def _png_writer(path):
    logs = {"A": _rows(), "B": _rows(3)}
    return plot_losses(logs, "overall_loss", path)


def _predictions_writer(path):
    x = np.zeros((2, 4, 4, 1))
    return plot_predictions(x, x, x, path, title="t")


# Every writer of the package, each as (name, fn(path) -> path).
WRITERS = [
    ("atomic_write", lambda path: atomic_write(path, _text_writer("new\n"))),
    ("write_tsv", lambda path: write_tsv(_rows(), path)),
    ("plot_losses", _png_writer),
    ("plot_predictions", _predictions_writer),
]


def _temporaries(folder):
    return [p for p in os.listdir(folder) if p.startswith(".tmp")]


def test_tsv_round_trip_keeps_every_column(tmp_path):
    """Fault: write_tsv with two columns swapped (the old round trip read one column only)."""
    rows = _rows()
    path = str(tmp_path / "log.tsv")
    write_tsv(rows, path)
    back = read_tsv(path)
    assert back == rows
    assert [list(r) for r in back] == [list(COLUMNS)] * len(rows)


def test_tsv_round_trip_keeps_full_precision(tmp_path):
    rows = [{"steps": 0, "overall_loss": 0.1 + 0.2, "time": 1 / 3, "relevant_loss": 1e-300}]
    path = str(tmp_path / "log.tsv")
    write_tsv(rows, path)
    assert read_tsv(path) == rows


def test_failing_writer_leaves_target_and_folder_unchanged(tmp_path):
    """Fault: atomic_write leaving its temporary file (or a half-written target) on error."""
    target = tmp_path / "result.txt"
    target.write_text("old\n")

    def failing(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(str(target), failing)
    assert target.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["result.txt"]


def test_interrupted_writer_leaves_nothing_either(tmp_path):
    """KeyboardInterrupt (Ctrl-C) in the middle of a write is cleaned up the same way."""
    target = tmp_path / "log.tsv"
    write_tsv(_rows(), str(target))
    before = target.read_text()

    def interrupted(tmp):
        with open(tmp, "w") as f:
            f.write("steps\t")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(target), interrupted)
    assert target.read_text() == before
    assert _temporaries(tmp_path) == []


def test_tsv_writer_failing_mid_file_keeps_the_old_log(tmp_path):
    """The kind, through a real writer: a row that cannot be formatted stops write_tsv."""
    path = str(tmp_path / "log.tsv")
    write_tsv(_rows(), path)
    before = open(path).read()
    bad = _rows() + [{"steps": "x", "overall_loss": 1.0, "time": 1.0, "relevant_loss": 1.0}]
    with pytest.raises(ValueError):
        write_tsv(bad, path)
    assert open(path).read() == before
    assert _temporaries(tmp_path) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
@pytest.mark.parametrize("name, write", WRITERS, ids=[w[0] for w in WRITERS])
def test_written_files_get_the_umask_mode(tmp_path, name, write, umask, mode):
    """Fault: atomic_write without setting the mode (mkstemp makes 0600 files): under umask 022
    every file the package writes must be 0644, like a plain open() would make it."""
    old = os.umask(umask)
    try:
        path = write(str(tmp_path / f"{name}.out"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert _temporaries(tmp_path) == []


@pytest.mark.parametrize("name, write", WRITERS, ids=[w[0] for w in WRITERS])
def test_every_writer_replaces_in_one_step(tmp_path, name, write):
    """Rewriting a file gives the new content under the same name and nothing beside it."""
    path = str(tmp_path / f"{name}.out")
    write(path)
    first = os.path.getsize(path)
    write(path)
    assert os.path.getsize(path) > 0 and first > 0
    assert os.listdir(tmp_path) == [f"{name}.out"]


def test_benchmark_results_are_written_with_the_same_guarantees(tmp_path):
    """The benchmark's CSV/JSON go through the package's atomic_write (same mode, no temp)."""
    from benchmarks import bench

    old = os.umask(0o022)
    try:
        path = bench.write_atomic(str(tmp_path / "sub" / "r.csv"), "a,b\n1,2\n")
    finally:
        os.umask(old)
    assert open(path).read() == "a,b\n1,2\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(tmp_path / "sub") == ["r.csv"]
