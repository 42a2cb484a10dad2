"""Which Python a set of wheels installs on, from their file names (PEP 427 tags). Pure.

Binary wheels name the CPython they were built for: ``cp311-cp311`` runs on 3.11 only, ``cp39-abi3`` on
3.9 and later. Nodes install meshop's wheels with ``pip --no-index``, so a host whose ``python3`` differs
from the workstation's fails deep in pip ("no matching distribution"); the plan checks it first and says
which Python the wheels need.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from meshop.bootstrap.steps import Command

_CPYTHON = re.compile(r"^cp(3)(\d+)$")


@dataclass(frozen=True)
class PythonNeed:
    exact: tuple[int, int] | None = None  # every binary wheel built for exactly this version
    minimum: tuple[int, int] | None = None  # stable-ABI wheels: this version or later

    def text(self) -> str:
        if self.exact:
            return "{}.{}".format(*self.exact)
        return "{}.{} or later".format(*self.minimum) if self.minimum else "any Python 3"


def python_need(names: Iterable[str]) -> PythonNeed:
    """The Python the wheels ``names`` need; ValueError when two binary wheels need different ones."""
    exact: set[tuple[int, int]] = set()
    minimum: tuple[int, int] | None = None
    for name in names:
        parts = name.removesuffix(".whl").split("-")
        if len(parts) < 5:
            continue
        for python in parts[-3].split("."):
            if not (found := _CPYTHON.match(python)):
                continue
            version = (int(found.group(1)), int(found.group(2)))
            if parts[-2] == "abi3":
                minimum = max(minimum or version, version)
            elif parts[-2] != "none":
                exact.add(version)
    if len(exact) > 1:
        versions = ", ".join("{}.{}".format(*v) for v in sorted(exact))
        raise ValueError(f"the wheels are built for different Pythons ({versions}): rebuild them with one")
    return PythonNeed(next(iter(exact), None), minimum)


def python_check(need: PythonNeed) -> Command | None:
    """The step that checks the host's ``python3`` against ``need`` (None: any Python 3 will do)."""
    if need.exact is None and need.minimum is None:
        return None
    tests = []
    if need.exact:
        tests.append(f"sys.version_info[:2] == {need.exact}")
    if need.minimum:
        tests.append(f"sys.version_info[:2] >= {need.minimum}")
    code = f"import sys; sys.exit(not ({' and '.join(tests)}))"
    check = f"python3 -c {shlex.quote(code)}"
    say = (
        f"the wheels need Python {need.text()}, this host has $(python3 -V 2>&1): build them with that "
        "version (PYTHON=python3.X scripts/build-wheels.sh)"
    )
    return Command(
        f"python3 on the host is {need.text()} (the Python the wheels were built for)",
        check=check,
        apply=f'echo "{say}" >&2; exit 1',
    )
