"""Durations, memory quantities and the name checks renderers rely on."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from meshop.model import FrozenDict, names, parse_duration, parse_memory

DURATIONS = [
    ("500ms", 0.5),
    ("10s", 10.0),
    ("1m30s", 90.0),
    ("1h", 3600.0),
    ("1.5s", 1.5),
    ("250us", 0.00025),
    ("2h45m", 9900.0),
    ("0s", 0.0),
    (5, 5.0),
    (0.25, 0.25),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS, ids=[str(d[0]) for d in DURATIONS])
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "10x", "-5s", "1s ", " 1s", "s", "1m30", "1e3s", "ten seconds"])
def test_parse_duration_refuses_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("value", ["200h", -1, float("inf"), float("nan")])
def test_parse_duration_refuses_out_of_range(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("value", [None, True, [1], {"s": 1}])
def test_parse_duration_refuses_other_types(value: object) -> None:
    with pytest.raises(TypeError):
        parse_duration(value)


MEMORY = [
    ("256Mi", 256 * 2**20),
    ("1Gi", 2**30),
    ("1G", 10**9),
    ("512M", 512 * 10**6),
    ("1k", 1000),
    ("64Ki", 65536),
    ("1048576", 1048576),
    (1048576, 1048576),
    ("1.5Gi", 3 * 2**29),
    ("0.1K", 100),
    ("1.0001", 2),
]


@pytest.mark.parametrize(("text", "size"), MEMORY, ids=[str(m[0]) for m in MEMORY])
def test_parse_memory(text: object, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["", "256MB", "1 Gi", "-1Mi", "Mi", "1e9", "1.Gi", "12345678901234567890Ei"])
def test_parse_memory_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_memory(text)


@pytest.mark.parametrize("s", ["a", "web", "a-b", "0", "x" * 63, "n1"])
def test_dns_label_ok(s: str) -> None:
    assert names.is_dns_label(s)


@pytest.mark.parametrize("s", ["", "A", "-a", "a-", "a_b", "a.b", "x" * 64, "é", "a\n", None, 5])
def test_dns_label_bad(s: object) -> None:
    assert not names.is_dns_label(s)


@pytest.mark.parametrize("s", ["localhost", "whoami.localhost", "a.b-c.example.com", "10.0.0.1"])
def test_hostname_ok(s: str) -> None:
    assert names.is_hostname(s) and names.is_wildcard_hostname(s)


@pytest.mark.parametrize(
    "s",
    [
        "",
        ".",
        "a..b",
        "a.",
        ".a",
        "A.com",
        "a_b.com",
        "a b",
        "a{b}",
        "{$HOME}",
        "a\nb",
        "*.a.com",
        "a" * 64,
        ".".join(["a" * 63] * 4),
        "a.com:80",
        "a.com/x",
        "'a'",
    ],
)
def test_hostname_bad(s: str) -> None:
    assert not names.is_hostname(s)


def test_wildcard_hostname() -> None:
    assert names.is_wildcard_hostname("*.example.com")
    assert not names.is_wildcard_hostname("*")
    assert not names.is_wildcard_hostname("**.example.com")
    assert not names.is_wildcard_hostname("a.*.example.com")
    assert names.host_in_domain("*.a.example.com", "example.com")
    assert names.host_in_domain("example.com", "example.com")
    assert not names.host_in_domain("badexample.com", "example.com")


@pytest.mark.parametrize(
    "s",
    [
        "busybox",
        "busybox:1",
        "meshop-test/busybox:1",
        "registry.example.com/whoami:v1.10",
        "127.0.0.1:5000/app",
        "localhost:5000/a/b/c:latest",
        "[::1]:5000/app:1",
        "app@sha256:" + "a" * 64,
        "ghcr.io/org/app:1.0@sha256:" + "0" * 64,
    ],
)
def test_image_reference_ok(s: str) -> None:
    assert names.is_image_reference(s)


@pytest.mark.parametrize(
    "s",
    [
        "",
        "Busybox",
        "busybox latest",
        "busybox\n",
        "a:b:c",
        "app:",
        ":tag",
        "/app",
        "app@sha256:abc",
        "a" * 600,
        "app:" + "t" * 129,
    ],
)
def test_image_reference_bad(s: str) -> None:
    assert not names.is_image_reference(s)


def test_label_keys_values_and_misc() -> None:
    assert names.is_label_key("app.kubernetes.io/name") and names.is_label_key("Team")
    assert not names.is_label_key("a/b/c") and not names.is_label_key("/x") and not names.is_label_key("")
    assert names.is_label_value("") and names.is_label_value("v1.2_x")
    assert not names.is_label_value("-x") and not names.is_label_value("a b")
    assert names.is_consul_key("meshop/secrets/db-password")
    for bad in ("", "/abs", "a//b", "a/../b", "a/./b", "a b", "a/", "a\nb"):
        assert not names.is_consul_key(bad), bad
    assert names.is_url_path("/") and names.is_url_path("/api/v1%20x:@!$&+,;=~")
    assert names.is_email("ops@example.com") and not names.is_email("ops@localhost")
    assert names.is_fqdn("example.com.") and not names.is_fqdn("example.com..")
    assert names.is_env_name("_A1") and not names.is_env_name("A-B")


def test_frozen_dict_is_read_only_but_dict_like() -> None:
    fd = FrozenDict({"a": "1"})
    for mutate in (
        lambda: fd.__setitem__("b", "2"),
        lambda: fd.update(b="2"),
        fd.clear,
        lambda: fd.pop("a"),
        lambda: fd.setdefault("b", "2"),
        lambda: fd.__delitem__("a"),
        fd.popitem,
    ):
        with pytest.raises(TypeError):
            mutate()
    assert fd == {"a": "1"} and json.dumps(fd) == '{"a": "1"}'
    assert pickle.loads(pickle.dumps(fd)) == fd and copy.deepcopy(fd) is fd
    assert hash(fd) == hash(FrozenDict({"a": "1"}))
