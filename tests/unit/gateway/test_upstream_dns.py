"""The gateway's upstream DNS: wire answers (pure), which sites go dynamic, and the responder on loopback."""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshop.caddy import dns_wire
from meshop.caddy.dns_wire import TYPE_A, TYPE_AAAA, TYPE_SRV, address_of, answer, query, site_name, target_name
from meshop.caddy.render import DynamicUpstreams, ProxyOptions, Site, UnsafeValue, render_site
from meshop.caddy.upstream_dns import UpstreamDNS
from meshop.errors import MeshopError
from meshop.gateway.config import GatewayPlan, dynamic_sites
from meshop.gateway.probes import Prober

NAME = site_name("web.example.com")
TABLE = {NAME: (("10.0.0.1", 8080), ("fd7a:115c:a1e0::1", 9090))}


def parse(response: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    """(rcode, [(type, rdata)]) of a response to one question."""
    _, flags, qd, an = struct.unpack("!HHHH", response[:8])
    offset = 12
    for _ in range(qd):
        while response[offset]:
            offset += response[offset] + 1
        offset += 5
    records = []
    for _ in range(an):
        assert response[offset : offset + 2] == b"\xc0\x0c"
        rtype, _, _, length = struct.unpack("!HHIH", response[offset + 2 : offset + 12])
        records.append((rtype, response[offset + 12 : offset + 12 + length]))
        offset += 12 + length
    assert offset == len(response)
    return flags & 0xF, records


def srv_targets(records: list[tuple[int, bytes]]) -> list[tuple[str, int]]:
    out = []
    for rtype, rdata in records:
        assert rtype == TYPE_SRV
        _priority, _weight, port = struct.unpack("!HHH", rdata[:6])
        labels, offset = [], 6
        while rdata[offset]:
            labels.append(rdata[offset + 1 : offset + 1 + rdata[offset]].decode())
            offset += rdata[offset] + 1
        out.append((".".join(labels), port))
    return out


def test_srv_answer_lists_every_upstream_with_its_port() -> None:
    rcode, records = parse(answer(query(NAME, TYPE_SRV), TABLE) or b"")
    assert rcode == dns_wire.NOERROR
    targets = srv_targets(records)
    assert [port for _, port in targets] == [8080, 9090]
    assert [str(address_of(name)) for name, _ in targets] == ["10.0.0.1", "fd7a:115c:a1e0::1"]


@pytest.mark.parametrize(
    ("address", "qtype", "expected"),
    [
        ("10.0.0.1", TYPE_A, [(TYPE_A, bytes([10, 0, 0, 1]))]),
        ("10.0.0.1", TYPE_AAAA, []),
        ("fd7a:115c:a1e0::1", TYPE_AAAA, [(TYPE_AAAA, ipaddress.ip_address("fd7a:115c:a1e0::1").packed)]),
        ("fd7a:115c:a1e0::1", TYPE_A, []),
    ],
    ids=["a", "aaaa-of-ipv4-empty", "aaaa", "a-of-ipv6-empty"],
)
def test_target_names_answer_the_address_they_spell(address: str, qtype: int, expected: list) -> None:
    name = target_name(address)
    assert name is not None
    assert parse(answer(query(name, qtype), {}) or b"") == (dns_wire.NOERROR, expected)


@pytest.mark.parametrize(
    ("name", "rcode"),
    [
        (site_name("unknown.example.com"), dns_wire.NXDOMAIN),
        ("999-0-0-1.ip4.meshop.internal", dns_wire.NXDOMAIN),
        ("1-2-3.ip4.meshop.internal", dns_wire.NXDOMAIN),
        ("zz.ip6.meshop.internal", dns_wire.NXDOMAIN),
        ("example.com", dns_wire.REFUSED),
        ("evilmeshop.internal", dns_wire.REFUSED),
    ],
    ids=["unknown-site", "bad-octet", "three-octets", "bad-ip6", "outside-zone", "zone-suffix-lookalike"],
)
def test_names_it_does_not_know(name: str, rcode: int) -> None:
    assert parse(answer(query(name, TYPE_SRV), TABLE) or b"")[0] == rcode


def test_hostname_upstreams_have_no_target_name() -> None:
    assert target_name("node1.tailnet.example") is None


@pytest.mark.parametrize(
    "packet",
    [b"", b"\x00" * 11, query(NAME, TYPE_SRV)[:-3], b"\x12\x34\x81\x00" + b"\x00" * 8, b"\x00\x01\x01\x00\x00\x01"],
    ids=["empty", "short-header", "cut-question", "a-response", "no-question-bytes"],
)
def test_malformed_packets_never_raise(packet: bytes) -> None:
    response = answer(packet, TABLE)
    assert response is None or parse(response)[0] in (dns_wire.FORMERR, dns_wire.NOTIMP)


@given(st.binary(max_size=300))
def test_any_packet_gets_an_answer_or_none_and_never_an_exception(packet: bytes) -> None:
    answer(packet, TABLE)


SITES = GatewayPlan(
    (
        Site("a.example.com", "/", ("10.0.0.1:8080", "10.0.0.2:8080"), health_path="/health"),
        Site("b.example.com", "/", ()),
        Site("c.example.com", "/", ("node1.tailnet.example:8080",)),
    ),
    (),
)


def test_ip_sites_go_dynamic_with_pinned_static_upstreams() -> None:
    planned = dynamic_sites(SITES, {"a.example.com": ("10.0.0.9:8080",)}, "127.0.0.1:5353")
    a, b, c = planned.plan.sites
    assert a.dynamic == DynamicUpstreams(site_name("a.example.com"), "127.0.0.1:5353")
    assert a.upstreams == ("10.0.0.9:8080",)  # the static fallback stays what Caddy serves
    assert planned.table == {site_name("a.example.com"): (("10.0.0.1", 8080), ("10.0.0.2", 8080))}
    assert b.dynamic is None and c.dynamic is None  # 503 site and hostname upstream: rendered as before
    assert c.upstreams == ("node1.tailnet.example:8080",)
    assert planned.probes == {
        ("a.example.com", "/health", "10.0.0.1", 8080),
        ("a.example.com", "/health", "10.0.0.2", 8080),
        ("", "", "10.0.0.1", 8080),
        ("", "", "10.0.0.2", 8080),
    }


def test_the_rendered_text_does_not_change_when_only_upstreams_change() -> None:
    pinned = {"a.example.com": ("10.0.0.1:8080", "10.0.0.2:8080")}
    moved = GatewayPlan((Site("a.example.com", "/", ("10.0.0.3:8080",)),), ())
    before = dynamic_sites(
        GatewayPlan((Site("a.example.com", "/", pinned["a.example.com"]),), ()), pinned, "127.0.0.1:53"
    )
    after = dynamic_sites(moved, pinned, "127.0.0.1:53")
    assert before.plan == after.plan
    assert after.table == {site_name("a.example.com"): (("10.0.0.3", 8080),)}


@pytest.mark.parametrize(
    ("failing", "served"),
    [
        (set(), [("10.0.0.1", 8080), ("10.0.0.2", 8080)]),
        ({("a.example.com", "/health", "10.0.0.2", 8080)}, [("10.0.0.1", 8080)]),
        ({("", "", "10.0.0.1", 8080)}, [("10.0.0.2", 8080)]),
        (
            {("a.example.com", "/health", "10.0.0.1", 8080), ("", "", "10.0.0.2", 8080)},
            [("10.0.0.1", 8080), ("10.0.0.2", 8080)],
        ),
        ({("other.example.com", "/health", "10.0.0.2", 8080)}, [("10.0.0.1", 8080), ("10.0.0.2", 8080)]),
    ],
    ids=["all-pass", "health-path-failing-left-out", "unreachable-left-out", "all-failing-keeps-all", "other-host"],
)
def test_failing_probes_leave_the_answer(failing: set, served: list) -> None:
    planned = dynamic_sites(SITES, {}, "127.0.0.1:53", failing=frozenset(failing))
    assert list(planned.table[site_name("a.example.com")]) == served


def test_without_a_resolver_nothing_changes() -> None:
    assert dynamic_sites(SITES, {}, None).plan == SITES


def test_render_dynamic_site() -> None:
    site = Site(
        "a.example.com", "/", ("10.0.0.1:8080",), dynamic=DynamicUpstreams("s1.meshop.internal", "127.0.0.1:5353")
    )
    text = render_site(site, scheme="https", bind=(), tls=None, proxy=ProxyOptions())
    assert "\t\t\tdynamic srv s1.meshop.internal {\n\t\t\t\trefresh 1s\n\t\t\t\tresolvers udp/127.0.0.1:5353\n" in text
    assert "\t\t\ttransport http {\n\t\t\t\tresolvers udp/127.0.0.1:5353\n\t\t\t}" in text
    assert "reverse_proxy 10.0.0.1:8080 {" in text


@pytest.mark.parametrize(
    "resolver",
    [
        "127.0.0.1",
        "127.0.0.1:53\n}",
        "[::1:53",
        "host:53",
        "127.0.0.1:0",
        "unixpacket/rel.sock",
        "unixpacket//a b",
        "unixpacket//a/../b.sock",
        "unixpacket//x}\n",
    ],
)
def test_render_refuses_a_bad_resolver(resolver: str) -> None:
    site = Site("a.example.com", "/", ("10.0.0.1:8080",), dynamic=DynamicUpstreams("s1.meshop.internal", resolver))
    with pytest.raises(UnsafeValue):
        render_site(site, scheme="https", bind=(), tls=None, proxy=ProxyOptions())


def test_responder_answers_on_loopback_and_swaps_tables() -> None:
    dns = UpstreamDNS("127.0.0.1:0").start()
    try:
        dns.publish(TABLE)
        host, port = dns.address.rsplit(":", 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(query(NAME, TYPE_SRV), (host, int(port)))
            assert len(srv_targets(parse(sock.recv(512))[1])) == 2
            dns.publish({})
            sock.sendto(query(NAME, TYPE_SRV), (host, int(port)))
            assert parse(sock.recv(512)) == (dns_wire.NXDOMAIN, [])
    finally:
        dns.stop()


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "10.1.2.3:53", "localhost:53", "unix:relative.sock"])
def test_responder_listens_on_loopback_only(listen: str) -> None:
    with pytest.raises(MeshopError, match="upstream DNS"):
        UpstreamDNS(listen)


def test_a_unix_socket_in_a_folder_others_may_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o1777)  # like /tmp: anyone could take the name once it is free
    with pytest.raises(MeshopError, match="another user could take it"):
        UpstreamDNS(f"unix:{shared / 'dns.sock'}")


def test_the_default_socket_is_private_and_caddy_is_told_unixpacket(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir(mode=0o755)
    dns = UpstreamDNS(folder=folder if len(str(folder)) < 70 else None).start()
    try:
        dns.publish(TABLE)
        assert dns.address.startswith("unixpacket//")
        path = Path(dns.address[len("unixpacket/") :])
        assert path.parent.stat().st_mode & 0o777 == 0o700
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            sock.send(query(NAME, TYPE_SRV))
            assert len(srv_targets(parse(sock.recv(512))[1])) == 2
        site = Site("a.example.com", "/", ("10.0.0.1:8080",), dynamic=DynamicUpstreams(NAME, dns.address))
        text = render_site(site, scheme="https", bind=(), tls=None, proxy=ProxyOptions())
        assert f"resolvers unixpacket/{path}\n" in text
    finally:
        dns.stop()
    assert not path.exists()


def test_prober_checks_tcp_every_round_and_http_on_its_interval() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    up, down = listener.getsockname()[1], closed.getsockname()[1]
    changes: list[int] = []
    prober = Prober(lambda: changes.append(1), http_interval=5.0, tcp_timeout=1.0)
    try:
        tcp_up, tcp_down = ("", "", "127.0.0.1", up), ("", "", "127.0.0.1", down)
        http_down = ("a.example.com", "/health", "127.0.0.1", down)
        prober.set_targets({tcp_up, tcp_down, http_down})
        prober.probe_once(100.0)
        assert prober.failing == {tcp_down, http_down}
        assert changes == [1]
        listener.close()
        prober.probe_once(101.0)  # TCP again; HTTP only 5 s later
        assert prober.failing == {tcp_up, tcp_down, http_down}
        prober.set_targets({tcp_up})  # targets that went away are forgotten
        prober.probe_once(102.0)
        assert prober.failing == {tcp_up}
    finally:
        prober.stop()
        listener.close()
        closed.close()


def _edns(packet: bytes, size: int) -> bytes:
    """``packet`` with an OPT record offering ``size`` bytes (as Go's resolver sends: 1232)."""
    return packet[:10] + struct.pack("!H", 1) + packet[12:] + b"\x00" + struct.pack("!HHIH", 41, size, 0, 0)


MANY = {NAME: tuple((f"10.0.{k // 250}.{k % 250 + 1}", 8000 + k) for k in range(60))}


@pytest.mark.parametrize(
    ("offered", "limit"),
    [(None, 512), (1232, 1232), (4096, 1232), (100, 512)],
    ids=["no-edns", "go-1232", "big-buffer-capped", "tiny-buffer-floor"],
)
def test_an_srv_answer_fits_the_askers_buffer(offered: int | None, limit: int) -> None:
    """60 upstreams take ~3 KB; before, the whole answer was sent and Go read a cut datagram."""
    packet = query(NAME, TYPE_SRV) if offered is None else _edns(query(NAME, TYPE_SRV), offered)
    response = answer(packet, MANY) or b""
    rcode, records = parse(response)
    assert rcode == dns_wire.NOERROR and records and len(response) <= limit
    assert len(response) + 60 > limit  # filled: one more record (49+ bytes) would not fit
    assert not struct.unpack("!H", response[2:4])[0] & 0x0200  # not marked truncated (no TCP here)


def test_a_cut_answer_rotates_so_every_upstream_is_served() -> None:
    packet = _edns(query(NAME, TYPE_SRV), 1232)
    ports: set[int] = set()
    for turn in range(6):
        ports |= {port for _, port in srv_targets(parse(answer(packet, MANY, rotate=turn * 17) or b"")[1])}
    assert ports == {port for _, port in MANY[NAME]}


def test_an_answer_that_fits_is_whole_and_in_order_whatever_the_rotation() -> None:
    assert answer(query(NAME, TYPE_SRV), TABLE, rotate=1) == answer(query(NAME, TYPE_SRV), TABLE)
