"""Property: what ``meshop get KIND NAME -o yaml|json`` prints for a stored document reads back, through
what apply/diff/validate read (``read_sources``, which drops ``status``), as the same document, so
apply's plan calls it "unchanged". (Against a real Consul: tests/integration/cli/test_cli_roundtrip_edit.py.)"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshop.cli.views import documents_text
from meshop.client.apply import canonical, plan_changes
from meshop.client.describe import server_object
from meshop.client.edit import edit_text, read_edited, with_errors
from meshop.client.sources import SourcedDocument, read_sources
from meshop.consul.kv import Entry
from meshop.model import PERMISSIVE_POLICY, validate
from tests.unit.model.test_properties import label, label_maps, service_docs

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
free_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@st.composite
def node_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "meshop.io/v1alpha1", "kind": "Node", "metadata": {"name": draw(label)}}
    if draw(st.booleans()):
        doc["metadata"]["labels"] = draw(label_maps)
    if draw(st.booleans()):
        spec = draw(st.fixed_dictionaries({}, optional={"cordon": st.booleans(), "drain": st.booleans()}))
        doc["spec"] = spec
    return doc


domain_names = st.lists(label, min_size=1, max_size=3).map(".".join)


@st.composite
def gateway_docs(draw: st.DrawFn) -> dict[str, Any]:
    """Gateway documents: domains, every TLS mode, with and without RFC 2136 DNS updates."""
    spec: dict[str, Any] = {"domains": draw(st.lists(domain_names, min_size=1, max_size=3, unique=True))}
    mode = draw(st.sampled_from(["acme", "internal", "off"]))  # no tls: acme, which needs an email
    spec["tls"] = {"mode": mode, "email": f"{draw(label)}@example.com"} if mode == "acme" else {"mode": mode}
    if draw(st.booleans()):
        spec["dns"] = {
            "provider": "rfc2136",
            "server": f"{draw(domain_names)}:{draw(st.integers(1, 65535))}",
            "zone": spec["domains"][0],
            "keyName": draw(label),
            "keySecretKey": f"meshop/secrets/meshop-dns/{draw(label)}",
            **draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "ttl": st.integers(5, 86400),
                        "records": st.sampled_from(["hosts", "wildcard"]),
                        "keyAlgorithm": st.sampled_from(["hmac-sha256", "hmac-sha512"]),
                        "ownerId": label,
                    },
                )
            ),
        }
    return {"apiVersion": "meshop.io/v1alpha1", "kind": "Gateway", "metadata": {"name": draw(label)}, "spec": spec}


@st.composite
def annotated(draw: st.DrawFn, docs: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """Documents with free-text annotations: the strings YAML likes to re-type ("yes", "1e3", "~", ...)."""
    doc = draw(docs)
    tricky = st.one_of(free_text, st.sampled_from(["yes", "no", "on", "1e3", "0x1F", "~", "null", "- a", "a: b", "'"]))
    doc["metadata"]["annotations"] = draw(st.dictionaries(label, tricky, max_size=3))
    return doc


documents = st.one_of(annotated(service_docs()), annotated(node_docs()), annotated(gateway_docs()))
statuses = st.dictionaries(st.sampled_from(["state", "readyReplicas", "summary", "conditions"]), free_text, max_size=3)


def stored(doc: dict[str, Any]) -> Entry:
    """The KV entry apply writes for ``doc``."""
    if doc["kind"] == "Gateway":
        return Entry("desired/gateway", canonical(doc).encode(), modify_index=7)
    kind = "services" if doc["kind"] == "Service" else "nodes"
    return Entry(f"desired/{kind}/{doc['metadata']['name']}", canonical(doc).encode(), modify_index=7)


@SETTINGS
@given(documents, statuses, st.sampled_from(["yaml", "json"]), st.integers(1, 3))
def test_get_output_applies_back_unchanged(
    tmp_path_factory: pytest.TempPathFactory, doc: dict[str, Any], status: dict[str, Any], fmt: str, copies: int
) -> None:
    assert validate(doc, PERMISSIVE_POLICY) == []
    entry = stored(doc)
    shown = server_object(doc["kind"], doc["metadata"]["name"], json.loads(entry.value), status)
    path = Path(tmp_path_factory.mktemp("get")) / f"got.{fmt}"
    path.write_text(documents_text([shown] * copies, fmt, one=copies == 1), encoding="utf-8")

    read = read_sources((str(path),))
    assert [item.doc for item in read] == [doc] * copies  # status dropped, nothing else changed
    assert [change.action for change in plan_changes(read, {entry.key: entry})] == ["unchanged"] * copies


@SETTINGS
@given(documents, st.lists(free_text, min_size=1, max_size=3))
def test_the_edit_text_reads_back_as_the_document_with_or_without_errors(
    doc: dict[str, Any], errors: list[str]
) -> None:
    label_ = f"{doc['kind'].lower()}/{doc['metadata']['name']}"
    text = edit_text(label_, doc, 7)
    for shown in (text, with_errors(text, errors), with_errors(with_errors(text, errors), errors)):
        assert read_edited(shown, doc["kind"], doc["metadata"]["name"], label_).doc == doc
    assert with_errors(with_errors(text, errors), ["x"]) == with_errors(text, ["x"])  # old errors go


def test_status_is_dropped_only_at_the_top(tmp_path: Path) -> None:
    doc = {"apiVersion": "meshop.io/v1alpha1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {}}
    path = tmp_path / "n1.yaml"
    path.write_text(json.dumps({**copy.deepcopy(doc), "status": {"state": "Ready"}}))
    assert read_sources((str(path),))[0].doc == doc
    doc["spec"] = {"status": "x"}
    path.write_text(json.dumps(doc))
    assert validate(read_sources((str(path),))[0].doc) != []  # still refused inside the document


@pytest.mark.parametrize(
    ("doc", "action"),
    [
        ({}, "unchanged"),  # what `get node` prints for a node nobody wrote a document for
        ({"spec": {}}, "unchanged"),
        ({"spec": {"cordon": False}}, "unchanged"),  # the default, said out loud
        ({"spec": {"cordon": True}}, "created"),
        ({"metadata": {"name": "n1", "labels": {"zone": "a"}}}, "created"),
        ({"metadata": {"name": "n1", "annotations": {"why": "x"}}}, "created"),
    ],
)
def test_a_bare_node_for_a_node_without_a_document_applies_as_unchanged(doc: dict[str, Any], action: str) -> None:
    node = {"apiVersion": "meshop.io/v1alpha1", "kind": "Node", "metadata": {"name": "n1"}, **doc}
    assert validate(node, PERMISSIVE_POLICY) == []
    item = SourcedDocument("n1.yaml", node)
    assert [change.action for change in plan_changes([item], {"desired/nodes/n1": None})] == [action]
