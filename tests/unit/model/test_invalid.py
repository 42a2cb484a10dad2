"""A table of invalid documents, each with the exact violations it must produce."""

from __future__ import annotations

from typing import Any

import pytest

from meshop.errors import ValidationFailed
from meshop.model import PERMISSIVE_POLICY, Policy, parse_document, parse_gateway, validate
from meshop.model.rules import (
    ABS_PATH,
    CONSUL_KEY,
    DURATION_RANGE,
    HOST,
    LABEL_KEY,
    LABEL_NAME,
    LABEL_VALUE,
    MEMORY_RANGE,
    RESERVED,
    URL_PATH,
)

from .helpers import gateway, node, pairs, service

HTTP = [{"name": "http", "container": 80}]
START_FIRST_HOST = (
    "fixed host port 8080 needs update.strategy stop-first (start-first would run two containers on one host port)"
)


def route(host: str = "web.example.com", path: str = "/", port: Any = "http") -> dict[str, Any]:
    return {"route": {"host": host, "path": path, "port": port}}


CASES: list[tuple[str, Any, list[tuple[str, str]]]] = [
    # --- injection attempts in route hosts and paths ------------------------------------------------
    ("host-open-brace", service(route("a{b.example.com")), [("spec.route.host", HOST)]),
    ("host-close-brace", service(route("a}.example.com")), [("spec.route.host", HOST)]),
    ("host-newline", service(route("a.example.com\nimport /etc/x")), [("spec.route.host", HOST)]),
    ("host-space", service(route("a.example.com b.example.com")), [("spec.route.host", HOST)]),
    ("host-quote", service(route('a".example.com')), [("spec.route.host", HOST)]),
    ("host-env", service(route("{$HOME}")), [("spec.route.host", HOST)]),
    ("host-import", service(route("import /etc/x")), [("spec.route.host", HOST)]),
    ("host-directive", service(route("reverse_proxy evil")), [("spec.route.host", HOST)]),
    ("host-uppercase", service(route("Web.example.com")), [("spec.route.host", HOST)]),
    ("host-trailing-dot", service(route("web.example.com.")), [("spec.route.host", HOST)]),
    ("host-wildcard-middle", service(route("a.*.example.com")), [("spec.route.host", HOST)]),
    ("host-empty", service(route("")), [("spec.route.host", HOST)]),
    ("path-space", service(route(path="/a b")), [("spec.route.path", URL_PATH)]),
    ("path-brace", service(route(path="/{x}")), [("spec.route.path", URL_PATH)]),
    ("path-newline", service(route(path="/a\nrespond 200")), [("spec.route.path", URL_PATH)]),
    ("path-quote", service(route(path='/a"b')), [("spec.route.path", URL_PATH)]),
    ("path-hash", service(route(path="/a#b")), [("spec.route.path", URL_PATH)]),
    ("path-query", service(route(path="/a?b=1")), [("spec.route.path", URL_PATH)]),
    ("path-env", service(route(path="/{$HOME}")), [("spec.route.path", URL_PATH)]),
    ("path-relative", service(route(path="a/b")), [("spec.route.path", URL_PATH)]),
    ("path-bad-percent", service(route(path="/a%zz")), [("spec.route.path", URL_PATH)]),
    (
        "health-path-shell",
        service({"health": {"http": {"path": "/;$(reboot)", "port": 80}}}),
        [("spec.health.http.path", URL_PATH)],
    ),
    # --- names ---------------------------------------------------------------------------------------
    ("name-uppercase", service(metadata={"name": "Web"}), [("metadata.name", LABEL_NAME)]),
    ("name-underscore", service(metadata={"name": "my_web"}), [("metadata.name", LABEL_NAME)]),
    ("name-too-long", service(metadata={"name": "a" * 64}), [("metadata.name", LABEL_NAME)]),
    ("name-leading-dash", service(metadata={"name": "-web"}), [("metadata.name", LABEL_NAME)]),
    ("name-missing", service(metadata={}), [("metadata.name", "is required")]),
    ("name-number", service(metadata={"name": 5}), [("metadata.name", "expected string, got integer 5")]),
    (
        "port-name-upper",
        service({"ports": [{"name": "HTTP", "container": 80}]}),
        [("spec.ports[0].name", LABEL_NAME)],
    ),
    (
        "volume-name",
        service({"volumes": [{"name": "Data", "mountPath": "/data"}]}),
        [("spec.volumes[0].name", LABEL_NAME)],
    ),
    ("placement-node", service({"placement": {"node": "n_1"}}), [("spec.placement.node", LABEL_NAME)]),
    (
        "tailnet-name",
        service({"expose": {"tailnet": {"name": "a b"}}}),
        [("spec.expose.tailnet.name", LABEL_NAME)],
    ),
    (
        "label-key",
        service(metadata={"name": "web", "labels": {"bad key": "x"}}),
        [('metadata.labels["bad key"]', LABEL_KEY)],
    ),
    (
        "label-value",
        service(metadata={"name": "web", "labels": {"app": "x" * 64}}),
        [("metadata.labels.app", LABEL_VALUE)],
    ),
    (
        "label-value-type",
        service(metadata={"name": "web", "labels": {"app": True}}),
        [("metadata.labels.app", "expected string, got boolean true")],
    ),
    (
        "selector-key",
        service({"placement": {"nodeSelector": {"a/b/c": "x"}}}),
        [('spec.placement.nodeSelector["a/b/c"]', LABEL_KEY)],
    ),
    (
        "annotation-key",
        service(metadata={"name": "web", "annotations": {"-x": "anything goes here"}}),
        [('metadata.annotations["-x"]', LABEL_KEY)],
    ),
    (
        "env-name",
        service({"env": [{"name": "1X", "value": "v"}]}),
        [("spec.env[0].name", "must be an environment variable name: [A-Za-z_][A-Za-z0-9_]*")],
    ),
    (
        "security-user",
        service({"security": {"user": "root; rm -rf /"}}),
        [("spec.security.user", "must be user[:group], names or numeric ids")],
    ),
    (
        "security-add-sys-admin",
        service({"security": {"capabilities": {"add": ["SYS_ADMIN"]}}}),
        [
            (
                "spec.security.capabilities.add[0]",
                '"SYS_ADMIN" may not be added; only Docker\'s default set: AUDIT_WRITE, CHOWN, DAC_OVERRIDE, '
                "FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, NET_RAW, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT",
            )
        ],
    ),
    (
        "security-unknown-capability",
        service({"security": {"capabilities": {"drop": ["CAP_FLY"]}}}),
        [("spec.security.capabilities.drop[0]", '"CAP_FLY" is not a Linux capability name like CHOWN or NET_RAW')],
    ),
    (
        "pids-too-few",
        service({"resources": {"pids": 1}}),
        [("spec.resources.pids", "1 is less than the minimum of 8")],
    ),
    (
        "env-consul-key",
        service({"env": [{"name": "X", "valueFrom": {"consulKey": "../etc/passwd"}}]}),
        [("spec.env[0].valueFrom.consulKey", CONSUL_KEY)],
    ),
    *(
        (
            f"secret-outside-folder-{case}",
            service({"env": [{"name": "X", "valueFrom": {"consulKey": key}}]}),
            [
                (
                    "spec.env[0].valueFrom.consulKey",
                    f'"{key}" is outside this service\'s secrets folder: use meshop/secrets/web/<name>',
                )
            ],
        )
        for case, key in [
            ("other-service", "meshop/secrets/db/password"),
            ("name-prefix-of-another", "meshop/secrets/web2/password"),
            ("outside-prefix", "vault/web/password"),
            ("the-folder-itself", "meshop/secrets/web"),
            ("desired-doc", "meshop/desired/services/web"),
            ("other-prefix", "other/secrets/web/password"),
        ]
    ),
    (
        "image-space",
        service({"image": "busybox latest"}),
        [("spec.image", "is not a valid image reference like registry.example.com/app:v1")],
    ),
    (
        "image-newline",
        service({"image": "busybox\n--privileged"}),
        [("spec.image", "is not a valid image reference like registry.example.com/app:v1")],
    ),
    (
        "image-upper-path",
        service({"image": "Busybox:1"}),
        [("spec.image", "is not a valid image reference like registry.example.com/app:v1")],
    ),
    # --- unknown fields at every level ---------------------------------------------------------------
    ("unknown-top", service(spce={}), [("spce", "unknown field (did you mean spec?)")]),
    (
        "unknown-metadata",
        service(metadata={"name": "web", "namespace": "x"}),
        [("metadata.namespace", "unknown field")],
    ),
    ("unknown-spec", service({"replica": 2}), [("spec.replica", "unknown field (did you mean replicas?)")]),
    (
        "unknown-port",
        service({"ports": [{"name": "http", "container": 80, "containerPort": 80}]}),
        [("spec.ports[0].containerPort", "unknown field (did you mean container?)")],
    ),
    (
        "unknown-health",
        service({"health": {"http": {"port": 80, "scheme": "https"}}}),
        [("spec.health.http.scheme", "unknown field")],
    ),
    ("unknown-update", service({"update": {"maxSurge": 1}}), [("spec.update.maxSurge", "unknown field")]),
    (
        "unknown-env-valuefrom",
        service({"env": [{"name": "X", "valueFrom": {"consulKey": "meshop/secrets/web/a", "file": "/x"}}]}),
        [("spec.env[0].valueFrom.file", "unknown field")],
    ),
    (
        "unknown-tailnet",
        service({"expose": {"tailnet": {"funnel": True}, "public": True}}),
        [("spec.expose.public", "unknown field"), ("spec.expose.tailnet.funnel", "unknown field")],
    ),
    ("unknown-node", node({"cordoned": True}), [("spec.cordoned", "unknown field (did you mean cordon?)")]),
    (
        "unknown-node-policy",
        node({"policy": {"allowAll": True}}),
        [("spec.policy.allowAll", "unknown field")],
    ),
    (
        "unknown-gateway",
        gateway({"tls": {"mode": "internal", "ca": "x"}}),
        [("spec.tls.ca", "unknown field")],
    ),
    # --- policy --------------------------------------------------------------------------------------
    (
        "privileged",
        service({"privileged": True}),
        [("spec.privileged", "privileged containers are refused by the node policy (allowPrivileged)")],
    ),
    (
        "bind-mount",
        service({"volumes": [{"hostPath": "/srv/x", "mountPath": "/x"}]}),
        [("spec.volumes[0].hostPath", "bind mounts are refused by the node policy (allowBindMounts)")],
    ),
    (
        "host-network",
        service({"networkMode": "host", "ports": []}),
        [("spec.networkMode", "host networking is refused by the node policy (allowHostNetwork)")],
    ),
    # --- ports and their conflicts -------------------------------------------------------------------
    (
        "port-too-big",
        service({"ports": [{"name": "http", "container": 70000}]}),
        [("spec.ports[0].container", "70000 is greater than the maximum of 65535")],
    ),
    (
        "port-zero",
        service({"ports": [{"name": "http", "container": 0}]}),
        [("spec.ports[0].container", "0 is less than the minimum of 1")],
    ),
    (
        "port-protocol",
        service({"ports": [{"name": "dns", "container": 53, "protocol": "sctp"}]}),
        [("spec.ports[0].protocol", "must be one of: tcp, udp")],
    ),
    (
        "port-duplicates",
        service({"ports": [{"name": "a", "container": 80}, {"name": "a", "container": 80}]}),
        [
            ("spec.ports[1].container", "duplicate container port 80/tcp (also spec.ports[0])"),
            ("spec.ports[1].name", 'duplicate name "a" (also spec.ports[0])'),
        ],
    ),
    (
        "host-port-start-first",
        service({"ports": [{"name": "http", "container": 80, "host": 8080}]}),
        [("spec.ports[0].host", START_FIRST_HOST)],
    ),
    (
        "placement-rebalance-unknown",
        service({"placement": {"rebalance": "sometimes"}}),
        [("spec.placement.rebalance", "must be one of: off, manual, auto")],
    ),
    (
        "host-port-no-spread",
        service(
            {
                "ports": [{"name": "http", "container": 80, "host": 8080}],
                "replicas": 2,
                "update": {"strategy": "stop-first"},
                "placement": {"spread": False},
            }
        ),
        [
            (
                "spec.ports[0].host",
                (
                    "fixed host port 8080 with 2 replicas needs placement.spread true and no "
                    "placement.node (one replica per node)"
                ),
            )
        ],
    ),
    (
        "host-port-host-network",
        service(
            {
                "ports": [{"name": "http", "container": 80, "host": 80}],
                "networkMode": "host",
                "update": {"strategy": "stop-first"},
            }
        ),
        [
            ("spec.networkMode", "host networking is refused by the node policy (allowHostNetwork)"),
            ("spec.ports[0].host", "host ports do not apply with networkMode host: remove it"),
        ],
    ),
    (
        "route-unknown-port",
        service(route(port="https")),
        [("spec.route.port", '"https" is not a declared tcp port (name or container port)')],
    ),
    (
        "route-udp-port",
        service({"ports": [{"name": "dns", "container": 53, "protocol": "udp"}], **route(port=53)}),
        [("spec.route.port", "53 is not a declared tcp port (name or container port)")],
    ),
    (
        "health-unknown-port",
        service({"health": {"tcp": {"port": 8080}}}),
        [("spec.health.tcp.port", "8080 is not a declared tcp port (name or container port)")],
    ),
    (
        "health-both",
        service({"health": {"tcp": {"port": 80}, "http": {"port": 80}}}),
        [("spec.health", "only one of: http, tcp may be set")],
    ),
    ("health-neither", service({"health": {"interval": "5s"}}), [("spec.health", "needs one of: http, tcp")]),
    # --- bounds and reserved names (trust boundaries) ----------------------------------------------
    (
        "health-interval-below-floor",
        service({"health": {"tcp": {"port": 80}, "interval": "200ms"}}),
        [("spec.health.interval", "must be at least 1s (every replica's check runs this often)")],
    ),
    (
        "too-many-env",
        service({"env": [{"name": f"V{i}", "value": "x"} for i in range(257)]}),
        [("spec.env", "has 257 items; at most 256 are allowed")],
    ),
    (
        "too-many-ports",
        service({"ports": [{"name": f"p{i}", "container": i + 1} for i in range(65)]}),
        [("spec.ports", "has 65 items; at most 64 are allowed")],
    ),
    (
        "too-many-volumes",
        service({"volumes": [{"name": f"v{i}", "mountPath": f"/v{i}"} for i in range(33)]}),
        [("spec.volumes", "has 33 items; at most 32 are allowed")],
    ),
    (
        "too-many-args",
        service({"args": ["x"] * 257}),
        [("spec.args", "has 257 items; at most 256 are allowed")],
    ),
    ("reserved-name-meshop-agent", service(metadata={"name": "meshop-agent"}), [("metadata.name", RESERVED)]),
    ("reserved-name-meshop-prefix", service(metadata={"name": "meshop-web"}), [("metadata.name", RESERVED)]),
    # --- env and volumes -----------------------------------------------------------------------------
    (
        "env-duplicate",
        service({"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
        [("spec.env[1].name", 'duplicate name "A" (also spec.env[0])')],
    ),
    (
        "env-both",
        service({"env": [{"name": "A", "value": "1", "valueFrom": {"consulKey": "meshop/secrets/web/k"}}]}),
        [("spec.env[0]", "only one of: value, valueFrom may be set")],
    ),
    ("env-neither", service({"env": [{"name": "A"}]}), [("spec.env[0]", "needs one of: value, valueFrom")]),
    ("env-not-object", service({"env": ["A=1"]}), [("spec.env[0]", 'expected object, got string "A=1"')]),
    (
        "volume-both",
        service(
            {"volumes": [{"name": "d", "hostPath": "/d", "mountPath": "/d"}]},
        ),
        [
            ("spec.volumes[0]", "only one of: name, hostPath may be set"),
            ("spec.volumes[0].hostPath", "bind mounts are refused by the node policy (allowBindMounts)"),
        ],
    ),
    (
        "volume-relative",
        service({"volumes": [{"name": "d", "mountPath": "data"}]}),
        [("spec.volumes[0].mountPath", ABS_PATH)],
    ),
    (
        "volume-dotdot",
        service({"volumes": [{"name": "d", "mountPath": "/data/../etc"}]}),
        [("spec.volumes[0].mountPath", ABS_PATH)],
    ),
    (
        "volume-duplicate-mount",
        service({"volumes": [{"name": "a", "mountPath": "/d"}, {"name": "b", "mountPath": "/d"}]}),
        [("spec.volumes[1].mountPath", 'duplicate mountPath "/d" (also spec.volumes[0])')],
    ),
    (
        "volume-missing-mount",
        service({"volumes": [{"name": "a"}]}),
        [("spec.volumes[0].mountPath", "is required")],
    ),
    # --- scalars: types, ranges, durations, memory ---------------------------------------------------
    ("replicas-string", service({"replicas": "2"}), [("spec.replicas", 'expected integer, got string "2"')]),
    (
        "replicas-too-many",
        service({"replicas": 101}),
        [("spec.replicas", "101 is greater than the maximum of 100")],
    ),
    ("replicas-huge", service({"replicas": 10**5000}), [("spec.replicas", "integer is out of range")]),
    ("cpus-zero", service({"resources": {"cpus": 0}}), [("spec.resources.cpus", "0 must be greater than 0")]),
    (
        "cpus-nan",
        service({"resources": {"cpus": float("nan")}}),
        [("spec.resources.cpus", "must be a finite number")],
    ),
    (
        "memory-bad",
        service({"resources": {"memory": "256MB"}}),
        [("spec.resources.memory", '"256MB" is not a memory quantity like 256Mi, 1Gi, 512M or 1048576')],
    ),
    (
        "memory-small",
        service({"resources": {"memory": "1Mi"}}),
        [("spec.resources.memory", MEMORY_RANGE)],
    ),
    (
        "duration-bad",
        service({"health": {"tcp": {"port": 80}, "interval": "10x"}}),
        [("spec.health.interval", '"10x" is not a duration like 500ms, 10s or 1m30s')],
    ),
    (
        "duration-no-unit",
        service({"update": {"healthTimeout": "60"}}),
        [("spec.update.healthTimeout", '"60" is not a duration like 500ms, 10s or 1m30s')],
    ),
    (
        "duration-zero",
        service({"health": {"tcp": {"port": 80}, "timeout": "0s"}}),
        [("spec.health.timeout", DURATION_RANGE)],
    ),
    (
        "duration-too-long",
        service({"update": {"healthTimeout": "200h"}}),
        [("spec.update.healthTimeout", DURATION_RANGE)],
    ),
    (
        "restart-enum",
        service({"restart": "never"}),
        [("spec.restart", "must be one of: no, always, unless-stopped, on-failure")],
    ),
    (
        "strategy-enum",
        service({"update": {"strategy": "rolling"}}),
        [("spec.update.strategy", "must be one of: start-first, stop-first")],
    ),
    (
        "privileged-string",
        service({"privileged": "yes"}),
        [("spec.privileged", 'expected boolean, got string "yes"')],
    ),
    (
        "command-string",
        service({"command": "/bin/httpd -f"}),
        [("spec.command", 'expected array, got string "/bin/httpd -f"')],
    ),
    # --- document shape ------------------------------------------------------------------------------
    (
        "status-written",
        service(status={"ready": True}),
        [("status", "is written by meshop, never by users: remove it")],
    ),
    ("api-version", service(apiVersion="meshop.io/v1"), [("apiVersion", "must be meshop.io/v1alpha1")]),
    ("kind-unknown", service(kind="Deployment"), [("kind", "must be one of: Service, Node, Gateway")]),
    (
        "kind-unknown-and-api",
        service(kind="Pod", apiVersion="v1"),
        [("apiVersion", "must be meshop.io/v1alpha1"), ("kind", "must be one of: Service, Node, Gateway")],
    ),
    ("empty-document", {}, [("apiVersion", "is required"), ("kind", "is required")]),
    (
        "missing-spec-and-metadata",
        {"apiVersion": "meshop.io/v1alpha1", "kind": "Service"},
        [("metadata", "is required"), ("spec", "is required")],
    ),
    ("missing-image", service({"image": None}) | {"spec": {}}, [("spec.image", "is required")]),
    ("not-a-document", None, [("", "a document must be an object, got null")]),
    ("a-list", [service()], [("", "a document must be an object, got array")]),
    (
        "non-string-key",
        service(metadata={"name": "web", "labels": {1: "x"}}),
        [("metadata.labels", "object keys must be strings, got integer")],
    ),
    (
        "non-string-key-keeps-other-violations",
        {**service(metadata={"name": "Web"}), 1: "x", "spec": {"replicas": "1"}},
        [
            ("", "object keys must be strings, got integer"),
            ("metadata.name", LABEL_NAME),
            ("spec.image", "is required"),
            ("spec.replicas", 'expected integer, got string "1"'),
        ],
    ),
    (
        "integral-float-host-port-still-conflicts",
        service({"ports": [{"name": "http", "container": 80.0, "host": 8080.0}]}),
        [("spec.ports[0].host", START_FIRST_HOST)],
    ),
    (
        "memory-huge-float",
        service({"resources": {"memory": 1e300}}),
        [("spec.resources.memory", MEMORY_RANGE)],
    ),
    ("memory-negative", service({"resources": {"memory": -5}}), [("spec.resources.memory", MEMORY_RANGE)]),
    (
        "memory-fraction",
        service({"resources": {"memory": 1.5}}),
        [("spec.resources.memory", "expected string or integer, got number 1.5")],
    ),
    (
        "duration-negative",
        service({"update": {"healthTimeout": -3}}),
        [("spec.update.healthTimeout", DURATION_RANGE)],
    ),
    (
        "replaced-value-hides-only-itself",
        service({"replicas": float("inf"), "restart": "never"}),
        [
            ("spec.replicas", "must be a finite number"),
            ("spec.restart", "must be one of: no, always, unless-stopped, on-failure"),
        ],
    ),
    # --- node and gateway ----------------------------------------------------------------------------
    ("node-name", node(metadata={"name": "Node_1"}), [("metadata.name", LABEL_NAME)]),
    (
        "node-policy-type",
        node({"policy": {"allowPrivileged": "true"}}),
        [("spec.policy.allowPrivileged", 'expected boolean, got string "true"')],
    ),
    ("gateway-acme-no-email", gateway({"tls": {"mode": "acme"}}), [("spec.tls.email", "is required")]),
    (
        "gateway-default-tls-needs-email",
        gateway() | {"spec": {"domains": ["example.com"]}},
        [("spec.tls.email", "is required")],
    ),
    (
        "gateway-email-injection",
        gateway({"tls": {"mode": "acme", "email": "ops@example.com\n}\nimport x"}}),
        [("spec.tls.email", "must be a plain address like ops@example.com")],
    ),
    ("gateway-no-domains", gateway({"domains": []}), [("spec.domains", "must not be empty")]),
    (
        "gateway-bad-domain",
        gateway({"domains": ["example.com", "{$DOMAIN}", "example.com"]}),
        [
            ("spec.domains[1]", "must be a lowercase DNS hostname: RFC 1123 labels joined by '.'"),
            ("spec.domains[2]", "duplicate domain (also spec.domains[0])"),
        ],
    ),
    (
        "gateway-tls-mode",
        gateway({"tls": {"mode": "manual"}}),
        [("spec.tls.mode", "must be one of: acme, internal, off")],
    ),
    (
        "gateway-rfc2136-missing",
        gateway({"dns": {"provider": "rfc2136", "server": "ns1:99999"}}),
        [
            ("spec.dns.keyName", "is required"),
            ("spec.dns.keySecretKey", "is required"),
            ("spec.dns.server", "must be host:port, e.g. 127.0.0.1:53 or ns1.example.com:53"),
            ("spec.dns.zone", "is required"),
        ],
    ),
    (
        "gateway-powerdns-missing",
        gateway({"dns": {"provider": "powerdns"}}),
        [
            ("spec.dns.apiUrl", "is required"),
            ("spec.dns.keySecretKey", "is required"),
            ("spec.dns.zone", "is required"),
        ],
    ),
    (
        "gateway-powerdns-bad-url",
        gateway(
            {
                "dns": {
                    "provider": "powerdns",
                    "apiUrl": "http://admin:pw@ns1.example.com:8081",
                    "serverId": "local host",
                    "zone": "example.com.",
                    "keySecretKey": "meshop/secrets/meshop-dns/pdns",
                }
            }
        ),
        [
            (
                "spec.dns.apiUrl",
                "must be http(s)://host[:port][/path], e.g. https://ns1.example.com:8081 (no user, query or fragment)",
            ),
            (
                "spec.dns.serverId",
                "must be the API's server id: letters, digits, '.', '_', '-' (at most 64), e.g. localhost",
            ),
        ],
    ),
    (
        "gateway-rfc2136-secret-elsewhere",
        gateway(
            {
                "dns": {
                    "provider": "rfc2136",
                    "server": "ns1:53",
                    "zone": "example.com.",
                    "keyName": "meshop",
                    "keySecretKey": "meshop/secrets/web/db-password",
                    "ownerId": "Prod Cluster",
                    "ttl": 1,
                }
            }
        ),
        [
            (
                "spec.dns.keySecretKey",
                "must lie in <prefix>/secrets/meshop-dns/ (the one folder the DNS writer reads), "
                "e.g. meshop/secrets/meshop-dns/tsig",
            ),
            (
                "spec.dns.ownerId",
                "must be an RFC 1123 label (a-z, 0-9, '-'; at most 63): it is written into a TXT record",
            ),
            ("spec.dns.ttl", "must be a whole number of seconds from 5 to 86400"),
        ],
    ),
    (
        "gateway-dashboard-outside-domains-and-hostname-upstream",
        gateway({"dashboard": {"host": "dash.other.org", "upstream": "localhost:8080"}}),
        [
            ("spec.dashboard.host", "dash.other.org is not under any of spec.domains (example.com)"),
            ("spec.dashboard.upstream", "must be an IP address and port, e.g. 127.0.0.1:8080 or [fd7a:115c::5]:8080"),
        ],
    ),
    (
        "gateway-dashboard-without-tls",
        gateway({"tls": {"mode": "off"}, "dashboard": {"host": "dashboard.example.com"}}),
        [
            (
                "spec.dashboard",
                "needs TLS: spec.tls.mode is off, and the dashboard's login would cross the network in clear "
                "(use acme or internal)",
            )
        ],
    ),
    (
        "gateway-dashboard-bad-host-no-port",
        gateway({"dashboard": {"host": "Dash\n{", "upstream": "127.0.0.1"}}),
        [
            ("spec.dashboard.host", "must be a lowercase DNS hostname"),
            ("spec.dashboard.upstream", "must be an IP address and port, e.g. 127.0.0.1:8080 or [fd7a:115c::5]:8080"),
        ],
    ),
    (
        "gateway-dashboard-no-host",
        gateway({"dashboard": {"upstream": "127.0.0.1:8080"}}),
        [("spec.dashboard.host", "is required")],
    ),
]


@pytest.mark.parametrize(("doc", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_document(doc: Any, expected: list[tuple[str, str]]) -> None:
    assert pairs(validate(doc)) == expected


def test_table_is_large_and_ids_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(("doc", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_raises_with_the_same_violations(doc: Any, expected: list[tuple[str, str]]) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_document(doc, source="desired/services/web")
    assert pairs(info.value.violations) == expected
    assert info.value.source == "desired/services/web"
    assert str(info.value).startswith("desired/services/web: invalid document")


RISKY = {
    "privileged": ({"privileged": True}, Policy(allow_privileged=True)),
    "bind-mount": (
        {"volumes": [{"hostPath": "/srv/x", "mountPath": "/x", "readOnly": True}]},
        Policy(allow_bind_mounts=True),
    ),
    "host-network": ({"networkMode": "host"}, Policy(allow_host_network=True)),
}


@pytest.mark.parametrize(("spec", "policy"), list(RISKY.values()), ids=list(RISKY))
def test_risky_features_pass_when_the_policy_allows_them(spec: dict[str, Any], policy: Policy) -> None:
    doc = service(spec)
    assert validate(doc) != []
    assert validate(doc, policy) == []
    assert validate(doc, PERMISSIVE_POLICY) == []


def test_every_violation_is_reported_at_once() -> None:
    doc = service(
        {
            "replicas": -1,
            "image": "bad image",
            "restart": "sometimes",
            "colour": "blue",
            **route("Bad Host", "no-slash", "nope"),
        },
        metadata={"name": "Bad"},
    )
    assert [v.path for v in validate(doc)] == [
        "metadata.name",
        "spec.colour",
        "spec.image",
        "spec.replicas",
        "spec.restart",
        "spec.route.host",
        "spec.route.path",
        "spec.route.port",
    ]


@pytest.mark.parametrize(
    "dashboard",
    [{"host": "dashboard.example.com"}, {"host": "example.com", "upstream": "[fd7a:115c::5]:8080"}],
    ids=["default-upstream", "apex-ipv6"],
)
def test_a_dashboard_host_under_the_domains_is_valid_and_round_trips(dashboard: dict[str, str]) -> None:
    doc = gateway({"dashboard": dashboard})
    assert validate(doc) == []
    parsed = parse_gateway(doc)
    assert parsed.dashboard is not None and parsed.dashboard.host == dashboard["host"]
    assert parsed.dashboard.upstream == dashboard.get("upstream", "127.0.0.1:8080")
    assert parse_gateway(parsed.to_dict()) == parsed
