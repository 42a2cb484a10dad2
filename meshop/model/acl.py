"""Least-privilege Consul ACL policies, one per meshop role, rendered from (role, prefix, node, services).

Pure: no I/O. ``meshop acl init`` / ``meshop acl token`` / ``meshop acl sync`` (``meshop.client.acl``)
send what this module renders. Each rule follows from what the role's code reads and writes
(docs/security.md, "Roles and tokens"):

* ``controller``: reads the whole prefix except ``secrets/`` (but ``secrets/meshop-dns/``: the TSIG key or
  PowerDNS API key of the DNS writer); writes ``assignments/``, ``status/``,
  ``routes/``, ``events/controller/``, ``requests/`` (it deletes a ``volume restore --to-node`` move once the
  target restored) and the ``leader`` lock (sessions on any Consul node: it may run on any);
  registers ``meshop-controller`` and ``meshop-metrics-controller``. Its events go to ``events/controller/``.
* ``gateway``: reads ``routes/``, ``desired/gateway`` and ``nodes/``; registers ``meshop-metrics-gateway`` and
  ``meshop-gateway`` (its health, which DNS follows) and writes its claim ``gateways/<id>`` (the address
  the DNS writer accepts for that registration); reads and writes ``secrets/meshop-gateway/`` (the CA
  and certificates the gateways share).
* ``agent`` of node N: writes ``nodes/N``, ``observed/N/``, ``usage/N``, ``backups/N/`` (its stateful volumes'
  backups), its fence ``fences/N`` and its own events
  (``events/agent-N/``: what it did to containers, bounded per writer); reads ``assignments/N/``,
  and consumes ``requests/<S>/`` of its services S (``meshop volume backup|restore``; ``requests/<S>/move``
  only read: a holder must not move its own service), reads
  ``desired/gateway`` (its TLS mode, for ``--ingress-https-port``); registers ``meshop-agent-N``
  (its heartbeat, bound to N: ``meshop.model.agents``; the shared ``meshop-agent`` of older releases
  only while ``acl sync`` finds N's agent still using it),
  ``meshop-metrics-agent-N`` (its own metrics name, bound to N) and the services assigned to it; reads
  ``secrets/<S>/`` and takes the volume locks ``locks/volumes/<S>/`` only for the services S assigned to N
  (sessions: any Consul node, as the controller), and writes the records of stale volumes it keeps aside,
  ``volumes/kept/N/``. The assigned services change with placement,
  so this policy is re-rendered by ``meshop acl sync`` (``services``: assigned to N by the controller;
  ``kept``: names N was granted before and still reports running in ``observed/N/``, so it can deregister
  what it stops — never a name N only reports, since ``observed/N/`` is N's own word).

Service names (docs/security.md, "Service names"): ``meshop-*`` names are meshop's own, so every
role that registers gets ``service_prefix "meshop-"`` read (never write) and exact write rules for the few names its
daemon registers (an exact rule beats a prefix rule): the controller ``meshop-controller`` and
``meshop-metrics-controller``, the gateway ``meshop-gateway`` and ``meshop-metrics-gateway``, the agent
of N ``meshop-agent-N`` and ``meshop-metrics-agent-N`` (``metrics_service``). A ``meshop-*`` name never
becomes an agent's service right, whatever placement says.
* ``readonly``: reads the whole prefix except ``secrets/`` (status, get, describe, events, diff).
* ``operator``: ``readonly`` plus writes to ``desired/`` (apply, import, delete, cordon, drain), to
  ``fences/`` (``meshop cluster adopt``), to ``events/audit/`` (the dashboard records its actions
  there, where no agent can write), to ``inventory/`` (the addresses each node may be dialled at:
  ``meshop nodes inventory``; no other role writes there, so a node cannot widen its own entry) and to
  ``requests/`` (``meshop volume backup|restore``).
* ``prometheus``: reads the ``meshop-metrics-*`` services and the nodes, and the local agent's datacenter
  (what ``consul_sd_configs`` asks for).

Every name pasted into HCL is checked first (prefix segments, RFC 1123 node and service names):
a quote or a brace in a rule would be a way to grant more than this module means to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from meshop.model import keys
from meshop.model.agents import LEGACY_AGENT_SERVICE, agent_service
from meshop.model.keys import AUDIT_EVENTS, CONTROLLER_EVENTS, agent_events
from meshop.model.names import is_dns_label

ROLES = ("controller", "gateway", "agent", "readonly", "operator", "prometheus")
NODE_ROLES = ("agent",)

CONTROLLER_SERVICE = "meshop-controller"
METRICS_SERVICE = "meshop-metrics"  # the stem: each daemon registers its /metrics under metrics_service()
METRICS_COMPONENTS = ("controller", "gateway", "agent")
GATEWAY_SERVICE = "meshop-gateway"
RESERVED_SERVICE_PREFIX = "meshop-"  # meshop's own Consul service names: never an agent's by placement
DNS_SECRETS = "meshop-dns"  # secrets/meshop-dns/: the TSIG key or API key of the leader's DNS writer

_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+", re.ASCII)
_POLICY_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]", re.ASCII)
MAX_POLICY_NAME = 128


class AclInputError(ValueError):
    """A role, prefix, node or service name that cannot be put into a policy safely."""


@dataclass(frozen=True)
class RolePolicy:
    """One rendered policy: its Consul name, a description naming role and prefix, and the HCL rules."""

    name: str
    description: str
    rules: str


def check_prefix(prefix: str) -> str:
    """The KV prefix without surrounding slashes; every segment of safe characters, no ``.``/``..``."""
    text = prefix.strip("/")
    segments = text.split("/")
    if not text or any(not _PREFIX_SEGMENT.fullmatch(s) or s in (".", "..") for s in segments):
        raise AclInputError(f"prefix {prefix!r}: ACL rules need path segments of A-Z a-z 0-9 _ . - only")
    return text


def _check_name(what: str, name: str) -> str:
    if not is_dns_label(name):
        raise AclInputError(f"{what} {name!r} is not an RFC 1123 label (a-z, 0-9, '-'; at most 63)")
    return name


def metrics_service(component: str, node: str = "") -> str:
    """The Consul service name a daemon registers its ``/metrics`` under: ``meshop-metrics-controller``,
    ``meshop-metrics-gateway``, ``meshop-metrics-agent-<node>``. Consul 1.8 scopes service rights by name
    only, so each name is one only its role may write (an agent's bound to its node): Prometheus takes a
    target's component and node from the name, which a forger cannot register, not from its meta."""
    if component not in METRICS_COMPONENTS:
        raise AclInputError(f"component {component!r} is not one of {', '.join(METRICS_COMPONENTS)}")
    if (component == "agent") != bool(node):
        raise AclInputError(f"the {component} metrics name {'needs' if component == 'agent' else 'takes no'} a node")
    return f"{METRICS_SERVICE}-{component}" + (f"-{_check_name('node', node)}" if node else "")


def policy_name(role: str, prefix: str, node: str | None = None) -> str:
    """``meshop-<prefix>-<role>[-<node>]``; characters Consul refuses in names become ``-``."""
    _check_role(role, node)
    slug = _POLICY_NAME_UNSAFE.sub("-", check_prefix(prefix))
    name = f"meshop-{slug}-{role}" + (f"-{_check_name('node', node)}" if node else "")
    if len(name) > MAX_POLICY_NAME:
        raise AclInputError(f"policy name {name!r} is longer than Consul's {MAX_POLICY_NAME} characters")
    return name


def description(role: str, prefix: str, node: str | None = None) -> str:
    """Names role, prefix and node: how ``meshop acl`` recognises its own policies and tokens again."""
    return f"meshop {role} for prefix {check_prefix(prefix)}" + (f" on node {node}" if node else "")


def _check_role(role: str, node: str | None) -> None:
    if role not in ROLES:
        raise AclInputError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if (role in NODE_ROLES) != bool(node):
        raise AclInputError(f"role {role!r} {'needs' if role in NODE_ROLES else 'takes no'} --node")


def _rule(kind: str, name: str, policy: str) -> str:
    return f'{kind} "{name}" {{\n  policy = "{policy}"\n}}'


def _read_all_but_secrets(p: str) -> list[str]:
    return [_rule("key_prefix", f"{p}/", "read"), _rule("key_prefix", f"{p}/secrets/", "deny")]


_CATALOG_READ = [_rule("service_prefix", "", "read"), _rule("node_prefix", "", "read")]


def _own_names(*names: str) -> list[str]:
    """Write on exactly ``names``, read only on every other ``meshop-*`` name: the longer prefix rule
    beats a ``service_prefix ""`` write that another policy on the same token might grant."""
    return [_rule("service_prefix", RESERVED_SERVICE_PREFIX, "read"), *(_rule("service", n, "write") for n in names)]


def agent_service_names(services: Iterable[str], kept: Iterable[str] = ()) -> list[str]:
    """The Consul service names an agent may register beyond its own ``meshop-agent-N``/``meshop-metrics-agent-N``:
    RFC 1123 labels outside ``meshop-*``, from its assignments (and ``kept``), nothing else."""
    names = {_check_name("service", s) for s in (*services, *kept)}
    return sorted(n for n in names if not n.startswith(RESERVED_SERVICE_PREFIX))


_SERVICE_WRITE = re.compile(r'^service "([a-z0-9-]+)" \{\n  policy = "write"\n\}', re.MULTILINE | re.ASCII)


def granted_services(rules: str) -> frozenset[str]:
    """The service names an agent policy rendered here grants write on (its own ``meshop-*`` excluded):
    what ``acl sync`` may keep for a node that still runs them after they moved away."""
    return frozenset(n for n in _SERVICE_WRITE.findall(rules) if not n.startswith(RESERVED_SERVICE_PREFIX))


def policy_rules(
    role: str,
    prefix: str,
    node: str | None = None,
    services: Iterable[str] = (),
    kept: Iterable[str] = (),
    legacy: bool = False,
) -> str:
    """The HCL rules of ``role`` under ``prefix``; for ``agent``, of ``node`` with ``services`` assigned to
    it (their secrets readable, their registrations writable) and ``kept``: names granted before that it
    still runs (registrations writable, so it can deregister them; no secrets). ``legacy``: the shared
    ``meshop-agent`` name too, for an agent not upgraded yet (``meshop.model.agents``, upgrade path)."""
    _check_role(role, node)
    p = check_prefix(prefix)
    if node is not None:
        _check_name("node", node)
    rules: list[str]
    if role == "controller":
        rules = _read_all_but_secrets(p) + [
            _rule("key_prefix", f"{p}/{part}/", "write") for part in ("assignments", "status", "routes")
        ]
        rules += [_rule("key_prefix", f"{p}/events/{CONTROLLER_EVENTS}/", "write")]
        rules += [_rule("key_prefix", f"{p}/requests/", "write")]  # consumes a `restore --to-node` move once done
        rules += [_rule("key_prefix", f"{p}/secrets/{DNS_SECRETS}/", "read")]
        rules += [_rule("key", f"{p}/leader", "write"), _rule("session_prefix", "", "write")]
        rules += _own_names(CONTROLLER_SERVICE, metrics_service("controller"))
        rules += _CATALOG_READ
    elif role == "gateway":
        rules = [
            _rule("key_prefix", f"{p}/routes/", "read"),
            _rule("key", f"{p}/desired/gateway", "read"),
            _rule("key_prefix", f"{p}/nodes/", "read"),
            *_own_names(GATEWAY_SERVICE, metrics_service("gateway")),
            _rule("key_prefix", f"{p}/gateways/", "write"),  # claims: the address each registration may hold
            _rule("session_prefix", "", "write"),  # a claim is held by a session of the gateway's machine
            _rule("key_prefix", f"{p}/secrets/{GATEWAY_SERVICE}/", "write"),  # certificates shared by gateways
            *_CATALOG_READ,
        ]
    elif role == "agent":
        assert node is not None
        assigned = sorted({_check_name("service", s) for s in services})
        registered = agent_service_names(assigned, kept)
        rules = [
            _rule("key", f"{p}/nodes/{node}", "write"),
            _rule("key_prefix", f"{p}/observed/{node}/", "write"),
            _rule("key", f"{p}/usage/{node}", "write"),
            _rule("key_prefix", f"{p}/backups/{node}/", "write"),  # its stateful volumes' backups
            _rule("key", f"{p}/fences/{node}", "write"),
            _rule("key_prefix", f"{p}/events/{agent_events(node)}/", "write"),
            _rule("key_prefix", f"{p}/assignments/{node}/", "read"),
            _rule("key", f"{p}/desired/gateway", "read"),  # the TLS mode of the node's HTTPS sites
            _rule("key_prefix", f"{p}/gateways/", "read"),  # the gateways' addresses: trusted proxies
            *(_rule("key_prefix", f"{p}/secrets/{s}/", "read") for s in assigned),
            # `meshop volume backup|restore` requests of its services: read, and a restore consumed once done
            *(_rule("key_prefix", f"{p}/requests/{s}/", "write") for s in assigned),
            # but a move (`volume restore --to-node`) only the operator writes, the controller consumes
            *(_rule("key", f"{p}/{keys.move_request(s)}", "read") for s in assigned),
            # the single-writer locks of its services' stateful volumes (docs/stateful.md): sessions are
            # made on the local Consul agent, whose node name need not be the meshop node's
            *(_rule("key_prefix", f"{p}/{keys.volume_locks(s)}", "write") for s in assigned),
            _rule("key_prefix", f"{p}/{keys.kept_volumes(node)}", "write"),
            _rule("session_prefix", "", "write"),
            *_own_names(
                agent_service(node), metrics_service("agent", node), *([LEGACY_AGENT_SERVICE] if legacy else [])
            ),
            *(_rule("service", s, "write") for s in registered),
            *_CATALOG_READ,
        ]
    elif role == "readonly":
        rules = _read_all_but_secrets(p) + _CATALOG_READ
    elif role == "operator":
        rules = [
            *_read_all_but_secrets(p),
            _rule("key_prefix", f"{p}/desired/", "write"),
            _rule("key_prefix", f"{p}/fences/", "write"),
            _rule("key_prefix", f"{p}/events/{AUDIT_EVENTS}/", "write"),
            _rule("key_prefix", f"{p}/inventory/", "write"),  # node addresses: operator-vetted only
            _rule("key_prefix", f"{p}/requests/", "write"),  # meshop volume backup
            *_CATALOG_READ,
        ]
    else:  # prometheus
        rules = [
            _rule("service_prefix", f"{METRICS_SERVICE}-", "read"),  # every daemon's metrics name, nothing else
            _rule("node_prefix", "", "read"),
            _rule("agent_prefix", "", "read"),
        ]
    return "\n".join(rules) + "\n"


def render(
    role: str,
    prefix: str,
    node: str | None = None,
    services: Iterable[str] = (),
    kept: Iterable[str] = (),
    legacy: bool = False,
) -> RolePolicy:
    return RolePolicy(
        policy_name(role, prefix, node),
        description(role, prefix, node),
        policy_rules(role, prefix, node, services, kept, legacy),
    )


def grants_legacy_agent_name(rules: str) -> bool:
    """Whether an agent policy rendered here grants the shared ``meshop-agent`` name (an older release's
    policy, or one kept for an agent not upgraded yet): ``acl sync`` keeps that grant only then."""
    return LEGACY_AGENT_SERVICE in _SERVICE_WRITE.findall(rules)


def agent_node_of(policy: str, prefix: str) -> str | None:
    """The node of an agent policy name for ``prefix`` (``meshop-<prefix>-agent-<node>``), else None."""
    head = policy_name("readonly", prefix).removesuffix("readonly") + "agent-"
    node = policy.removeprefix(head) if policy.startswith(head) else ""
    return node if is_dns_label(node) else None
