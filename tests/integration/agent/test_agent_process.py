"""``meshop agent run`` as a real process: clean SIGTERM shutdown, and SIGKILL at random moments of a
10-service rollout ending with exactly one container per replica."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import NodeRecord, loads_json
from tests.integration.agent.helpers import (
    SLEEPER,
    Engine,
    agent_process,
    assign,
    http_spec,
    http_status,
    registrations,
)
from tests.support.procs import wait_until


def test_sigterm_stops_cleanly_and_leaves_containers_running(
    store: KVStore, engine: Engine, node: str, consul_server: Any, prefix: str, tmp_path: Path
) -> None:
    process = agent_process(node, consul_server.addr, prefix, tmp_path, "--log-format", "json").start()
    try:
        assign(store, node, "app", SLEEPER)
        wait_until(lambda: engine.running("app"), 15, what="the container (process start included)")
        record = NodeRecord.from_dict(
            loads_json(wait_until(lambda: store.get(keys.node(node)), 5, what="record").value)
        )
        wait_until(lambda: http_status(f"http://{record.metrics_addr}/readyz") == 200, 10, what="/readyz")
        assert {f"meshop-agent-{node}", f"meshop-metrics-agent-{node}.{node}"} <= set(
            registrations(consul_server.addr, node)
        )
        container_id = engine.running("app")[0].id
        process.signal(signal.SIGTERM)
        assert process.popen is not None
        assert process.popen.wait(15) == 0
        assert not {f"meshop-agent-{node}", f"meshop-metrics-agent-{node}.{node}"} & set(
            registrations(consul_server.addr, node)
        )
        assert [c.id for c in engine.running("app")] == [container_id]
        lines = [json.loads(line) for line in process.log_path.read_text().splitlines() if line.startswith("{")]
        assert any("stopped" in line["msg"] for line in lines)
        assert all({"time", "level", "logger", "msg"} <= set(line) for line in lines)
    finally:
        process.stop()


def test_sigkill_at_twenty_random_moments_of_a_rollout_leaves_one_container_per_replica(
    store: KVStore, engine: Engine, node: str, consul_server: Any, prefix: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("MESHOP_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    names = [f"s{i}" for i in range(10)]
    services: dict[str, int] = {}
    final: dict[str, str] = {}

    def spec(name: str, version: int) -> dict[str, Any]:
        base = http_spec() if int(name[1:]) % 2 == 0 else dict(SLEEPER)
        return {**base, "env": [{"name": "VERSION", "value": str(version)}]}

    for kill in range(20):
        # every agent life starts with a rollout to do: a new version of every service, some rescaled
        for name in names:
            services[name] = rng.choice((1, 2))
            assignment = assign(store, node, name, spec(name, kill), replicas=services[name], generation=kill + 1)
            final[name] = assignment.spec_hash
        process = agent_process(node, consul_server.addr, prefix, tmp_path, log_name=f"agent-{kill}.log").start()
        time.sleep(rng.uniform(0.5, 2.5))  # the random moment itself: there is no condition to wait for
        assert process.alive(), process.log_tail()
        process.signal(signal.SIGKILL)
        assert process.popen is not None
        process.popen.wait(5)

    process = agent_process(node, consul_server.addr, prefix, tmp_path, log_name="agent-final.log").start()
    try:

        def converged() -> bool:
            containers = engine.containers()
            per_replica = Counter((c.labels["meshop.service"], c.labels["meshop.replica"]) for c in containers)
            expected = {(name, str(r)) for name, n in services.items() for r in range(n)}
            return (
                set(per_replica) == expected
                and set(per_replica.values()) == {1}
                and all(c.status == "running" for c in containers)
                and all(c.labels["meshop.spec-hash"] == final[c.labels["meshop.service"]] for c in containers)
            )

        wait_until(converged, 60, what=f"one running container per replica (seed {seed})")
        total = sum(services.values())
        assert len(engine.containers()) == total, f"seed {seed}"
        wait_until(
            lambda: (
                {b["Service"] for b in registrations(consul_server.addr, node).values() if "replica" in b["Meta"]}
                == set(services)
                and len([b for b in registrations(consul_server.addr, node).values() if "replica" in b["Meta"]])
                == total
            ),
            15,
            what=f"exactly one registration per replica (seed {seed})",
        )
    finally:
        process.stop()
