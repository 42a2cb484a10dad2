"""meshop documents: loading, validation, value objects and spec hashing (pure; no I/O but the CRDs).

load_documents(text, source)         YAML/JSON text -> list of raw document dicts
validate(doc, policy)                -> every Violation, sorted; never raises
parse_service / parse_node / parse_gateway / parse_document
                                     -> frozen value objects, or ValidationFailed
ServiceSpec.to_dict / from_dict      the KV form the controller writes and the agent reads
spec_hash(spec)                      stable 16-hex fingerprint of a resolved spec
"""

from meshop.model.documents import (
    KINDS,
    MAX_BYTES,
    load_documents,
    parse_document,
    parse_gateway,
    parse_node,
    parse_service,
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
    EnvVar,
    HealthCheck,
    Placement,
    Port,
    Resources,
    Route,
    Security,
    Service,
    ServiceSpec,
    TailnetExpose,
    UpdatePolicy,
    Volume,
)
from meshop.model.units import parse_duration, parse_memory

__all__ = [
    "API_VERSION",
    "DEFAULT_POLICY",
    "KINDS",
    "MAX_BYTES",
    "PERMISSIVE_POLICY",
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
    "spec_hash",
    "validate",
]
