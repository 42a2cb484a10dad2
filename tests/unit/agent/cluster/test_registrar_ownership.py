"""The registrar never joins a Consul service with foreign instances, and reports nothing for it."""

from __future__ import annotations

from dataclasses import dataclass, field

from meshop.agent.cluster.registrations import ReplicaRegistrar, foreign_instances
from meshop.consul.services import CheckSpec, InstanceHealth, Registration


@dataclass
class Services:
    foreign: list[InstanceHealth] = field(default_factory=list)
    registered: dict[str, Registration] = field(default_factory=dict)
    passed: list[str] = field(default_factory=list)

    def local(self) -> dict[str, dict]:
        return {sid: {"Service": r.name, "Meta": dict(r.meta)} for sid, r in self.registered.items()}

    def instances(self, name: str) -> tuple[int, list[InstanceHealth]]:
        return 1, list(self.foreign)

    def register(self, reg: Registration) -> None:
        self.registered[reg.service_id] = reg

    def deregister(self, sid: str) -> None:
        self.registered.pop(sid, None)

    def ttl_pass(self, check_id: str, note: str = "") -> None:
        if not any(c.check_id == check_id for r in self.registered.values() for c in r.checks):
            raise AssertionError(f"Consul answers 404 for an unknown check {check_id}")
        self.passed.append(check_id)

    ttl_fail = ttl_pass


def registration() -> Registration:
    check = CheckSpec("meshop-n1-db-0:probe", "probe", ttl="90s", initial_status="critical")
    meta = {"node": "n1", "service": "db", "replica": "0"}
    return Registration("meshop-n1-db-0", "db", "10.0.0.1", 5432, meta=meta, checks=(check,))


def test_foreign_instances() -> None:
    ours = InstanceHealth("c", "meshop-n2-db-0", {"service": "db", "replica": "0"}, "passing")
    theirs = InstanceHealth("c", "postgres-1", {"service": "db"}, "passing")
    other_service = InstanceHealth("c", "meshop-n2-web-0", {"service": "web", "replica": "0"}, "passing")
    assert foreign_instances("db", [ours]) == []
    assert foreign_instances("db", [ours, theirs, other_service]) == ["meshop-n2-web-0", "postgres-1"]


def test_a_refused_registration_gets_no_verdicts_and_registers_once_the_name_is_free() -> None:
    services = Services(foreign=[InstanceHealth("c", "postgres-1", {}, "passing")])
    registrar = ReplicaRegistrar(services, "n1")  # type: ignore[arg-type]
    reg = registration()
    assert registrar.sync({reg.service_id: (reg, "c1")}) == 0
    assert "postgres-1" in registrar.refused["db"]
    assert registrar.report({"meshop-n1-db-0:probe": True}) == 0  # no check in Consul to tell
    services.foreign = []
    assert registrar.sync({reg.service_id: (reg, "c1")}) == 1 and registrar.refused == {}
    assert registrar.report({"meshop-n1-db-0:probe": True}) == 1
    assert services.passed == ["meshop-n1-db-0:probe"]
