"""Exit codes, and the one mapping from an error to an exit code and a line on stderr.

No traceback ever reaches a user: a ``MeshopError`` prints one clear message and exits with its code;
anything else is reported as an internal error. Exit codes: 0 ok, 1 invalid input or not found,
2 Consul unreachable or access denied, 3 a host driver failed, 64 usage error, 70 internal error,
130 interrupted. (``meshop diff`` exits 1 when there are changes; ``meshop status --check`` exits 1
when something is not Ready.)

Shared by the click CLI (``meshop.cli.main.run``, which handles click's own exceptions first) and its
fast path (``meshop.cli.fast``), so it imports no click.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from meshop.errors import MeshopError

if TYPE_CHECKING:
    from collections.abc import Callable

EXIT_USAGE = 64
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def guarded(command: Callable[[], int]) -> int:
    """``command()``'s exit code; an error becomes its exit code and one line on stderr."""
    try:
        return command()
    except MeshopError as exc:
        from meshop.cli.safe import printable  # error lines from KV are escaped; only an error needs it

        _say(f"Error: {printable(exc, multiline=True)}")
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `meshop events | head`: the reader left; nothing is wrong
        silence_stdout()
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:  # noqa: BLE001 - last line of defence: no traceback for users
        from meshop.cli.safe import printable

        _say(f"Internal error: {type(exc).__name__}: {printable(exc)} (please report this)")
        return EXIT_INTERNAL


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture stdout)
        pass
