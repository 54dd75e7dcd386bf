"""A disk that fills up during a run: one line naming the folder, the checkpoint that is kept
and how to resume, exit status 1, no traceback; the kept checkpoint still loads.

On a small tmpfs (mounting one needs root; elsewhere the test is skipped and says so): the run
starts with room (the demo checks that first), then a ballast file takes the rest of the space
while it trains, so a later checkpoint or log write meets ENOSPC mid-run."""

import os
import subprocess
import sys
import time

import pytest

from mdlstm_np.training.checkpoint import load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the disk-full test runs as root in CI)")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=60m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
def test_a_disk_that_fills_up_mid_run_is_one_line(tmpfs):
    out = tmpfs / "run"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "demo.py"), "--steps", "100000",
                          "--size", "4", "--batch", "2", "--hidden", "3", "--backend", "numpy",
                          "--no-progress", "--checkpoint-every", "1", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         cwd=ROOT)
    try:
        deadline = time.time() + 60
        while not (out / "checkpoint_MD_LSTM.npz").exists() and time.time() < deadline:
            time.sleep(0.1)
        assert (out / "checkpoint_MD_LSTM.npz").exists(), "no checkpoint within 60 s"
        with open(tmpfs / "ballast", "wb") as f:          # fill the rest of the disk
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "no space left" in err and str(out) in err and f"--resume {out}" in err
    assert "checkpoint_MD_LSTM.npz" in err
    assert not [f for f in os.listdir(out) if f.startswith(".tmp")]     # no half files
    os.remove(tmpfs / "ballast")
    assert load_checkpoint(str(out / "checkpoint_MD_LSTM.npz")).step >= 1
