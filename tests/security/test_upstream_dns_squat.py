"""Issue 24, item 4: the upstream DNS responder's address cannot be taken by another local user.

The gateway (here its stand-in: a process running ``UpstreamDNS`` with its defaults, as ``meshop gateway
run`` does) is SIGKILLed; the real Caddy 2.6 it fed keeps serving its last config and keeps asking the
responder's address for each site's upstreams. Another local user (a system user made for the test, the
squatter run as that user with ``setpriv``) then tries to take that address and answer with "Consul's"
address (a canary server on loopback). Before: the freed loopback UDP port was bound by the squatter and
the public route served the canary. Now the responder listens on a unix socket inside a 0700 folder that
stays after the kill, so the squatter cannot bind it and Caddy falls back to the site's static upstream.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from meshop.caddy.dns_wire import site_name
from meshop.caddy.render import DynamicUpstreams, ProxyOptions, Site, render_site
from meshop.caddy.upstream_dns import UpstreamDNS
from meshop.errors import MeshopError
from tests.support.caddy_server import CaddyServer
from tests.support.http import get
from tests.support.procs import free_port, wait_until
from tests.support.users import as_user

HOST = "squat.example.test"
REPO = Path(__file__).resolve().parents[2]

GATEWAY = textwrap.dedent(
    """
    import sys, time
    from meshop.caddy.upstream_dns import UpstreamDNS
    dns = UpstreamDNS().start()
    dns.publish({sys.argv[1]: (("127.0.0.1", int(sys.argv[2])),)})
    print(dns.address, dns.child.pid, flush=True)
    time.sleep(600)
    """
)

# Run as the other user: take the responder's address and answer every lookup with the canary.
SQUATTER = textwrap.dedent(
    """
    import os, socket, sys, time
    sys.path.insert(0, sys.argv[4])
    from meshop.caddy.dns_wire import answer
    address, name, canary = sys.argv[1], sys.argv[2], int(sys.argv[3])
    table = {name: (("127.0.0.1", canary),)}
    try:
        if address.startswith("unixpacket/"):
            path = address[len("unixpacket/"):]
            os.makedirs(os.path.dirname(path), exist_ok=True)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sock.bind(path)
            sock.listen(16)
        else:
            host, port = address.rsplit(":", 1)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((host, int(port)))
    except OSError as exc:
        print("refused", exc, flush=True)
        sys.exit(1)
    print("bound", flush=True)
    sock.settimeout(1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if sock.type == socket.SOCK_DGRAM:
                packet, peer = sock.recvfrom(4096)
                sock.sendto(answer(packet, table) or b"", peer)
            else:
                conn, _ = sock.accept()
                with conn:
                    conn.settimeout(1)
                    conn.send(answer(conn.recv(4096), table) or b"")
        except OSError:
            continue
    """
)


class Body(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def serve(body: bytes) -> tuple[ThreadingHTTPServer, int]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Body)
    server.body = body  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_a_local_user_cannot_take_the_responders_address_after_the_gateway_is_killed(
    other_user: str, tmp_path: Path
) -> None:
    honest, honest_port = serve(b"honest")
    canary, canary_port = serve(b"CONSUL-API")  # what the squatter wants the route to serve
    name = site_name(HOST)
    gateway = subprocess.Popen(
        [sys.executable, "-c", GATEWAY, name, str(honest_port)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        start_new_session=True,
    )
    caddy = CaddyServer(tmp_path / "caddy")
    squatter: subprocess.Popen[bytes] | None = None
    try:
        assert gateway.stdout is not None
        address, child = gateway.stdout.readline().decode().split()
        port = free_port()
        site = Site(HOST, "/", (f"127.0.0.1:{honest_port}",), dynamic=DynamicUpstreams(name, address, "1s"))
        text = render_site(site, scheme="http", bind=("127.0.0.1",), tls=None, proxy=ProxyOptions(), port=port)
        (caddy.sites / "squat.caddy").write_text(text)
        caddy.start()
        wait_until(lambda: get(port, HOST) == (200, "honest"), 20, interval=0.1, what="the route to serve")

        os.kill(gateway.pid, signal.SIGKILL)  # Caddy keeps serving and asking the responder's address
        gateway.wait(timeout=10)
        wait_until(lambda: _gone(int(child)), 10, what="the responder to exit with the gateway")

        as_other = as_user(other_user)
        squatter = subprocess.Popen(
            [*as_other, sys.executable, "-c", SQUATTER, address, name, str(canary_port), str(REPO)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd="/",
        )
        assert squatter.stdout is not None
        said = squatter.stdout.readline().decode().strip()
        # a window of a few of the site's 1 s refreshes: every answer must be the honest static upstream
        bodies = set()
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            bodies.add(get(port, HOST)[1])
            time.sleep(0.2)
        assert "CONSUL-API" not in bodies, f"the squatter ({said}) answered Caddy's lookups: {bodies}"
        assert said.startswith("refused"), said
        assert bodies == {"honest"}, bodies
    finally:
        if squatter is not None and squatter.poll() is None:
            squatter.kill()
            squatter.wait(timeout=10)
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait(timeout=10)
        caddy.stop()
        honest.shutdown()
        canary.shutdown()


def test_a_temp_folder_others_may_rename_in_is_refused(
    other_user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The responder's socket folder is a fresh 0700 ``mkdtemp`` folder: no one else can enter it, but whoever
    may write the folder it lies in may rename it away and put a folder of its own, with its own socket,
    under the name Caddy asks. ``/tmp`` is sticky (only the owner renames); a ``TMPDIR`` writable by others
    and not sticky is not: before, the responder started there and the other user swapped its folder."""
    shared = Path(tempfile.mkdtemp(prefix="meshop-shared-", dir="/tmp"))  # reachable by the other user
    shared.chmod(0o777)  # writable by every user, no sticky bit
    monkeypatch.setattr(tempfile, "tempdir", str(shared))  # what TMPDIR=shared makes gettempdir() answer
    try:
        try:
            dns = UpstreamDNS()
        except MeshopError as exc:
            assert str(shared) in str(exc) and "not sticky" in str(exc), exc
            assert list(shared.iterdir()) == []  # nothing made there
            return
        try:  # before: it started; show what the other user could then do
            folder = Path(dns.address.removeprefix("unixpacket/")).parent
            swap = f"import os; os.rename({str(folder)!r}, {str(folder) + '-gone'!r}); os.mkdir({str(folder)!r})"
            done = subprocess.run([*as_user(other_user), sys.executable, "-c", swap], capture_output=True, timeout=30)
            owner = folder.stat().st_uid
            raise AssertionError(
                f"the responder started in {shared}; the other user's swap: rc={done.returncode} "
                f"{done.stderr.decode()[-200:]}; {folder} now belongs to uid {owner}"
            )
        finally:
            dns.stop()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
