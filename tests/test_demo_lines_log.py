"""demo.py --task lines writes a per-step log like every other task (and like
examples/lines.py): out_<MODEL>.tsv with one row per step, and its evaluations."""

import csv

from demo_run import run_demo


def test_the_lines_task_writes_one_row_per_step(tmp_path):
    r = run_demo("--task", "lines", "--steps", "4", "--train", "16", "--val", "4", "--batch",
                 "4", "--hidden", "2", "--backend", "numpy", "--no-progress", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "out_HIERARCHICAL_MDRNN.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4]
    assert all(float(row["loss"]) >= 0 and float(row["seconds"]) >= 0 for row in rows)
    with open(tmp_path / "out_HIERARCHICAL_MDRNN_evals.tsv", encoding="utf-8") as f:
        evals = list(csv.DictReader(f, delimiter="\t"))
    assert evals and all(0 <= float(e["test_cer"]) for e in evals)
