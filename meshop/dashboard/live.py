"""The dashboard's live state: the latest ``Snapshot`` (the same ``StatusWatch`` as ``meshop status
--watch``), the route records, the event log, the gateways' health and the agents' usage records
(with the last hour of them in ``history``: the charts), each kept by a Consul blocking query; and a version
number that every server-sent-event stream waits on.

One ``Live`` serves every browser: N open pages cost the same Consul queries as one. A page learns of a
change through ``wait_change`` and then fetches its fragment, which is rendered from ``overview()``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from meshop.client.cluster import read_control_plane
from meshop.client.controlplane import ControlPlane, control_plane
from meshop.client.events import events_in
from meshop.client.gateways import GATEWAY_SERVICE
from meshop.client.status import build_report
from meshop.client.usage import NodeUsage, parse_usage
from meshop.client.watch import StatusWatch
from meshop.consul.config import ConsulConfig
from meshop.consul.services import Services
from meshop.consul.store import KVStore, Listing
from meshop.consul.watch import Watch, watch_prefix
from meshop.dashboard.history import UsageHistory
from meshop.dashboard.views import EVENTS_SHOWN, Overview
from meshop.errors import ConsulError
from meshop.model import keys
from meshop.model.records import Event, RouteRecord, loads_json


def routes_in(listing: Listing | None) -> tuple[RouteRecord, ...]:
    """Readable route records, by host; an unreadable one is left out (it is hostile or half-written)."""
    found = []
    for entry in listing.entries if listing else ():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            found.append(RouteRecord.from_dict(loads_json(entry.value)))
    return tuple(sorted(found, key=lambda r: (r.host, r.path)))


class Live:
    def __init__(
        self,
        config: ConsulConfig,
        *,
        wait: str = "30s",
        clock: Callable[[], float] = time.time,
        plane_every: float = 5.0,
    ) -> None:
        self.config = config
        self.plane_every = plane_every  # the Raft status endpoints have no blocking query: polled
        self.plane: ControlPlane | None = None
        self._plane_stop = threading.Event()
        self.clock = clock
        self.status = StatusWatch(config, wait=wait, settle=0.05, clock=clock)
        self.wait = wait
        self.version = 0
        self.problem = ""
        self._cond = threading.Condition()
        self._stopping = False
        self._watches: list[Watch[Any]] = []
        self._thread: threading.Thread | None = None
        self.history = UsageHistory()

    def start(self) -> Live:
        self.status.start()
        store = KVStore(self.config)
        self.routes = watch_prefix(store, keys.ROUTES, lambda _: self._bump(), wait=self.wait)
        self.events = watch_prefix(KVStore(self.config), keys.EVENTS, lambda _: self._bump(), wait=self.wait)
        self.usage = watch_prefix(KVStore(self.config), keys.USAGE, self._usage_changed, wait=self.wait)
        services = Services(self.config, KVStore(self.config).client)
        self.gateways = Watch(
            f"health:{GATEWAY_SERVICE}",
            lambda i, w: services.instances(GATEWAY_SERVICE, i, w),
            lambda _: self._bump(),
            wait=self.wait,
        ).start()
        self._watches = [self.routes, self.events, self.gateways, self.usage]
        self._thread = threading.Thread(target=self._follow, name="dashboard-live", daemon=True)
        self._thread.start()
        threading.Thread(target=self._poll_plane, name="dashboard-control-plane", daemon=True).start()
        return self

    def _poll_plane(self) -> None:
        store = KVStore(self.config)
        while not self._plane_stop.is_set():
            with contextlib.suppress(ConsulError):  # unreachable: the watches say so already
                plane = read_control_plane(store)
                if plane != self.plane:
                    self.plane = plane
                    self._bump()
            self._plane_stop.wait(self.plane_every)

    def stop(self) -> None:
        self._plane_stop.set()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for watch in self._watches:
            watch.stop()
        self.status.stop()

    def ready(self, timeout: float) -> bool:
        """True once every watch has answered once."""
        deadline = time.monotonic() + timeout
        watches = [*self.status.watches(), *self._watches]
        return all(w.wait_ready(max(0.0, deadline - time.monotonic())) for w in watches)

    def overview(self) -> Overview:
        """The overview as of now, from the watches' latest answers (no request to Consul)."""
        snapshot = replace(self.status.snapshot(), gateways=tuple(self.gateways.latest or ()))
        if self.plane is not None:
            names = {name: record.address for name, record in snapshot.records.items()}
            snapshot = replace(snapshot, control_plane=control_plane(self.plane.leader, self.plane.peers, names))
        events = tuple(e.event for e in events_in(self.events.latest.entries if self.events.latest else ()))
        problem = self.problem or next((w.last_error or "" for w in self._watches if not w.connected), "")
        report = build_report(snapshot)
        usage = self._usage(report.now)
        return Overview(report, routes_in(self.routes.latest), events[-EVENTS_SHOWN:], problem, usage, self.history)

    def _usage(self, now: float) -> dict[str, NodeUsage]:
        return parse_usage(self.usage.latest.entries if self.usage.latest else (), now)

    def _usage_changed(self, listing: Listing) -> None:
        """A node's usage record changed: remember it for the charts, and tell the pages."""
        now = self.clock()
        self.history.add(parse_usage(listing.entries, now), now)
        self._bump()

    def events_about(self, obj: str) -> tuple[Event, ...]:
        """Every logged event about ``obj`` (``node/n1``), oldest first, from the watch's last answer."""
        entries = self.events.latest.entries if self.events.latest else ()
        return tuple(e.event for e in events_in(entries) if e.event.object == obj)

    def wait_change(self, seen: int, timeout: float) -> int:
        """Block until the version differs from ``seen`` (or ``timeout``, or stop); the current version."""
        with self._cond:
            self._cond.wait_for(lambda: self.version != seen or self._stopping, timeout)
            return self.version

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _bump(self) -> None:
        with self._cond:
            self.version += 1
            self._cond.notify_all()

    def _follow(self) -> None:
        for update in self.status.updates(check_every=1.0):
            if self._stopping:
                return
            self.problem = update.problem
            self._bump()
