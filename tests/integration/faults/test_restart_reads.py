"""A Consul server that has just restarted answers reads before it has replayed its Raft log.

Default-mode reads then return a prefix of the KV (measured here: 9, 21, 485 ... of 2000 keys in the
first 200 ms): a controller that read an empty ``desired/`` deleted every assignment, and after a power
cut of the gateway host every agent removed its containers as orphans and created them again (the
fleet's gateway-host test, tests/fleet/test_faults.py). meshop reads in consistent mode
(``meshop.consul.client.make_client``): the server refuses until it has caught up, and every listing
it answers is complete.
"""

from __future__ import annotations

import time
from pathlib import Path

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.errors import ConsulError
from tests.support.consul_server import ConsulServer

KEYS = 5000  # enough Raft entries that the replay takes a few hundred ms


def test_reads_after_a_power_cut_never_see_a_half_replayed_kv(tmp_path: Path) -> None:
    server = ConsulServer(tmp_path / "consul", persistent=True).start()
    try:
        store = KVStore(ConsulConfig.from_env({}, addr=server.addr, prefix="replay", timeout=1.0))
        for i in range(KEYS):  # one Raft entry each
            store.put(f"k/{i:05d}", b"x")
        store.put("fence", b"f")  # written last, like an agent's fence after its assignments
        server.power_cycle()
        answers: list[tuple[int, int]] = []  # (keys listed, keys listed in the transaction) per answer
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                listed = len(store.list("k/").entries)
                together, fence = store.list_together(["k/", "fence"])
            except ConsulError:  # not up yet, or not ready for consistent reads: keep asking
                continue
            answers.append((listed, len(together.entries) + len(fence.entries)))
            if listed == KEYS and len(answers) >= 20:
                break
        assert answers, "Consul never answered after the restart"
        partial = [a for a in answers if a != (KEYS, KEYS + 1)]
        assert not partial, f"reads saw a half-replayed KV: {partial[:10]} (of {KEYS} keys)"
    finally:
        server.stop()
