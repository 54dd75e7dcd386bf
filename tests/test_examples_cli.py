"""The scripts in examples/: every bad flag is one line on stderr and exit status 2, before any
work; output folders and memory are checked before step 1 (read-only and full file systems on
a small tmpfs, where the tests run as root)."""

import importlib.util
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}",
                                                  os.path.join(ROOT, "examples", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def exit_line(capsys, main, args, prog):
    """Run ``main(args)``, expecting SystemExit(2) and one line on stderr; returns the line."""
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def demo3d():
    return load("demo3d")


@pytest.mark.parametrize("args, words", [
    (["--size", "2"], "--size: expected an integer >= 3, got 2"),
    (["--lr", "-1"], "--lr: expected a finite number > 0, got -1"),
    (["--hidden", "0"], "--hidden: expected an integer >= 1, got 0"),
    (["--batch", "0"], "--batch: expected an integer >= 1, got 0"),
    (["--seed", "-1"], "--seed: expected an integer in [0, "),
    (["--steps", "99999999999999999999999"], "--steps: expected an integer in [1, 1000000000]"),
    (["--steps", "ten"], "--steps: expected an integer, got 'ten'"),
    (["--out", "{tmp}"], "expected a file name for the figure, got the folder"),
    (["--out", "{tmp}/a_file/x.png"], "exists and is not a folder"),
    (["--size", "3000"], "memory: a training step (3000^3 volumes"),
])
def test_demo3d_bad_flags(demo3d, tmp_path, capsys, args, words):
    """Fault: tracebacks for --size 2, --lr -1, --hidden 0, --batch 0, --seed -1, a bad --out."""
    (tmp_path / "a_file").write_text("x")
    args = [a.format(tmp=tmp_path) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "never" / "d3.png")]
    assert words in exit_line(capsys, demo3d.main, args, "demo3d.py")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_demo3d_refuses_to_replace_an_earlier_figure_unless_overwrite(demo3d, tmp_path, capsys):
    out = tmp_path / "d3.png"
    out.write_bytes(b"an earlier run's figure")
    line = exit_line(capsys, demo3d.main, ["--steps", "1", "--out", str(out)], "demo3d.py")
    assert "holds another run's results (d3.png)" in line and "--overwrite" in line
    assert out.read_bytes() == b"an earlier run's figure"


def test_ln_zero_input_bad_flags(capsys):
    """Fault: ``ln_zero_input.py --steps -3 --train`` trained with a negative step count."""
    mod = load("ln_zero_input")
    line = exit_line(capsys, mod.main, ["--steps", "-3", "--train"], "ln_zero_input.py")
    assert "--steps: expected an integer in [1, 1000000000], got -3" in line
    assert "--seeds" in exit_line(capsys, mod.main, ["--seeds", "0"], "ln_zero_input.py")


@pytest.mark.parametrize("args, words", [
    (["--seed", "-1"], "--seed: expected an integer in [0, "),
    (["--steps", "99999999999999999999999"], "--steps: expected an integer in [1, 1000000000]"),
    (["--size", "3000"], "memory: a training step per process (3000x3000"),
    (["--save", "{tmp}"], "--save: expected a file name"),
    (["--save", "{tmp}/a_file/x.pt"], "exists and is not a folder"),
])
def test_ddp_bad_flags(tmp_path, capsys, monkeypatch, args, words):
    pytest.importorskip("torch")
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    (tmp_path / "a_file").write_text("x")
    mod = load("ddp")
    args = [a.format(tmp=tmp_path) for a in args]
    assert words in exit_line(capsys, mod.main, args, "ddp.py")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


# ------------------------------------------------------------ read-only and full file systems
@pytest.fixture
def tmpfs(tmp_path):
    """mount(options) -> a fresh tmpfs mount point; skipped where mounting is not possible."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the tests do not run as root here)")
    mounted = []

    def mount(options):
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], capture_output=True)


def demo_fails(capsys, out):
    import demo

    with pytest.raises(SystemExit) as info:
        demo.main(["--steps", "2", "--size", "4", "--batch", "2", "--hidden", "3",
                   "--backend", "numpy", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def test_read_only_output_fails_before_step_1(tmpfs, capsys):
    """Fault: a read-only folder was found out only after the whole run had trained."""
    ro = tmpfs("ro,size=1m")
    err = demo_fails(capsys, ro / "run")
    assert "cannot create folder" in err and "Read-only file system" in err
    err = demo_fails(capsys, ro)
    assert f"cannot write in '{ro}'" in err and "Read-only file system" in err
    assert os.listdir(ro) == []


def test_full_output_fails_before_step_1(tmpfs, demo3d, capsys):
    full = tmpfs("size=64k")
    err = demo_fails(capsys, full)
    assert "has 64.0 KiB free, the run writes about" in err
    assert os.listdir(full) == []
    line = exit_line(capsys, demo3d.main, ["--out", str(full / "d3.png")], "demo3d.py")
    assert "has 64.0 KiB free" in line and os.listdir(full) == []
