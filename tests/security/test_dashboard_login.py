"""Attacks on the dashboard's login, with real HTTP clients against a real dashboard (loopback only).

* A loopback dashboard with ``--actions``: before, any local user of the host could read the page's
  CSRF token and POST a cordon, which ran with the dashboard's operator token. Now every page needs a
  login and the POST writes nothing.
* Concurrent guesses: before, the throttle checked before it counted, so 60 guesses at once got 12
  tries against a limit of 10, and 200 at once took the dashboard from 37 to 326 MiB (an scrypt check
  each). Now a try is counted before it is checked, and at most a few checks run at once.
* Guesses from many loopback addresses: before, the throttle counted each address apart, and a local
  user can send from any of 127.0.0.0/8, so every guess from a new address was checked. Now all of
  loopback is one client.
"""

from __future__ import annotations

import http.client
import re
import threading
from pathlib import Path

from meshop.consul.store import KVStore
from meshop.dashboard.auth import PasswordHash, hash_password
from meshop.dashboard.server import Dashboard, Settings
from meshop.errors import MeshopError
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.meshop_proc import meshop_process
from tests.support.procs import wait_until

NODE = "n1"
PASSWORD = "correct horse battery"


def request(
    port: int, method: str, path: str, body: str = "", cookie: str = "", source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **({"Cookie": cookie} if cookie else {})}
        conn.request(method, path, body=body or None, headers=headers)
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read().decode()
    finally:
        conn.close()


def test_a_local_user_cannot_act_through_a_loopback_dashboard_without_signing_in(
    consul_server: ConsulServer, prefix: str, store: KVStore
) -> None:
    store.put(f"nodes/{NODE}", b"{}")
    operator = acl.config_for(consul_server.addr, prefix, "operator")
    server = Dashboard(operator, Settings("127.0.0.1:0", actions=True)).start()
    try:
        assert server.login_required
        status, headers, page = request(server.port, "GET", "/")
        assert (status, headers.get("location")) == (303, "/login"), page  # before: 200, a CSRF token in it
        status, _, _ = request(server.port, "GET", "/fragment/overview")
        assert status == 401
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        status, headers, _ = request(
            server.port, "POST", f"/nodes/{NODE}/cordon", f"csrf={csrf.group(1) if csrf else 'x'}"
        )
        assert (status, headers.get("location")) == (303, "/login")
        assert store.get(f"desired/nodes/{NODE}") is None  # before: cordoned with the operator's token

        status, headers, _ = request(server.port, "POST", "/login", f"method=token&token={operator.token}")
        assert status == 303
        session = headers["set-cookie"].split(";", 1)[0]
        status, _, page = request(server.port, "GET", "/", cookie=session)
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert status == 200 and found, page
        status, _, _ = request(server.port, "POST", f"/nodes/{NODE}/cordon", f"csrf={found.group(1)}", session)
        assert status == 303
        assert store.get(f"desired/nodes/{NODE}") is not None  # signed in with the operator role: it acts
    finally:
        server.stop()


def test_a_dashboard_that_requires_a_login_no_one_could_give_refuses_to_start(tmp_path: Path) -> None:
    """Loopback, ``--actions`` (or ``--public-host``), no password file, and a Consul without ACLs: no
    token proves anything, so nobody could sign in; it says so at start instead of serving a login page
    no one can pass (or, published, an open page)."""
    open_consul = ConsulServer(tmp_path / "consul").start()
    try:
        config = acl.config_for(open_consul.addr, "t-open", "operator")
        # --actions on loopback; published through the gateway (--public-host), read-only or not
        for settings in (
            Settings("127.0.0.1:0", actions=True),
            Settings("127.0.0.1:0", public_hosts=("d.example.com",)),
        ):
            dashboard = Dashboard(config, settings)
            try:
                dashboard.start()
            except MeshopError as exc:
                assert "Consul runs without ACLs" in str(exc) and "--password-file" in str(exc)
            else:
                dashboard.stop()
                raise AssertionError(f"started a dashboard no one can sign in to: {settings}")
            finally:
                dashboard.httpd.server_close()
    finally:
        open_consul.stop()


def status_of(pid: int) -> dict[str, str]:
    fields = (line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: value.strip() for name, value in fields}


def kib(value: str) -> int:
    return int(value.split()[0])


def test_concurrent_guesses_get_at_most_the_limit_and_memory_stays_bounded(
    consul_server: ConsulServer, prefix: str, tmp_path: Path
) -> None:
    """200 guesses at once from one address against ``meshop dashboard --password-file``: at most 10
    are checked ("wrong password"), the rest are refused unchecked (429 throttled, 503 busy); the
    dashboard's peak memory grows by far less than 200 scrypt checks would take (16 MiB each)."""
    pw = tmp_path / "pw"
    pw.write_text(hash_password(PASSWORD) + "\n")
    log = tmp_path / "dashboard.log"
    args = ["dashboard", "--listen", "127.0.0.1:0", "--password-file", str(pw)]
    proc = meshop_process(consul_server.addr, prefix, args, log).start()
    try:
        line = wait_until(lambda: re.search(r"serving http://127\.0\.0\.1:(\d+)/", log.read_text()), 30, what="serving")
        port = int(line.group(1))  # type: ignore[union-attr]
        assert request(port, "GET", "/")[0] == 303  # it answers; now measure from here
        before = status_of(proc.pid)
        start = threading.Barrier(200)
        answers: list[tuple[int, str]] = []

        def guess(i: int) -> None:
            start.wait(30)
            try:
                status, _, page = request(port, "POST", "/login", f"method=password&password=wrong+guess+{i}")
            except OSError as exc:
                status, page = 0, repr(exc)
            answers.append((status, page))

        clients = [threading.Thread(target=guess, args=(i,)) for i in range(200)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(120)
        after = status_of(proc.pid)
        checked = sum("wrong password" in page for _, page in answers)
        grown = (kib(after["VmHWM"]) - kib(before["VmHWM"])) // 1024
        assert (checked <= 10, grown < 100) == (True, True), f"{checked} guesses checked (limit 10), +{grown} MiB"
        unexpected = [answer for answer in answers if answer[0] not in (401, 429, 503)]
        assert len(answers) == 200 and not unexpected, unexpected[:3]  # 0: reset (socketserver's backlog of 5)
        # the guessing address waits once it has spent its tries (under load most of the burst may have
        # been turned away busy, uncounted: spend the rest one at a time); another is still let in
        for i in range(11):
            status, _, page = request(port, "POST", "/login", f"method=password&password=late+guess+{i}")
            checked += "wrong password" in page
            if status == 429:
                break
        assert (status, checked <= 10) == (429, True), f"{checked} guesses checked in all (limit 10)"
        assert request(port, "POST", "/login", f"method=password&password={PASSWORD.replace(' ', '+')}")[0] == 429
        # all of loopback is one client: another of 127.0.0.0/8 waits too (another host would not)
        other = request(
            port, "POST", "/login", f"method=password&password={PASSWORD.replace(' ', '+')}", source="127.0.0.2"
        )
        assert other[0] == 429
    finally:
        proc.stop()
    assert "Traceback" not in log.read_text()


def test_guesses_from_many_loopback_addresses_share_one_limit(consul_server: ConsulServer, prefix: str) -> None:
    """30 wrong passwords, each from another loopback address, one after the other: 10 are checked, the
    rest answer 429 unchecked (before: all 30 were checked, each address its own 10 a minute)."""
    readonly = acl.config_for(consul_server.addr, prefix, "readonly")
    password = PasswordHash.parse(hash_password(PASSWORD))
    server = Dashboard(readonly, Settings("127.0.0.1:0", password=password)).start()
    try:
        answers = [
            request(server.port, "POST", "/login", f"method=password&password=guess+{i}", source=f"127.0.{i}.9")[0]
            for i in range(30)
        ]
        assert (answers.count(401), answers.count(429)) == (10, 20), answers
        assert answers[:10] == [401] * 10
    finally:
        server.stop()
