"""A daemon started while Consul is down still becomes discoverable: KeptRegistration retries each pass."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from meshop.consul.client import make_client
from meshop.consul.config import ConsulConfig
from meshop.consul.services import KeptRegistration, Services, metrics_registration
from tests.support.consul_server import ConsulServer


def _registration_errors() -> float:
    labels = {"component": "gateway", "operation": "registration"}
    return REGISTRY.get_sample_value("meshop_consul_errors_total", labels) or 0.0


def _registered(services: Services, service_id: str) -> bool:
    _, instances = services.instances("meshop-metrics-gateway")
    return any(i.service_id == service_id for i in instances)


def test_registration_is_retried_until_consul_takes_it_and_withdrawn_on_stop(tmp_path: Path) -> None:
    server = ConsulServer(tmp_path / "consul", persistent=True).start()
    try:
        config = ConsulConfig.from_env({}, addr=server.addr, timeout=2.0)
        services = Services(config, make_client(config))
        kept = KeptRegistration(services, metrics_registration("gateway", "kept", "127.0.0.1:9999"), "gateway")
        server.stop()
        before = _registration_errors()
        kept.ensure()
        assert not kept.registered
        assert _registration_errors() == before + 1

        server.start()
        kept.ensure()
        assert kept.registered
        assert _registered(services, "meshop-metrics-gateway.kept")
        kept.ensure()  # no second request once registered
        kept.withdraw()
        assert not _registered(services, "meshop-metrics-gateway.kept")
    finally:
        server.stop()
