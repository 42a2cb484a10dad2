"""``meshop status --watch``: a new ``Snapshot`` whenever something it shows changes, from blocking queries.

One watch per KV prefix of the snapshot (``desired/``, ``nodes/``, ``status/``), one on the ``leader`` key
and one on the agents' health (every check: one ``meshop-agent-<node>`` name per node); each notifies a
shared ``Wakeup``. Bursts (a controller pass writes several keys) are coalesced for ``settle`` seconds.
While Consul cannot be reached the watches retry with backoff and ``updates`` reports the problem once,
then the next snapshot once it is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from meshop.client.cluster import PREFIXES, Parsers, Snapshot
from meshop.client.gateways import GATEWAY_SERVICE
from meshop.consul.config import ConsulConfig
from meshop.consul.services import Services
from meshop.consul.store import KVStore
from meshop.consul.watch import Watch, watch_prefix
from meshop.daemon.wakeup import Wakeup
from meshop.model import keys


@dataclass(frozen=True)
class Update:
    snapshot: Snapshot | None  # None when only ``problem`` changed
    problem: str = ""  # "": connected


class StatusWatch:
    def __init__(
        self, config: ConsulConfig, *, wait: str = "30s", settle: float = 0.15, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.wait = wait
        self.settle = settle
        self.clock = clock
        self.wakeup = Wakeup()
        self.parsers = Parsers(config.prefix)
        self.kv: list[Watch[Any]] = []
        self.leader: Watch[Any] | None = None
        self.agents: Watch[Any] | None = None
        self.gateways: Watch[Any] | None = None

    def start(self) -> StatusWatch:
        notify = self._notifier
        self.kv = [watch_prefix(KVStore(self.config), p, notify(p), wait=self.wait) for p in PREFIXES]
        leader_store = KVStore(self.config)
        self.leader = Watch(
            "kv:leader", lambda i, w: leader_store.get_blocking(keys.LEADER, i, w), notify("leader"), wait=self.wait
        ).start()
        services = Services(self.config, KVStore(self.config).client)
        self.agents = Watch(
            "health:agents",
            services.agents,
            notify("agents"),
            wait=self.wait,
        ).start()
        gateways = Services(self.config, KVStore(self.config).client)
        self.gateways = Watch(
            f"health:{GATEWAY_SERVICE}",
            lambda i, w: gateways.instances(GATEWAY_SERVICE, i, w),
            notify("gateways"),
            wait=self.wait,
        ).start()
        return self

    def stop(self) -> None:
        for watch in self._all():
            watch.stop()
        self.wakeup.close()

    def updates(self, check_every: float = 1.0) -> Iterator[Update]:
        """A snapshot after every change (once every watch has answered), and connection problems."""
        shown = ""
        while True:
            reasons = self.wakeup.wait(check_every)
            if "shutdown" in reasons:
                return
            if reasons and all(w.wait_ready(0) for w in self._all()):
                self._settle()
                shown = self._problem()
                yield Update(self.snapshot(), shown)
                continue
            problem = self._problem()
            if problem != shown:
                shown = problem
                yield Update(None, problem)

    def snapshot(self) -> Snapshot:
        assert self.leader is not None and self.agents is not None
        leader = self.leader.latest
        listings = [w.latest for w in self.kv]
        gateways = (self.gateways.latest if self.gateways else None) or []
        return Snapshot.build(listings, self.agents.latest or [], leader, self.clock(), self.parsers, gateways)

    def _settle(self) -> None:
        deadline = time.monotonic() + 4 * self.settle
        while time.monotonic() < deadline and self.wakeup.wait(self.settle):
            pass

    def _problem(self) -> str:
        down = [w for w in self._all() if not w.connected and w.last_error]
        return down[0].last_error or "" if down else ""

    def watches(self) -> list[Watch[Any]]:
        """Every watch this feed runs (started)."""
        return self._all()

    def _all(self) -> list[Watch[Any]]:
        return [w for w in (*self.kv, self.leader, self.agents, self.gateways) if w is not None]

    def _notifier(self, reason: str) -> Callable[[object], None]:
        return lambda _value: self.wakeup.notify(reason)
