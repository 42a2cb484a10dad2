"""The DNS record planner: create, move, withdraw, hold; never a name meshop does not own; TTL."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshop.dns.plan import (
    Change,
    NameState,
    applied,
    mark_name,
    marked_name,
    owner_of,
    ownership_text,
    plan,
)

OWNER = "prod"
MARK = ownership_text(OWNER)
W = "web.example.com"
M = "_meshop-owner.web.example.com"
SPF = '"v=spf1 -all"'


def zone(*states: NameState) -> dict[str, NameState]:
    return {s.name: s for s in states}


def owned(name: str, *addresses: str, ttl: int = 60, txt: tuple[str, ...] = (), owner: str = OWNER) -> dict:
    """``name`` with its addresses and ``owner``'s mark at its mark name (and ``txt`` at the name)."""
    v4 = tuple(a for a in addresses if ":" not in a)
    v6 = tuple(a for a in addresses if ":" in a)
    at_name = NameState(name, v4, v6, ttl, tuple(sorted(txt)), txt_ttl=3600 if txt else 0)
    return zone(at_name, NameState(mark_name(name), txt=(ownership_text(owner),), txt_ttl=ttl))


def legacy(name: str, *addresses: str, ttl: int = 60, txt: tuple[str, ...] = ()) -> dict:
    """``name`` as earlier versions marked it: the mark in the name's own TXT set."""
    v4 = tuple(a for a in addresses if ":" not in a)
    return zone(NameState(name, v4, (), ttl, tuple(sorted((MARK, *txt))), txt_ttl=ttl))


@pytest.mark.parametrize(
    ("desired", "current", "changes", "conflicts", "held"),
    [
        ({W: ["192.0.2.1"]}, {}, [Change("create", W, ("192.0.2.1",), 60)], [], []),
        (
            {W: ["2001:db8::1", "192.0.2.1"]},
            {},
            [Change("create", W, ("192.0.2.1", "2001:db8::1"), 60)],
            [],
            [],
        ),
        ({W: ["192.0.2.1"]}, owned(W, "192.0.2.1"), [], [], []),
        (
            {W: ["192.0.2.2"]},
            owned(W, "192.0.2.1"),
            [Change("update", W, ("192.0.2.2",), 60, ("192.0.2.1",), (MARK,))],
            [],
            [],
        ),
        (
            {W: ["192.0.2.1"]},
            owned(W, "192.0.2.1", ttl=300),
            [Change("update", W, ("192.0.2.1",), 60, ("192.0.2.1",), (MARK,))],
            [],
            [],
        ),
        ({}, owned(W, "192.0.2.1"), [Change("withdraw", W, (), 60, ("192.0.2.1",), (MARK,))], [], []),
        (
            {},
            owned(W, "192.0.2.1", txt=(SPF,)),
            [Change("withdraw", W, (), 60, ("192.0.2.1",), (MARK,))],
            [],
            [],
        ),
        (
            {W: ["192.0.2.2"]},
            owned(W, "192.0.2.1", txt=(SPF,)),
            [Change("update", W, ("192.0.2.2",), 60, ("192.0.2.1",), (MARK,))],
            [],
            [],
        ),
        ({W: ["192.0.2.1"]}, owned(W, "192.0.2.1", txt=(SPF,)), [], [], []),
        ({}, zone(NameState(W, ("192.0.2.9",), ttl=300)), [], [], []),
        (
            {W: ["192.0.2.1"]},
            zone(NameState(W, ("192.0.2.9",), ttl=300)),
            [],
            [f"{W}: holds address records meshop did not create; not touched"],
            [],
        ),
        ({W: ["192.0.2.1"]}, zone(NameState(W, cname=True)), [], [f"{W}: holds a CNAME; not touched"], []),
        (
            {W: ["192.0.2.1"]},
            owned(W, "192.0.2.9", owner="staging"),
            [],
            [f"{W}: owned by another meshop (staging)"],
            [],
        ),
        (
            {W: ["192.0.2.1"]},
            zone(NameState(W, txt=(ownership_text("staging"),))),
            [],
            [f"{W}: owned by another meshop (staging)"],
            [],
        ),
        ({}, owned(W, "192.0.2.9", owner="staging"), [], [], []),
        (
            {W: ["192.0.2.1"]},
            zone(NameState(W, txt=(SPF,), txt_ttl=3600)),
            [Change("create", W, ("192.0.2.1",), 60)],
            [],
            [],
        ),
        ({W: []}, owned(W, "192.0.2.1"), [], [], [W]),
        ({W: []}, {}, [], [], [W]),
        (
            {"*.example.com": ["192.0.2.1"]},
            {},
            [Change("create", "*.example.com", ("192.0.2.1",), 60)],
            [],
            [],
        ),
        ({"*.example.com": ["192.0.2.1"]}, owned("*.example.com", "192.0.2.1"), [], [], []),
        (
            {W: ["192.0.2.1"]},
            legacy(W, "192.0.2.1", txt=(SPF,)),
            [Change("update", W, ("192.0.2.1",), 60, ("192.0.2.1",), (), (MARK, SPF), 60)],
            [],
            [],
        ),
        (
            {},
            legacy(W, "192.0.2.1"),
            [Change("withdraw", W, (), 60, ("192.0.2.1",), (), (MARK,), 60)],
            [],
            [],
        ),
        (
            {W: ["192.0.2.1"]},
            zone(NameState(M, txt=(SPF,), txt_ttl=300)),
            [Change("create", W, ("192.0.2.1",), 60, (), (SPF,))],
            [],
            [],
        ),
        (
            {W: []},
            legacy(W, "192.0.2.1", ttl=300),
            [Change("update", W, ("192.0.2.1",), 300, ("192.0.2.1",), (), (MARK,), 300)],
            [],
            [W],
        ),
    ],
    ids=[
        "create",
        "create-dual-stack",
        "in-step",
        "move",
        "ttl-changed",
        "withdraw",
        "withdraw-leaves-foreign-txt-out",
        "move-leaves-foreign-txt-out",
        "in-step-beside-foreign-txt",
        "foreign-not-wanted-untouched",
        "foreign-wanted-conflict",
        "cname-conflict",
        "other-owner-conflict",
        "other-owner-legacy-conflict",
        "other-owner-not-withdrawn",
        "create-beside-foreign-txt",
        "nothing-to-point-at-holds",
        "nothing-to-point-at-nothing-there",
        "wildcard",
        "wildcard-in-step",
        "legacy-mark-moved",
        "legacy-withdrawn",
        "create-keeps-odd-txt-at-mark-name",
        "legacy-held-mark-moved-addresses-kept",
    ],
)
def test_plan(desired, current, changes, conflicts, held) -> None:
    result = plan(desired, current, OWNER, 60)
    assert list(result.changes) == changes
    assert list(result.conflicts) == conflicts
    assert list(result.held) == held


@pytest.mark.parametrize(
    ("name", "mark"),
    [
        (W, M),
        ("*.example.com", "_meshop-owner._wildcard.example.com"),
        ("*.apps.example.com", "_meshop-owner._wildcard.apps.example.com"),
    ],
)
def test_mark_names_round_trip(name: str, mark: str) -> None:
    assert mark_name(name) == mark
    assert marked_name(mark) == name


@pytest.mark.parametrize("name", [W, "_meshop-owner", "_meshop-owner.", "x._meshop-owner.web.example.com"])
def test_not_a_mark_name(name: str) -> None:
    assert marked_name(name) is None


def test_a_legacy_mark_is_moved_once_and_foreign_txt_keeps_its_ttl() -> None:
    current = legacy(W, "192.0.2.1", txt=(SPF,))
    current[W] = NameState(W, ("192.0.2.1",), (), 60, (MARK, SPF), txt_ttl=3600)
    (change,) = plan({W: ["192.0.2.1"]}, current, OWNER, 60).changes
    assert "ownership mark moved to _meshop-owner.web.example.com" in change.describe()
    after = applied(current, change, OWNER)
    assert after[W].txt == (SPF,) and after[W].txt_ttl == 3600
    assert after[M].txt == (MARK,)
    assert plan({W: ["192.0.2.1"]}, after, OWNER, 60).changes == ()


@pytest.mark.parametrize(
    ("txt", "owner"),
    [
        (MARK, OWNER),
        ('"heritage=meshop,meshop/owner="', None),
        ('"heritage=meshop,meshop/owner=a b"', None),
        ('"heritage=meshop,meshop/owner=a" "x"', None),
        ('"v=spf1 -all"', None),
        ("heritage=meshop,meshop/owner=prod", None),
    ],
    ids=["mark", "empty-owner", "space", "two-strings", "spf", "unquoted"],
)
def test_owner_of(txt: str, owner: str | None) -> None:
    assert owner_of(txt) == owner


NAMES = st.sampled_from(["a.example.com", "b.example.com", "*.example.com", "c.example.com"])
ADDRS = st.lists(st.sampled_from(["192.0.2.1", "192.0.2.2", "2001:db8::1"]), max_size=3)


@given(
    desired=st.dictionaries(NAMES, ADDRS, max_size=4),
    mine=st.dictionaries(NAMES, st.lists(st.sampled_from(["192.0.2.1", "192.0.2.9"]), min_size=1), max_size=4),
    old=st.booleans(),
    foreign=st.sets(NAMES, max_size=2),
    spf=st.sets(NAMES, max_size=2),
    ttl=st.sampled_from([30, 60]),
)
def test_converges_and_never_touches_foreign(desired, mine, old, foreign, spf, ttl) -> None:
    current: dict[str, NameState] = {}
    for n, a in mine.items():
        if n not in foreign:
            current.update(legacy(n, *a) if old else owned(n, *a))
    current.update({n: NameState(n, ("198.51.100.1",), (), 300) for n in foreign})
    for n in spf:  # a foreign TXT set at any name, owned or not: never in a change
        s = current.get(n, NameState(n))
        current[n] = NameState(n, s.a, s.aaaa, s.ttl, tuple(sorted((*s.txt, SPF))), s.cname, 3600)
    first = plan(desired, current, OWNER, ttl)
    after = dict(current)
    for change in first.changes:
        assert change.name not in foreign
        after = applied(after, change, OWNER)
    assert plan(desired, after, OWNER, ttl).changes == ()
    for name in foreign:
        assert (after[name].a, after[name].ttl) == (current[name].a, current[name].ttl)
    for name in spf:
        assert SPF in after[name].txt and after[name].txt_ttl == 3600
        assert MARK not in after[name].txt
    for name, addresses in desired.items():
        if addresses and name not in foreign:
            assert after[name].addresses == tuple(sorted(set(addresses)))
