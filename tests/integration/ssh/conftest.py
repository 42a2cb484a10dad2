from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.sshd import SshServer


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A real sshd on a loopback port; its host is this machine (with the shared Docker engine)."""
    server = SshServer(tmp_path_factory.mktemp("sshd")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def known(tmp_path: Path):
    """Empty known_hosts for the test: meshop's own file (written) and an empty user file (read only)."""
    from meshop.ssh.session import KnownHosts

    return KnownHosts(own=tmp_path / "meshop_known_hosts", read=(tmp_path / "user_known_hosts",))
