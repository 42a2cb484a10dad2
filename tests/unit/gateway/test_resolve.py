"""The gateway's own lookups of upstream hostnames: bounded, refreshed, a changed answer wakes the daemon."""

from __future__ import annotations

import socket
import threading

from meshop.gateway.resolve import NameResolver, system_lookup


class Names:
    """A resolver we control: ``table`` answers, ``hang`` blocks until released, others fail."""

    def __init__(self, table: dict[str, tuple[str, ...]]):
        self.table = table
        self.asked: list[str] = []
        self.release = threading.Event()
        self.hang: set[str] = set()

    def __call__(self, name: str) -> tuple[str, ...]:
        self.asked.append(name)
        if name in self.hang:
            self.release.wait(10)
        if name not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[name]


def test_new_names_are_resolved_at_once_and_unknown_ones_have_no_answer() -> None:
    names = Names({"a.example": ("10.0.0.2", "10.0.0.1")})
    changes: list[int] = []
    resolver = NameResolver(lambda: changes.append(1), lookup=names)
    assert resolver.answers({"a.example", "gone.example"}) == {"a.example": ("10.0.0.1", "10.0.0.2")}
    assert resolver.answers({"a.example"}) == {"a.example": ("10.0.0.1", "10.0.0.2")}
    assert names.asked.count("a.example") == 1  # cached until the refresh


def test_a_refresh_that_changes_an_answer_wakes_the_daemon_and_a_failure_keeps_the_last_one() -> None:
    names = Names({"a.example": ("10.0.0.1",)})
    changes: list[int] = []
    resolver = NameResolver(lambda: changes.append(1), lookup=names)
    resolver.answers({"a.example"})
    changes.clear()
    resolver.refresh()
    assert changes == []  # same answer: no pass
    names.table["a.example"] = ("127.0.0.1",)  # rebinding: the planner refuses it, the daemon must see it
    resolver.refresh()
    assert changes == [1] and resolver.answers({"a.example"}) == {"a.example": ("127.0.0.1",)}
    del names.table["a.example"]
    resolver.refresh()
    assert resolver.answers({"a.example"}) == {"a.example": ("127.0.0.1",)}


def test_a_hanging_lookup_is_bounded_and_its_late_answer_wakes_the_daemon() -> None:
    names = Names({"slow.example": ("10.0.0.9",), "a.example": ("10.0.0.1",)})
    names.hang.add("slow.example")
    woke = threading.Event()
    resolver = NameResolver(woke.set, lookup=names, timeout=0.2)
    assert resolver.answers({"slow.example", "a.example"}) == {"a.example": ("10.0.0.1",)}
    woke.clear()
    resolver.answers({"slow.example", "a.example"})
    assert names.asked.count("slow.example") == 1  # not asked again while the first lookup hangs
    names.release.set()
    assert woke.wait(5)
    assert resolver.answers({"slow.example"}) == {"slow.example": ("10.0.0.9",)}


def test_names_no_longer_asked_about_are_forgotten() -> None:
    names = Names({"a.example": ("10.0.0.1",)})
    resolver = NameResolver(lambda: None, lookup=names)
    resolver.answers({"a.example"})
    resolver.answers(set())
    resolver.answers({"a.example"})
    assert names.asked.count("a.example") == 2


def test_system_lookup_resolves_a_literal() -> None:
    assert system_lookup("127.0.0.1") == ("127.0.0.1",)
