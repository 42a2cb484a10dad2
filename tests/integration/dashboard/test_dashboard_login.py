"""Beyond loopback the dashboard requires a login: served on an address of a veth pair whose other end
is in a network namespace this test creates, and asked from inside that namespace (another "machine").
On loopback without login it answers only to loopback host names (no DNS rebinding)."""

from __future__ import annotations

import http.client
import re
import secrets
import socket
import subprocess
from collections.abc import Iterator

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.dashboard.auth import PasswordHash, hash_password
from meshop.dashboard.server import Dashboard, Settings
from meshop.errors import DocumentError
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until

SUBNET = "10.233"


def sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=True)


@pytest.fixture
def outside() -> Iterator[tuple[str, str]]:
    """(namespace, the host's address facing it): a /30 on a veth pair, removed at the end."""
    used = sh("ip", "-o", "-4", "addr").stdout
    free = [k for k in range(1, 255) if f" {SUBNET}.{k}." not in used]
    tag = secrets.token_hex(3)
    ns, host_if, k = f"mdash-{tag}", f"md{tag}", free[secrets.randbelow(len(free))]
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "addr", "add", f"{SUBNET}.{k}.1/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "-n", ns, "addr", "add", f"{SUBNET}.{k}.2/30", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        yield ns, f"{SUBNET}.{k}.1"
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def curl(ns: str, *args: str) -> tuple[int, str, str]:
    """(status, headers, body) of a request made from inside ``ns``."""
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "curl", "-s", "-m", "10", "-D", "-", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    head, _, body = done.stdout.partition("\n\n")  # text mode: \r\n reads as \n
    return int(head.split()[1]), head, body


NODE = "n1"


def test_beyond_loopback_every_page_needs_a_login(
    consul_server: ConsulServer, prefix: str, store: KVStore, outside: tuple[str, str]
) -> None:
    ns, address = outside
    store.put(f"nodes/{NODE}", b"{}")  # a node the cordon could name
    config = acl.config_for(consul_server.addr, prefix, "readonly")
    server = Dashboard(config, Settings(listen=f"{address}:0")).start()
    try:
        assert server.login_required
        base = f"http://{address}:{server.port}"
        for path in ("/", "/service/web", f"/nodes/{NODE}/cordon"):
            status, head, _ = curl(ns, f"{base}{path}")
            assert (status, "location: /login" in head.lower()) == (303, True), path
        for path in ("/fragment/overview", "/stream", "/fragment/service/web"):
            status, _, body = curl(ns, f"{base}{path}")
            assert (status, body) == (401, "sign in first\n"), path
            assert prefix not in body
        status, _, _ = curl(ns, "-X", "POST", "-d", "csrf=x", f"{base}/nodes/{NODE}/cordon")
        assert status == 303  # to the login; nothing written
        assert store.get(f"desired/nodes/{NODE}") is None

        status, _, body = curl(ns, "-d", "method=token&token=00000000-0000-0000-0000-000000000000", f"{base}/login")
        assert status == 401 and f"may not read {prefix}/" in body
        agent = acl.roles(consul_server.addr, prefix).token("agent", NODE)  # type: ignore[union-attr]
        status, _, body = curl(ns, "-d", f"method=token&token={agent}", f"{base}/login")
        assert status == 401 and f"may not read {prefix}/" in body  # an agent's token reads no leader key

        token = config.token
        status, head, _ = curl(ns, "-d", f"method=token&token={token}", f"{base}/login")
        assert status == 303
        cookie = next(line for line in head.splitlines() if line.lower().startswith("set-cookie:"))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        session = cookie.split(":", 1)[1].split(";", 1)[0].strip()
        status, _, body = curl(ns, "-H", f"Cookie: {session}", f"{base}/")
        assert status == 200 and "<h2>Nodes" in body and token not in body
        status, _, _ = curl(ns, "-H", f"Cookie: {session}", "-d", "csrf=wrong", f"{base}/nodes/{NODE}/cordon")
        assert status == 403
        # a page elsewhere posting a login (login CSRF) is refused by its Origin, even with a good token
        evil = ("-H", "Origin: http://evil.example", "-d", f"method=token&token={token}", f"{base}/login")
        status, head, body = curl(ns, *evil)
        assert (status, "cross-origin request refused" in body, "set-cookie" in head.lower()) == (403, True, False)
    finally:
        server.stop()


def test_loopback_without_login_answers_only_loopback_host_names(consul_server: ConsulServer, prefix: str) -> None:
    dashboard = Dashboard(acl.config_for(consul_server.addr, prefix, "readonly"), Settings("127.0.0.1:0")).start()

    def get(host: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", dashboard.port, timeout=10)
        try:
            conn.request("GET", "/", headers={"Host": host})
            return conn.getresponse().status
        finally:
            conn.close()

    try:
        assert not dashboard.login_required
        assert get(f"127.0.0.1:{dashboard.port}") == 200
        assert get(f"localhost:{dashboard.port}") == 200
        assert get(f"rebind.attacker.example:{dashboard.port}") == 421  # DNS rebinding: refused
    finally:
        dashboard.stop()


def test_a_read_only_token_cannot_act_through_an_operator_dashboard(
    consul_server: ConsulServer, prefix: str, store: KVStore
) -> None:
    """The dashboard acts with its own (operator) token: a viewer signed in with the read-only role's
    token must not borrow it (before: that session could cordon, drain and restart)."""
    store.put(f"nodes/{NODE}", b"{}")
    password = PasswordHash.parse(hash_password("correct horse battery"))
    operator = acl.config_for(consul_server.addr, prefix, "operator")
    server = Dashboard(operator, Settings("127.0.0.1:0", password=password, actions=True)).start()

    def request(method: str, path: str, body: str = "", cookie: str = "") -> tuple[int, str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            headers = {"Content-Type": "application/x-www-form-urlencoded", **({"Cookie": cookie} if cookie else {})}
            conn.request(method, path, body=body or None, headers=headers)
            answer = conn.getresponse()
            return answer.status, answer.getheader("Set-Cookie") or "", answer.read().decode()
        finally:
            conn.close()

    def sign_in(token: str) -> tuple[str, str]:
        status, cookie, _ = request("POST", "/login", f"method=token&token={token}")
        assert status == 303, status
        session = cookie.split(";", 1)[0]
        status, _, page = request("GET", "/", cookie=session)
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert status == 200 and found, page
        return session, found.group(1)

    try:
        session, csrf = sign_in(acl.config_for(consul_server.addr, prefix, "readonly").token or "")
        status, _, page = request("GET", f"/nodes/{NODE}/cordon", cookie=session)
        assert status == 403 and "read-only" in page
        status, _, page = request("POST", f"/nodes/{NODE}/cordon", f"csrf={csrf}", session)
        assert status == 403 and "read-only" in page
        assert store.get(f"desired/nodes/{NODE}") is None  # nothing written with the dashboard's token

        session, csrf = sign_in(operator.token or "")
        status, _, _ = request("POST", f"/nodes/{NODE}/cordon", f"csrf={csrf}", session)
        assert status == 303
        assert store.get(f"desired/nodes/{NODE}") is not None
    finally:
        server.stop()


def test_half_sent_requests_and_bad_lengths_cannot_hold_the_server(consul_server: ConsulServer, prefix: str) -> None:
    """Slowloris: a connection that stops mid-request is closed after the idle timeout (before: held a
    thread forever); ``Content-Length: -1`` read until the client hung up, text ended the handler with
    no answer at all; both now answer 400."""
    config = acl.config_for(consul_server.addr, prefix, "readonly")
    server = Dashboard(config, Settings("127.0.0.1:0", idle_timeout=1.0)).start()

    def exchange(data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):  # the server must close; a hang is a TimeoutError
                chunks.append(chunk)
            return b"".join(chunks)

    host = f"Host: 127.0.0.1:{server.port}\r\n".encode()
    try:
        assert exchange(b"GET / HTTP/1.1\r\n" + host) == b""  # never finished: closed, no answer
        for length in (b"-1", b"abc", b"\xb2"):
            answer = exchange(b"POST /nodes/n1/cordon HTTP/1.1\r\n" + host + b"Content-Length: " + length + b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 400 "), (length, answer[:200])
    finally:
        server.stop()


def test_failed_sign_ins_from_one_address_do_not_lock_out_another(
    consul_server: ConsulServer, prefix: str, outside: tuple[str, str]
) -> None:
    """Before: ten failures a minute from anybody blocked every sign-in ("too many failed sign-ins").
    The guesser is another machine (a namespace); everybody else here is this host, at its own address.
    (Two loopback sources would not do: all of loopback counts as one client.)"""
    ns, address = outside
    password = PasswordHash.parse(hash_password("correct horse battery"))
    config = acl.config_for(consul_server.addr, prefix, "readonly")
    server = Dashboard(config, Settings(f"{address}:0", password=password)).start()
    url = f"http://{address}:{server.port}/login"

    def from_outside(guess: str) -> tuple[int, str]:
        status, _, page = curl(ns, "-d", f"method=password&password={guess.replace(' ', '+')}", url)
        return status, page

    def from_here(guess: str) -> int:
        conn = http.client.HTTPConnection(address, server.port, timeout=10)
        try:
            body = f"method=password&password={guess.replace(' ', '+')}"
            conn.request("POST", "/login", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
            return conn.getresponse().status
        finally:
            conn.close()

    try:
        for _ in range(10):
            assert from_outside("wrong guess")[0] == 401
        status, page = from_outside("correct horse battery")
        assert status == 429 and "too many failed sign-ins" in page  # the guessing address waits
        assert from_here("correct horse battery") == 303  # everybody else does not
    finally:
        server.stop()


def test_a_service_name_in_the_url_cannot_walk_to_other_keys(
    consul_server: ConsulServer, prefix: str, store: KVStore
) -> None:
    """``/service/..%2F..%2Fsecrets%2Fapp%2Fpw``: Consul cleans the key's URL path and redirects, py-consul
    follows, so the page read ``secrets/app/pw`` with the dashboard's token and showed it as the service's
    document (a management token, allowed for ``--actions``, reads every secret). Now a 404, and the
    store refuses such a key on both backends."""
    store.put("secrets/app/pw", b'{"user": "db", "password": "hunter2-secret"}')
    config = ConsulConfig.from_env({}, addr=consul_server.addr, token=consul_server.token, prefix=prefix)
    server = Dashboard(config, Settings("127.0.0.1:0")).start()
    try:
        for path in ("/service/..%2F..%2Fsecrets%2Fapp%2Fpw", "/fragment/service/..%2F..%2Fsecrets%2Fapp%2Fpw"):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            try:
                conn.request("GET", path, headers={"Host": f"127.0.0.1:{server.port}"})
                answer = conn.getresponse()
                body = answer.read().decode()
            finally:
                conn.close()
            assert answer.status == 404 and "hunter2" not in body, (path, answer.status)
    finally:
        server.stop()
    for backend in (KVStore(config), KVStore.over_http(config)):
        for key in ("desired/services/../../secrets/app/pw", "desired/./x", "../other"):
            with pytest.raises(DocumentError, match=re.escape("'.' or '..' segment")):
                backend.get(key)


@pytest.mark.parametrize("since", ["%C2%B2", "9" * 5000, "12"], ids=["superscript", "5000-digits", "digits"])
def test_the_stream_starts_whatever_since_says(consul_server: ConsulServer, prefix: str, since: str) -> None:
    """Before: ``?since=²`` or 5000 digits raised in int() after the 200 was sent: the stream ended at once."""
    server = Dashboard(acl.config_for(consul_server.addr, prefix, "readonly"), Settings("127.0.0.1:0")).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(f"GET /stream?since={since} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
            data = b""
            while b"retry: 2000" not in data:
                chunk = sock.recv(4096)
                assert chunk, data  # closed before the stream began
                data += chunk
    finally:
        server.stop()


def test_connections_beyond_the_limit_are_closed_and_the_slots_come_back(
    consul_server: ConsulServer, prefix: str
) -> None:
    """A client trickling a header byte within every idle timeout keeps a thread for ever; before, any
    number of them got one each. Over the limit a connection is closed at once, and a slot is free again
    when its connection ends."""
    config = acl.config_for(consul_server.addr, prefix, "readonly")
    server = Dashboard(config, Settings("127.0.0.1:0", max_connections=2)).start()
    host = f"Host: 127.0.0.1:{server.port}\r\n".encode()
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(b"GET / HTTP/1.1\r\n")  # half a request: the handler waits for the rest
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
            extra.sendall(b"GET / HTTP/1.1\r\n" + host + b"\r\n")
            assert extra.recv(100) == b""  # closed unanswered (before: 200)
        held.pop().close()
        answer = b""

        def served() -> bool:
            nonlocal answer
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n")
                answer = sock.recv(100)
            return answer.startswith(b"HTTP/1.1 200")

        wait_until(served, 10, interval=0.05, what="a slot freed by the closed connection")
    finally:
        for sock in held:
            sock.close()
        server.stop()
