"""Which tests must share a pytest-xdist worker, decided from the test tree itself.

``make test`` runs tests in parallel workers. A fixture of module or package scope (a cluster of real
processes built once for a module's tests, which may also build on each other's state) must not be
built twice at once on two workers, nor have its module's tests split across them; and the fleet's tests
share one network-namespace fleet per worker that runs them. Everything else is its own unit of work.

pytest-xdist's ``--dist loadgroup`` would read ``xdist_group`` marks, but with pytest 9 the group never
reaches the scheduler (the marked test ids keep no ``@group`` suffix: checked with a four-test file), so
``tests/conftest.py`` hands xdist this rule as its scheduler (``pytest_xdist_make_scheduler``). The
controller process collects nothing, so the rule reads the sources: a test module that defines a module-
or package-scoped fixture is one unit, and so is every test module in the folder (and below) of a
conftest or helper module that does. A fleet test module with a module-scoped fleet of its own (a
three-server or DNS layout) is one unit of its own, so it runs beside the session fleet's tests, which
share one worker.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SHARED_SCOPE = re.compile(r"""scope\s*=\s*["'](?:module|package)["']""")
FLEET = "tests/fleet/"


@cache
def shared_roots() -> tuple[frozenset[str], tuple[str, ...]]:
    """(test modules that are one unit each, folders whose every test module is one unit each)."""
    modules: set[str] = set()
    folders: set[str] = set()
    for path in TESTS.rglob("*.py"):
        if not SHARED_SCOPE.search(path.read_text(encoding="utf-8", errors="replace")):
            continue
        relative = path.relative_to(TESTS.parent).as_posix()
        if path.name.startswith("test_"):
            modules.add(relative)
        else:  # a conftest, or a helper whose fixtures a conftest imports
            folders.add(relative.rsplit("/", 1)[0] + "/")
    return frozenset(modules), tuple(sorted(folders))


def unit_of(nodeid: str) -> str:
    """The unit of work ``nodeid`` belongs to: "fleet", its module's path, or the test id itself."""
    module = nodeid.split("::", 1)[0]
    modules, folders = shared_roots()
    if module.startswith(FLEET):  # a module that builds a fleet of its own runs beside the session fleet's
        return module if module in modules else "fleet"
    if module in modules or module.startswith(folders):
        return module
    return nodeid
