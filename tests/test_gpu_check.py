"""The GPU check's parts that run without a GPU: its shell script parses, its table is built
from real timings (numpy standing in for cupy), and the torch bridge check runs on CPU tensors."""

import subprocess

import pytest

from benchmarks import gpu_check


def test_the_script_parses():
    done = subprocess.run(["bash", "-n", "benchmarks/gpu_check.sh"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_cell_step_table_on_stand_in_backends(tmp_path):
    table = gpu_check.cell_steps_table(tmp_path, ["T"], budget=120, gpu="numpy", cpu="numpy",
                                       sizes={"T": (3, 2, 2)})
    lines = table.splitlines()
    assert len(lines) == 1 + len(gpu_check.CELLS)                  # a row for every cell
    assert all(" T 3x3 B2 H2 " in f" {ln} " for ln in lines[1:])
    assert (tmp_path / "cell_steps.json").exists()


def test_cell_step_table_says_what_was_skipped():
    rows = [{"config": "XL 256x256 B32 H64", "cell": "graves", "cupy": 2e-3,
             "numba_note": "skipped"}]
    line = gpu_check.format_cell_steps(rows).splitlines()[1]
    assert "2.000" in line and "skipped" in line and line.rstrip().endswith("-")


def test_torch_bridge_check_on_cpu_tensors():
    pytest.importorskip("torch", reason="the torch bridge needs the torch extra")
    assert gpu_check.torch_bridge_check("cpu") == "gradcheck on cpu: True"
