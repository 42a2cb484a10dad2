"""A stateful service on the real fleet: one writer ever, and failover that restores the latest backup.

A busybox service appends a counter every 100 ms to a file in its stateful volume, backed up every
10 s with restic to a local-path repository on the host (every namespace shares the filesystem). A
sampler lists the service's running containers on every node's engine every 100 ms. The holding node
is partitioned: its copy dies before any other node may take the volume lock, the controller declares
the node lost and moves the service (``failover: restore-latest``), the new node restores the latest
snapshot and starts; the partition heals and the old node's copy never starts again, its volume kept
and recorded. The sampler never sees two running copies.

Wall time: about 60-90 s on a loaded 2-core machine (lock TTL expiry up to 2 x 10 s, lock-delay 15 s,
the node grace period 10 s, one backup interval), plus the session's fleet start when run alone.

The second case kills only the holding node's **agent** (SIGKILL, kept down; its engine, Consul and
fence run on): nothing renews, the controller declares the node lost and another node takes the lock
after lock-delay. The fence (``meshop fence run``) kills the copy when its lease runs out, so the
sampler still never sees two copies. About 45-60 s.

The third case **powers off** the holding node (link down, every process SIGKILLed, its lease folder
emptied) right after a backup was reported: the service runs on another node once Consul has ended the
dead session (TTL, up to 2 x TTL) and its lock-delay passed, restored from that backup; the old node's
volume folder stays on disk, so the lines it wrote after the snapshot (the actual loss) can be counted
against the reported window. Powered on again, its copy never starts and its volume is kept and listed.
About 60-75 s (62-71 s measured).
"""

from __future__ import annotations

import base64
import json
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from meshop.agent.reconciler import LOCK_RETRY
from meshop.agent.stateful import timing
from meshop.agent.stateful.leases import Lease, LeaseDir
from meshop.restic import RepositorySpec, restore
from tests.support.fleet import IMAGE, Fleet, wait_for

pytestmark = pytest.mark.slow

PASSWORD = "fleet-restic-password"
EVERY = 10.0  # the backup interval, seconds
LINE = 0.1  # the counter writes at most one line per this many seconds (``sleep 0.1`` between lines)
# what a failover takes beyond the lock, its retry and the restore: the agent's pass after the restore,
# the container's create and start, the test's own look (every 0.25 s), on a loaded 2-core machine (a
# pass there can take seconds; measured 0.9 s in all with a light load)
START_SLACK = 8.0
COUNTER = "i=$(wc -l < /data/log 2>/dev/null || echo 0); while :; do i=$((i+1)); echo $i >> /data/log; sleep 0.1; done"


class Sampler:
    """Running copies of the service on every node's engine, every 100 ms; the most seen at once."""

    def __init__(self, fleet: Fleet, service: str) -> None:
        self.fleet, self.service = fleet, service
        self.most, self.samples, self.last = 0, 0, [""]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            nodes = sorted(c["node"] for c in self.fleet.containers(self.service))
            if len(nodes) > self.most:
                self.most, self.last = len(nodes), nodes
            self.samples += 1

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def put_secret(fleet: Fleet, key: str, value: str) -> None:
    fleet.consul_put(f"/v1/kv/{fleet.prefix}/{key}", value)  # the management token: no role writes secrets/


def events(fleet: Fleet, node: str) -> list[dict[str, Any]]:
    found = fleet.consul_get(f"/v1/kv/{fleet.prefix}/events/agent-{node}/?recurse=true") or []
    return [json.loads(base64.b64decode(e["Value"])) for e in found if e.get("Value")]


def running_on(fleet: Fleet, service: str) -> list[str]:
    return sorted(c["node"] for c in fleet.containers(service))


def log_lines(fleet: Fleet, node: str, service: str) -> list[str]:
    path = fleet.node(node).dir / "docker" / "volumes" / f"meshop-{node}-{service}-data" / "_data" / "log"
    return path.read_text().splitlines()


def counter_service(fleet: Fleet, service: str) -> tuple[dict[str, Any], Path]:
    """The counting service with its backup every 10 s and ``failover: restore-latest``; its repository."""
    repo = fleet.root / f"repo-{service}"
    put_secret(fleet, f"secrets/{service}/restic", PASSWORD)
    doc = {
        "apiVersion": "meshop.io/v1alpha1",
        "kind": "Service",
        "metadata": {"name": service},
        "spec": {
            "image": IMAGE,
            "command": ["/bin/sh"],
            "args": ["-c", COUNTER],
            "failover": "restore-latest",
            "volumes": [
                {
                    "name": "data",
                    "mountPath": "/data",
                    "stateful": {
                        "backup": {
                            "repository": str(repo),
                            "passwordSecret": "restic",
                            "every": f"{EVERY:g}s",
                            "keep": {"last": 5},
                        }
                    },
                }
            ],
        },
    }
    return doc, repo


def backed_up(fleet: Fleet, holder: str, service: str) -> dict[str, Any]:
    """The holder's backup record of the volume (``{}`` until there is one)."""
    return dict(((fleet.kv(f"backups/{holder}/{service}") or {}).get("volumes") or [{}])[0])


def run_until_backed_up(fleet: Fleet, service: str, doc: dict[str, Any], interval: float = 0.5) -> str:
    """Apply, wait for the one copy and its first backup (looking every ``interval``); the holding node."""
    fleet.apply(doc)
    wait_for(lambda: len(running_on(fleet, service)) == 1, 90, f"{service} running", interval=0.25)
    holder = running_on(fleet, service)[0]
    wait_for(lambda: backed_up(fleet, holder, service).get("snapshot"), 60, "a first backup", interval=interval)
    return holder


def counts_on_from(fleet: Fleet, node: str, service: str, repo: Path, snapshot: str, target: Path) -> list[str]:
    """The lines of ``snapshot`` (restored with restic into ``target``), once ``node``'s copy holds every
    one of them and counts on without a gap."""
    restore(RepositorySpec(str(repo), PASSWORD), snapshot, target, ("meshop", f"service={service}", "volume=data"))
    in_snapshot = (target / "log").read_text().splitlines()
    assert len(in_snapshot) > 10
    now = wait_for(
        lambda: (ls := log_lines(fleet, node, service)) and len(ls) > len(in_snapshot) and ls, 30, "new lines"
    )
    assert now[: len(in_snapshot)] == in_snapshot
    assert now == [str(i) for i in range(1, len(now) + 1)]
    return in_snapshot


def test_partitioned_holder_never_two_writers_and_failover_restores_the_latest_backup(
    fleet: Fleet, service: str, tmp_path: Path
) -> None:
    doc, repo = counter_service(fleet, service)
    with Sampler(fleet, service) as sampler:
        holder = run_until_backed_up(fleet, service, doc)
        fleet.set_link(holder, False)  # the partition: its agent can renew nothing
        cut = time.monotonic()
        wait_for(lambda: holder not in running_on(fleet, service), 30, "the cut-off copy killed", interval=0.1)
        killed_after = time.monotonic() - cut
        # dead within GIVE_UP of its last successful renewal (at most RENEW_EVERY before the cut) plus
        # the kill: before any other node could take the lock (LOCK_DELAY after its session's end)
        assert killed_after < timing.GIVE_UP + timing.KILL_BUDGET + timing.WATCH_TICK
        wait_for(lambda: running_on(fleet, service), 150, "the service running on another node", interval=0.25)
        moved_after = time.monotonic() - cut
        new = running_on(fleet, service)[0]
        assert new != holder
        restored = wait_for(
            lambda: next((e for e in events(fleet, new) if e.get("kind") == "Restored"), None),
            30,
            "the Restored event",
            interval=0.5,
        )
        assert "data-loss window" in restored["message"]
        snapshot = restored["message"].split("snapshot ", 1)[1].split(" ", 1)[0]
        in_snapshot = counts_on_from(fleet, new, service, repo, snapshot, tmp_path / "snapshot")

        fleet.set_link(holder, True)  # the old node returns: its copy never starts again, its volume is kept
        kept = f"volumes/kept/{holder}/meshop-{holder}-{service}-data"
        record = wait_for(lambda: fleet.kv(kept), 90, "the kept record of the old copy", interval=0.5)
        assert record["service"] == service and record["node"] == holder
        assert running_on(fleet, service) == [new]
        old_lines = log_lines(fleet, holder, service)  # its data is still there, up to its death
        assert old_lines[: len(in_snapshot)] == in_snapshot
        # the reported loss window bounds what was lost: the old copy's lines after the snapshot (one
        # per 100 ms at most), and stays within the backup interval plus the kill bound
        reported = float(restored["message"].split("data-loss window ", 1)[1].split("s", 1)[0])
        assert reported >= (len(old_lines) - len(in_snapshot)) * 0.1
        assert reported <= EVERY + timing.GIVE_UP + timing.KILL_BUDGET + 1
    assert sampler.samples > 100
    assert sampler.most == 1, f"two copies ran at once on {sampler.last}"
    print(
        f"killed {killed_after:.1f}s after the cut; running again on {new} {moved_after:.1f}s after it; "
        f"loss window reported {reported:.0f}s, lines lost {len(old_lines) - len(in_snapshot)}"
    )


def test_a_dead_agents_copy_is_killed_by_the_fence_and_the_service_moves(fleet: Fleet, service: str) -> None:
    doc, _ = counter_service(fleet, service)
    with Sampler(fleet, service) as sampler:
        holder = run_until_backed_up(fleet, service, doc)
        member = fleet.node(holder)
        leases = LeaseDir(member.dir / "fence")
        try:
            assert fleet.signal(member, "agent", signal.SIGKILL)  # only the agent: engine, Consul, fence run on
            wait_for(lambda: not member.running("agent"), 10, "the agent gone", interval=0.05)
            lease = leases.leases().get(service)  # final: no one renews it any more (one monotonic clock)
            assert isinstance(lease, Lease), lease
            wait_for(lambda: holder not in running_on(fleet, service), 30, "the fence to kill the copy", interval=0.1)
            killed_after = time.monotonic() - (lease.deadline - timing.GIVE_UP)
            assert killed_after <= timing.GIVE_UP + timing.FENCE_TICK + timing.KILL_BUDGET + 1.0  # + sampling lag
            assert member.running("fence") and member.running("dockerd")
            wait_for(lambda: running_on(fleet, service), 150, "the service running on another node", interval=0.25)
            new = running_on(fleet, service)[0]
            assert new != holder
            grows = len(wait_for(lambda: log_lines(fleet, new, service), 30, "the new copy's file"))
            wait_for(lambda: len(log_lines(fleet, new, service)) > grows, 10, "the new copy counting on")
        finally:
            fleet.start_agent(member)  # the node back whole for the other tests (its copy never starts again)
        wait_for(lambda: fleet.nodes_ready([holder]), 90, f"{holder} Ready again", interval=0.5)
        assert running_on(fleet, service) == [new]
    assert sampler.samples > 100
    assert sampler.most == 1, f"two copies ran at once on {sampler.last}"
    print(f"the fence killed the copy {killed_after:.1f}s after the last renewal; running again on {new}")


def restored_event(fleet: Fleet, node: str, service: str) -> dict[str, Any] | None:
    """The ``Restored`` event ``node``'s agent wrote for ``service`` (other tests' services restore too)."""
    found = (e for e in events(fleet, node) if e.get("kind") == "Restored" and e.get("object") == f"service/{service}")
    return next(found, None)


def test_a_powered_off_holders_service_restores_on_another_node_with_a_bounded_reported_loss(
    fleet: Fleet, service: str, tmp_path: Path
) -> None:
    doc, repo = counter_service(fleet, service)
    with Sampler(fleet, service) as sampler:
        holder = run_until_backed_up(fleet, service, doc, interval=0.1)
        backup = backed_up(fleet, holder, service)  # power off right after it was reported
        off = time.monotonic()
        fleet.power_off(holder)
        off_wall = time.time()  # the old copy is dead by now: nothing it wrote is later than this
        frozen = len(log_lines(fleet, holder, service))
        # the last renewal Consul processed was before the power-off: it ends the session by 2 x TTL, then
        # holds the lock back for LOCK_DELAY; the new node looks again every LOCK_RETRY, restores, starts.
        # The controller's decision (grace period fleet.grace after the node's check fails) comes before.
        lock_free = 2 * timing.TTL + timing.LOCK_DELAY + LOCK_RETRY
        wait_for(lambda: running_on(fleet, service), lock_free + 90, "the service on another node", interval=0.25)
        moved_after = time.monotonic() - off
        new = running_on(fleet, service)[0]
        assert new != holder and fleet.node_state(holder) == "NotReady"
        restored = wait_for(lambda: restored_event(fleet, new, service), 30, "the Restored event", interval=0.5)
        match = re.search(
            r"snapshot ([0-9a-f]{8}) restored \(\d+ bytes, ([0-9.]+)s\); data-loss window (\d+)s", restored["message"]
        )
        assert match, restored["message"]
        snapshot, restore_s, window = match.group(1), float(match.group(2)), int(match.group(3))
        assert moved_after <= lock_free + restore_s + START_SLACK, (moved_after, restore_s)
        assert snapshot == backup["snapshot"][:8]  # the latest: the backup reported just before the power-off
        taken = next(i["time"] for i in backup["snapshots"] if i["id"].startswith(snapshot))

        in_snapshot = counts_on_from(fleet, new, service, repo, snapshot, tmp_path / "snapshot")

        # the actual loss: the old copy's lines after the snapshot, in its volume folder left on disk;
        # at most one per LINE since the snapshot's files were read, i.e. within the backup's duration
        # plus the look that saw its report (one interval's worth at most)
        old_lines = log_lines(fleet, holder, service)
        assert len(old_lines) == frozen  # the power-off killed it: not one line since
        assert old_lines == [str(i) for i in range(1, frozen + 1)] and old_lines[: len(in_snapshot)] == in_snapshot
        lost = len(old_lines) - len(in_snapshot)
        assert 0 <= lost * LINE <= EVERY + backup["duration"], (lost, backup["duration"])
        # the reported window (the metric exact, the event rounded) bounds it honestly: at least the time
        # from the snapshot to the power-off (which bounds the lost lines' time), at most the interval
        # plus what the copy could have written after its last renewal (GIVE_UP + KILL_BUDGET)
        reported = fleet.metric(
            f"{fleet.node(new).addr}:9464", "meshop_volume_restore_loss_seconds", service=service, volume="data"
        )
        assert reported is not None and abs(reported - window) <= 0.5
        assert reported >= off_wall - taken >= (lost - 1) * LINE  # lost lines at least LINE apart, after it
        assert reported >= lost * LINE
        assert reported <= EVERY + timing.GIVE_UP + timing.KILL_BUDGET
        wait_for(
            lambda: (fleet.kv(f"observed/{new}/{service}") or {}).get("reason") == "Restored", 30, "status: Restored"
        )
        assert f"data-loss window {window}s" in fleet.kv(f"observed/{new}/{service}")["error"]

        fleet.power_on(holder)  # its copy never starts again; its volume is kept, recorded and listed
        kept = f"volumes/kept/{holder}/meshop-{holder}-{service}-data"
        record = wait_for(lambda: fleet.kv(kept), 90, "the kept record of the old copy", interval=0.5)
        assert record["service"] == service and record["node"] == holder
        wait_for(lambda: fleet.nodes_ready([holder]), 90, f"{holder} Ready again", interval=0.5)
        assert running_on(fleet, service) == [new]
        assert log_lines(fleet, holder, service) == old_lines  # kept as it was: nothing ran on it
        assert f"meshop-{holder}-{service}-data" in fleet.cli("volume", "ls").stdout
    assert sampler.samples > 100
    assert sampler.most == 1, f"two copies ran at once on {sampler.last}"
    print(
        f"running again on {new} {moved_after:.1f}s after the power-off "
        f"(bound {lock_free + restore_s + START_SLACK:.1f}s, restore {restore_s:.1f}s); lines lost {lost} "
        f"({off_wall - taken:.1f}s from the snapshot to the power-off), reported window {reported:.1f}s"
    )
