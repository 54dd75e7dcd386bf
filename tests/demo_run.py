"""Running ``python demo.py`` from a test: one helper for every test that launches the demo
(its own interpreter, this checkout on PYTHONPATH, figures off-screen)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "demo.py")


def run_demo(*args, cwd=None, timeout=600):
    """``python demo.py *args`` -> subprocess.CompletedProcess (text stdout and stderr)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    return subprocess.run([sys.executable, DEMO, *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, env=env, timeout=timeout)
