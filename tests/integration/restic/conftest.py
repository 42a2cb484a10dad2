from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.sshd import SshServer


@pytest.fixture(scope="session")
def backup_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A real sshd on a loopback port: the sftp: repository's host (this machine, as root)."""
    server = SshServer(tmp_path_factory.mktemp("backup-sshd")).start()
    try:
        yield server
    finally:
        server.stop()
