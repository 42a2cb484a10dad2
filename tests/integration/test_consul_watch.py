"""Blocking-query watches against a real Consul, including a Consul restart mid-watch."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore, Listing
from meshop.consul.watch import watch_prefix
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until


class Recorder:
    def __init__(self) -> None:
        self.listings: list[tuple[float, Listing]] = []
        self.changed = threading.Event()

    def __call__(self, listing: Listing) -> None:
        self.listings.append((time.monotonic(), listing))
        self.changed.set()

    def seen_keys(self) -> set[str]:
        return {entry.key for entry in self.listings[-1][1].entries} if self.listings else set()


def test_put_under_the_prefix_wakes_the_watch_fast(store: KVStore) -> None:
    recorder = Recorder()
    watch = watch_prefix(store, "desired/", recorder, wait="20s")
    try:
        assert watch.wait_ready(5)
        latencies = []
        for i in range(5):
            recorder.changed.clear()
            before = time.monotonic()
            store.put(f"desired/services/s{i}", "x")
            assert recorder.changed.wait(2)
            latencies.append(recorder.listings[-1][0] - before)
        assert f"desired/services/s{4}" in recorder.seen_keys()
        assert max(latencies) < 0.2, latencies
        # writes elsewhere do not wake it
        recorder.changed.clear()
        store.put("observed/n1/x", "y")
        assert not recorder.changed.wait(0.5)
    finally:
        watch.stop()


def test_watch_survives_a_consul_restart_and_index_going_backwards(tmp_path: Path) -> None:
    server = ConsulServer(tmp_path / "consul").start()  # -dev: a restart loses data and the index resets
    try:
        store = KVStore(ConsulConfig.from_env({}, addr=server.addr, prefix="w", timeout=3))
        for i in range(30):  # push the index well above what a fresh server starts at
            store.put(f"noise/{i}", "x")
        store.put("desired/a", "1")
        recorder = Recorder()
        watch = watch_prefix(store, "desired/", recorder, wait="5s")
        try:
            assert watch.wait_ready(5)
            high_index = watch.index
            server.kill()
            wait_until(lambda: watch.errors > 0, 15, what="the watch to notice Consul is gone")
            server.start()
            store.put("desired/b", "2")
            wait_until(lambda: recorder.seen_keys() == {"desired/b"}, 15, what="the watch to see writes after restart")
            assert watch.index < high_index  # it followed the reset index instead of blocking forever
            store.put("desired/c", "3")
            wait_until(lambda: recorder.seen_keys() == {"desired/b", "desired/c"}, 5, what="a later write")
            assert watch.connected
        finally:
            watch.stop()
    finally:
        server.stop()


def test_stop_returns_promptly_and_delivers_nothing_after(store: KVStore) -> None:
    recorder = Recorder()
    watch = watch_prefix(store, "desired/", recorder, wait="30s")
    assert watch.wait_ready(5)
    started = time.monotonic()
    watch.stop()
    assert time.monotonic() - started < 0.1
    count = len(recorder.listings)
    control = Recorder()
    control_watch = watch_prefix(store, "desired/", control, wait="30s")
    try:
        assert control_watch.wait_ready(5)
        store.put("desired/after-stop", "x")
        wait_until(lambda: "desired/after-stop" in control.seen_keys(), 5, what="the control watch")
        assert len(recorder.listings) == count
    finally:
        control_watch.stop()
