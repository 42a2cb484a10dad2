"""The RFC 2136 provider refuses a change outside its zone before sending anything (the planner skips
such names already; this is the second guard, and nothing else tested it)."""

from __future__ import annotations

import socket

import pytest

from meshop.dns.plan import Change
from meshop.dns.provider import DnsError
from meshop.dns.rfc2136 import Rfc2136Provider, Rfc2136Settings


@pytest.mark.parametrize(
    "name", ["evil.example.org", "example.com.evil.org", "notexample.com"], ids=["other", "suffix-trick", "no-dot"]
)
def test_a_change_outside_the_zone_is_refused_unsent(name: str) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # a server that would see any update
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    try:
        settings = Rfc2136Settings("127.0.0.1", listener.getsockname()[1], "example.com", "k", "c2VjcmV0")
        with pytest.raises(DnsError, match=r"outside zone.*not sent"):
            Rfc2136Provider(settings).apply(Change("create", name, ("203.0.113.1",), 60), "owner")
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected
    finally:
        listener.close()
