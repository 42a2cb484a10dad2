"""Bounds: one oversized document (valid or not) must never stall the controller for everyone.

Before issue 11 a ~400 KiB Service document made every controller transaction fail with 413 (Consul
limits the whole /v1/txn body, base64 included, to 512 KiB): its assignment, or its status listing every
violation, was packed with everyone else's changes, so no other service was scheduled or rolled up.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import ServiceStatus, loads_json
from meshop.operator.controller import Controller, ControllerOptions
from tests.integration.operator.sim import SimNode
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until


def service(name: str, **spec: object) -> str:
    body = {"image": "busybox:1", "ports": [{"name": "http", "container": 80}], **spec}
    return json.dumps({"apiVersion": "meshop.io/v1alpha1", "kind": "Service", "metadata": {"name": name}, "spec": body})


@pytest.fixture
def cluster(consul_server: ConsulServer) -> Iterator[tuple[KVStore, SimNode]]:
    prefix = f"t-{secrets.token_hex(4)}"
    config = ConsulConfig.from_env({}, addr=consul_server.addr, token=consul_server.token, prefix=prefix, timeout=10.0)
    store = KVStore(config)
    node = SimNode(store, f"{prefix}-n1").join()
    role = acl.config_for(consul_server.addr, prefix, "controller", timeout=10.0)
    ctl = Controller(role, ControllerOptions(f"{prefix}-c", lock_delay=0, resync=1.0)).start()
    try:
        wait_until(lambda: ctl.election.is_leader and ctl.loop.passes > 0, 20, what="a leader")
        yield store, node
    finally:
        ctl.stop()
        node.close()
        acl.close_everywhere(prefix)


def status(store: KVStore, name: str) -> ServiceStatus | None:
    entry = store.get(keys.service_status(name))
    return ServiceStatus.from_dict(loads_json(entry.value)) if entry else None


def test_oversized_documents_get_a_clear_condition_and_block_no_one(cluster: tuple[KVStore, SimNode]) -> None:
    store, node = cluster
    big_env = [{"name": f"V{i}", "value": "x" * 4000} for i in range(100)]  # ~400 KiB, valid
    store.put(keys.desired_service("huge"), service("huge", env=big_env))
    junk = {f"unknown_field_{i:05d}_{'y' * 40}": i for i in range(6000)}  # ~400 KiB, 6000 violations
    store.put(keys.desired_service("noisy"), service("noisy", **junk))
    store.put(keys.desired_service("small"), service("small"))

    wait_until(lambda: node.assignment("small"), 30, what="the small service to be scheduled")
    node.report("small")
    wait_until(lambda: (s := status(store, "small")) and s.ready_replicas == 1, 30, what="small to be Ready")

    huge = wait_until(lambda: status(store, "huge"), 30, what="a status for the huge document")
    valid = huge.condition("Valid")  # type: ignore[union-attr]
    assert valid is not None and valid.status == "False" and "resolved spec is" in valid.message
    assert node.assignment("huge") is None

    noisy = wait_until(lambda: status(store, "noisy"), 30, what="a status for the noisy document")
    entry = store.get(keys.service_status("noisy"))
    assert entry is not None and len(entry.value) < 16 * 1024  # bounded, whatever the document holds
    message = noisy.condition("Valid").message  # type: ignore[union-attr]
    assert "and 5990 more" in message
