"""Atomic file writes: write a temporary file in the target folder, then ``os.replace`` it.

A reader (or a crash) never sees a half-written log or figure: the file either has its old
content or its complete new content. ``mkstemp`` creates files readable by the owner only, so
the mode is set to what a plain ``open()`` would give under the current umask.
"""

from __future__ import annotations

import os
import tempfile


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str, writer, suffix: str = "") -> str:
    """Call ``writer(tmp_path)`` to fill a temporary file, then move it to ``path``.

    Returns ``path``. On any error the temporary file is removed and ``path`` is untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
