"""Node addresses and ports from records nodes write about themselves: what may be dialled."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshop.model.addresses import address_problem, join_host_port, port_problem

INJECTION = "fe80::1%x {\n}\n}\n}\nevil.example {\n\trespond pwned\n}\nx.example {\n\treverse_proxy 10.0.0.9"


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("10.0.0.1", id="ipv4"),
        pytest.param("100.64.0.7", id="tailnet-cgnat"),
        pytest.param("2001:db8::1", id="ipv6"),
        pytest.param("fd7a:115c:a1e0::1", id="tailnet-ipv6"),
        pytest.param("node-1.tail1234.ts.net", id="hostname"),
    ],
)
def test_accepted_everywhere(address: str) -> None:
    assert address_problem(address) is None
    assert address_problem(address, local_cluster=True) is None


@pytest.mark.parametrize(
    ("address", "why"),
    [
        pytest.param(INJECTION, "zone id", id="zone-id-carrying-caddyfile-syntax"),
        pytest.param("fe80::1%eth0", "zone id", id="plain-zone-id"),
        pytest.param("10.0.0.1 {", "neither", id="brace"),
        pytest.param("10.0.0.1\nevil", "neither", id="newline"),
        pytest.param("10.0.0.1:8500", "neither", id="port-in-the-address"),
        pytest.param("[2001:db8::1]", "neither", id="already-bracketed"),
        pytest.param("", "no address", id="empty"),
        pytest.param("a" * 254, "longer", id="too-long"),
        pytest.param("224.0.0.1", "multicast", id="multicast"),
    ],
)
def test_refused_everywhere(address: str, why: str) -> None:
    for local in (False, True):
        problem = address_problem(address, local_cluster=local)
        assert problem is not None and why in problem


@pytest.mark.parametrize(
    ("address", "what"),
    [
        pytest.param("127.0.0.1", "loopback", id="loopback"),
        pytest.param("127.1.2.3", "loopback", id="loopback-net"),
        pytest.param("::1", "loopback", id="ipv6-loopback"),
        pytest.param("::ffff:127.0.0.1", "loopback", id="v4-mapped-loopback"),
        pytest.param("0.0.0.0", "unspecified", id="unspecified"),
        pytest.param("::", "unspecified", id="ipv6-unspecified"),
        pytest.param("169.254.169.254", "link-local", id="cloud-metadata-link-local"),
        pytest.param("fe80::1", "link-local", id="ipv6-link-local"),
        pytest.param("localhost", "loopback", id="localhost-name"),
        pytest.param("consul.localhost", "loopback", id="localhost-subdomain"),
    ],
)
def test_own_host_addresses_only_in_a_local_cluster(address: str, what: str) -> None:
    problem = address_problem(address)
    assert problem is not None and what in problem and "--local-cluster" in problem
    assert address_problem(address, local_cluster=True) is None


@pytest.mark.parametrize(
    ("port", "zero_ok", "ok"),
    [
        pytest.param(80, False, True, id="port"),
        pytest.param(65535, False, True, id="highest"),
        pytest.param(0, True, True, id="zero-means-none"),
        pytest.param(0, False, False, id="zero"),
        pytest.param(65536, True, False, id="too-high"),
        pytest.param(-1, True, False, id="negative"),
        pytest.param(True, True, False, id="bool"),
        pytest.param("80", True, False, id="string"),
    ],
)
def test_ports(port: object, zero_ok: bool, ok: bool) -> None:
    assert (port_problem(port, zero_ok=zero_ok) is None) is ok


@pytest.mark.parametrize(
    ("address", "port", "expected"),
    [
        pytest.param("10.0.0.1", 80, "10.0.0.1:80", id="ipv4"),
        pytest.param("2001:db8::1", 8080, "[2001:db8::1]:8080", id="ipv6-bracketed"),
        pytest.param("2001:0db8:0:0:0:0:0:1", 80, "[2001:db8::1]:80", id="ipv6-compressed"),
        pytest.param("node.example.com", 80, "node.example.com:80", id="hostname"),
    ],
)
def test_join_host_port(address: str, port: int, expected: str) -> None:
    assert join_host_port(address, port) == expected


@given(st.text(max_size=80))
def test_an_accepted_address_carries_no_caddyfile_syntax(text: str) -> None:
    if address_problem(text, local_cluster=True) is None:
        assert not set(text) & set(" \t\r\n{}#\"'`%;/\\[]")


@pytest.mark.parametrize("name", ["127.1", "0", "2130706433", "0x7f.1", "0x7f", "017700000001", "node.10", "a.0x1"])
@pytest.mark.parametrize("local", [False, True])
def test_numeric_looking_host_names_are_refused(name: str, local: bool) -> None:
    """``inet_aton`` (and so ssh, curl, getaddrinfo) reads these as IPv4 addresses: 0 and 127.1 are this host."""
    problem = address_problem(name, local_cluster=local)
    assert problem is not None and "shorthand" in problem


@pytest.mark.parametrize("name", ["n1", "node-1.example.com", "a.b1", "x0.example", "1a.example.com"])
def test_names_with_a_letter_in_the_last_label_pass(name: str) -> None:
    assert address_problem(name) is None
