"""The PromQL name extraction the monitoring tests rely on: it must find every metric and nothing else."""

from __future__ import annotations

import pytest

from tests.support.promql import metric_names, sample_names, tokens_like

CASES = [
    ("up", {"up"}),
    ('up{job="meshop"} == 0', {"up"}),
    ("sum by (component, result) (rate(meshop_reconcile_total[$__rate_interval]))", {"meshop_reconcile_total"}),
    (
        "histogram_quantile(0.95, sum by (component, le) (rate(meshop_reconcile_duration_seconds_bucket[5m])))",
        {"meshop_reconcile_duration_seconds_bucket"},
    ),
    ("meshop_node_ready == 0 and on (instance) meshop_leader == 1", {"meshop_node_ready", "meshop_leader"}),
    ("(sum(meshop_leader) or vector(0)) == 0", {"meshop_leader"}),
    (
        'time() - x_seconds > 300 or (y_total{result="ok"} == 0 and on (instance) time() - z > 3e2)',
        {"x_seconds", "y_total", "z"},
    ),
    ('max by (state) (meshop_services{state=~"desired|ready"}) offset 5m', {"meshop_services"}),
    ("a / ignoring(kind) group_left(node) b", {"a", "b"}),
]


@pytest.mark.parametrize(("expr", "names"), CASES, ids=[c[0][:40] for c in CASES])
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_tokens_like_ignores_label_values_and_strings() -> None:
    assert tokens_like('meshop_a{x="meshop_b"} + label_replace(meshop_d, "y", "meshop_e", "", "")', r"meshop_\w+") == {
        "meshop_a",
        "meshop_d",
    }


def test_sample_names_keep_histogram_and_counter_suffixes() -> None:
    text = (
        "# TYPE c counter\nc_total 1\n"
        "# TYPE h histogram\n"
        'h_bucket{le="1"} 0\nh_bucket{le="+Inf"} 0\nh_sum 0\nh_count 0\n'
        "# TYPE g gauge\ng 1\n"
    )
    assert sample_names(text) == {"c_total", "h_bucket", "h_sum", "h_count", "g"}
