"""Lazy exports for a package's ``__init__`` (PEP 562): a name loads its module on first use.

Why: a package that re-exports its submodules' names loads them all when any one submodule is imported
(``meshop.model.keys`` would load the YAML loader and every document type; ``meshop.restic.repository``
restic's commands and SSH), and start-up time is what the CLI's quick commands and a returning node's
agent pay for it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``where`` maps each exported name to its module; the
    value found is kept in the package's namespace, so the next lookup does not come here."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
