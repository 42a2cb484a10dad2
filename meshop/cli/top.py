"""Pure renderers for ``meshop top``: rows in, a kubectl-like table out.

CPU in millicores of one core (``250m`` = a quarter of a core), memory in Ki/Mi/Gi with its share of the
limit; a replica at 90 % of its memory limit or more is marked ``!``; a stale record shows its age
(``stale 2m``), never zeros. Every cell passes ``printable`` (``render.cells``).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from meshop.cli.render import cells, grid
from meshop.client.formats import age
from meshop.client.usage import NodeUsageRow, ReplicaRow, ServiceUsageRow, cpu_text, human_bytes, human_rate, percent


def _seen(row_age: float, stale: bool) -> str:
    shown = age(max(row_age, 0.0))
    return f"stale {shown}" if stale else shown


def nodes_table(rows: Sequence[NodeUsageRow]) -> Table:
    table = grid("NODE", "CPU", "CPU%", "MEMORY", "MEMORY%", "LOAD", "DISK%", "REPLICAS", "SAMPLED")
    for r in rows:
        table.add_row(
            *cells(
                r.node,
                cpu_text(r.cpu),
                percent(r.cpu, 100.0 * r.cpus),
                human_bytes(r.memory),
                percent(r.memory, r.memory_total),
                f"{r.load1:.2f}",
                percent(r.disk, r.disk_total),
                r.replicas,
                _seen(r.age, r.stale),
                styles={8: "yellow"} if r.stale else None,
            )
        )
    return table


def services_table(rows: Sequence[ServiceUsageRow]) -> Table:
    table = grid("SERVICE", "REPLICAS", "CPU", "MEMORY", "MEMORY%", "NET RX", "NET TX", "NODES", wrap="NODES")
    for r in rows:
        table.add_row(
            *cells(
                r.service + (" (stale)" if r.stale else ""),
                r.replicas,
                cpu_text(r.cpu),
                human_bytes(r.memory),
                percent(r.memory, r.memory_limit),
                human_rate(r.rx),
                human_rate(r.tx),
                ",".join(r.nodes),
            )
        )
    return table


def replicas_table(rows: Sequence[ReplicaRow]) -> Table:
    table = grid("SERVICE", "REPLICA", "NODE", "CPU", "MEMORY", "LIMIT", "NET RX", "NET TX", "SAMPLED")
    for r in rows:
        mark = " !" if r.near_limit else ""
        table.add_row(
            *cells(
                r.service,
                r.replica,
                r.node,
                cpu_text(r.cpu),
                f"{human_bytes(r.memory)} ({percent(r.memory, r.memory_limit)}){mark}",
                human_bytes(r.memory_limit),
                human_rate(r.rx),
                human_rate(r.tx),
                _seen(r.age, r.stale),
                styles={**({4: "bold red"} if r.near_limit else {}), **({8: "yellow"} if r.stale else {})},
            )
        )
    return table
