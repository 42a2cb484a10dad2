"""A stateful replica's Docker configuration: never restarted by Docker itself, marked for the watchdog."""

from __future__ import annotations

from meshop.agent.planning import labels as L
from meshop.agent.planning.desired import container_config
from meshop.model import parse_service
from meshop.model.records import Assignment

from ...model.helpers import service


def config(volume: dict[str, object]) -> tuple[str, dict[str, str]]:
    spec = parse_service(service({"volumes": [volume], "restart": "always"})).spec
    assignment = Assignment(service="web", node="n1", replicas=1, generation=1, spec_hash="h", spec=spec.to_dict())
    made = container_config("n1", assignment, spec, 0, "c", {}, "127.0.0.1")
    return made.restart, dict(made.labels)


def test_docker_never_restarts_a_stateful_copy_on_its_own() -> None:
    """At boot Docker would start an ``always`` container before the agent holds its lock: two writers."""
    restart, labels = config({"name": "data", "mountPath": "/data", "stateful": {}})
    assert restart == "no"
    assert labels[L.STATEFUL] == "true"


def test_a_plain_volume_keeps_the_restart_policy() -> None:
    restart, labels = config({"name": "data", "mountPath": "/data"})
    assert restart == "always"
    assert L.STATEFUL not in labels
