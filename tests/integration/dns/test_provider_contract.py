"""The contract every DNS provider keeps against its real server (contract.py), run for RFC 2136 (BIND9)
and PowerDNS (HTTP API) alike: records after each transition with every foreign record's rdata and TTL
kept, a wildcard's own mark name, foreign names wanted by meshop reported as conflicts."""

from __future__ import annotations

from tests.integration.dns.conftest import ServedZone
from tests.integration.dns.contract import (
    transitions_keep_foreign_records,
    wanted_foreign_names_are_conflicts,
    wildcard_gets_its_own_mark_name,
)


def test_records_follow_each_transition_and_foreign_ones_keep_rdata_and_ttl(served_zone: ServedZone) -> None:
    transitions_keep_foreign_records(*served_zone)


def test_a_wildcard_gets_a_mark_name_of_its_own(served_zone: ServedZone) -> None:
    wildcard_gets_its_own_mark_name(*served_zone)


def test_wanted_foreign_names_are_conflicts_not_overwritten(served_zone: ServedZone) -> None:
    wanted_foreign_names_are_conflicts(*served_zone)
