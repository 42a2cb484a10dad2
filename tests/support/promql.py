"""Metric names out of PromQL expressions and out of a ``/metrics`` scrape, to check that dashboards and
alert rules only query series meshop really exports.

Not a PromQL parser: it removes what cannot be a metric name (strings, label matchers, ranges, grouping
label lists, Grafana variables, numbers), then every identifier that is not a keyword and not a
function call is a metric name. ``tokens_like`` finds names by pattern in the raw text, so a test can
check that the stripping lost none.
"""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"inf", "nan", "Inf", "NaN"}
)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLES = re.compile(r"\$\{?\w+\}?")
_IDENTIFIER = re.compile(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Every metric name ``expr`` selects (``rate(x_total[5m]) / y`` -> {x_total, y})."""
    text = _STRINGS.sub(" ", expr)
    for pattern in (_MATCHERS, _RANGES, _GROUPINGS, _VARIABLES):
        text = pattern.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if word in KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue  # a keyword, or a function call such as rate( or sum(
        names.add(word)
    return names


def tokens_like(expr: str, pattern: str) -> set[str]:
    """Identifiers matching ``pattern`` anywhere outside strings and label matchers (a cross-check)."""
    text = _MATCHERS.sub(" ", _STRINGS.sub(" ", expr))
    return set(re.findall(rf"\b{pattern}\b", text))


def sample_names(exposition: str) -> set[str]:
    """Names of the samples in a Prometheus text exposition: ``x_total``, ``h_bucket``, ``h_sum``, ..."""
    return {sample.name for family in text_string_to_metric_families(exposition) for sample in family.samples}
