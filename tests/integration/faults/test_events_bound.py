"""The event log is bounded exactly, printable as JSON with ISO timestamps, filterable by object
(issue 12 item 8), against a real Consul. Before: ``events/`` held 1001 keys where 1000 is the bound
(trimmed only every 50 appends), ``-o json`` printed epoch seconds, and there was no filter.
"""

from __future__ import annotations

import datetime
import json

from meshop.consul.events import EventLog
from meshop.consul.store import KVStore, TxnOp
from meshop.model import keys
from tests.integration.faults.conftest import Cli

BOUND = 20


def count(store: KVStore) -> int:
    return len(store.list(keys.EVENTS).entries)


def test_append_never_leaves_more_than_the_bound(store: KVStore) -> None:
    log = EventLog(store, "controller", max_events=BOUND)
    for i in range(BOUND + 15):
        log.append("Scheduled", f"service/s{i}", "placed")
        assert count(store) == min(i + 1, BOUND)
    objects = [json.loads(e.value)["object"] for e in store.list(keys.EVENTS).entries]
    assert objects == [f"service/s{i}" for i in range(15, BOUND + 15)]  # the oldest went


def test_events_committed_by_a_writer_are_trimmed_after_every_commit(store: KVStore) -> None:
    log = EventLog(store, "controller", max_events=BOUND)
    for batch in range(6):
        ops = [log.prepare("Scheduled", f"service/b{batch}-{i}", "placed") for i in range(7)]
        store.transact(ops)
        log.appended(len(ops))
        assert count(store) == min(7 * (batch + 1), BOUND)


def test_the_default_bound_is_exactly_1000(store: KVStore) -> None:
    log = EventLog(store, "controller")
    for start in range(0, 1000, 64):  # fill to the bound quickly, as a writer would
        store.transact([log.prepare("Scheduled", f"service/f{i}", "x") for i in range(start, min(start + 64, 1000))])
    assert count(store) == 1000
    log.append("NodeLost", "node/n1", "gone")
    assert count(store) == 1000
    store.transact([TxnOp.set(f"{log.folder}99999999999999999999-zz", "junk")])  # an extra key in its folder
    log.appended(1)
    assert count(store) == 1000


def test_events_json_has_iso_timestamps_and_the_object_filter_works(meshop: Cli, store: KVStore) -> None:
    log = EventLog(store, "controller")
    log.append("Scheduled", "service/web", "placed web")
    log.append("Scheduled", "service/api", "placed api")
    log.append("NodeLost", "node/n1", "n1 lost")
    log.append("Rescheduled", "service/web", "moved web")

    code, out, err = meshop("events", "-o", "json")
    assert (code, err) == (0, "")
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 4
    for row in rows:
        assert row["time"].endswith("Z")
        parsed = datetime.datetime.fromisoformat(row["time"].replace("Z", "+00:00"))
        assert abs(parsed.timestamp() - datetime.datetime.now(datetime.UTC).timestamp()) < 300

    for target in ("service/web", "svc/web", "web"):
        code, out, _ = meshop("events", target, "-o", "json")
        assert code == 0
        assert [json.loads(line)["message"] for line in out.splitlines()] == ["placed web", "moved web"], target
    code, out, _ = meshop("events", "node/n1")
    assert code == 0 and "n1 lost" in out and "web" not in out
    assert meshop("events", "service/nothing")[:2] == (0, "")
    code, _, err = meshop("events", "pod/web")
    assert code == 1 and "service/NAME" in err and "Traceback" not in err
