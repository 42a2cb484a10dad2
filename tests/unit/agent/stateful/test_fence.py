"""The fence without the agent: its pure decision, the lease folder as hostile input, its look, and the
agent's side (leases written with the renewal's start, ``NoFence`` while no fence beats).

The lease folder is a real folder (tmp_path); Docker is the recording engine of test_keeper. The real
processes and engine: tests/integration/agent/test_fence.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from meshop.agent.stateful import timing
from meshop.agent.stateful.fence import Fence, allowed
from meshop.agent.stateful.keeper import VolumeLockKeeper
from meshop.agent.stateful.leases import MAX_BYTES, Lease, LeaseDir, Untrusted, decode_lease, encode_lease
from tests.unit.agent.stateful.test_keeper import DB, Clock, Engine, Table

BOOT = "b00t"


def test_the_fence_bound_holds_for_the_constants() -> None:
    """docs/stateful.md: a copy the fence kills is dead before any other node can take the lock."""
    assert (timing.GIVE_UP + timing.FENCE_TICK + timing.KILL_BUDGET) * (1 + timing.RATE_ERROR) < timing.LOCK_DELAY
    assert timing.margin() <= timing.LOCK_DELAY - (timing.GIVE_UP + timing.FENCE_TICK + timing.KILL_BUDGET) * (
        1 + timing.RATE_ERROR
    )
    assert 0 < timing.FENCE_TICK < timing.FENCE_STALE


def test_check_refuses_a_slow_fence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timing, "FENCE_TICK", timing.LOCK_DELAY)
    with pytest.raises(AssertionError, match="single-writer timing broken"):
        timing.check()


@pytest.mark.parametrize(
    ("leases", "now", "expected"),
    [
        ({}, 10.0, set()),
        ({"db": Lease("db", 17.0)}, 10.0, {"db"}),
        ({"db": Lease("db", 17.0)}, 17.0, {"db"}),  # the deadline itself still counts
        ({"db": Lease("db", 17.0)}, 17.01, set()),
        ({"db": Untrusted("a symlink"), "kv": Lease("kv", 20.0)}, 10.0, {"kv"}),
        ({"db": Lease("db", 9.0), "kv": Lease("kv", 11.0)}, 10.0, {"kv"}),
    ],
    ids=["no-lease", "fresh", "at-deadline", "expired", "untrusted", "one-of-two"],
)
def test_allowed_are_the_trusted_unexpired_leases(leases: dict, now: float, expected: set[str]) -> None:
    assert allowed(leases, now) == expected


# -- the lease folder as hostile input ------------------------------------------------------------------


def folder(tmp_path: Path) -> LeaseDir:
    return LeaseDir(tmp_path / "run" / "fence", boot=BOOT)


def test_grant_read_revoke_round_trip_and_the_folder_is_0700(tmp_path: Path) -> None:
    leases = folder(tmp_path)
    leases.grant(Lease("db", 123.5))
    assert leases.leases() == {"db": Lease("db", 123.5)}
    assert (leases.path.stat().st_mode & 0o777) == 0o700
    assert (leases.path / "db.lease").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in leases.path.iterdir()] == ["db.lease"]  # no temporary file left
    leases.revoke("db")
    leases.revoke("db")  # idempotent
    assert leases.leases() == {}
    assert leases.heartbeat() is None
    leases.beat(42.0)
    assert leases.heartbeat() == 42.0


def write(leases: LeaseDir, name: str, data: bytes, mode: int = 0o600) -> None:
    leases.path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = leases.path / name
    path.write_bytes(data)
    path.chmod(mode)


GOOD = encode_lease(Lease("db", 50.0), BOOT)


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda d: write(d, "db.lease", b"not json"), "not JSON"),
        (lambda d: write(d, "db.lease", b"[1, 2]"), "exactly"),
        (lambda d: write(d, "db.lease", GOOD.replace(b"}", b', "extra": 1}')), "exactly"),
        (lambda d: write(d, "db.lease", json.dumps({"service": "kv", "deadline": 1e9, "boot": BOOT}).encode()), "name"),
        (
            lambda d: write(d, "db.lease", json.dumps({"service": "db", "deadline": "1e9", "boot": BOOT}).encode()),
            "finite",
        ),
        (lambda d: write(d, "db.lease", b'{"service": "db", "deadline": Infinity, "boot": "b00t"}'), "finite"),
        (lambda d: write(d, "db.lease", b'{"service": "db", "deadline": true, "boot": "b00t"}'), "finite"),
        (lambda d: write(d, "db.lease", encode_lease(Lease("db", 1e9), "another-boot")), "boot"),
        (lambda d: write(d, "db.lease", GOOD + b" " * MAX_BYTES), "too big"),
        (lambda d: write(d, "db.lease", GOOD, 0o666), "alone"),
        (lambda d: write(d, "db.lease", b"\xff\xfe"), "not JSON"),
    ],
    ids=[
        "junk",
        "list",
        "extra-key",
        "other-service",
        "text-deadline",
        "infinity",
        "bool",
        "old-boot",
        "giant",
        "world-writable",
        "binary",
    ],
)
def test_a_hostile_lease_file_is_untrusted(tmp_path: Path, make, why: str) -> None:
    leases = folder(tmp_path)
    make(leases)
    found = leases.leases()
    assert isinstance(found["db"], Untrusted) and why in str(found["db"])
    assert allowed(found, 0.0) == frozenset()


def test_a_symlinked_lease_is_never_followed(tmp_path: Path) -> None:
    leases = folder(tmp_path)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(encode_lease(Lease("db", 1e12), BOOT))
    leases.path.mkdir(parents=True, mode=0o700)
    (leases.path / "db.lease").symlink_to(elsewhere)
    assert isinstance(leases.leases()["db"], Untrusted)


def test_a_fifo_or_a_hard_link_is_no_lease_and_does_not_hang(tmp_path: Path) -> None:
    leases = folder(tmp_path)
    leases.path.mkdir(parents=True, mode=0o700)
    os.mkfifo(leases.path / "db.lease", 0o600)
    other = leases.path / "x"
    other.write_bytes(encode_lease(Lease("kv", 1e12), BOOT))
    os.link(other, leases.path / "kv.lease")
    found = leases.leases()
    assert isinstance(found["db"], Untrusted) and isinstance(found["kv"], Untrusted)


@pytest.mark.parametrize("problem", ["world-writable", "symlink", "a-file"])
def test_an_untrusted_folder_holds_no_lease(tmp_path: Path, problem: str) -> None:
    leases = folder(tmp_path)
    if problem == "symlink":
        real = tmp_path / "real"
        real.mkdir(mode=0o700)
        (real / "db.lease").write_bytes(encode_lease(Lease("db", 1e12), BOOT))
        leases.path.parent.mkdir(parents=True)
        leases.path.symlink_to(real)
    elif problem == "a-file":
        leases.path.parent.mkdir(parents=True)
        leases.path.write_text("x")
    else:
        leases.grant(Lease("db", 1e12))
        leases.path.chmod(0o777)
    with pytest.raises(Untrusted):
        leases.leases()
    with pytest.raises(Untrusted):
        leases.grant(Lease("db", 1e12))  # the agent refuses to write there too (then starts nothing)


def test_decode_refuses_names_and_keeps_the_deadline() -> None:
    assert decode_lease("db.lease", GOOD, BOOT) == Lease("db", 50.0)
    with pytest.raises(Untrusted):
        decode_lease("db.lease", GOOD, "other")
    with pytest.raises(Untrusted):
        LeaseDir(Path("/nonexistent"), boot=BOOT).grant(Lease("../etc", 1.0))


# -- the fence's look --------------------------------------------------------------------------------------


def test_the_fence_kills_what_has_no_fresh_lease_and_beats(tmp_path: Path) -> None:
    clock = Clock()
    leases = folder(tmp_path)
    engine = Engine({"db", "kv", "web"})
    leases.grant(Lease("db", clock.now + 5))
    leases.grant(Lease("kv", clock.now - 0.1))
    fence = Fence(leases, engine, mono=clock)
    assert fence.look() == ["kv", "web"]
    assert leases.heartbeat() == clock.now
    clock.now += 5.01
    assert fence.look() == ["db"]
    assert engine.running == set()


def test_an_untrusted_folder_makes_the_fence_kill_everything(tmp_path: Path) -> None:
    clock = Clock()
    leases = folder(tmp_path)
    leases.grant(Lease("db", clock.now + 100))
    leases.path.chmod(0o755)  # readable by others: someone else may have written it
    engine = Engine({"db"})
    assert Fence(leases, engine, mono=clock).look() == ["db"]


# -- the agent's side: leases from the renewals, no start without a fence -----------------------------------


def keeper_with_leases(tmp_path: Path, clock: Clock, engine: Engine) -> tuple[VolumeLockKeeper, LeaseDir, Table]:
    leases = folder(tmp_path)
    table = Table(clock)
    k = VolumeLockKeeper("n1", table, engine, mono=clock, wall=lambda: 1.7e9, leases=leases)
    return k, leases, table


def test_the_lease_follows_each_renewal_start_and_goes_with_the_lock(tmp_path: Path) -> None:
    clock = Clock()
    engine = Engine()
    k, leases, table = keeper_with_leases(tmp_path, clock, engine)
    taken_at = clock.now
    assert k.sync(DB, set()) == {}
    assert leases.leases() == {"db": Lease("db", taken_at + timing.GIVE_UP)}  # written before any start
    for _ in range(3):
        clock.now += timing.RENEW_EVERY
        began = clock.now
        k.renew_once()
        assert leases.leases() == {"db": Lease("db", began + timing.GIVE_UP)}
    table.down = True  # renewals fail: the lease stays where the last success put it
    clock.now += timing.RENEW_EVERY
    k.renew_once()
    assert leases.leases() == {"db": Lease("db", began + timing.GIVE_UP)}
    table.down = False
    table.invalidate(table.locks[("db", "data")].session)  # Consul ended the session: the locks are lost
    k.renew_once()
    assert leases.leases() == {}


def test_letting_go_and_stopping_remove_the_lease(tmp_path: Path) -> None:
    clock = Clock()
    k, leases, _ = keeper_with_leases(tmp_path, clock, Engine())
    k.sync(DB, set())
    assert "db" in leases.leases()
    k.sync({}, set())  # the service left this node
    assert leases.leases() == {}
    k.sync(DB, set())
    k.stop()
    assert leases.leases() == {}


def test_no_start_without_a_fresh_fence_heartbeat(tmp_path: Path) -> None:
    clock = Clock()
    k, leases, _ = keeper_with_leases(tmp_path, clock, Engine())
    k.sync(DB, set())
    assert "no heartbeat" in (k.unguarded("db") or "")
    leases.beat(clock.now)
    assert k.unguarded("db") is None
    clock.now += timing.FENCE_STALE + 0.1
    assert "heartbeat 3s old" in (k.unguarded("db") or "")
    leases.beat(clock.now + 60)  # a beat from the future is not one
    assert k.unguarded("db") is not None
    leases.beat(clock.now)
    leases.path.chmod(0o777)
    assert "not this user's alone" in (k.unguarded("db") or "")


def test_a_lease_that_cannot_be_written_blocks_the_start(tmp_path: Path) -> None:
    clock = Clock()
    k, leases, _ = keeper_with_leases(tmp_path, clock, Engine())
    leases.beat(clock.now)
    leases.path.chmod(0o770)
    k.sync(DB, set())
    assert "cannot write its lease" in (k.unguarded("db") or "")
    leases.path.chmod(0o700)
    clock.now += timing.RENEW_EVERY
    k.renew_once()  # the next renewal writes it
    leases.beat(clock.now)
    assert k.unguarded("db") is None and "db" in leases.leases()
