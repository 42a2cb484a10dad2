"""Role tokens for the tests: the session Consul runs with ACLs on (default deny), and every meshop daemon
and command a test starts uses the token of its role for the test's KV prefix, made by meshop's own
``AclAdmin`` (what ``meshop acl init`` / ``token`` / ``sync`` do). Test code itself (setting up KV,
asserting on the catalog) uses the master token.

An ACL-enabled ``ConsulServer`` registers its master token here by address; ``roles(addr, prefix)``
then hands out that prefix's ``RoleTokens`` (policies and tokens created on first use, a few ms each),
and ``close(addr, prefix)`` stops its policy sync. For a Consul without ACLs everything here is a
no-op (no token), so tests with their own plain Consul keep working.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from meshop.client.acl import AclAdmin, AclSyncWatch
from meshop.consul.config import ConsulConfig
from meshop.errors import ConsulError
from meshop.model import acl as policies

MASTER_TOKEN = "8d1d6b0e-6d2c-4a4f-9b1e-2f6f0c7d9a11"
# Every test talks to the session's Consul from 127.0.0.1: Consul's default of 200 connections per client
# address is soon reached by a few hundred tests' daemons, watches and pooled keep-alive connections.
ACL_HCL = (
    'acl { enabled = true, default_policy = "deny", down_policy = "extend-cache", '
    f'tokens {{ master = "{MASTER_TOKEN}", agent = "{MASTER_TOKEN}" }} }} '
    "limits { http_max_conns_per_client = 4096 }"
)

_masters: dict[str, str] = {}  # Consul address -> master token
_roles: dict[tuple[str, str], RoleTokens] = {}
_lock = threading.Lock()

OPERATOR_COMMANDS = {"apply", "delete", "edit", "import", "nodes", "restart"}
DAEMONS = {"controller": "controller", "gateway": "gateway", "agent": "agent"}


def register_server(addr: str, token: str) -> None:
    _masters[addr] = token


def master_token(addr: str) -> str | None:
    return _masters.get(addr)


def auth_headers(addr: str) -> dict[str, str]:
    """Headers for a test's own direct HTTP call to Consul (the master token, when ACLs are on)."""
    token = _masters.get(addr)
    return {"X-Consul-Token": token} if token else {}


class RoleTokens:
    """The role tokens of one prefix on one ACL-enabled Consul; agent policies kept in step with
    placement by a running ``AclSyncWatch`` (started with the first agent token), as on a fleet."""

    def __init__(self, addr: str, prefix: str, master: str) -> None:
        self.addr = addr
        self.prefix = prefix
        self.admin = AclAdmin(ConsulConfig.from_env({}, addr=addr, token=master, prefix=prefix, timeout=10.0))
        self._tokens: dict[tuple[str, str | None], str] = {}
        self._made: list[tuple[str, str]] = []  # (policy id, token accessor id), to delete at the end
        self._sync: AclSyncWatch | None = None
        self._lock = threading.Lock()

    def token(self, role: str, node: str | None = None) -> str:
        with self._lock:
            key = (role, node)
            if key not in self._tokens:  # a fresh prefix has no tokens to find again: create straight away
                rendered = self.admin.render(role, node)
                policy, _ = self.admin.api.upsert_policy(rendered.name, rendered.description, rendered.rules)
                made = self.admin.api.create_token(rendered.description, [rendered.name])
                self._made.append((policy.id, made.accessor_id))
                self._tokens[key] = made.secret_id
            if role in policies.NODE_ROLES and self._sync is None:
                self._sync = AclSyncWatch(self.admin, resync=5.0).start()
            return self._tokens[key]

    def config(self, role: str, node: str | None = None, timeout: float = 5.0) -> ConsulConfig:
        token = self.token(role, node)
        return ConsulConfig.from_env({}, addr=self.addr, token=token, prefix=self.prefix, timeout=timeout)

    def sync(self) -> None:
        """Bring the agent policies in step now (tests that must not wait for the watch)."""
        self.admin.sync()

    def close(self, delete: bool = False) -> None:
        """Stop the sync; with ``delete``, also delete the tokens and policies made here. The session's
        Consul is thrown away at its end, so tests leave them (deleting doubles the per-test cost)."""
        if self._sync is not None:
            self._sync.stop()
        try:
            if delete:
                self._delete()
        finally:
            self.admin.api.client.http.session.close()  # its pooled connections count against Consul's limit

    def _delete(self) -> None:
        with contextlib.suppress(ConsulError):
            for _, accessor in self._made:
                self.admin.api.delete_token(accessor)
            for policy_id in dict.fromkeys(policy for policy, _ in self._made):
                self.admin.api.delete_policy(policy_id)

    def purge(self) -> None:
        """Delete every token and policy meshop made for this prefix, whoever made them."""
        ours = policies.description("readonly", self.prefix).removeprefix("meshop readonly")
        with contextlib.suppress(ConsulError):
            for policy in self.admin.api.policies():
                if not (policy.description.endswith(ours) or f"{ours} on node " in policy.description):
                    continue
                for token in self.admin.api.tokens_of(policy.id):
                    self.admin.api.delete_token(token.accessor_id)
                self.admin.api.delete_policy(policy.id)


def roles(addr: str, prefix: str) -> RoleTokens | None:
    """This prefix's role tokens on the Consul at ``addr``; None when that Consul has no ACLs."""
    master = _masters.get(addr)
    if master is None:
        return None
    with _lock:
        found = _roles.get((addr, prefix))
        if found is None:
            found = _roles[(addr, prefix)] = RoleTokens(addr, prefix, master)
        return found


def close(addr: str, prefix: str) -> None:
    with _lock:
        found = _roles.pop((addr, prefix), None)
    if found is not None:
        found.close()


def close_everywhere(prefix: str) -> None:
    """Delete ``prefix``'s tokens and policies on every ACL-enabled Consul of the session."""
    for addr in list(_masters):
        close(addr, prefix)


def role_of(args: list[str]) -> tuple[str, str | None]:
    """The role a meshop command line runs as: daemons by their command, ``apply``/``delete``/``nodes``
    (and ``restart``) as operator, every other (reading) command read-only."""
    command, rest = "", iter(args)
    for arg in rest:
        if arg in ("--consul-addr", "--prefix", "--token"):
            next(rest, None)  # the global option's value
        elif not arg.startswith("-"):
            command = arg
            break
    if command in DAEMONS and "run" in args:
        node = args[args.index("--node") + 1] if command == "agent" and "--node" in args else None
        return DAEMONS[command], node
    if command in OPERATOR_COMMANDS or (command == "volume" and {"backup", "restore"} & set(args)):
        return "operator", None
    if command == "prometheus":  # not a meshop command: the scrape config's discovery token
        return "prometheus", None
    return "readonly", None


def token_for(addr: str, prefix: str, args: list[str]) -> str | None:
    """The token for running ``meshop <args>`` against ``addr``/``prefix`` (None without ACLs)."""
    found = roles(addr, prefix)
    return found.token(*role_of(args)) if found else None


def config_for(addr: str, prefix: str, role: str, node: str | None = None, **kw: Any) -> ConsulConfig:
    """A ConsulConfig with ``role``'s token (no token without ACLs)."""
    found = roles(addr, prefix)
    if found is None:
        return ConsulConfig.from_env({}, addr=addr, prefix=prefix, timeout=kw.get("timeout", 5.0))
    return found.config(role, node, **kw)
