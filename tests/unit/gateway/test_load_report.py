"""``gateways/<id>/caddy``: written when the state changes, retried after a failed write, deleted on stop."""

from __future__ import annotations

import json
from typing import Any

from meshop.caddy.loadstate import LoadState
from meshop.errors import ConsulError
from meshop.gateway.loadreport import LoadReport


class FakeStore:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.puts = 0
        self.down = False

    def put(self, key: str, value: str) -> None:
        if self.down:
            raise ConsulError("connection refused")
        self.puts += 1
        self.data[key] = value

    def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None


def test_written_on_change_only_retried_after_a_failed_write_and_deleted_on_stop() -> None:
    store = FakeStore()
    times = iter(float(t) for t in range(100, 200))
    report = LoadReport(store, "g1", LoadState(lambda: next(times)))  # type: ignore[arg-type]
    report.accepted()
    report.accepted()
    assert store.puts == 1 and json.loads(store.data["gateways/g1/caddy"])["loaded"] is True
    store.down = True
    report.refused("listen tcp :443: address already in use")
    assert json.loads(store.data["gateways/g1/caddy"])["loaded"] is True  # not written: retried next pass
    store.down = False
    report.refused("listen tcp :443: address already in use")
    saved: dict[str, Any] = json.loads(store.data["gateways/g1/caddy"])
    assert saved == {"loaded": False, "message": "listen tcp :443: address already in use", "since": 101.0}
    report.withdraw()
    assert store.data == {}
