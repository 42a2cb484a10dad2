"""The console script's entry point (``meshop = meshop.cli.entry:main``, and ``python -m meshop``).

Why a module of its own: the fast path (``fast.py``, the hot simple command lines without click) and
click's group (``main.py``, every other command line) each stand alone; only this module knows both, so
neither imports the other and ``meshop.cli`` has no import cycle. Click is imported only when the fast path
declines a command line (start-up time: tests/unit/test_imports.py).
"""

from __future__ import annotations

import sys


def run(argv: list[str]) -> int:
    """``argv``'s exit code: through the fast path when it is one of its command lines, else through click."""
    from meshop.cli.fast import run as run_fast

    code = run_fast(argv)
    if code is None:
        from meshop.cli.main import run as run_click

        code = run_click(argv)
    return code


def main() -> None:
    sys.exit(run(sys.argv[1:]))
