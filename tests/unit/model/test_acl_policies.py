"""The role policies: exactly what each role may read and write, judged by Consul's own matching rule
(the longest matching key/key_prefix rule wins), and no way to smuggle a rule in through a name."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshop.model import acl

RULE_RE = re.compile(r'(\w+) "([^"\n]*)" \{\n  policy = "(read|write|deny)"\n\}')
LEVEL = {"deny": 0, "read": 1, "write": 2}


def parse(rules: str) -> list[tuple[str, str, str]]:
    """(kind, name, policy) of every rule; the whole text must be made of rules and nothing else."""
    found = RULE_RE.findall(rules)
    assert RULE_RE.sub("", rules).strip() == "", f"text outside rules:\n{rules}"
    return found


def may(rules: str, kind: str, name: str, access: str) -> bool:
    """Consul's decision for ``kind`` (key, service, node, session, agent) on ``name``: an exact rule
    first, else the longest matching prefix rule, else default deny."""
    parsed = parse(rules)
    exact = [p for k, n, p in parsed if k == kind and n == name]
    matching = [(n, p) for k, n, p in parsed if k == f"{kind}_prefix" and name.startswith(n)]
    prefixes = sorted(matching, key=lambda x: len(x[0]))
    policy = exact[0] if exact else (prefixes[-1][1] if prefixes else "deny")
    return LEVEL[policy] >= LEVEL[access]


P = "meshop"
AGENT_N1 = acl.policy_rules("agent", P, "n1", services=["web", "meshop-gateway"], kept=["old", "meshop-controller"])
AGENT_N1_OLD = acl.policy_rules("agent", P, "n1", services=["web"], legacy=True)  # its agent not upgraded yet

# (role rules, kind, resource, access, allowed)
CASES = [
    # the agent of n1: its own records, its own assignments, the secrets of what is assigned to it
    (AGENT_N1, "key", "meshop/nodes/n1", "write", True),
    (AGENT_N1, "key", "meshop/nodes/n2", "write", False),
    (AGENT_N1, "key", "meshop/nodes/n10", "write", False),
    (AGENT_N1, "key", "meshop/observed/n1/web", "write", True),
    (AGENT_N1, "key", "meshop/observed/n2/web", "write", False),
    (AGENT_N1, "key", "meshop/observed/n2/web", "read", False),
    (AGENT_N1, "key", "meshop/fences/n1", "write", True),  # its fence (issue 12): an emptied KV keeps containers
    (AGENT_N1, "key", "meshop/fences/n2", "write", False),
    (AGENT_N1, "key", "meshop/fences/n2", "read", False),
    (AGENT_N1, "key", "meshop/fences/n10", "write", False),
    (AGENT_N1, "key", "meshop/events/agent-n1/1-a", "write", True),  # its own events (pulled, crashed, ...)
    (AGENT_N1, "key", "meshop/events/agent-n2/1-a", "write", False),  # issue 24: not another node's
    (AGENT_N1, "key", "meshop/events/agent-n10/1-a", "write", False),
    (AGENT_N1, "key", "meshop/events/audit/1-a", "write", False),  # nor the dashboard's audit records
    (AGENT_N1, "key", "meshop/events/controller/1-a", "write", False),
    (AGENT_N1, "key", "meshop/events/1-a", "write", False),
    (AGENT_N1, "key", "meshop/inventory/nodes/n1", "write", False),  # issue 24: its address is not its word
    (AGENT_N1, "key", "meshop/gateways/gw1", "read", True),  # whose X-Forwarded-* its Caddy trusts
    (AGENT_N1, "key", "meshop/gateways/gw1", "write", False),
    (AGENT_N1, "key", "meshop/assignments/n1/web", "read", True),
    (AGENT_N1, "key", "meshop/assignments/n1/web", "write", False),
    (AGENT_N1, "key", "meshop/assignments/n2/web", "read", False),
    (AGENT_N1, "key", "meshop/secrets/web/password", "read", True),
    (AGENT_N1, "key", "meshop/secrets/web/password", "write", False),
    (AGENT_N1, "key", "meshop/secrets/webx/password", "read", False),
    (AGENT_N1, "key", "meshop/secrets/old/password", "read", False),  # still running, no longer assigned
    (AGENT_N1, "key", "meshop/secrets/db/password", "read", False),
    (AGENT_N1, "key", "meshop/desired/services/web", "read", False),
    (AGENT_N1, "key", "meshop/desired/gateway", "read", True),  # TLS mode of --ingress-https-port sites
    (AGENT_N1, "key", "meshop/desired/gateway", "write", False),
    (AGENT_N1, "key", "meshop/desired/gateways", "read", False),
    (AGENT_N1, "key", "meshop/status/services/web", "write", False),
    (AGENT_N1, "key", "meshop/routes/a.example.com", "write", False),
    (AGENT_N1, "key", "meshop/leader", "write", False),
    (AGENT_N1, "key", "other/nodes/n1", "write", False),
    (AGENT_N1, "service", "meshop-agent-n1", "write", True),  # its heartbeat: a name bound to n1
    (AGENT_N1, "service", "meshop-agent-n2", "write", False),  # another node's (issue 24: n1 forged n2's health)
    (AGENT_N1, "service", "meshop-agent", "write", False),  # the shared name of older agents
    (AGENT_N1, "service", "meshop-agent-n1x", "write", False),
    (AGENT_N1_OLD, "service", "meshop-agent", "write", True),  # only while its agent still registers it
    (AGENT_N1_OLD, "service", "meshop-agent-n1", "write", True),  # so its upgraded agent can re-register
    (AGENT_N1_OLD, "service", "meshop-agent-n2", "write", False),
    (AGENT_N1, "service", "meshop-metrics-agent-n1", "write", True),  # its own metrics name, bound to n1
    (AGENT_N1, "service", "meshop-metrics-agent-n2", "write", False),  # another node's (issue 24)
    (AGENT_N1, "service", "meshop-metrics", "write", False),  # the old shared name
    (AGENT_N1, "service", "meshop-metrics-controller", "write", False),
    (AGENT_N1, "service", "meshop-metrics-gateway", "write", False),
    (AGENT_N1, "service", "web", "write", True),
    (AGENT_N1, "service", "old", "write", True),  # to deregister what it still runs
    (AGENT_N1, "service", "db", "write", False),
    (AGENT_N1, "service", "meshop-controller", "write", False),  # even when "kept" names it
    (AGENT_N1, "service", "meshop-gateway", "write", False),  # even when "assigned" names it (issue 24)
    (AGENT_N1, "service", "meshop-gateway-evil", "write", False),
    (AGENT_N1, "service", "meshop-metrics-x", "write", False),
    (AGENT_N1, "service", "meshop-gateway", "read", True),
    (AGENT_N1, "service", "db", "read", True),
    (AGENT_N1, "node", "any", "read", True),
    (AGENT_N1, "node", "any", "write", False),
    (AGENT_N1, "session", "any", "write", True),  # the volume locks' session, on whatever Consul node it is
    # the single-writer locks of its assigned services' stateful volumes (issue 25), and kept-aside records
    (AGENT_N1, "key", "meshop/locks/volumes/web/data", "write", True),
    (AGENT_N1, "key", "meshop/locks/volumes/db/data", "write", False),  # not assigned to n1
    (AGENT_N1, "key", "meshop/locks/volumes/old/data", "write", False),  # kept: no new lock
    (AGENT_N1, "key", "meshop/locks/volumes/webx/data", "write", False),
    (AGENT_N1, "key", "meshop/volumes/kept/n1/meshop-n1-web-data", "write", True),
    (AGENT_N1, "key", "meshop/volumes/kept/n2/meshop-n2-web-data", "write", False),
    # the controller: everything but secrets to read; placement, status, routes, events, leader to write
    (acl.policy_rules("controller", P), "key", "meshop/desired/services/web", "read", True),
    (acl.policy_rules("controller", P), "key", "meshop/desired/services/web", "write", False),
    (acl.policy_rules("controller", P), "key", "meshop/nodes/n1", "write", False),
    (acl.policy_rules("controller", P), "key", "meshop/observed/n1/web", "write", False),
    (acl.policy_rules("controller", P), "key", "meshop/assignments/n1/web", "write", True),
    (acl.policy_rules("controller", P), "key", "meshop/status/services/web", "write", True),
    (acl.policy_rules("controller", P), "key", "meshop/routes/a.example.com", "write", True),
    (acl.policy_rules("controller", P), "key", "meshop/events/controller/1-a", "write", True),
    (acl.policy_rules("controller", P), "key", "meshop/events/audit/1-a", "write", False),
    (acl.policy_rules("controller", P), "key", "meshop/events/agent-n1/1-a", "write", False),
    (acl.policy_rules("controller", P), "key", "meshop/events/1-a", "read", True),
    (acl.policy_rules("controller", P), "key", "meshop/leader", "write", True),
    (acl.policy_rules("controller", P), "key", "meshop/leaderx", "write", False),
    (acl.policy_rules("controller", P), "key", "meshop/secrets/web/password", "read", False),
    (acl.policy_rules("controller", P), "key", "meshopx/desired/services/web", "read", False),
    (acl.policy_rules("controller", P), "session", "any-node", "write", True),
    (acl.policy_rules("controller", P), "service", "meshop-controller", "write", True),
    (acl.policy_rules("controller", P), "service", "meshop-agent", "write", False),
    (acl.policy_rules("controller", P), "service", "meshop-gateway", "write", False),
    (acl.policy_rules("controller", P), "service", "meshop-metrics-controller", "write", True),
    (acl.policy_rules("controller", P), "service", "meshop-metrics", "write", False),
    (acl.policy_rules("controller", P), "service", "meshop-metrics-agent-n1", "write", False),
    # the gateway: routes, its document and the nodes to read; nothing in KV to write
    (acl.policy_rules("gateway", P), "key", "meshop/routes/a.example.com", "read", True),
    (acl.policy_rules("gateway", P), "key", "meshop/routes/a.example.com", "write", False),
    (acl.policy_rules("gateway", P), "key", "meshop/desired/gateway", "read", True),
    (acl.policy_rules("gateway", P), "key", "meshop/desired/gateway", "write", False),
    (acl.policy_rules("gateway", P), "key", "meshop/desired/services/web", "read", False),
    (acl.policy_rules("gateway", P), "key", "meshop/nodes/n1", "read", True),
    (acl.policy_rules("gateway", P), "key", "meshop/secrets/web/password", "read", False),
    (acl.policy_rules("gateway", P), "service", "meshop-metrics-gateway", "write", True),
    (acl.policy_rules("gateway", P), "service", "meshop-metrics", "write", False),
    (acl.policy_rules("gateway", P), "service", "meshop-metrics-agent-n1", "write", False),
    (acl.policy_rules("gateway", P), "service", "meshop-agent", "write", False),
    (acl.policy_rules("gateway", P), "service", "meshop-gateway", "write", True),
    (acl.policy_rules("gateway", P), "service", "meshop-controller", "write", False),
    (acl.policy_rules("gateway", P), "key", "meshop/gateways/g1", "write", True),  # its claim
    (AGENT_N1, "key", "meshop/gateways/g1", "write", False),
    (acl.policy_rules("controller", P), "key", "meshop/gateways/g1", "write", False),
    (acl.policy_rules("operator", P), "key", "meshop/gateways/g1", "write", False),
    # read-only and operator CLIs
    (acl.policy_rules("readonly", P), "key", "meshop/events/1-a", "read", True),
    (acl.policy_rules("readonly", P), "key", "meshop/leader", "read", True),
    (acl.policy_rules("readonly", P), "key", "meshop/desired/services/web", "write", False),
    (acl.policy_rules("readonly", P), "key", "meshop/fences/n1", "write", False),
    (acl.policy_rules("operator", P), "key", "meshop/fences/n1", "write", True),  # meshop cluster adopt
    (acl.policy_rules("readonly", P), "key", "meshop/secrets/web/password", "read", False),
    (acl.policy_rules("readonly", P), "service", "web", "write", False),
    (acl.policy_rules("operator", P), "key", "meshop/desired/services/web", "write", True),
    (acl.policy_rules("operator", P), "key", "meshop/desired/nodes/n1", "write", True),
    (acl.policy_rules("operator", P), "key", "meshop/status/services/web", "write", False),
    (acl.policy_rules("operator", P), "key", "meshop/assignments/n1/web", "write", False),
    (acl.policy_rules("operator", P), "key", "meshop/secrets/web/password", "read", False),
    (acl.policy_rules("operator", P), "key", "meshop/events/audit/1-a", "write", True),  # dashboard
    (acl.policy_rules("operator", P), "key", "meshop/events/agent-n1/1-a", "write", False),
    (acl.policy_rules("operator", P), "key", "meshop/inventory/nodes/n1", "write", True),  # node addresses
    (acl.policy_rules("controller", P), "key", "meshop/inventory/nodes/n1", "write", False),
    (acl.policy_rules("controller", P), "key", "meshop/inventory/nodes/n1", "read", True),
    (acl.policy_rules("gateway", P), "key", "meshop/inventory/nodes/n1", "write", False),
    (acl.policy_rules("readonly", P), "key", "meshop/inventory/nodes/n1", "write", False),
    # Prometheus: discovery only
    (acl.policy_rules("prometheus", P), "service", "meshop-metrics-agent-n1", "read", True),
    (acl.policy_rules("prometheus", P), "service", "meshop-metrics-controller", "read", True),
    (acl.policy_rules("prometheus", P), "service", "meshop-metrics-gateway", "read", True),
    (acl.policy_rules("prometheus", P), "service", "meshop-metrics", "read", False),  # the old shared name
    (acl.policy_rules("prometheus", P), "service", "meshop-agent", "read", False),
    (acl.policy_rules("prometheus", P), "service", "web", "read", False),
    (acl.policy_rules("prometheus", P), "node", "any", "read", True),
    (acl.policy_rules("prometheus", P), "agent", "any", "read", True),
    (acl.policy_rules("prometheus", P), "key", "meshop/desired/services/web", "read", False),
]


def _id(case: tuple) -> str:
    rules, kind, name, access, allowed = case
    agents = (AGENT_N1, AGENT_N1_OLD)
    role = next(r for r in acl.ROLES if rules in (*agents, acl.policy_rules(r, P, "n1" if r == "agent" else None)))
    return f"{role}-{'may' if allowed else 'not'}-{access}-{kind}-{name}"


@pytest.mark.parametrize(("rules", "kind", "name", "access", "allowed"), CASES, ids=[_id(c) for c in CASES])
def test_each_role_may_exactly_what_it_needs(rules: str, kind: str, name: str, access: str, allowed: bool) -> None:
    assert may(rules, kind, name, access) is allowed


def test_agent_policy_follows_placement() -> None:
    before = acl.policy_rules("agent", P, "n1", services=["web"])
    after = acl.policy_rules("agent", P, "n1", services=["db"])
    assert may(before, "key", "meshop/secrets/web/k", "read") and not may(after, "key", "meshop/secrets/web/k", "read")
    assert may(after, "key", "meshop/secrets/db/k", "read") and may(after, "service", "db", "write")
    assert acl.policy_rules("agent", P, "n1", ["b", "a", "a"]) == acl.policy_rules("agent", P, "n1", ["a", "b"])


def test_sync_keeps_only_names_granted_before() -> None:
    """A name n1 reports running (observed/) is kept only when its policy granted it already."""
    rules = acl.policy_rules("agent", P, "n1", services=["web", "meshop-gateway"], kept=["old"])
    assert acl.granted_services(rules) == {"web", "old"}
    assert acl.agent_service_names(["b", "meshop-controller", "a"], ["meshop-metrics"]) == ["a", "b"]


def test_the_shared_agent_name_is_recognised_only_as_rendered() -> None:
    """``acl sync`` keeps the shared name only in a policy that has it (``grants_legacy_agent_name``)."""
    assert acl.grants_legacy_agent_name(AGENT_N1_OLD)
    assert not acl.grants_legacy_agent_name(AGENT_N1)
    assert acl.granted_services(AGENT_N1_OLD) == {"web"}  # never a placement right


def test_nested_prefix_and_names() -> None:
    assert acl.policy_name("agent", "org/meshop", "n1") == "meshop-org-meshop-agent-n1"
    assert acl.agent_node_of("meshop-org-meshop-agent-n1", "org/meshop") == "n1"
    assert acl.agent_node_of("meshop-org-meshop-controller", "org/meshop") is None
    assert acl.agent_node_of("meshop-other-agent-n1", "org/meshop") is None
    assert 'key_prefix "org/meshop/observed/n1/"' in acl.policy_rules("agent", "/org/meshop/", "n1")
    assert acl.description("agent", "meshop", "n1") == "meshop agent for prefix meshop on node n1"


BAD = [
    ("role", lambda: acl.render("root", P), "role 'root' is not one of"),
    ("agent-without-node", lambda: acl.render("agent", P), "needs --node"),
    ("node-for-controller", lambda: acl.render("controller", P, "n1"), "takes no --node"),
    ("quote-in-node", lambda: acl.render("agent", P, 'n1" {}\nkey_prefix "'), "not an RFC 1123 label"),
    ("quote-in-service", lambda: acl.render("agent", P, "n1", ['web"']), "service 'web\"'"),
    ("upper-service", lambda: acl.render("agent", P, "n1", kept=["Web"]), "service 'Web'"),
    ("quote-in-prefix", lambda: acl.render("readonly", 'a"b'), "path segments"),
    ("dotdot-prefix", lambda: acl.render("readonly", "a/../b"), "path segments"),
    ("empty-prefix", lambda: acl.render("readonly", "/"), "path segments"),
    ("long-name", lambda: acl.render("readonly", "p" * 120), "longer than"),
]


@pytest.mark.parametrize(("call", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_unsafe_input_is_refused_with_the_reason(call, message: str) -> None:
    with pytest.raises(acl.AclInputError, match=re.escape(message)):
        call()


NAMES = st.one_of(st.text(max_size=20), st.from_regex(r"[a-z0-9][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True))


@given(node=NAMES, service=NAMES, prefix=st.one_of(st.text(max_size=20), st.just("meshop")))
def test_no_name_adds_a_rule(node: str, service: str, prefix: str) -> None:
    """Whatever the names, the result is refused or holds exactly the agent's rules, about them."""
    try:
        rules = acl.policy_rules("agent", prefix, node, services=[service])
    except acl.AclInputError:
        return
    parsed = parse(rules)
    reserved = service.startswith("meshop-")  # never a right by placement: one rule fewer
    assert len(parsed) == len(parse(acl.policy_rules("agent", "p", "n", services=["s"]))) - reserved
    own = ("", "meshop-", f"meshop-agent-{node}", f"meshop-metrics-agent-{node}", service)
    assert all(name in own or name.startswith(prefix.strip("/") + "/") for _, name, _ in parsed)


@pytest.mark.parametrize(
    ("component", "node", "name"),
    [
        ("controller", "", "meshop-metrics-controller"),
        ("gateway", "", "meshop-metrics-gateway"),
        ("agent", "n1", "meshop-metrics-agent-n1"),
    ],
)
def test_each_daemon_has_a_metrics_name_of_its_own(component: str, node: str, name: str) -> None:
    assert acl.metrics_service(component, node) == name


@pytest.mark.parametrize(
    ("component", "node"), [("agent", ""), ("controller", "n1"), ("agent", "N1"), ("agent", 'n1" {'), ("dashboard", "")]
)
def test_a_metrics_name_without_its_node_or_with_a_bad_one_is_refused(component: str, node: str) -> None:
    with pytest.raises(acl.AclInputError):
        acl.metrics_service(component, node)
