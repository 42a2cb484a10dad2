"""The DNS record planner: create, move, withdraw, hold; never a name meshop does not own; TTL."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshop.dns.plan import Change, NameState, applied, owner_of, ownership_text, plan

OWNER = "prod"
MARK = ownership_text(OWNER)
W = "web.example.com"


def owned(name: str, *addresses: str, ttl: int = 60, txt: tuple[str, ...] = ()) -> NameState:
    v4 = tuple(a for a in addresses if ":" not in a)
    v6 = tuple(a for a in addresses if ":" in a)
    return NameState(name, v4, v6, ttl, tuple(sorted((MARK, *txt))))


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
        ({W: ["192.0.2.1"]}, {W: owned(W, "192.0.2.1")}, [], [], []),
        (
            {W: ["192.0.2.2"]},
            {W: owned(W, "192.0.2.1")},
            [Change("update", W, ("192.0.2.2",), 60, ("192.0.2.1",), (MARK,))],
            [],
            [],
        ),
        (
            {W: ["192.0.2.1"]},
            {W: owned(W, "192.0.2.1", ttl=300)},
            [Change("update", W, ("192.0.2.1",), 60, ("192.0.2.1",), (MARK,))],
            [],
            [],
        ),
        ({}, {W: owned(W, "192.0.2.1")}, [Change("withdraw", W, (), 60, ("192.0.2.1",), (MARK,))], [], []),
        (
            {},
            {W: owned(W, "192.0.2.1", txt=('"v=spf1 -all"',))},
            [Change("withdraw", W, (), 60, ("192.0.2.1",), ('"heritage=meshop,meshop/owner=prod"', '"v=spf1 -all"'))],
            [],
            [],
        ),
        ({}, {W: NameState(W, ("192.0.2.9",), ttl=300)}, [], [], []),
        (
            {W: ["192.0.2.1"]},
            {W: NameState(W, ("192.0.2.9",), ttl=300)},
            [],
            [f"{W}: holds address records meshop did not create; not touched"],
            [],
        ),
        ({W: ["192.0.2.1"]}, {W: NameState(W, cname=True)}, [], [f"{W}: holds a CNAME; not touched"], []),
        (
            {W: ["192.0.2.1"]},
            {W: NameState(W, ("192.0.2.9",), (), 60, (ownership_text("staging"),))},
            [],
            [f"{W}: owned by another meshop (staging)"],
            [],
        ),
        ({}, {W: NameState(W, ("192.0.2.9",), (), 60, (ownership_text("staging"),))}, [], [], []),
        (
            {W: ["192.0.2.1"]},
            {W: NameState(W, txt=('"v=spf1 -all"',))},
            [Change("create", W, ("192.0.2.1",), 60, (), ('"v=spf1 -all"',))],
            [],
            [],
        ),
        ({W: []}, {W: owned(W, "192.0.2.1")}, [], [], [W]),
        ({W: []}, {}, [], [], [W]),
        (
            {"*.example.com": ["192.0.2.1"]},
            {},
            [Change("create", "*.example.com", ("192.0.2.1",), 60)],
            [],
            [],
        ),
    ],
    ids=[
        "create",
        "create-dual-stack",
        "in-step",
        "move",
        "ttl-changed",
        "withdraw",
        "withdraw-keeps-foreign-txt",
        "foreign-not-wanted-untouched",
        "foreign-wanted-conflict",
        "cname-conflict",
        "other-owner-conflict",
        "other-owner-not-withdrawn",
        "create-beside-foreign-txt",
        "nothing-to-point-at-holds",
        "nothing-to-point-at-nothing-there",
        "wildcard",
    ],
)
def test_plan(desired, current, changes, conflicts, held) -> None:
    result = plan(desired, current, OWNER, 60)
    assert list(result.changes) == changes
    assert list(result.conflicts) == conflicts
    assert list(result.held) == held


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
    foreign=st.sets(NAMES, max_size=2),
    ttl=st.sampled_from([30, 60]),
)
def test_converges_and_never_touches_foreign(desired, mine, foreign, ttl) -> None:
    current = {n: owned(n, *a) for n, a in mine.items() if n not in foreign}
    current.update({n: NameState(n, ("198.51.100.1",), (), 300) for n in foreign})
    first = plan(desired, current, OWNER, ttl)
    after = dict(current)
    for change in first.changes:
        assert change.name not in foreign
        after = applied(after, change, OWNER)
    assert plan(desired, after, OWNER, ttl).changes == ()
    for name in foreign:
        assert after[name] == current[name]
    for name, addresses in desired.items():
        if addresses and name not in foreign:
            assert after[name].addresses == tuple(sorted(set(addresses)))
