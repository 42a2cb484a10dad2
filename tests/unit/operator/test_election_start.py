"""``LeaderElection.start``: a controller refuses to start without Consul; an ``acl sync`` standby, started
while a server host dies (its Consul busy electing a Raft leader), waits for Consul instead of exiting."""

from __future__ import annotations

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.services import Registration
from meshop.consul.store import KVStore
from meshop.errors import ConsulError
from meshop.operator.election import LeaderElection
from tests.support.procs import wait_until


class RefusingServices:
    """A local Consul agent that times out every call (the first registration included)."""

    def __init__(self) -> None:
        self.tries = 0

    def register(self, reg: Registration) -> None:
        self.tries += 1
        raise ConsulError(f"timed out (registering service {reg.service_id})")

    def ttl_pass(self, check_id: str, note: str = "") -> None:
        raise ConsulError("timed out")

    def deregister(self, service_id: str) -> None:
        raise ConsulError("timed out")


def election(services: RefusingServices) -> LeaderElection:
    config = ConsulConfig.from_env({}, addr="127.0.0.1:1", timeout=0.2)
    return LeaderElection(KVStore(config), services, "n1", heartbeat_services=services)  # type: ignore[arg-type]


def test_a_controller_without_consul_fails_to_start() -> None:
    with pytest.raises(ConsulError, match="registering service"):
        election(RefusingServices()).start()


def test_a_standby_told_to_wait_keeps_registering_until_consul_answers() -> None:
    services = RefusingServices()
    elected = election(services).start(wait_for_consul=True)
    try:  # the heartbeat registers again after each failed beat (every check_ttl / 3 = 1 s)
        wait_until(lambda: services.tries >= 3, 10, what="registration retried by the heartbeat")
        assert not elected.is_leader
    finally:
        elected.stop()
