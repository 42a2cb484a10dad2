"""The console script's fast path: the hot, simple command lines without click (``meshop.cli.entry`` runs it first).

Why: importing click costs more than a third of ``meshop validate``'s start-up on a small VM (its
``inspect``, ``typing``, ``uuid``, ``datetime``...), and issue 17 wants ``validate`` under 100 ms and
``apply`` under 150 ms. So the few command lines people type most are recognised here, by a parser that
knows exactly these shapes, and run through the same functions the click commands call
(``meshop.cli.docs``, ``meshop.client.version``), with the same error -> exit code mapping
(``meshop.cli.exits``):

    meshop [GLOBAL...] version
    meshop [GLOBAL...] validate (-f|--filename) PATH [...] [--cluster]
    meshop [GLOBAL...] apply (-f|--filename) PATH [...]

    GLOBAL: --consul-addr ADDR | --token TOKEN | --prefix PREFIX, each at most once, ``--opt VALUE`` or
    ``--opt=VALUE``; ``-f VALUE`` or ``--filename VALUE`` / ``--filename=VALUE``. A value may not start
    with ``-`` (but ``-f -``, stdin).

Click stays the reference: any other command line (help, ``-o``, ``--``, an unknown or repeated option,
``-fPATH``, shell completion, ...) is not ours: ``run`` returns None and the console script's entry
(``meshop.cli.entry``) hands it to ``meshop.cli.main.run``, with click's help, usage errors and messages.
This module never imports ``main``. tests/unit/cli/test_fast_path.py holds both paths to the same output.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NamedTuple

from meshop.cli.exits import EXIT_INTERRUPTED, guarded, silence_stdout

if TYPE_CHECKING:
    from collections.abc import Callable

GLOBALS = {"--consul-addr": "addr", "--token": "token", "--prefix": "prefix"}
FILES = ("-f", "--filename")
COMMANDS = ("version", "validate", "apply")


class Call(NamedTuple):
    """A command line the fast path runs: the command, the global flags given, the -f paths."""

    command: str
    flags: dict[str, str]
    paths: tuple[str, ...] = ()
    cluster: bool = False


def parse(argv: list[str]) -> Call | None:
    """The simple command line ``argv`` is, or None when it is anything else (then click runs it)."""
    args = list(argv)
    flags: dict[str, str] = {}
    while args and args[0].startswith("--"):
        option = _take(args, tuple(GLOBALS))
        if option is None or GLOBALS[option[0]] in flags:
            return None
        flags[GLOBALS[option[0]]] = option[1]
    if not args or args[0] not in COMMANDS:
        return None
    command = args.pop(0)
    paths: list[str] = []
    cluster = False
    while args and command != "version":
        if args[0] == "--cluster" and command == "validate":
            cluster = True
            args.pop(0)
            continue
        option = _take(args, FILES)
        if option is None:
            return None
        paths.append(option[1])
    if args or (command != "version" and not paths):
        return None
    return Call(command, flags, tuple(paths), cluster)


def _take(args: list[str], names: tuple[str, ...]) -> tuple[str, str] | None:
    """Pop ``NAME VALUE`` (or ``--name=VALUE``) off the front of ``args``, NAME one of ``names``."""
    name, equals, value = args.pop(0).partition("=")
    if name not in names or (equals and not name.startswith("--")):
        return None
    if not equals:
        if not args:
            return None
        value = args.pop(0)
    if value.startswith("-") and value != "-":
        return None
    return name, value


def run(argv: list[str]) -> int | None:
    """Run ``argv`` if it is one of the simple command lines: its exit code; None when it is not ours."""
    call = parse(argv)
    if call is None or os.environ.get("_MESHOP_COMPLETE"):  # click's shell completion
        return None
    return guarded(lambda: _as_click_does(lambda: _execute(call)))


def _execute(call: Call) -> int:
    if call.command == "version":
        from meshop.cli.views import version_text
        from meshop.client.version import build_info

        _write(version_text(build_info()))
        return 0
    from meshop.cli.context import CliContext
    from meshop.cli.docs import apply_documents, validate_documents

    obj = CliContext(**call.flags)
    if call.command == "validate":
        validate_documents(obj, call.paths, call.cluster, _echo)
    else:
        apply_documents(obj, call.paths, _echo)
    return 0


def _as_click_does(command: Callable[[], int]) -> int:
    """What click's ``main`` does around a command: Ctrl-C or end of input is "Aborted."; a closed
    stdout ends quietly with exit code 1."""
    try:
        return command()
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        print("Aborted.", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        silence_stdout()
        return 1


def _echo(line: str, err: bool = False) -> None:
    _write(line + "\n", err)


def _write(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text)
    stream.flush()
