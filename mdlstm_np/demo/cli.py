"""Command-line plumbing shared by ``demo.py`` and the scripts in ``examples/``.

Every bad flag is one line on stderr (``PROG: error: ...``) and exit status 2, found before any
training: :class:`OneLineParser` turns argparse's messages into that, and the ``integer`` /
``number`` types check ranges as they parse (no OverflowError or MemoryError later on).
"""

from __future__ import annotations

import argparse
import math
import sys
from decimal import Decimal, InvalidOperation

MAX_STEPS = 10 ** 9


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (``PROG: error: ...``) and exit status 2."""

    def error(self, message):
        fail(self.prog, message)


def fail(prog: str, message: str, status: int = 2):
    """Print ``prog: error: message`` on one line to stderr and exit with ``status``."""
    print(f"{prog}: error: {message}".replace("\n", " "), file=sys.stderr)
    sys.exit(status)


def parse_integer(text: str) -> int:
    """"1000" -> 1000; also "1e8" or "2.0" when the value is a whole number (exact, via
    Decimal). ArgumentTypeError otherwise."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not d.is_finite() or d != d.to_integral_value():
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(d)


def integer(minimum: int, maximum: int = None):
    """argparse type: an integer in [minimum, maximum] (no upper bound when None)."""
    def parse(text):
        v = parse_integer(text)
        if v < minimum or (maximum is not None and v > maximum):
            want = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise argparse.ArgumentTypeError(f"expected an integer {want}, got {text}")
        return v
    return parse


def number(text: str) -> float:
    """argparse type: a finite number > 0 (a learning rate)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return v


def check_output_file(prog: str, path: str, overwrite: bool, flag: str = "out",
                      need_bytes: int = 1_000_000) -> None:
    """Before any training, the demo's rule for a script that writes one file (a figure):
    its folder is created and must be writable with ``need_bytes`` free, and an existing file
    (an earlier run's) is replaced only with ``overwrite`` (``runrecord.prepare_output``).
    Otherwise one line ``prog: error: --flag: ...`` and exit status 2."""
    import os

    from .runrecord import OutputError, prepare_output

    try:
        prepare_output(os.path.dirname(os.path.abspath(path)), patterns=(os.path.basename(path),),
                       config_name=os.path.basename(path), overwrite=overwrite,
                       need_bytes=need_bytes, can_resume=False, flag=flag)
    except OutputError as e:
        fail(prog, str(e))
