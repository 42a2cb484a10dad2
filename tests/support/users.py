"""A throwaway local user for attacks by "another local user of the host" (threat (g) in docs/security.md)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture
def other_user() -> Iterator[str]:
    """A system user of its own (unique name: safe in parallel), removed afterwards."""
    name = f"msq{secrets.token_hex(4)}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True, timeout=30
    )
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, timeout=30)


def as_user(name: str) -> list[str]:
    """The command prefix that runs what follows as ``name`` (``setpriv``, no supplementary groups)."""
    return ["setpriv", f"--reuid={name}", f"--regid={name}", "--clear-groups", "--"]
