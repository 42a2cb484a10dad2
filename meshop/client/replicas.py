"""Where a service's replicas run, for ``meshop logs`` and ``meshop exec``. Pure.

The answer comes from what agents wrote (``observed/<node>/<service>``) and their node records
(``nodes/<node>``): both are hostile input. A container id must be a Docker id (hex), a node name an
RFC 1123 label; the address SSH dials is the one the node's operator-written inventory entry allows
(``model.inventory.choose_address``: the record's claim only when listed there, and ``address_problem``
accepts it); anything else is skipped with the reason, never pasted into a remote command. Commands are
built here with every argument quoted.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from meshop.consul.kv import Listing
from meshop.errors import DocumentError
from meshop.model import keys, records
from meshop.model.inventory import choose_address, parse_inventory
from meshop.model.names import is_dns_label

_CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")
_SINCE = re.compile(
    r"^(\d{1,9}(\.\d+)?(ns|us|ms|s|m|h))+$|^\d{4}-\d\d-\d\d([T ][0-9:.]+(Z|[+-]\d\d:?\d\d)?)?$|^\d{1,12}$",
    re.ASCII,  # \d is 0-9 only: docker takes no other digits
)


@dataclass(frozen=True, order=True)
class Replica:
    node: str
    replica: int
    container_id: str
    address: str
    state: str = ""

    @property
    def label(self) -> str:
        return f"{self.node}/{self.replica}"


@dataclass(frozen=True)
class Found:
    replicas: tuple[Replica, ...]
    skipped: tuple[str, ...]  # why an observed container was not used


def find(
    service: str,
    observed: Listing,
    nodes: Listing,
    *,
    node: str | None = None,
    replica: int | None = None,
    local_cluster: bool = False,
    inventory: Listing | None = None,
    trust_records: bool = False,
) -> Found:
    """Every container of ``service`` the agents report (optionally on one node / one replica number)."""
    allowed = {
        e.key[len(keys.INVENTORY_NODES) :]: parse_inventory(e.value) for e in (inventory.entries if inventory else ())
    }
    addresses: dict[str, str] = {}
    skipped: list[str] = []
    for entry in nodes.entries:
        name = entry.key[len(keys.NODES) :]
        try:
            record = records.NodeRecord.from_dict(records.loads_json(entry.value))
        except (ValueError, KeyError, TypeError):
            continue
        chosen = choose_address(
            record.address, "", allowed.get(name), trust_records=trust_records, local_cluster=local_cluster
        )
        if record.name == name and is_dns_label(name):
            addresses[name] = chosen.address
            if chosen.problem:
                skipped.append(f"node {name}: {chosen.problem}")
    found: list[Replica] = []
    for entry in observed.entries:
        parts = keys.split(entry.key, keys.OBSERVED)
        if len(parts) != 2 or parts[1] != service or not is_dns_label(parts[0]):
            continue
        where = parts[0]
        if node is not None and where != node:
            continue
        try:
            obs = records.Observed.from_dict(records.loads_json(entry.value))
        except (ValueError, KeyError, TypeError) as exc:
            skipped.append(f"observed/{where}/{service}: unreadable ({type(exc).__name__})")
            continue
        if not addresses.get(where):
            if where not in addresses:
                skipped.append(f"node {where}: no node record")
            continue
        for container in obs.containers:
            if replica is not None and container.replica != replica:
                continue
            if not _CONTAINER_ID.fullmatch(container.id):
                skipped.append(f"{where}/{container.replica}: container id {container.id[:80]!r} is not a Docker id")
                continue
            found.append(Replica(where, container.replica, container.id, addresses[where], container.state))
    return Found(tuple(sorted(found)), tuple(skipped))


def check_since(since: str | None) -> str | None:
    if since is not None and not _SINCE.match(since):
        raise DocumentError(
            f"--since {since!r}: expected a duration (10m, 1h30m), a date (2026-12-01T10:00:00Z) or a Unix time"
        )
    return since


def logs_command(container_id: str, *, follow: bool, since: str | None, tail: int | None) -> str:
    """``docker logs`` on the node, with timestamps (for merging), stderr merged into the stream."""
    args = ["docker", "logs", "--timestamps"]
    if follow:
        args.append("--follow")
    if since:
        args += ["--since", since]
    if tail is not None:
        args += ["--tail", str(tail)]
    return shlex.join([*args, container_id]) + " 2>&1"


def exec_command(container_id: str, argv: Sequence[str], *, tty: bool, interactive: bool) -> str:
    args = ["docker", "exec"]
    if interactive:
        args.append("-i")
    if tty:
        args.append("-t")
    return shlex.join([*args, container_id, *argv])
