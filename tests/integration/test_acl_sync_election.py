"""Several ``meshop acl sync --watch`` (one per Consul server host, issue 23) elect one active syncer.

Real ``meshop acl sync --watch`` processes on the ACL-enabled Consul, with the management token as on a
server host, stopped and killed by PID. Bound stated: after SIGKILL of the active syncer, a newly placed
service's node is granted its registration within ``check_ttl`` (1 s) + lock-delay (1 s) + 3 s slack
(a 2-core machine shared with other sessions); after SIGTERM (it releases), within 3 s.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meshop.client.acl import ACL_SYNC, AclAdmin
from meshop.consul.config import ConsulConfig
from meshop.consul.services import Services
from meshop.consul.store import KVStore
from meshop.model import acl as policies
from meshop.model import keys
from meshop.operator.election import holder_service_id
from tests.support.consul_server import ConsulServer
from tests.support.procs import Process, wait_until

CHECK_TTL = 1
TAKEOVER_BOUND = CHECK_TTL + 1 + 3.0


@pytest.fixture
def admin(consul_config: ConsulConfig) -> Iterator[AclAdmin]:
    """Agent policies and tokens of n1 and n2 (as `node add` makes them), deleted after the test."""
    admin = AclAdmin(consul_config)
    for node in ("n1", "n2"):
        admin.token("agent", node)
    yield admin
    for node in ("n1", "n2"):
        policy = admin.api.policy(policies.render("agent", admin.prefix, node).name)
        if policy is not None:
            for token in admin.api.tokens_of(policy.id):
                admin.api.delete_token(token.accessor_id)
            admin.api.delete_policy(policy.id)


@pytest.fixture
def watchers(acl_consul: ConsulServer, prefix: str, tmp_path: Path) -> Iterator[Callable[[str], Process]]:
    started: list[Process] = []

    def start(name: str) -> Process:
        command = [sys.executable, "-m", "meshop", "--consul-addr", acl_consul.addr, "--prefix", prefix]
        command += ["acl", "sync", "--watch", "--resync", "60", "--id", name, "--check-ttl", str(CHECK_TTL)]
        env = {"PYTHONUNBUFFERED": "1", "CONSUL_HTTP_TOKEN": acl_consul.token}  # the management token
        process = Process(command, tmp_path / f"{name}.log", env=env).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def holder(store: KVStore) -> str | None:
    """The ``--id`` of the watcher holding ``locks/acl-sync`` (None while nobody does)."""
    entry = store.get(keys.LOCK_ACL_SYNC)
    if entry is None or not entry.session:
        return None
    return str(json.loads(entry.value)["id"])


def granted(admin: AclAdmin, node: str) -> frozenset[str]:
    policy = admin.api.policy(policies.render("agent", admin.prefix, node).name)
    assert policy is not None
    return policies.granted_services(policy.rules)


def log_of(process: Process) -> str:
    return process.log_path.read_text(errors="replace")


def test_one_watcher_syncs_and_a_standby_takes_over_when_it_dies(
    admin: AclAdmin, store: KVStore, watchers: Callable[[str], Process]
) -> None:
    procs = {name: watchers(name) for name in ("a", "b")}
    wait_until(lambda: holder(store) in procs, 30, what=f"one watcher elected\n{[log_of(p) for p in procs.values()]}")
    active = holder(store)
    assert active is not None
    standby = "b" if active == "a" else "a"
    services = Services(store.config, store.client)
    wait_until(lambda: holder_service_id(ACL_SYNC.service, store.prefix, standby) in services.local(), 10)

    store.put(f"{keys.ASSIGNMENTS}n1/web", "{}")  # as the controller places a replica
    wait_until(lambda: "web" in granted(admin, "n1"), 5, interval=0.05, what=f"n1 granted web\n{log_of(procs[active])}")
    assert "follows placement now" in log_of(procs[active])
    assert "follows placement now" not in log_of(procs[standby])  # a standby never writes
    assert holder(store) == active

    procs[active].signal(signal.SIGKILL)  # no release: its session ends with its TTL check
    killed = time.monotonic()
    store.put(f"{keys.ASSIGNMENTS}n2/api", "{}")  # placed while nobody syncs
    wait_until(
        lambda: "api" in granted(admin, "n2"),
        TAKEOVER_BOUND + 5,
        interval=0.05,
        what=f"the standby to take over and grant n2 api\n{log_of(procs[standby])}",
    )
    took = time.monotonic() - killed
    print(f"SIGKILL -> n2 granted api: {took:.2f}s")
    assert holder(store) == standby
    assert took < TAKEOVER_BOUND, f"{took:.1f}s to grant n2 its new service after the active syncer's SIGKILL"
    assert "web" in granted(admin, "n1")  # the new syncer's full pass kept what the old one granted

    c = watchers("c")
    wait_until(lambda: holder_service_id(ACL_SYNC.service, store.prefix, "c") in services.local(), 10)
    procs[standby].stop()  # SIGTERM: it releases the lock, no lock-delay for the next
    stopped = time.monotonic()
    store.put(f"{keys.ASSIGNMENTS}n1/db", "{}")
    wait_until(lambda: "db" in granted(admin, "n1"), 3 + 5, interval=0.05, what=f"c to take over\n{log_of(c)}")
    took = time.monotonic() - stopped
    print(f"SIGTERM -> n1 granted db: {took:.2f}s")
    assert holder(store) == "c" and took < 3, f"{took:.1f}s after a SIGTERM"
    assert "released leadership" in log_of(procs[standby])
