"""Every script in examples/ runs end to end, at tiny settings, as a user would run it.

Each is launched in a fresh interpreter from an empty folder, writes only into that folder,
and must exit 0 with what it promises on disk or on stdout. ``examples/ddp.py`` is run end to
end (two processes) by ``tests/test_torch.py::test_ddp_step_equals_single_process_step``, so
it is not launched twice here; the check below only makes sure no script is forgotten.
"""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))

# script -> (arguments at tiny settings, files it must write into the folder, words on stdout)
RUNS = {
    "demo3d.py": (["--steps", "3", "--size", "3", "--hidden", "2", "--batch", "2",
                   "--out", "d3.png"], ["d3.png"], []),
    "digits.py": (["--models", "md1", "--hidden", "2", "--epochs", "1", "--batch", "128",
                   "--backend", "numpy", "--no-progress", "--plot", "digits.png"],
                  ["digits.png"], ["md1"]),
    "lines.py": (["--steps", "2", "--n-train", "8", "--n-test", "4", "--batch", "4",
                  "--hidden", "2", "--h1", "2", "--f2", "2", "--eval-every", "1",
                  "--backend", "numpy", "--out", "lines_run", "--no-progress"],
                 ["lines_run"], []),
    "receptive_fields.py": (["--steps", "2", "--size", "4", "--hidden", "2", "--backend",
                             "numpy", "--out", "rf.png", "--no-progress", "--no-multidir"],
                            ["rf.png"], []),
    "ln_zero_input.py": ([], [], ["NonFiniteError@", "finite"]),
}
ELSEWHERE = {"ddp.py": "tests/test_torch.py::test_ddp_step_equals_single_process_step"}


def test_every_example_is_run_by_a_test():
    assert sorted([*RUNS, *ELSEWHERE]) == EXAMPLES


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(RUNS))
def test_example_runs_end_to_end(script, tmp_path):
    args, files, words = RUNS[script]
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    for name in files:
        assert (tmp_path / name).exists(), f"{script} did not write {name}"
    for word in words:
        assert word in done.stdout, f"{script} printed no {word!r}:\n{done.stdout[-2000:]}"
    if script == "ln_zero_input.py":  # the guard's error is reported in the table, per cell
        seed_rows = [ln for ln in done.stdout.splitlines() if ln.startswith("seed   float32")]
        fixed_rows = [ln for ln in done.stdout.splitlines() if ln.startswith("fixed  float32")]
        assert seed_rows and all("NonFiniteError@" in ln for ln in seed_rows)
        assert fixed_rows and all("NonFiniteError" not in ln for ln in fixed_rows)
