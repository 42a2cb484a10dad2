"""Every Prometheus metric meshop exports, in one place (names follow Prometheus conventions).

Each process runs one component (controller, agent or gateway) and serves these from its ``/metrics``
endpoint (``meshop.daemon.status_server``); samples carry a ``component`` label wherever several components count
the same thing. ``init_component`` creates the label sets a component will use at zero when it starts,
so rates and alerts work from the first event and a dashboard never shows "no data" for a quiet daemon.
docs/monitoring.md lists every metric with its labels.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from meshop import __version__

disable_created_metrics()  # no *_created series: they double the series count and no panel or alert uses them

COMPONENTS = ("controller", "agent", "gateway")
RESULTS = ("ok", "error")
RECONCILE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
AGENT_ACTION_KINDS = ("pull", "create", "start", "remove", "replace")
CONTROLLER_ACTION_KINDS = tuple(
    f"{verb}-{what}" for verb in ("put", "delete") for what in ("assignment", "status", "node-status", "route", "event")
)
DRIFT_REASONS = ("missing", "stopped", "created-leftover", "dead")
CONTAINER_STATES = ("created", "running", "restarting", "paused", "exited", "dead", "removing")
CADDY_RESULTS = ("ok", "rejected", "error")
DNS_RESULTS = ("ok", "refused", "error")
DNS_KINDS = ("create", "update", "withdraw")
CONSUL_OPERATIONS = {
    "controller": ("watch", "read", "write", "guarded-write", "election", "heartbeat", "dns"),
    "agent": ("watch", "assignments", "registrations", "observed", "secrets", "heartbeat"),
    "gateway": ("watch", "registration"),
}

# --- every component ---------------------------------------------------------------------------------

reconcile_total = Counter(
    "meshop_reconcile_total", "Reconcile passes, by component and result (ok|error).", ["component", "result"]
)
reconcile_duration_seconds = Histogram(
    "meshop_reconcile_duration_seconds",
    "Duration of one reconcile pass, by component and result (ok|error).",
    ["component", "result"],
    buckets=RECONCILE_BUCKETS,
)
last_successful_reconcile_timestamp_seconds = Gauge(
    "meshop_last_successful_reconcile_timestamp_seconds",
    "Unix time of the last reconcile pass that finished without error.",
    ["component"],
)
reconcile_consecutive_failures = Gauge(
    "meshop_reconcile_consecutive_failures",
    "Reconcile passes failed in a row (0 after a clean pass); the loop backs off exponentially meanwhile.",
    ["component"],
)
reconcile_wakeups_total = Counter(
    "meshop_reconcile_wakeups_total",
    "Why reconcile passes ran: a watch's name, docker, health, pull, resync, requeue, start, ...",
    ["component", "reason"],
)
consul_errors_total = Counter(
    "meshop_consul_errors_total", "Failed Consul requests, by component and operation.", ["component", "operation"]
)
refused_records_total = Counter(
    "meshop_refused_records_total",
    "Records read from KV and refused (not JSON, a wrong type, an unknown state), by component and KV folder.",
    ["component", "kind"],
)
watch_wakeups_total = Counter(
    "meshop_watch_wakeups_total",
    "Consul blocking-query watches that returned a change, by component and watch.",
    ["component", "watch"],
)
actions_total = Counter(
    "meshop_actions_total",
    "Changes applied: agent container actions, controller KV writes; by component, kind and result (ok|error).",
    ["component", "kind", "result"],
)
build_info = Gauge("meshop_build_info", "Always 1; the labels carry the build.", ["version", "component"])

# --- agent -------------------------------------------------------------------------------------------

drift_repairs_total = Counter(
    "meshop_drift_repairs_total", "Containers repaired because they drifted from their assignment.", ["reason"]
)
managed_containers = Gauge("meshop_managed_containers", "Managed containers on this node, by state.", ["state"])

# usage (agent/sampler.py): one series per running replica of this node, removed when the replica goes
REPLICA_LABELS = ["service", "replica", "node"]
replica_cpu_percent = Gauge(
    "meshop_replica_cpu_percent",
    "CPU of one replica over the last sampling interval, percent of one core.",
    REPLICA_LABELS,
)
replica_memory_bytes = Gauge(
    "meshop_replica_memory_bytes",
    "Memory of one replica without inactive page cache (as docker stats).",
    REPLICA_LABELS,
)
replica_memory_limit_bytes = Gauge(
    "meshop_replica_memory_limit_bytes", "Memory limit of one replica (the host's memory without one).", REPLICA_LABELS
)
replica_io_bytes_per_second = Gauge(
    "meshop_replica_io_bytes_per_second",
    "Network (rx|tx) and block I/O (read|write) of one replica over the last sampling interval, by direction.",
    [*REPLICA_LABELS, "direction"],
)
node_cpu_percent = Gauge(
    "meshop_node_cpu_percent", "CPU of the whole host, percent of one core (/proc/stat).", ["node"]
)
node_memory_bytes = Gauge(
    "meshop_node_memory_bytes", "Host memory by kind (used: MemTotal - MemAvailable | total).", ["node", "kind"]
)
node_disk_bytes = Gauge(
    "meshop_node_disk_bytes", "Disk of the agent's filesystem by kind (used|total).", ["node", "kind"]
)
node_load = Gauge("meshop_node_load", "Load average by window (1m|5m|15m).", ["node", "window"])
usage_sample_duration_seconds = Histogram(
    "meshop_usage_sample_duration_seconds",
    "Time one usage pass took (stats of every running replica, /proc, the KV write when one was due).",
    buckets=RECONCILE_BUCKETS,
)
usage_writes_total = Counter(
    "meshop_usage_writes_total", "Writes of the node's usage record to KV, by result (ok|error).", ["result"]
)

# --- controller --------------------------------------------------------------------------------------

services = Gauge(
    "meshop_services",
    "Services, by state (desired|ready|degraded|invalid); exported by the leader only.",
    ["state"],
)
service_ready = Gauge(
    "meshop_service_ready", "1 when the service's Ready condition is True, else 0; leader only.", ["service"]
)
rebalance_moves_total = Counter(
    "meshop_rebalance_moves_total",
    "Rebalancing moves of one replica onto a returning or new node, by result (started|done|abandoned).",
    ["result"],
)
node_ready = Gauge("meshop_node_ready", "1 when the node is Ready, 0 when NotReady.", ["node"])
dns_updates_total = Counter(
    "meshop_dns_updates_total",
    "DNS record changes sent by the leader's DNS writer, by kind (create|update|withdraw) and result "
    "(ok|refused: the server said no, e.g. a wrong TSIG key|error: unreachable, timeout).",
    ["kind", "result"],
)
dns_names = Gauge("meshop_dns_names", "Names the DNS writer manages, by mode (gateways|direct); leader only.", ["mode"])
dns_failing = Gauge(
    "meshop_dns_failing",
    "1 while the DNS writer's last pass failed (zone unreadable, TSIG key refused, an update refused), else 0; "
    "leader only.",
)
leader = Gauge("meshop_leader", "1 while this controller holds the leader lock (always 0 in agents and gateways).")

# --- gateway (and any component that loads a Caddy config) --------------------------------------------

caddy_reloads_total = Counter(
    "meshop_caddy_reloads_total",
    "Caddy config loads, by component and result (ok|rejected|error).",
    ["component", "result"],
)
caddy_config_refused = Gauge(
    "meshop_caddy_config_refused",
    "1 while this component's Caddy refused the last config it was given (the previous config keeps serving, "
    "so nothing new can be served), else 0; alert `MeshopCaddyConfigRefused`.",
    ["component"],
)


def set_build_info(component: str) -> None:
    build_info.labels(version=__version__, component=component).set(1)


def init_component(component: str) -> None:
    """Build info, and every label set ``component`` is known to use, created at zero."""
    set_build_info(component)
    reconcile_consecutive_failures.labels(component)
    for result in RESULTS:
        reconcile_total.labels(component, result)
        reconcile_duration_seconds.labels(component, result)
    for operation in CONSUL_OPERATIONS.get(component, ("watch",)):
        consul_errors_total.labels(component, operation)
    if component == "agent":
        for kind in AGENT_ACTION_KINDS:
            for result in RESULTS:
                actions_total.labels(component, kind, result)
        for reason in DRIFT_REASONS:
            drift_repairs_total.labels(reason)
        for state in CONTAINER_STATES:
            managed_containers.labels(state)
    elif component == "controller":
        for kind in CONTROLLER_ACTION_KINDS:
            for result in RESULTS:
                actions_total.labels(component, kind, result)
        for kind in DNS_KINDS:
            for result in DNS_RESULTS:
                dns_updates_total.labels(kind, result)
        for mode in ("gateways", "direct"):
            dns_names.labels(mode)
        dns_failing.set(0)
    elif component == "gateway":
        for result in CADDY_RESULTS:
            caddy_reloads_total.labels(component, result)
        caddy_config_refused.labels(component).set(0)
