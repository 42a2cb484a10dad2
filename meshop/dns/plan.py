"""The DNS record planner: which updates bring a zone to the records meshop wants, touching only its own.

The rule (external-dns's, made strict): meshop owns a name when the name carries its ownership TXT
record ``"heritage=meshop,meshop/owner=<owner>"``. It then manages that name's A and AAAA records as a
whole. A name without that TXT — somebody's hand-made record, another cluster's (another owner) — is
never changed, even when meshop wants it: it is reported as a conflict instead.

* create: a wanted name with no A, AAAA or CNAME record: the TXT and the addresses are added (the
  driver makes the update conditional on the name still being empty, so a record made meanwhile wins).
* update: an owned name whose addresses or TTL differ: its A/AAAA are replaced.
* withdraw: an owned name no longer wanted: its A/AAAA and meshop's TXT go; other TXT records stay.
* held: a wanted name with no address to point at (nothing healthy at all) keeps what it has: an
  empty answer would be no better than a stale one, and "never delete on uncertainty" holds here too.

``plan`` is pure; ``current`` is what the provider read from the zone, ``now`` is not needed (TTL and
addresses decide). Every update of an owned name is conditional on its TXT set as read, so a name
whose ownership changed after the read is refused by the server, never overwritten.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HERITAGE = "heritage=meshop,meshop/owner="


def ownership_text(owner: str) -> str:
    """The TXT record (presentation form, quoted) that marks a name as ``owner``'s."""
    return f'"{HERITAGE}{owner}"'


def owner_of(txt: str) -> str | None:
    """The owner a TXT record (presentation form) names, or None when it is not a meshop mark."""
    head = f'"{HERITAGE}'
    if not (txt.startswith(head) and txt.endswith('"')) or len(txt) <= len(head) + 1:
        return None
    owner = txt[len(head) : -1]
    return None if any(c in owner for c in '" \\') else owner


@dataclass(frozen=True)
class NameState:
    """What the zone holds at one name (lowercase, no final dot; ``*.`` for a wildcard)."""

    name: str
    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    ttl: int = 0  # of the A/AAAA records (0 when there are none)
    txt: tuple[str, ...] = ()  # every TXT record at the name (presentation form), meshop's and others'
    cname: bool = False  # a CNAME at the name: nothing else may live there

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(sorted(self.a + self.aaaa))

    def owners(self) -> tuple[str, ...]:
        return tuple(sorted({o for o in map(owner_of, self.txt) if o is not None}))

    @property
    def empty(self) -> bool:
        return not self.a and not self.aaaa and not self.cname


@dataclass(frozen=True)
class Change:
    """One name's update. ``addresses`` is what the name will hold (empty for a withdraw)."""

    kind: str  # create | update | withdraw
    name: str
    addresses: tuple[str, ...]
    ttl: int
    previous: tuple[str, ...] = ()
    txt: tuple[str, ...] = ()  # the TXT set as read: the update's precondition (create: none needed)

    def describe(self) -> str:
        before = ", ".join(self.previous) or "nothing"
        after = ", ".join(self.addresses) or "nothing"
        return f"{self.kind} {self.name}: {before} -> {after} (ttl {self.ttl})"


@dataclass(frozen=True)
class DnsPlan:
    changes: tuple[Change, ...] = ()
    conflicts: tuple[str, ...] = ()  # wanted names held by records meshop does not own, with why
    held: tuple[str, ...] = ()  # wanted names with nothing to point at: left as they are


def split_families(addresses: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(IPv4, IPv6) addresses, each sorted and deduplicated; anything else raises ValueError."""
    v4: set[str] = set()
    v6: set[str] = set()
    for text in addresses:
        ip = ipaddress.ip_address(text)
        (v4 if ip.version == 4 else v6).add(str(ip))
    return tuple(sorted(v4)), tuple(sorted(v6))


def plan(desired: Mapping[str, Iterable[str]], current: Mapping[str, NameState], owner: str, ttl: int) -> DnsPlan:
    """The updates that make ``current`` hold ``desired`` (name -> addresses) on the names ``owner`` owns."""
    changes: list[Change] = []
    conflicts: list[str] = []
    held: list[str] = []
    for name in sorted(desired):
        addresses = tuple(sorted(set(desired[name])))
        state = current.get(name, NameState(name))
        mine = owner in state.owners()
        if not mine:
            foreign = state.owners()
            if foreign:
                conflicts.append(f"{name}: owned by another meshop ({', '.join(foreign)})")
            elif not state.empty:
                what = "a CNAME" if state.cname else "address records meshop did not create"
                conflicts.append(f"{name}: holds {what}; not touched")
            elif not addresses:
                held.append(name)
            else:
                changes.append(Change("create", name, addresses, ttl, (), state.txt))
            continue
        if not addresses:
            held.append(name)
        elif addresses != state.addresses or ttl != state.ttl:
            changes.append(Change("update", name, addresses, ttl, state.addresses, state.txt))
    for name in sorted(set(current) - set(desired)):
        state = current[name]
        if owner in state.owners():
            changes.append(Change("withdraw", name, (), state.ttl, state.addresses, state.txt))
    return DnsPlan(tuple(changes), tuple(conflicts), tuple(held))


def applied(current: Mapping[str, NameState], change: Change, owner: str) -> dict[str, NameState]:
    """``current`` after ``change`` succeeded (what a server does with it): for tests and the fake zone."""
    out = dict(current)
    state = out.get(change.name, NameState(change.name))
    mark = ownership_text(owner)
    if change.kind == "withdraw":
        rest = tuple(t for t in state.txt if t != mark)
        out[change.name] = NameState(change.name, txt=rest)
        if not rest:
            del out[change.name]
        return out
    v4, v6 = split_families(change.addresses)
    txt = state.txt if mark in state.txt else (*state.txt, mark)
    out[change.name] = NameState(change.name, v4, v6, change.ttl, tuple(sorted(txt)))
    return out
