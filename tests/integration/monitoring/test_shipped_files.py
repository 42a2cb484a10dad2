"""The shipped charts/monitoring files pass promtool, the alerts behave as their rule tests say, and the
dashboard is a Grafana dashboard whose every query names a Prometheus data source."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.integration.monitoring.stack import MONITORING
from tests.support.prometheus_server import prometheus_binary

HERE = Path(__file__).parent


def promtool(*args: str, cwd: Path = MONITORING) -> str:
    done = subprocess.run([prometheus_binary("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def test_promtool_check_rules_passes_on_the_shipped_alerts() -> None:
    shipped = (MONITORING / "alerts.yml").read_text().count("- alert: ")
    out = promtool("check", "rules", str(MONITORING / "alerts.yml"))
    assert shipped >= 8 and f"SUCCESS: {shipped} rules found" in out  # every rule in the file was read


def test_promtool_check_config_passes_and_loads_the_rule_file_next_to_it(tmp_path: Path) -> None:
    out = promtool("check", "config", str(MONITORING / "prometheus.yml"), cwd=tmp_path)  # any working directory
    assert "SUCCESS: 1 rule files found" in out and "alerts.yml" in out


def test_alerts_fire_when_they_should_and_not_before() -> None:
    out = promtool("test", "rules", "alerts_test.yml", cwd=HERE)
    assert "SUCCESS" in out


def test_dashboard_parses_and_every_query_uses_the_datasource_variable() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] == "meshop"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        assert all(t["expr"].strip() and t["refId"] for t in panel["targets"]), panel["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("reconcile", "errors", "services", "node", "containers", "caddy", "leader", "last successful"):
        assert topic in titles, f"no panel about {topic}"
