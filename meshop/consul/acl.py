"""Consul's ACL API (policies and tokens), as ``meshop acl`` needs it; called with a management token.

Rules are sent as HCL text exactly as ``meshop.model.acl`` rendered them (py-consul's policy helpers
would JSON-encode them a second time). Policies are found by name and tokens by their description, so
every call here can be repeated: ``upsert_policy`` writes only when something differs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from meshop.consul.client import CB, consul, consul_errors, make_client  # py-consul, loaded the lean way (meshop.libs)
from meshop.consul.config import ConsulConfig


@dataclass(frozen=True)
class AclPolicy:
    id: str
    name: str
    description: str
    rules: str


@dataclass(frozen=True)
class Token:
    accessor_id: str
    secret_id: str = ""
    description: str = ""
    policies: tuple[str, ...] = ()  # policy names


class AclApi:
    def __init__(self, config: ConsulConfig, client: consul.Consul | None = None) -> None:
        self.config = config
        self.client = client or make_client(config)
        self.http = self.client.http

    def policy(self, name: str) -> AclPolicy | None:
        """The policy called ``name``, rules included; None when there is none."""
        with consul_errors(self.config, f"reading ACL policy {name}"):
            raw = _unless_not_found(lambda: self.http.get(CB.json(), f"/v1/acl/policy/name/{quote(name, safe='')}"))
        return _policy(raw) if raw else None

    def policies(self) -> list[AclPolicy]:
        """Every policy, without rules (Consul lists them so)."""
        with consul_errors(self.config, "listing ACL policies"):
            raw = self.http.get(CB.json(), "/v1/acl/policies")
        return [_policy(item) for item in raw or ()]

    def upsert_policy(self, name: str, description: str, rules: str) -> tuple[AclPolicy, bool]:
        """Create the policy or bring an existing one to these rules; (policy, whether anything changed)."""
        current = self.policy(name)
        body = {"Name": name, "Description": description, "Rules": rules}
        if current is not None and (current.description, current.rules) == (description, rules):
            return current, False
        path = "/v1/acl/policy" + (f"/{current.id}" if current else "")
        with consul_errors(self.config, f"{'updating' if current else 'creating'} ACL policy {name}"):
            raw = self.http.put(CB.json(), path, data=json.dumps(body))
        return _policy(raw), True

    def delete_policy(self, policy_id: str) -> None:
        with consul_errors(self.config, f"deleting ACL policy {policy_id}"):
            self.http.delete(CB.boolean(), f"/v1/acl/policy/{quote(policy_id, safe='')}")

    def tokens_of(self, policy_id: str) -> list[Token]:
        """Tokens linked to a policy (without their secrets: read one with ``token``)."""
        with consul_errors(self.config, "listing ACL tokens"):
            raw = self.http.get(CB.json(), "/v1/acl/tokens", params=[("policy", policy_id)])
        return [_token(item) for item in raw or ()]

    def token(self, accessor_id: str) -> Token | None:
        with consul_errors(self.config, "reading an ACL token"):
            raw = _unless_not_found(lambda: self.http.get(CB.json(), f"/v1/acl/token/{quote(accessor_id, safe='')}"))
        return _token(raw) if raw else None

    def create_token(self, description: str, policy_names: list[str]) -> Token:
        body = {"Description": description, "Policies": [{"Name": name} for name in policy_names]}
        with consul_errors(self.config, "creating an ACL token"):
            raw = self.http.put(CB.json(), "/v1/acl/token", data=json.dumps(body))
        return _token(raw)

    def token_self(self) -> Token | None:
        """The token this client sends, with its policy names; None when Consul runs without ACLs."""
        with consul_errors(self.config, "reading its own ACL token"):
            try:
                raw = self.http.get(CB.json(), "/v1/acl/token/self")
            except consul.ACLDisabled:
                return None
        return _token(raw or {})

    def delete_token(self, accessor_id: str) -> None:
        with consul_errors(self.config, "deleting an ACL token"):
            self.http.delete(CB.boolean(), f"/v1/acl/token/{quote(accessor_id, safe='')}")


def _unless_not_found(call: Callable[[], Any]) -> Any:
    """Consul 1.8 answers a read of a missing policy or token with 403 "ACL not found"; that is None."""
    try:
        return call()
    except consul.ACLPermissionDenied as exc:
        if "ACL not found" in str(exc):
            return None
        raise


def _policy(raw: dict) -> AclPolicy:
    return AclPolicy(
        id=str(raw.get("ID", "")),
        name=str(raw.get("Name", "")),
        description=str(raw.get("Description", "")),
        rules=str(raw.get("Rules", "")),
    )


def _token(raw: dict) -> Token:
    return Token(
        accessor_id=str(raw.get("AccessorID", "")),
        secret_id=str(raw.get("SecretID", "")),
        description=str(raw.get("Description", "")),
        policies=tuple(str(link.get("Name", "")) for link in raw.get("Policies") or ()),
    )
