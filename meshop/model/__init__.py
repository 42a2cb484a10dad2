"""meshop documents: loading, validation, value objects and spec hashing (pure; no I/O but the CRDs).

load_documents(text, source)         YAML/JSON text -> list of raw document dicts
validate(doc, policy)                -> every Violation, sorted; never raises
parse_service / parse_node / parse_gateway / parse_document
                                     -> frozen value objects, or ValidationFailed
ServiceSpec.to_dict / from_dict      the KV form the controller writes and the agent reads
spec_hash(spec)                      stable 16-hex fingerprint of a resolved spec

Every name here is loaded on first use (PEP 562): importing one submodule, e.g. ``meshop.model.keys``
(which the Consul config needs), must not load the YAML loader, the schemas and every document type
(start-up time of ``meshop version`` and friends).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshop.model.exports import lazy_exports

if TYPE_CHECKING:
    from meshop.model.documents import (
        KINDS,
        MAX_BYTES,
        load_documents,
        parse_document,
        parse_gateway,
        parse_node,
        parse_service,
        parse_stored_gateway,
        validate,
    )
    from meshop.model.frozen import FrozenDict
    from meshop.model.gateway import Gateway, GatewayDNS
    from meshop.model.hashing import canonical_json, spec_hash
    from meshop.model.node import NodeDoc
    from meshop.model.policy import DEFAULT_POLICY, PERMISSIVE_POLICY, Policy
    from meshop.model.schema import load_schema
    from meshop.model.service import (
        API_VERSION,
        Backup,
        EnvVar,
        HealthCheck,
        Placement,
        Port,
        Resources,
        Route,
        Security,
        Service,
        ServiceSpec,
        Stateful,
        TailnetExpose,
        UpdatePolicy,
        Volume,
    )
    from meshop.model.units import parse_duration, parse_memory

_WHERE = {
    "API_VERSION": "meshop.model.service",
    "Backup": "meshop.model.service",
    "DEFAULT_POLICY": "meshop.model.policy",
    "EnvVar": "meshop.model.service",
    "FrozenDict": "meshop.model.frozen",
    "Gateway": "meshop.model.gateway",
    "GatewayDNS": "meshop.model.gateway",
    "HealthCheck": "meshop.model.service",
    "KINDS": "meshop.model.documents",
    "MAX_BYTES": "meshop.model.documents",
    "NodeDoc": "meshop.model.node",
    "PERMISSIVE_POLICY": "meshop.model.policy",
    "Placement": "meshop.model.service",
    "Policy": "meshop.model.policy",
    "Port": "meshop.model.service",
    "Resources": "meshop.model.service",
    "Route": "meshop.model.service",
    "Security": "meshop.model.service",
    "Service": "meshop.model.service",
    "ServiceSpec": "meshop.model.service",
    "Stateful": "meshop.model.service",
    "TailnetExpose": "meshop.model.service",
    "UpdatePolicy": "meshop.model.service",
    "Volume": "meshop.model.service",
    "canonical_json": "meshop.model.hashing",
    "load_documents": "meshop.model.documents",
    "load_schema": "meshop.model.schema",
    "parse_document": "meshop.model.documents",
    "parse_duration": "meshop.model.units",
    "parse_gateway": "meshop.model.documents",
    "parse_stored_gateway": "meshop.model.documents",
    "parse_memory": "meshop.model.units",
    "parse_node": "meshop.model.documents",
    "parse_service": "meshop.model.documents",
    "spec_hash": "meshop.model.hashing",
    "validate": "meshop.model.documents",
}


__getattr__ = lazy_exports(__name__, _WHERE)


__all__ = [
    "API_VERSION",
    "DEFAULT_POLICY",
    "KINDS",
    "MAX_BYTES",
    "PERMISSIVE_POLICY",
    "Backup",
    "EnvVar",
    "FrozenDict",
    "Gateway",
    "GatewayDNS",
    "HealthCheck",
    "NodeDoc",
    "Placement",
    "Policy",
    "Port",
    "Resources",
    "Route",
    "Security",
    "Service",
    "ServiceSpec",
    "Stateful",
    "TailnetExpose",
    "UpdatePolicy",
    "Volume",
    "canonical_json",
    "load_documents",
    "load_schema",
    "parse_document",
    "parse_duration",
    "parse_gateway",
    "parse_memory",
    "parse_node",
    "parse_service",
    "parse_stored_gateway",
    "spec_hash",
    "validate",
]
