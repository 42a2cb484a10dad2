"""Whether the gateway may publish the dashboard named by the Gateway document (``spec.dashboard``).

Anyone on the internet reaches that host, so the gateway proxies to the dashboard only after the
dashboard has answered the request an anonymous visitor would send — ``GET /fragment/overview`` with
the public ``Host`` and the headers the gateway's Caddy adds — with ``401`` (a login is required).
Every other answer keeps the host on a fixed 503 page and says why in ``gateways/<id>/dashboard``:

* ``200``/``3xx``/``403``: ``NoLogin`` — an open, read-only dashboard (it refuses proxied requests
  itself, answering 403, but the gateway does not rely on that);
* ``421``: ``HostRefused`` — the dashboard was not started with ``--public-host <host>``;
* no answer: ``Unreachable``; anything else: ``Unexpected``.

The check repeats every ``interval`` seconds, so a dashboard restarted without a login leaves the
gateway within that time (and refuses the proxied requests meanwhile on its own).
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from meshop.caddy.render import Site
from meshop.consul.store import KVStore
from meshop.daemon.threads import DaemonThread
from meshop.errors import ConsulError
from meshop.model import keys
from meshop.model.gateway import GatewayDashboard
from meshop.model.gateway_rules import split_server_address
from meshop.model.records import DashboardPublication, DashboardReason, dumps

log = logging.getLogger(__name__)

PROBE_PATH = "/fragment/overview"


@dataclass(frozen=True)
class Verdict:
    published: bool
    reason: DashboardReason
    message: str


NOT_CHECKED = Verdict(False, "NotChecked", "the gateway has not asked the dashboard yet")


def judge(status: int | None, dashboard: GatewayDashboard, detail: str = "") -> Verdict:
    """The verdict on the dashboard's answer (``None``: no answer) to a request without a login. Pure."""
    where = f"the dashboard at {dashboard.upstream}"
    if status == 401:
        return Verdict(True, "LoginRequired", f"{where} requires a login; served at https://{dashboard.host}/")
    if status is None:
        return Verdict(False, "Unreachable", f"{where} did not answer ({detail}); is `meshop dashboard` running?")
    if status == 421:
        return Verdict(
            False,
            "HostRefused",
            f"{where} refuses the host {dashboard.host}: start it with --public-host {dashboard.host}",
        )
    if status in (200, 403) or 300 <= status < 400:
        return Verdict(
            False,
            "NoLogin",
            f"{where} answered {status} to a request without a login: it would be open to anyone; start it "
            f"with --public-host {dashboard.host} (which requires a login)",
        )
    return Verdict(False, "Unexpected", f"{where} answered {status}, not 401, to a request without a login")


def ask(dashboard: GatewayDashboard, timeout: float = 3.0) -> Verdict:
    """Send the anonymous request through the same headers the gateway's Caddy would add."""
    split = split_server_address(dashboard.upstream)
    if split is None:
        return Verdict(False, "Unexpected", f"not an upstream address: {dashboard.upstream!r}")
    conn = http.client.HTTPConnection(split[0], split[1], timeout=timeout)
    headers = {
        "Host": dashboard.host,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": dashboard.host,
        "X-Forwarded-For": "192.0.2.1",  # TEST-NET-1: stands for a visitor from anywhere
        "User-Agent": "meshop-gateway-dashboard-check",
    }
    try:
        conn.request("GET", PROBE_PATH, headers=headers)
        response = conn.getresponse()
        response.read(65536)
        return judge(response.status, dashboard)
    except (OSError, http.client.HTTPException) as exc:
        return judge(None, dashboard, type(exc).__name__)
    finally:
        conn.close()


def dashboard_site(dashboard: GatewayDashboard, verdict: Verdict) -> Site:
    """The gateway's site for the dashboard host: a proxy once a login is required, else a fixed 503."""
    if verdict.published:
        # no pooled upstream connections: a sign-in POST never meets one the dashboard is closing
        return Site(dashboard.host, "/", (dashboard.upstream,), comment="meshop dashboard", keepalive=False)
    return Site(
        dashboard.host,
        "/",
        (),
        comment="meshop dashboard (not published)",
        unavailable=f"meshop: the dashboard is not published ({verdict.reason}); see meshop status",
    )


class DashboardCheck:
    """Asks the current target every ``interval`` s (and at once when it changes); ``on_change`` runs in
    the check's thread when the verdict changes. ``asker`` is ``ask`` (a test passes its own)."""

    def __init__(
        self,
        on_change: Callable[[], None],
        interval: float = 10.0,
        asker: Callable[[GatewayDashboard], Verdict] = ask,
    ) -> None:
        self.on_change = on_change
        self.interval = interval
        self.asker = asker
        self._target: GatewayDashboard | None = None
        self._verdict = NOT_CHECKED
        self._lock = threading.Lock()
        self._kick = threading.Event()
        self._thread = DaemonThread("gateway-dashboard-check", self._run, on_stop=self._kick.set)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop(5.0)

    def verdict(self, target: GatewayDashboard | None) -> Verdict:
        """The verdict for ``target`` (NOT_CHECKED until it has been asked); a new target is asked soon."""
        with self._lock:
            if target != self._target:
                self._target, self._verdict = target, NOT_CHECKED
                self._kick.set()
            return self._verdict

    def _run(self) -> None:
        while not self._thread.stopping.is_set():
            with self._lock:
                target = self._target
            verdict = self.asker(target) if target is not None else NOT_CHECKED
            with self._lock:
                changed = target == self._target and verdict != self._verdict
                if changed:
                    self._verdict = verdict
            if changed:
                (log.info if verdict.published else log.error)("dashboard: %s", verdict.message)
                self.on_change()
            self._kick.wait(self.interval)
            self._kick.clear()


class PublicationReport:
    """``gateways/<id>/dashboard``, written when the verdict changes and deleted when there is no
    dashboard host any more (or on a clean stop); a failed write is retried on the next pass."""

    def __init__(self, store: KVStore, gateway_id: str, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.key = keys.gateway_dashboard(gateway_id)
        self.clock = clock
        self._written: tuple[str, bool, str, str] | None = None

    def publish(self, dashboard: GatewayDashboard | None, verdict: Verdict) -> None:
        if dashboard is None:
            if self._written is not None:
                self.withdraw()
            return
        state = (dashboard.host, verdict.published, verdict.reason, verdict.message)
        if state == self._written:
            return
        record = DashboardPublication(dashboard.host, verdict.published, verdict.reason, verdict.message, self.clock())
        try:
            self.store.put(self.key, dumps(record))
            self._written = state
        except ConsulError as exc:
            log.warning("could not write %s (retrying next pass): %s", self.key, exc)

    def withdraw(self) -> None:
        try:
            self.store.delete(self.key)
            self._written = None
        except ConsulError as exc:
            log.warning("could not delete %s: %s", self.key, exc)
