"""A real Prometheus finds the daemons through Consul and scrapes them; the shipped dashboard and alert
rules query only metrics a real scrape of controller, agent and gateway contains."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.monitoring.stack import MONITORING, Stack, prometheus_config, sleeper_doc
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until
from tests.support.prometheus_server import PrometheusServer
from tests.support.promql import metric_names, sample_names, tokens_like

PROMETHEUS_OWN = {"up"}  # series Prometheus makes itself, never in a daemon's /metrics


@pytest.fixture
def prometheus(consul_server: ConsulServer, stack: Stack, tmp_path: Path) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path / "prometheus", prometheus_config(consul_server.addr, stack.prefix)).start()
    try:
        yield server
    finally:
        server.stop()


def value(prometheus: PrometheusServer, expr: str) -> float | None:
    """The single value of an instant query, None when it returns nothing."""
    result = prometheus.query(expr)
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


def test_prometheus_discovers_controller_and_agent_via_consul_and_sees_reconciles_grow(
    stack: Stack, prometheus: PrometheusServer
) -> None:
    addrs = stack.wait_registered()
    ctl, agent = addrs["controller"], addrs["agent"]

    def up(addr: str) -> bool:
        return value(prometheus, f'up{{job="meshop",instance="{addr}"}}') == 1

    wait_until(lambda: up(ctl) and up(agent), 30, what=f"up == 1 for both\n{prometheus.targets()}")
    labels = {t["labels"]["instance"]: t["labels"] for t in prometheus.targets()}
    assert labels[ctl]["component"] == "controller" and labels[ctl]["instance_id"] == stack.instances["controller"]
    assert labels[agent]["component"] == "agent" and labels[agent]["node"] == stack.node

    def passes(component: str, addr: str) -> float:
        query = f'meshop_reconcile_total{{component="{component}",result="ok",instance="{addr}"}}'
        return value(prometheus, query) or 0.0

    # counts before the document (the module's other test may have applied one already)
    desired = f'meshop_services{{state="desired",instance="{ctl}"}}'
    running = f'meshop_managed_containers{{state="running",instance="{agent}"}}'
    creates = f'meshop_actions_total{{kind="create",result="ok",instance="{agent}"}}'
    wait_until(
        lambda: passes("controller", ctl) > 0 and passes("agent", agent) > 0 and value(prometheus, desired) is not None,
        15,
        what="first passes of both, scraped",
    )
    before = {q: value(prometheus, q) or 0.0 for q in (desired, running, creates)}
    before |= {"controller": passes("controller", ctl), "agent": passes("agent", agent)}
    stack.apply(sleeper_doc("sleepy", stack.node))

    wait_until(
        lambda: value(prometheus, desired) == before[desired] + 1 and passes("controller", ctl) > before["controller"],
        20,
        what=f"the controller's pass over the new document, scraped\n{stack.log_tails()}",
    )
    wait_until(
        lambda: (
            value(prometheus, running) == before[running] + 1
            and (value(prometheus, creates) or 0) > before[creates]
            and passes("agent", agent) > before["agent"]
        ),
        20,
        what=f"the agent's container, scraped\n{stack.log_tails()}",
    )
    # honor_labels keeps meshop's own component label: nothing renamed to exported_component
    assert all("exported_component" not in s["metric"] for s in prometheus.query('{__name__=~"meshop_.+"}'))


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and all(p.get("targets") for p in panels), "every panel queries something"
    return [target["expr"] for panel in panels for target in panel["targets"]]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_every_metric_the_dashboard_and_alerts_query_is_in_a_real_scrape(stack: Stack) -> None:
    addrs = stack.wait_registered()
    stack.apply(sleeper_doc("dash", stack.node))  # so per-service and per-node series exist
    # a stateful volume with a backup: its series exist while the agent holds it, even when its backups fail
    # (here: no password secret), which is when the staleness alert matters
    vault = yaml.safe_load(sleeper_doc("vault", stack.node))
    backup = {"repository": str(stack.workdir / "vault-repo"), "passwordSecret": "restic", "every": "1h"}
    vault["spec"]["volumes"] = [{"name": "data", "mountPath": "/data", "stateful": {"backup": backup}}]
    stack.apply(yaml.safe_dump(vault))

    def scrape(component: str) -> str:
        status, body = stack.get(addrs[component], "/metrics")
        assert status == 200
        return body

    wait_until(lambda: 'meshop_service_ready{service="dash"}' in scrape("controller"), 20, what="dash in a scrape")
    wait_until(lambda: "meshop_node_ready{" in scrape("controller"), 20, what="the node in a scrape")
    usage = f'meshop_replica_cpu_percent{{node="{stack.node}",replica="0",service="dash"}}'
    wait_until(lambda: usage in scrape("agent"), 30, what="dash's usage in the agent's scrape")
    age = 'meshop_volume_backup_age_seconds{service="vault",volume="data"}'
    wait_until(lambda: age in scrape("agent"), 30, what="vault's backup age in the agent's scrape")
    scraped = set().union(*(sample_names(scrape(c)) for c in addrs))

    exprs = dashboard_exprs() + alert_exprs()
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        assert tokens_like(expr, r"(?:meshop|process)_\w+") <= names, f"extraction missed a name in {expr!r}"
        used |= names
    assert {"meshop_reconcile_total", "meshop_reconcile_duration_seconds_bucket", "meshop_caddy_reloads_total"} <= used
    missing = used - scraped - PROMETHEUS_OWN
    assert not missing, f"queried but not exported by any daemon: {sorted(missing)}"
