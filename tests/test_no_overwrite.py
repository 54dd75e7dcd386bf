"""The example scripts never overwrite what a user or the repository holds: every output is
checked before training, another run's files are refused unless --overwrite is given, in one
line and exit status 2; and the default output is never a tracked file."""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(f"nooverwrite_{name}",
                                                  ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def refused(capsys, call, prog):
    with pytest.raises(SystemExit) as info:
        call()
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"{prog}: error: ") and "--overwrite" in err, err
    return err


def test_receptive_fields_default_is_not_the_tracked_figure():
    rf = load("receptive_fields")
    assert pathlib.Path(rf.DEFAULT_OUT).resolve() != (ROOT / "docs" / "receptive_fields.png")
    assert "docs" not in pathlib.Path(rf.DEFAULT_OUT).parts


def test_receptive_fields_refuses_an_existing_figure(tmp_path, capsys):
    rf = load("receptive_fields")
    out = tmp_path / "rf.png"
    out.write_bytes(b"an earlier run's figure")
    refused(capsys, lambda: rf.parse_args(["--out", str(out)]), "receptive_fields.py")
    assert out.read_bytes() == b"an earlier run's figure"
    assert rf.parse_args(["--out", str(out), "--overwrite"]).overwrite


def test_digits_refuses_an_existing_plot(tmp_path, capsys):
    digits = load("digits")
    out = tmp_path / "d.png"
    out.write_bytes(b"mine")
    refused(capsys, lambda: digits.parse_args(["--plot", str(out)]), "digits.py")
    assert out.read_bytes() == b"mine"


def test_lines_refuses_a_folder_with_an_earlier_run(tmp_path, capsys):
    lines = load("lines")
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "curves.tsv").write_text("step\n")
    refused(capsys, lambda: lines.main(["--steps", "1", "--out", str(tmp_path)]), "lines.py")
    assert (tmp_path / "curves.tsv").read_text() == "step\n"


def test_demo3d_refuses_an_existing_figure(tmp_path, capsys):
    demo3d = load("demo3d")
    out = tmp_path / "d3.png"
    out.write_bytes(b"mine")
    refused(capsys, lambda: demo3d.main(["--steps", "1", "--out", str(out)]), "demo3d.py")
    assert out.read_bytes() == b"mine"
