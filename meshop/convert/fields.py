"""Pure parsers for the Compose values whose syntax meshop spells differently: names, ports, memory,
durations, commands, health checks. Each returns meshop's form, or None (and the caller warns)."""

from __future__ import annotations

import re
import shlex
from typing import NamedTuple

from meshop.model import names

MAX_NAME = 63
KI, MI = 1024, 1024 * 1024
MIN_MEMORY = 6 * MI  # Docker's minimum, as meshop's rules say
_UNITS = {"": 1, "b": 1, "k": KI, "m": MI, "g": 1024 * MI, "t": 1024 * 1024 * MI}


def dns_label(text: str, fallback: str = "app") -> str:
    """An RFC 1123 label made from a Compose name (``web_App`` -> ``web-app``); names starting with
    ``meshop-`` are meshop's own, so they get ``app-`` in front."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:MAX_NAME].strip("-") or fallback
    if label.startswith("meshop-"):
        label = ("app-" + label)[:MAX_NAME].strip("-")
    return label


def key_segment(text: str) -> str:
    """A Consul key segment (``[A-Za-z0-9_.-]``, lowercase by habit) made from a secret's or variable's name."""
    segment = re.sub(r"[^a-z0-9_.-]+", "-", text.lower().replace("_", "-")).strip("-.")
    return segment or "secret"


class PortSpec(NamedTuple):
    container: int
    host: int | None
    protocol: str
    host_ip: str = ""


_SHORT_PORT = re.compile(
    r"^(?:(?:(?P<ip>\[[0-9a-fA-F:]+\]|[0-9.]+|[A-Za-z0-9.-]+):)?(?P<host>\d*(?:-\d+)?):)?"
    r"(?P<container>\d+(?:-\d+)?)(?:/(?P<proto>[a-z]+))?$"
)


def _range(text: str) -> list[int] | None:
    if not text:
        return []
    low, _, high = text.partition("-")
    first, last = int(low), int(high or low)
    if last < first or last - first > 1000:
        return None
    return list(range(first, last + 1))


def parse_port(value: object) -> list[PortSpec] | None:
    """One ``ports:`` entry, short (``[ip:][host:]container[/proto]``, ranges too) or long form."""
    if isinstance(value, dict):
        target, published = value.get("target"), value.get("published")
        proto = str(value.get("protocol") or "tcp")
        if not isinstance(target, int) or isinstance(target, bool):
            return None
        if published in (None, ""):
            return [PortSpec(target, None, proto, str(value.get("host_ip") or ""))]
        hosts = _range(str(published))
        if not hosts:
            return None
        if len(hosts) > 1:  # a published range for one target: Docker picks one of them
            return [PortSpec(target, None, proto, str(value.get("host_ip") or ""))]
        return [PortSpec(target, hosts[0], proto, str(value.get("host_ip") or ""))]
    match = _SHORT_PORT.match(str(value).strip())
    if not match:
        return None
    containers, hosts = _range(match["container"]), _range(match["host"] or "")
    if not containers or hosts is None or (hosts and len(hosts) not in (1, len(containers))):
        return None
    proto, ip = match["proto"] or "tcp", match["ip"] or ""
    if not hosts:
        return [PortSpec(c, None, proto, ip) for c in containers]
    if len(hosts) == 1 and len(containers) == 1:
        return [PortSpec(containers[0], hosts[0], proto, ip)]
    if len(hosts) == 1:
        return None
    return [PortSpec(c, h, proto, ip) for c, h in zip(containers, hosts, strict=True)]


def port_name(container: int, protocol: str) -> str:
    return f"{protocol}-{container}"


def memory(value: object) -> str | int | None:
    """Docker's memory syntax (``512m``, ``1g``, ``1.5G``, bytes; binary units) as a meshop quantity."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        size = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", str(value), re.IGNORECASE)
        if not match:
            return None
        size = int(float(match[1]) * _UNITS[match[2].lower()] + 0.999)
    if size <= 0:
        return None
    if size % (1024 * MI) == 0:
        return f"{size // (1024 * MI)}Gi"
    if size % MI == 0:
        return f"{size // MI}Mi"
    return f"{size // KI}Ki" if size % KI == 0 else size


def memory_bytes(quantity: str | int) -> int:
    if isinstance(quantity, int):
        return quantity
    return int(quantity[:-2]) * {"Gi": 1024 * MI, "Mi": MI, "Ki": KI}[quantity[-2:]]


_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")


def duration(value: object) -> str | None:
    """A Compose duration (``1m30s``, ``10s``, ``500ms``) as meshop's Go-style one; None when not one."""
    text = str(value).strip()
    return text if _DURATION.fullmatch(text) else None


def seconds(text: str) -> float:
    total = 0.0
    factors = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text):
        total += float(number) * factors[unit]
    return total


def argv(value: object) -> tuple[list[str], str]:
    """A Compose ``command`` / ``entrypoint`` in exec form, and a note when a string needed a shell:
    Compose splits a string the way a shell would (shlex) and passes the words to Docker."""
    if isinstance(value, list):
        return [str(item) for item in value], ""
    text = str(value)
    try:
        return shlex.split(text), ""
    except ValueError:
        return ["/bin/sh", "-c", text], "its quoting is not a shell's; it runs through /bin/sh -c"


class HealthProbe(NamedTuple):
    kind: str  # "http" | "tcp"
    port: int
    path: str = "/"


_URL = re.compile(r"https?://(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])(?::(\d+))?(/[^\s'\"?#|;&)]*)?")
_PORT_PROBE = re.compile(r"(?:nc\s+-z\S*\s+\S+\s+|/dev/tcp/[^/\s]+/)(\d+)")


def health_probe(test: object) -> HealthProbe | None:
    """An HTTP check from a ``curl``/``wget`` of localhost in the Compose test, or a TCP one from
    ``nc -z host PORT`` / ``/dev/tcp/host/PORT``; None for any other command (meshop runs no commands)."""
    words = test if isinstance(test, list) else ["CMD-SHELL", str(test)]
    text = " ".join(str(word) for word in words[1:])
    url = _URL.search(text)
    if url:
        path = url[2] or "/"
        return HealthProbe("http", int(url[1] or 80), path if names.is_url_path(path) else "/")
    probe = _PORT_PROBE.search(text)
    if probe and 0 < int(probe[1]) < 65536:
        return HealthProbe("tcp", int(probe[1]))
    return None
