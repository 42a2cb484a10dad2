"""What the dashboard may change: cordon, uncordon and drain a node, exactly as ``meshop nodes`` does
(``client.nodes.set_node_mode``: check-and-set on the Node document, unknown nodes refused), and a
rolling restart of a service (``client.restart``: ``spec.restartedAt``), each recorded in the event log
with who asked. Off unless the dashboard runs with ``--actions`` and a token
that may write ``desired/`` (the operator role, or a management token)."""

from __future__ import annotations

from collections.abc import Sequence

from meshop.client.nodes import MODES, set_node_mode
from meshop.client.restart import restart_service
from meshop.consul.acl import AclApi
from meshop.consul.config import ConsulConfig
from meshop.consul.events import EventLog
from meshop.consul.store import KVStore
from meshop.errors import MeshopError
from meshop.model import acl as roles

EVENT_KIND = {"cordon": "Cordoned", "uncordon": "Uncordoned", "drain": "Draining"}
WRITERS = ("operator",)  # roles whose policy writes desired/
MANAGEMENT = "global-management"


class ActionsRefused(MeshopError):
    """``--actions`` with a token that may not write Node documents."""


def check_actions_allowed(config: ConsulConfig) -> str:
    """Why actions are allowed (for the log); ``ActionsRefused`` naming the token's policies otherwise.
    Asks Consul which policies the dashboard's own token carries (``/v1/acl/token/self``)."""
    token = AclApi(config).token_self()
    if token is None:
        return "Consul runs without ACLs"
    granted = writer_policies(token.policies, config.prefix)
    if granted:
        return f"token has {', '.join(granted)}"
    have = ", ".join(token.policies) or "none"
    raise ActionsRefused(
        f"--actions needs a token with the operator role for prefix {config.prefix} "
        f"(`meshop acl token operator`); this token's policies: {have}"
    )


def writer_policies(policies: Sequence[str], prefix: str) -> list[str]:
    """Those of ``policies`` that may write ``desired/`` (operator role of ``prefix``, management)."""
    allowed = {roles.policy_name(role, prefix) for role in WRITERS} | {MANAGEMENT}
    return sorted(set(policies) & allowed)


def node_action(store: KVStore, log: EventLog, node: str, mode: str, user: str) -> bool:
    """Cordon/uncordon/drain ``node``; True when the document changed (then an event says who did it)."""
    if mode not in MODES:
        raise MeshopError(f"unknown action {mode!r}: use cordon, uncordon or drain")
    _, changed = set_node_mode(store, node, mode)
    if changed:
        log.append(EVENT_KIND[mode], f"node/{node}", f"{mode} requested from the dashboard by {user}")
    return changed


def service_restart(store: KVStore, log: EventLog, name: str, user: str, now: float) -> None:
    """A rolling restart of service ``name``; the event says who asked."""
    restart_service(store, name, now)
    log.append("RestartRequested", f"service/{name}", f"rolling restart requested from the dashboard by {user}")
