"""The tutorial notebook (docs/tutorial.ipynb) runs top to bottom: its cells assert what they
show (the engine equals the hand-derived forward and backward, finite differences agree, the
receptive field is the quadrant, the training loss falls)."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_tutorial_notebook_runs_top_to_bottom(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="the notebook runner is in the test extra")
    nbclient = pytest.importorskip("nbclient", reason="the notebook runner is in the test extra")
    pytest.importorskip("ipykernel", reason="the notebook kernel is in the test extra")
    nb = nbformat.read(ROOT / "docs" / "tutorial.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "the notebook is stored without outputs"
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env_path) if p)
    os.environ.setdefault("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "5 wavefronts" in text and "engine == by hand: True" in text
    assert "False" not in text
