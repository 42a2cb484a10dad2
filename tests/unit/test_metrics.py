"""Every exported metric follows Prometheus naming conventions and is documented in docs/monitoring.md;
``init_component`` creates a component's series at zero so rates and alerts work from the first event."""

from __future__ import annotations

import re

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from meshop import metrics
from meshop.consul.services import metrics_registration
from tests.support.procs import REPO
from tests.support.promql import sample_names

OURS = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]


def test_names_follow_prometheus_conventions() -> None:
    assert len(OURS) >= 14
    for metric in OURS:
        name = metric._name
        assert re.fullmatch(r"meshop_[a-z][a-z0-9_]*", name), name
        if metric._type == "histogram":
            assert name.endswith("_seconds"), name
        if metric._type == "gauge" and "timestamp" in name:
            assert name.endswith("_timestamp_seconds"), name


def test_every_metric_is_documented_with_its_labels() -> None:
    doc = (REPO / "docs" / "monitoring.md").read_text()
    for metric in OURS:
        exported = metric._name + ("_total" if metric._type == "counter" else "")
        assert f"`{exported}`" in doc, f"{exported} missing from docs/monitoring.md"
        for label in metric._labelnames:
            assert f"`{label}`" in doc, f"label {label} of {exported} undocumented"


@pytest.mark.parametrize("component", metrics.COMPONENTS)
def test_init_component_exports_its_series_at_zero(component: str) -> None:
    metrics.init_component(component)
    text = generate_latest(REGISTRY).decode()
    names = sample_names(text)
    assert f'meshop_reconcile_total{{component="{component}",result="error"}}' in text
    assert f'meshop_build_info{{component="{component}",version="{metrics.__version__}"}} 1.0' in text
    assert {"meshop_reconcile_duration_seconds_bucket", "meshop_consul_errors_total"} <= names
    assert not any(name.endswith("_created") for name in names), "no *_created series"
    expected = {
        "agent": 'meshop_drift_repairs_total{reason="missing"}',
        "controller": 'meshop_actions_total{component="controller",kind="put-assignment",result="ok"}',
        "gateway": 'meshop_caddy_reloads_total{component="gateway",result="rejected"}',
    }[component]
    assert expected in text


@pytest.mark.parametrize(
    ("listen", "advertise", "address"),
    [
        ("127.0.0.1:9464", "100.64.0.1", "127.0.0.1"),
        ("100.64.0.1:9464", "", "100.64.0.1"),
        ("0.0.0.0:9464", "100.64.0.1", "100.64.0.1"),
        ("0.0.0.0:9464", "", ""),  # Consul (and Prometheus) then use the Consul node's address
        ("[::]:9464", "", ""),
    ],
)
def test_metrics_registration_never_advertises_a_wildcard(listen: str, advertise: str, address: str) -> None:
    reg = metrics_registration("agent", "n1", listen, "n1", advertise)
    assert (reg.address, reg.port, reg.name) == (address, 9464, "meshop-metrics-agent-n1")
    assert reg.meta == {"component": "agent", "instance": "n1", "node": "n1"}
