"""Every Prometheus metric meshop exports, in one place (names follow Prometheus conventions).

Components label their samples with ``component`` (controller, agent, gateway). Each process runs one
component and serves these from its ``/metrics`` endpoint (``meshop.httpserver``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from meshop import __version__

RECONCILE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

reconcile_total = Counter(
    "meshop_reconcile_total", "Reconcile passes, by component and result (ok|error).", ["component", "result"]
)
reconcile_duration_seconds = Histogram(
    "meshop_reconcile_duration_seconds", "Duration of one reconcile pass.", ["component"], buckets=RECONCILE_BUCKETS
)
last_successful_reconcile_timestamp_seconds = Gauge(
    "meshop_last_successful_reconcile_timestamp_seconds",
    "Unix time of the last reconcile pass that finished without error.",
    ["component"],
)
actions_total = Counter(
    "meshop_actions_total",
    "Actions applied, by component, kind and result (ok|error).",
    ["component", "kind", "result"],
)
drift_repairs_total = Counter(
    "meshop_drift_repairs_total", "Containers repaired because they drifted from their assignment.", ["reason"]
)
managed_containers = Gauge("meshop_managed_containers", "Managed containers on this node, by state.", ["state"])
services = Gauge("meshop_services", "Services known to the controller, by state (desired|ready|degraded).", ["state"])
service_ready = Gauge("meshop_service_ready", "1 when the service's Ready condition is True, else 0.", ["service"])
node_ready = Gauge("meshop_node_ready", "1 when the node is Ready, 0 when NotReady.", ["node"])
consul_errors_total = Counter(
    "meshop_consul_errors_total", "Failed Consul requests, by component and operation.", ["component", "operation"]
)
watch_wakeups_total = Counter(
    "meshop_watch_wakeups_total", "Reconcile wake-ups, by component and source.", ["component", "source"]
)
caddy_reloads_total = Counter(
    "meshop_caddy_reloads_total",
    "Caddy config loads, by component and result (ok|rejected|error).",
    ["component", "result"],
)
leader = Gauge("meshop_leader", "1 while this controller holds the leader lock.")
build_info = Gauge("meshop_build_info", "Always 1; the labels carry the build.", ["version", "component"])


def set_build_info(component: str) -> None:
    build_info.labels(version=__version__, component=component).set(1)
