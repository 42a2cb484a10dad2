"""Named volumes cannot be shared across services by a name that joins to the same Docker volume."""

from __future__ import annotations

import pytest

from meshop.operator.desired import ParsedService
from meshop.operator.view import DesiredService
from meshop.operator.volumes import claim_volumes


def parsed(name: str, created: int, *volumes: str) -> ParsedService:
    spec = {"volumes": [{"name": v, "mountPath": f"/{v}"} for v in volumes]}
    return ParsedService(name, 10, DesiredService(name, 10, spec=spec, created=created), created=created)


@pytest.mark.parametrize(
    ("services", "invalid"),
    [
        pytest.param([("db", 1, ("data-x",)), ("db-data", 2, ("x",))], {"db-data": "db"}, id="later-loses"),
        pytest.param([("db", 3, ("data-x",)), ("db-data", 2, ("x",))], {"db": "db-data"}, id="earlier-keeps"),
        pytest.param([("db", 1, ("data",)), ("web", 2, ("data",))], {}, id="same-volume-name-other-service-ok"),
        pytest.param([("a", 1, ("b-c",)), ("a-b", 1, ("c",))], {"a-b": "a"}, id="tie-by-name"),
        pytest.param([("db", 1, ("data-x", "logs"))], {}, id="one-service-alone"),
    ],
)
def test_claim_volumes(services, invalid) -> None:  # type: ignore[no-untyped-def]
    result = claim_volumes({name: parsed(name, created, *vols) for name, created, vols in services})
    for name, item in result.items():
        if name in invalid:
            assert item.desired is None
            (violation,) = item.violations
            assert violation.path == "spec.volumes" and f"of service {invalid[name]}" in violation.reason
            assert item.created and item.generation == 10
        else:
            assert item.desired is not None and not item.violations


def test_invalid_documents_do_not_claim() -> None:
    broken = ParsedService("db-data", 10, None, (), created=1)
    result = claim_volumes({"db": parsed("db", 5, "data-x"), "db-data": broken})
    assert result["db"].desired is not None
