"""The upstream DNS responder's child process against its parent's fate: a stopped (hung) parent leaves
it answering from the last table; a killed parent takes it along, so Caddy's lookups are refused at once
(and it falls back to its static upstreams) instead of timing out."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from meshop.caddy.dns_wire import NOERROR, TYPE_SRV, query, site_name
from tests.support.procs import wait_until

PARENT = textwrap.dedent(
    """
    import sys, time
    from meshop.caddy.upstream_dns import UpstreamDNS
    dns = UpstreamDNS(sys.argv[2]).start()
    dns.publish({sys.argv[1]: (("10.0.0.1", 8080),)})
    print(dns.address, dns.child.pid, flush=True)
    time.sleep(600)
    """
)


def ask(address: str) -> int | None:
    """The rcode of an SRV query for web.example.com; None: no answer within 1 s or refused."""
    packet = query(site_name("web.example.com"), TYPE_SRV)
    if address.startswith("unixpacket/"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
            sock.settimeout(1)
            try:
                sock.connect(address[len("unixpacket/") :])
                sock.send(packet)
                return sock.recv(512)[3] & 0xF
            except OSError:
                return None
    host, port = address.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        try:
            sock.sendto(packet, (host, int(port)))
            return sock.recv(512)[3] & 0xF
        except OSError:
            return None


@pytest.mark.parametrize("listen", ["unix", "127.0.0.1:0"])
def test_the_responder_outlives_a_hung_parent_and_dies_with_a_killed_one(listen: str, tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, site_name("web.example.com"), listen],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[3],
        start_new_session=True,
    )
    try:
        assert parent.stdout is not None
        address, child = parent.stdout.readline().decode().split()
        wait_until(lambda: ask(address) == NOERROR, 10, what="the responder to answer")
        os.kill(parent.pid, signal.SIGSTOP)
        for _ in range(3):
            assert ask(address) == NOERROR  # the hung parent's last table still answers
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)

        def child_gone() -> bool:
            try:
                os.kill(int(child), 0)
            except ProcessLookupError:
                return True
            return Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"

        wait_until(child_gone, 10, what="the responder to exit with its parent")
        assert ask(address) is None
        if listen == "unix":  # the private folder stays (nobody else may create its name), emptied
            folder = Path(address[len("unixpacket/") :]).parent
            assert folder.is_dir() and not any(folder.iterdir())
            assert folder.stat().st_mode & 0o777 == 0o700
    finally:
        if parent.poll() is None:
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait(timeout=10)
