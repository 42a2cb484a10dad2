"""The node address inventory: which addresses a node may be dialled at, as the operator recorded them. Pure.

A node writes its own record (``nodes/<n>``) and, through its Consul agent's token, its own catalog entry:
both are its own word, and a compromised node once pointed routes, DNS direct mode and ``meshop
logs``/``exec`` at the gateway host's own addresses with them (issue 24). ``inventory/nodes/<n>`` —
``{"addresses": ["100.64.0.11", ...]}``, written by ``meshop node add`` or ``meshop nodes inventory`` with
the operator's (or management) token; no agent's token may write under ``inventory/`` — is what the node
may claim. The rule, for every consumer (``node_address``):

* with an entry: the node's record address when the entry lists it, else the catalog address when the
  entry lists it, else the entry's first address; each must also pass ``address_problem``. A claim
  outside the entry is never dialled (the reader says so once).
* without an entry: no address ("" with the reason), so the node serves no route and ``logs``/``exec``
  skip it — unless the reader was started with ``--trust-node-records``, which keeps the rule from
  before the inventory (catalog, then record) for fleets not yet inventoried. Refusing is the default
  because an address nobody but the node vouched for is exactly what the attack used; the cost is that a
  fleet upgraded without running ``meshop nodes inventory`` serves no route until it does (the
  controller logs which nodes lack an entry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from meshop.model.addresses import address_problem
from meshop.model.records import loads_json

MAX_ADDRESSES = 16


@dataclass(frozen=True)
class Chosen:
    """The address to dial ("" for none) and, when a claim was set aside or nothing fits, why."""

    address: str
    problem: str | None = None


def parse_inventory(raw: bytes | str | None) -> tuple[str, ...] | None:
    """The addresses of one ``inventory/nodes/<n>`` value; None when it is absent or not
    ``{"addresses": [str, ...]}`` (1 to 16 non-empty strings): a broken entry grants nothing."""
    if raw is None:
        return None
    try:
        data = loads_json(raw)  # the strict reader: deep nesting, NaN, non-UTF-8 refused, never raised
    except ValueError:
        return None
    addresses = data.get("addresses")
    if not isinstance(addresses, list) or not 0 < len(addresses) <= MAX_ADDRESSES:
        return None
    if not all(isinstance(a, str) and a for a in addresses):
        return None
    return tuple(addresses)


def inventory_value(addresses: tuple[str, ...] | list[str]) -> str:
    """The stored form of an entry (the writer checks the addresses first)."""
    return json.dumps({"addresses": list(addresses)})


def choose_address(
    record_address: str,
    catalog_address: str,
    allowed: tuple[str, ...] | None,
    *,
    trust_records: bool = False,
    local_cluster: bool = False,
) -> Chosen:
    """The address a node is dialled at, by the rule of the module docstring."""

    def fine(address: str) -> bool:
        return bool(address) and address_problem(address, local_cluster=local_cluster) is None

    if allowed is None:
        if not trust_records:
            return Chosen("", "no entry in inventory/nodes/ (meshop nodes inventory NODE ADDRESS)")
        if fine(catalog_address):
            return Chosen(catalog_address)
        problem = address_problem(record_address, local_cluster=local_cluster)
        return Chosen("" if problem else record_address, problem)
    for claim in (record_address, catalog_address):
        if claim in allowed and fine(claim):
            return Chosen(claim)
    usable = [a for a in allowed if fine(a)]
    if not usable:
        why = address_problem(allowed[0], local_cluster=local_cluster)
        return Chosen("", f"no usable address in its inventory entry ({why})")
    claims = ", ".join(repr(c[:80]) for c in (record_address, catalog_address) if c and c not in allowed)
    return Chosen(usable[0], f"claims {claims} outside its inventory entry; dialled at {usable[0]}" if claims else None)
