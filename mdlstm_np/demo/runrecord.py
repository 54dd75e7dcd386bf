"""One run, one record: the output folder is checked before step 1 and holds one run only.

``prepare_output`` (before any training):
  1. creates the folder (with parents) and proves it writable by writing, syncing and removing
     a small probe file — a read-only file system or a missing permission fails here;
  2. compares its free space (``shutil.disk_usage``) with what the run will write;
  3. refuses a folder that holds another run's results (``config.json`` or a file the program
     writes) unless ``overwrite`` — then those files, and only those, are removed first — or
     ``resume`` (the caller continues that run);
  4. removes stray ``.tmp_*`` files: what an atomic write killed by kill -9 left behind.
Every refusal is an :class:`OutputError` (a ValueError) with one line naming the folder.

``write_config`` writes ``config.json`` (atomically): the settings, the command line, the
versions of Python, numpy, numba, cupy and this package (:func:`versions`) and whatever the
caller adds (backend and sweep per model).
"""

from __future__ import annotations

import fnmatch
import json
import os
import platform
import shutil
import sys
import tempfile
from importlib import metadata
from typing import Iterable, List

from ..training.atomic import atomic_write
from .memory import human

CONFIG = "config.json"
TMP_PREFIX = ".tmp_"          # atomic.py's temporary files


class OutputError(ValueError):
    """The output folder cannot take this run (one line, naming the folder)."""


def versions() -> dict:
    """{"python", "numpy", "numba", "cupy", "mdlstm_np"}: version strings, None if missing.

    Read from the installed distributions' metadata (cupy is not imported: no GPU start-up)."""
    from .. import __version__

    out = {"python": platform.python_version(), "mdlstm_np": __version__}
    for name, dists in (("numpy", ("numpy",)), ("numba", ("numba",)),
                        ("cupy", ("cupy", "cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x"))):
        out[name] = None
        for dist in dists:
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def results_in(folder: str, patterns: Iterable[str]) -> List[str]:
    """The names in ``folder`` that match ``patterns`` (fnmatch), sorted; [] if no folder."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns))


def _probe_writable(folder: str) -> None:
    fd, probe = tempfile.mkstemp(prefix=TMP_PREFIX + "probe_", dir=folder)
    try:
        os.write(fd, b"\0" * 4096)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(probe)


def prepare_output(folder: str, *, patterns: Iterable[str], need_bytes: int,
                   overwrite: bool = False, resume: bool = False, flag: str = "out",
                   config_name: str = CONFIG, can_resume: bool = True) -> None:
    """Check and ready ``folder`` for a run that writes about ``need_bytes`` bytes of files
    named by ``patterns`` (fnmatch patterns, e.g. ``"out_*.tsv"``) and its record
    ``config_name``.

    Raises :class:`OutputError` (nothing changed on disk) when the folder cannot be created
    or written, has less than ``need_bytes`` free, or holds another run's results while
    neither ``overwrite`` nor ``resume`` is set. ``flag`` names the option in messages;
    ``can_resume``: the program has ``--resume`` (the refusal suggests it).
    """
    patterns = (config_name, *patterns)
    shown = repr(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputError(f"{flag}: {shown} exists and is not a folder")
    existing = results_in(folder, patterns)
    if existing and not (overwrite or resume):
        listed = ", ".join(existing[:4]) + (", ..." if len(existing) > 4 else "")
        hint = f", --resume {folder} to continue that run," if can_resume else ""
        raise OutputError(f"{flag}: {shown} holds another run's results ({listed}); give "
                          f"--overwrite to replace them{hint} or another --{flag}")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{flag}: cannot create folder {shown} ({e.strerror})") from None
    try:
        _probe_writable(folder)
    except OSError as e:
        raise OutputError(f"{flag}: cannot write in {shown} ({e.strerror})") from None
    free = shutil.disk_usage(folder).free
    if overwrite:
        free += sum(os.path.getsize(os.path.join(folder, n)) for n in existing)
    if free < need_bytes:
        raise OutputError(f"{flag}: {shown} has {human(free)} free, the run writes about "
                          f"{human(need_bytes)} (logs, checkpoints, figures)")
    if overwrite and not resume:
        for name in existing:
            os.unlink(os.path.join(folder, name))
    for name in os.listdir(folder):           # left by an atomic write that was killed
        if name.startswith(TMP_PREFIX):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def write_config(folder: str, config: dict, name: str = CONFIG) -> str:
    """Write ``config`` as ``folder/name`` (atomically, sorted keys); returns the path."""
    def writer(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")

    return atomic_write(os.path.join(folder, name), writer, suffix=".json")


def read_config(folder: str) -> dict:
    """``folder/config.json`` as a dict; OutputError (one line) if missing or unreadable."""
    path = os.path.join(folder, CONFIG)
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        raise OutputError(f"resume: {folder!r} holds no {CONFIG}: not the folder of a run") \
            from None
    except (OSError, ValueError) as e:
        raise OutputError(f"resume: cannot read {path} ({e})") from None
    if not isinstance(config, dict):
        raise OutputError(f"resume: {path} is not a run record (expected a JSON object)")
    return config


def command_line(script: str = None, argv=None) -> List[str]:
    """The command line as run: the interpreter, the script and its arguments (default
    ``sys.argv``; a program called in-process passes its own ``script`` and ``argv``)."""
    if argv is None:
        return [sys.executable, *sys.argv]
    return [sys.executable, script or sys.argv[0], *argv]
