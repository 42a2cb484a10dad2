"""The DNS record planner: which updates bring a zone to the records meshop wants, touching only its own.

The rule (external-dns's TXT registry with a prefix, made strict): meshop owns a name when the name's
*mark name* ``_meshop-owner.<name>`` (``_meshop-owner._wildcard.<domain>`` for ``*.<domain>``) carries
the TXT record ``"heritage=meshop,meshop/owner=<owner>"``. It then manages that name's A and AAAA
record sets as a whole, and nothing else at the name: a TXT (SPF, verification), MX or any other
record set there is never read into a change, so its records and TTL stay as they are. A name without
the mark — somebody's hand-made record, another cluster's (another owner) — is never changed, even
when meshop wants it: it is reported as a conflict instead.

The mark lives apart because a TXT beside foreign TXT records would share their record set (one TTL;
an update that keeps the TTL in step rewrites theirs). Earlier meshop versions did put it at the name
itself; such a *legacy* mark is still recognised, and the first pass moves it (``Change.legacy``: the
old mark leaves the name's TXT set, the new one is made), in the same atomic update.

* create: a wanted name with no A, AAAA or CNAME record: the mark and the addresses are added (the
  driver makes the update conditional on the name still being empty, so a record made meanwhile wins).
* update: an owned name whose addresses or TTL differ, or whose mark is a legacy one: its A/AAAA are
  replaced.
* withdraw: an owned name no longer wanted: its A/AAAA and meshop's mark go; nothing else does.
* held: a wanted name with no address to point at (nothing healthy at all) keeps what it has: an
  empty answer would be no better than a stale one, and "never delete on uncertainty" holds here too.

``plan`` is pure; ``current`` is every name the provider read from the zone (mark names included).
Every update of an owned name is conditional on the TXT set of its mark name as read (and, to move a
legacy mark, the name's TXT set as read), so a name whose ownership changed after the read is refused
by the server, never overwritten.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

HERITAGE = "heritage=meshop,meshop/owner="
MARK_PREFIX = "_meshop-owner."
WILDCARD_LABEL = "_wildcard"  # a mark name never holds "*" (a wildcard label not leftmost is a literal)


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


def mark_name(name: str) -> str:
    """Where the ownership mark of ``name`` lives: ``_meshop-owner.<name>``, ``*`` spelled ``_wildcard``."""
    if name == "*" or name.startswith("*."):
        name = WILDCARD_LABEL + name[1:]
    return MARK_PREFIX + name


def marked_name(mark: str) -> str | None:
    """The name a mark name marks (``mark_name``'s inverse), or None when ``mark`` is not a mark name."""
    if not mark.startswith(MARK_PREFIX) or len(mark) == len(MARK_PREFIX):
        return None
    name = mark[len(MARK_PREFIX) :]
    if name == WILDCARD_LABEL or name.startswith(WILDCARD_LABEL + "."):
        name = "*" + name[len(WILDCARD_LABEL) :]
    return name


def owners_in(txt: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({o for o in map(owner_of, txt) if o is not None}))


@dataclass(frozen=True)
class NameState:
    """What the zone holds at one name (lowercase, no final dot; ``*.`` for a wildcard)."""

    name: str
    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    ttl: int = 0  # of the A/AAAA records (0 when there are none)
    txt: tuple[str, ...] = ()  # every TXT record at the name (presentation form), meshop's and others'
    cname: bool = False  # a CNAME at the name: nothing else may live there
    txt_ttl: int = 0  # of the TXT set (0 when there is none): a provider that rewrites a set keeps it

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(sorted(self.a + self.aaaa))

    def owners(self) -> tuple[str, ...]:
        return owners_in(self.txt)

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
    txt: tuple[str, ...] = ()  # the TXT set at the mark name as read: the update's precondition
    legacy: tuple[str, ...] = ()  # the name's own TXT set as read when it holds a legacy mark to move
    legacy_ttl: int = 0  # that set's TTL (kept for the records that stay)

    @property
    def mark(self) -> str:
        return mark_name(self.name)

    def describe(self) -> str:
        before = ", ".join(self.previous) or "nothing"
        after = ", ".join(self.addresses) or "nothing"
        moved = f"; ownership mark moved to {self.mark}" if self.legacy else ""
        return f"{self.kind} {self.name}: {before} -> {after} (ttl {self.ttl}{moved})"


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


@dataclass(frozen=True)
class _Ownership:
    owners: tuple[str, ...]  # every owner marking the name, at its mark name or (legacy) at the name
    marks: tuple[str, ...]  # the TXT set at the mark name
    legacy: tuple[str, ...]  # the name's TXT set when it holds ``owner``'s legacy mark, else ()
    legacy_ttl: int


def _ownership(current: Mapping[str, NameState], name: str, owner: str) -> _Ownership:
    state = current.get(name, NameState(name))
    marks = current.get(mark_name(name), NameState(mark_name(name))).txt
    legacy = state.txt if owner in state.owners() else ()
    ttl = state.txt_ttl if legacy else 0
    return _Ownership(tuple(sorted({*owners_in(marks), *state.owners()})), marks, legacy, ttl)


def plan(desired: Mapping[str, Iterable[str]], current: Mapping[str, NameState], owner: str, ttl: int) -> DnsPlan:
    """The updates that make ``current`` hold ``desired`` (name -> addresses) on the names ``owner`` owns."""
    changes: list[Change] = []
    conflicts: list[str] = []
    held: list[str] = []
    for name in sorted(desired):
        addresses = tuple(sorted(set(desired[name])))
        state = current.get(name, NameState(name))
        own = _ownership(current, name, owner)
        if owner not in own.owners:
            if own.owners:
                conflicts.append(f"{name}: owned by another meshop ({', '.join(own.owners)})")
            elif not state.empty:
                what = "a CNAME" if state.cname else "address records meshop did not create"
                conflicts.append(f"{name}: holds {what}; not touched")
            elif not addresses:
                held.append(name)
            else:
                changes.append(Change("create", name, addresses, ttl, (), own.marks))
            continue
        if not addresses:
            held.append(name)
            if own.legacy:  # the mark still moves; the addresses stay as they are
                keep = state.addresses
                ttl_now = state.ttl or ttl
                changes.append(Change("update", name, keep, ttl_now, keep, own.marks, own.legacy, own.legacy_ttl))
        elif addresses != state.addresses or ttl != state.ttl or own.legacy:
            changes.append(
                Change("update", name, addresses, ttl, state.addresses, own.marks, own.legacy, own.legacy_ttl)
            )
    for name in sorted(_owned_names(current, owner) - set(desired)):
        state = current.get(name, NameState(name))
        own = _ownership(current, name, owner)
        changes.append(Change("withdraw", name, (), state.ttl, state.addresses, own.marks, own.legacy, own.legacy_ttl))
    return DnsPlan(tuple(changes), tuple(conflicts), tuple(held))


def _owned_names(current: Mapping[str, NameState], owner: str) -> set[str]:
    """Every name ``owner``'s mark marks: at a mark name, or (legacy) at the name itself."""
    names = set()
    for name, state in current.items():
        if owner not in state.owners():
            continue
        marked = marked_name(name)
        names.add(marked if marked is not None else name)
    return names


def applied(current: Mapping[str, NameState], change: Change, owner: str) -> dict[str, NameState]:
    """``current`` after ``change`` succeeded (what a server does with it): for tests and the fake zone."""
    out = dict(current)
    state = out.get(change.name, NameState(change.name))
    mark = ownership_text(owner)
    marks = out.get(change.mark, NameState(change.mark))
    if change.legacy:  # the legacy mark leaves the name's TXT set; the other records keep their TTL
        rest = tuple(t for t in state.txt if t != mark)
        state = replace(state, txt=rest, txt_ttl=state.txt_ttl if rest else 0)
    if change.kind == "withdraw":
        state = replace(state, a=(), aaaa=(), ttl=0)
        rest = tuple(t for t in marks.txt if t != mark)
        marks = replace(marks, txt=rest, txt_ttl=marks.txt_ttl if rest else 0)
    else:
        v4, v6 = split_families(change.addresses)
        state = replace(state, a=v4, aaaa=v6, ttl=change.ttl)
        if mark not in marks.txt:
            marks = replace(marks, txt=tuple(sorted((*marks.txt, mark))), txt_ttl=marks.txt_ttl or change.ttl)
    for put in (state, marks):
        if put.a or put.aaaa or put.txt or put.cname:
            out[put.name] = put
        else:
            out.pop(put.name, None)
    return out
