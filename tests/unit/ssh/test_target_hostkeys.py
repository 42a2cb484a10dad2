"""Targets, fingerprints and the host key decision: pure tables."""

from __future__ import annotations

import base64
import hashlib

import pytest

from meshop.ssh.hostkeys import CA_NOTE, Trust, Verdict, decide, names_host
from meshop.ssh.target import SshTarget, TargetError, fingerprint, parse_fingerprint, parse_target

A = "SHA256:" + "A" * 43
B = "SHA256:" + "B" * 43


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host", SshTarget("host", "root", 22)),
        ("admin@10.0.0.5", SshTarget("10.0.0.5", "admin", 22)),
        ("deploy@vps1.example.com:2222", SshTarget("vps1.example.com", "deploy", 2222)),
        ("root@[2001:db8::1]:22", SshTarget("2001:db8::1", "root", 22)),
        ("[2001:db8::1]", SshTarget("2001:db8::1", "root", 22)),
    ],
    ids=["bare", "user", "user-port", "v6-port", "v6"],
)
def test_parse_target(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("-oProxyCommand=x@host", "user"),
        ("root@-oProxyCommand=sh", "host"),
        ("root@host:0", "port"),
        ("root@host:70000", "port"),
        ("root@host:22x", "port"),
        ("root@ho st", "host"),
        ("root@host\n[evil]:22", "host"),
        ("root@[2001:db8::1", "IPv6"),
        ("root@a..b", "host"),
        ("root@host:²", "port"),
        ("root@host:\uff12\uff12", "port"),
        ("root@host:+22", "port"),
        ("root@host:" + "9" * 5000, "port"),
    ],
    ids=[
        "option-user",
        "option-host",
        "port-0",
        "port-big",
        "port-text",
        "space",
        "newline",
        "v6-open",
        "dots",
        "port-superscript",
        "port-fullwidth",
        "port-sign",
        "port-huge",
    ],
)
def test_bad_targets_name_the_field(text, names):
    with pytest.raises(TargetError, match=names):
        parse_target(text)


def test_known_hosts_name_and_str():
    assert SshTarget("h", "root", 22).known_hosts_name == "h"
    assert SshTarget("h", "root", 2222).known_hosts_name == "[h]:2222"
    assert str(SshTarget("2001:db8::1", "u", 2222)) == "u@[2001:db8::1]:2222"


def test_fingerprint_is_openssh_format():
    blob = b"\x00\x00\x00\x0bssh-ed25519" + bytes(36)
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert fingerprint(blob) == f"SHA256:{digest}"
    assert len(fingerprint(blob)) == len("SHA256:") + 43


@pytest.mark.parametrize("text", ["MD5:aa:bb", "SHA256:short", "SHA256:" + "A" * 42 + "!", ""], ids=str)
def test_bad_fingerprint_is_refused(text):
    with pytest.raises(TargetError, match="--host-key"):
        parse_fingerprint(text)


@pytest.mark.parametrize(
    ("offered", "listed", "trust", "verdict"),
    [
        (A, {A}, Trust(), Verdict.KNOWN),
        (A, {B}, Trust(), Verdict.REFUSED),
        (A, {B}, Trust(accept_new=True), Verdict.REFUSED),  # TOFU never overrides a changed key
        (A, set(), Trust(), Verdict.REFUSED),
        (A, set(), Trust(accept_new=True), Verdict.TOFU),
        (A, set(), Trust(pinned=A), Verdict.PINNED),
        (A, set(), Trust(pinned=B), Verdict.REFUSED),
        (A, set(), Trust(pinned=B, accept_new=True), Verdict.REFUSED),
        (A, {A}, Trust(pinned=B), Verdict.REFUSED),  # a pin is checked even against a listed key
        (A, {A, B}, Trust(pinned=A), Verdict.KNOWN),
    ],
    ids=[
        "listed",
        "changed",
        "changed-tofu",
        "unknown",
        "tofu",
        "pinned",
        "pin-mismatch",
        "pin-mismatch-tofu",
        "listed-but-pin-differs",
        "listed-and-pinned",
    ],
)
def test_decide(offered, listed, trust, verdict):
    decision = decide(offered, frozenset(listed), trust)
    assert decision.verdict is verdict
    if verdict is Verdict.REFUSED:
        assert offered in decision.reason  # the operator sees what the server offered


@pytest.mark.parametrize("trust", [Trust(), Trust(accept_new=True), Trust(pinned=A)], ids=["listed", "tofu", "pinned"])
def test_a_revoked_key_is_refused_whatever_says_yes(trust):
    decision = decide(A, frozenset({A}), trust, revoked=frozenset({A}))
    assert decision.verdict is Verdict.REFUSED and "@revoked" in decision.reason


@pytest.mark.parametrize(
    ("field", "name", "named"),
    [
        ("vps1.example.com", "vps1.example.com", True),
        ("VPS1.Example.com", "vps1.example.COM", True),  # case-insensitive, as OpenSSH
        ("vps1.example.com", "vps2.example.com", False),
        ("*.example.com", "vps1.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "vps1.example.com.evil", False),  # the whole name, not a prefix
        ("vps?.example.com", "vps1.example.com", True),
        ("vps?.example.com", "vps10.example.com", False),
        ("*", "anything", True),
        ("[10.0.0.5]:2222", "[10.0.0.5]:2222", True),  # brackets are literal, not a character class
        ("[10.0.0.*]:2222", "[10.0.0.5]:2222", True),
        ("[10.0.0.*]:2222", "[10.0.0.5]:22", False),
        ("10.0.0.5", "[10.0.0.5]:2222", False),  # another port is another host
        ("a.example.com,*.example.com", "b.example.com", True),
        ("*.example.com,!bad.example.com", "bad.example.com", False),  # a negated match excludes
        ("!bad.example.com,*.example.com", "bad.example.com", False),  # wherever it stands
        ("*.example.com,!bad.example.com", "good.example.com", True),
        ("!bad.example.com", "good.example.com", False),  # a negation alone names nobody
        ("a.example.com,", "a.example.com", True),
        ("a.b", "aXb", False),  # a dot is a dot
        ("", "a", False),
    ],
    ids=[
        "exact",
        "case",
        "other",
        "star",
        "star-needs-a-label",
        "star-whole-name",
        "question",
        "question-one-char",
        "only-star",
        "bracketed-port",
        "bracketed-star",
        "bracketed-other-port",
        "port-22-pattern",
        "list",
        "negated-after",
        "negated-before",
        "negated-other",
        "negation-alone",
        "empty-entry",
        "dot-literal",
        "empty",
    ],
)
def test_names_host_as_openssh(field: str, name: str, named: bool) -> None:
    assert names_host(field, name) is named


def test_a_hashed_entry_is_judged_by_its_checker() -> None:
    assert names_host("|1|salt|hash", "h", lambda pattern, name: (pattern, name) == ("|1|salt|hash", "h"))
    assert not names_host("|1|salt|hash,!h", "h", lambda _p, _n: True)


@pytest.mark.parametrize("trust", [Trust(), Trust(pinned=B)], ids=["unlisted", "pin-mismatch"])
def test_a_cert_authority_line_trusts_nothing(trust: Trust) -> None:
    """A @cert-authority line naming the host is never read as its key; the refusal says why."""
    decision = decide(A, frozenset(), trust, cert_authority=True)
    assert decision.verdict is Verdict.REFUSED
    if trust.pinned is None:
        assert decision.reason.endswith(CA_NOTE)
