"""Rules JSON Schema cannot say well: formats of names, hosts and paths, references and conflicts.

Every function takes an already sanitised and defaulted document and *appends* violations; each one
ignores values of the wrong type, because the schema has already reported those.
"""

from __future__ import annotations

from typing import Any

from meshop.errors import Violation
from meshop.model import keys, names
from meshop.model.paths import child
from meshop.model.policy import Policy
from meshop.model.schema import show
from meshop.model.units import OutOfRange, parse_duration, parse_memory

MIN_MEMORY = 6 * 2**20  # Docker refuses less than 6 MiB
MIN_INTERVAL = 1.0  # health-check interval floor: Consul and the agent probe every replica this often
# Docker's default capability set: the only ones a Service may add (back). Anything beyond it (SYS_ADMIN,
# NET_ADMIN, SYS_PTRACE, ...) reaches into the host and is refused outright.
ADDABLE_CAPS = frozenset(
    [
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "NET_RAW",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ]
)
KNOWN_CAPS = ADDABLE_CAPS | frozenset(
    [
        "AUDIT_CONTROL",
        "AUDIT_READ",
        "BLOCK_SUSPEND",
        "BPF",
        "CHECKPOINT_RESTORE",
        "DAC_READ_SEARCH",
        "IPC_LOCK",
        "IPC_OWNER",
        "LEASE",
        "LINUX_IMMUTABLE",
        "MAC_ADMIN",
        "MAC_OVERRIDE",
        "NET_ADMIN",
        "NET_BROADCAST",
        "PERFMON",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_MODULE",
        "SYS_NICE",
        "SYS_PACCT",
        "SYS_PTRACE",
        "SYS_RAWIO",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "SYSLOG",
        "WAKE_ALARM",
    ]
)

LABEL_NAME = "must be an RFC 1123 label: 1-63 of a-z, 0-9 and '-', starting and ending alphanumeric"
HOST = "must be a lowercase DNS hostname: RFC 1123 labels joined by '.', optionally starting with '*.'"
URL_PATH = "must start with '/' and hold only URL path characters: A-Z a-z 0-9 - . _ ~ % / : @ ! $ & + , ; ="
LABEL_KEY = "is not a valid label key: [prefix/]name, name of 1-63 of A-Z a-z 0-9 - _ . alphanumeric at the ends"
LABEL_VALUE = "is not a valid label value: at most 63 of A-Z a-z 0-9 - _ . alphanumeric at the ends"
CONSUL_KEY = "must be a Consul key like meshop/secrets/<service>/name: '/'-separated segments of A-Z a-z 0-9 . _ -"
DURATION_RANGE = "must be longer than 0s and at most 168h (one week)"
MEMORY_RANGE = "must be at least 6Mi (Docker's minimum) and at most 1Pi"
ABS_PATH = "must be an absolute path of A-Z a-z 0-9 . _ @ + = , ~ / - without '..' segments"

Out = list[Violation]


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def check(out: Out, path: str, value: object, ok: bool, reason: str) -> None:
    if isinstance(value, str) and not ok:
        out.append(Violation(path, reason))


def _label_map(out: Out, path: str, mapping: object, values: bool) -> None:
    for key, value in as_dict(mapping).items():
        check(out, child(path, key), key, names.is_label_key(key), LABEL_KEY)
        if values:
            check(out, child(path, key), value, names.is_label_value(value), LABEL_VALUE)


def _duplicates(out: Out, path: str, items: list[Any], field: str, what: str) -> None:
    seen: dict[object, int] = {}
    for i, item in enumerate(items):
        key = as_dict(item).get(field)
        if isinstance(key, (str, int)):
            if key in seen:
                out.append(
                    Violation(
                        child(child(path, i), field),
                        f"duplicate {what} {show(key)} (also {child(path, seen[key])})",
                    )
                )
            else:
                seen[key] = i


def _duration(out: Out, path: str, value: object, minimum: float = 0.0) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return
    try:
        seconds = parse_duration(value)
    except OutOfRange:
        seconds = -1.0
    except ValueError:
        out.append(Violation(path, f"{show(value)} is not a duration like 500ms, 10s or 1m30s"))
        return
    if seconds <= 0:
        out.append(Violation(path, DURATION_RANGE))
    elif seconds < minimum:
        out.append(Violation(path, f"must be at least {minimum:g}s (every replica's check runs this often)"))


def metadata_rules(out: Out, doc: dict[str, Any]) -> None:
    meta = as_dict(doc.get("metadata"))
    check(out, "metadata.name", meta.get("name"), names.is_dns_label(meta.get("name")), LABEL_NAME)
    _label_map(out, "metadata.labels", meta.get("labels"), values=True)
    _label_map(out, "metadata.annotations", meta.get("annotations"), values=False)


def tcp_port(ref: object, ports: list[Any]) -> int | None:
    """Container port a route/health ``port`` refers to (by name or number), among tcp ports."""
    for port in ports:
        port = as_dict(port)
        if port.get("protocol", "tcp") != "tcp" or isinstance(ref, bool):
            continue
        if (isinstance(ref, str) and port.get("name") == ref) or (
            isinstance(ref, int) and port.get("container") == ref
        ):
            container = port.get("container")
            return container if isinstance(container, int) and not isinstance(container, bool) else None
    return None


def _port_ref(out: Out, path: str, ref: object, ports: list[Any]) -> None:
    if isinstance(ref, (str, int)) and not isinstance(ref, bool) and tcp_port(ref, ports) is None:
        out.append(Violation(path, f"{show(ref)} is not a declared tcp port (name or container port)"))


RESERVED_PREFIX = "meshop-"
RESERVED = (
    "is reserved: meshop's own Consul services (meshop-agent, meshop-controller, meshop-metrics) use "
    "names starting with 'meshop-', and a Service's replicas register under the Service's name"
)


def service_rules(out: Out, doc: dict[str, Any], policy: Policy, prefix: str = keys.DEFAULT_PREFIX) -> None:
    """``prefix``: meshop's KV prefix, which a secret's ``consulKey`` must start with."""
    name = as_dict(doc.get("metadata")).get("name")
    check(out, "metadata.name", name, not (isinstance(name, str) and name.startswith(RESERVED_PREFIX)), RESERVED)
    spec = as_dict(doc.get("spec"))
    image = spec.get("image")
    check(
        out,
        "spec.image",
        image,
        names.is_image_reference(image),
        "is not a valid image reference like registry.example.com/app:v1",
    )
    _env_rules(out, as_list(spec.get("env")), as_dict(doc.get("metadata")).get("name"), prefix)
    ports = as_list(spec.get("ports"))
    _port_rules(out, spec, ports)
    _volume_rules(out, as_list(spec.get("volumes")), policy)
    placement = as_dict(spec.get("placement"))
    for field in ("node", "group"):
        check(
            out,
            f"spec.placement.{field}",
            placement.get(field),
            names.is_dns_label(placement.get(field)),
            LABEL_NAME,
        )
    _label_map(out, "spec.placement.nodeSelector", placement.get("nodeSelector"), values=True)
    if isinstance(route := spec.get("route"), dict):
        check(out, "spec.route.host", route.get("host"), names.is_wildcard_hostname(route.get("host")), HOST)
        check(out, "spec.route.path", route.get("path"), names.is_url_path(route.get("path")), URL_PATH)
        _port_ref(out, "spec.route.port", route.get("port"), ports)
    if isinstance(health := spec.get("health"), dict):
        for kind in ("http", "tcp"):
            probe = as_dict(health.get(kind))
            _port_ref(out, f"spec.health.{kind}.port", probe.get("port"), ports)
            check(
                out,
                f"spec.health.{kind}.path",
                probe.get("path"),
                names.is_url_path(probe.get("path")),
                URL_PATH,
            )
        _duration(out, "spec.health.interval", health.get("interval"), minimum=MIN_INTERVAL)
        _duration(out, "spec.health.timeout", health.get("timeout"))
    _duration(out, "spec.update.healthTimeout", as_dict(spec.get("update")).get("healthTimeout"))
    _memory(out, as_dict(spec.get("resources")).get("memory"))
    tailnet = as_dict(as_dict(spec.get("expose")).get("tailnet"))
    check(
        out,
        "spec.expose.tailnet.name",
        tailnet.get("name"),
        names.is_dns_label(tailnet.get("name")),
        LABEL_NAME,
    )
    _security_rules(out, as_dict(spec.get("security")))
    if spec.get("privileged") is True and not policy.allow_privileged:
        out.append(
            Violation("spec.privileged", "privileged containers are refused by the node policy (allowPrivileged)")
        )
    if spec.get("networkMode") == "host" and not policy.allow_host_network:
        out.append(Violation("spec.networkMode", "host networking is refused by the node policy (allowHostNetwork)"))


def _security_rules(out: Out, security: dict[str, Any]) -> None:
    user = security.get("user")
    check(out, "spec.security.user", user, names.is_user(user), "must be user[:group], names or numeric ids")
    caps = as_dict(security.get("capabilities"))
    for field in ("drop", "add"):
        for i, cap in enumerate(as_list(caps.get(field))):
            path = f"spec.security.capabilities.{field}[{i}]"
            if not isinstance(cap, str):
                continue
            name = cap.upper().removeprefix("CAP_")
            if field == "drop" and name == "ALL":
                continue
            if name not in KNOWN_CAPS:
                out.append(Violation(path, f"{show(cap)} is not a Linux capability name like CHOWN or NET_RAW"))
            elif field == "add" and name not in ADDABLE_CAPS:
                allowed = ", ".join(sorted(ADDABLE_CAPS))
                out.append(Violation(path, f"{show(cap)} may not be added; only Docker's default set: {allowed}"))


def _env_rules(out: Out, env: list[Any], service: object, prefix: str) -> None:
    for i, item in enumerate(env):
        item = as_dict(item)
        check(
            out,
            f"spec.env[{i}].name",
            item.get("name"),
            names.is_env_name(item.get("name")),
            "must be an environment variable name: [A-Za-z_][A-Za-z0-9_]*",
        )
        key = as_dict(item.get("valueFrom")).get("consulKey")
        path = f"spec.env[{i}].valueFrom.consulKey"
        check(out, path, key, names.is_consul_key(key), CONSUL_KEY)
        if (
            isinstance(key, str)
            and names.is_consul_key(key)
            and isinstance(service, str)
            and not keys.in_secret_folder(key, prefix, service)
        ):
            folder = keys.secret_folder(prefix, service)
            out.append(Violation(path, f"{show(key)} is outside this service's secrets folder: use {folder}<name>"))
    _duplicates(out, "spec.env", env, "name", "name")


def _port_rules(out: Out, spec: dict[str, Any], ports: list[Any]) -> None:
    strategy = as_dict(spec.get("update")).get("strategy")
    replicas = spec.get("replicas")
    placement = as_dict(spec.get("placement"))
    seen_container: dict[tuple[object, object], int] = {}
    seen_host: dict[tuple[object, object], int] = {}
    for i, port in enumerate(ports):
        port = as_dict(port)
        path = f"spec.ports[{i}]"
        check(out, f"{path}.name", port.get("name"), names.is_dns_label(port.get("name")), LABEL_NAME)
        proto = port.get("protocol")
        for field, seen in (("container", seen_container), ("host", seen_host)):
            number = port.get(field)
            if isinstance(number, int) and not isinstance(number, bool):
                if (number, proto) in seen:
                    out.append(
                        Violation(
                            f"{path}.{field}",
                            f"duplicate {field} port {number}/{proto} (also spec.ports[{seen[number, proto]}])",
                        )
                    )
                else:
                    seen[number, proto] = i
        host = port.get("host")
        if not isinstance(host, int) or isinstance(host, bool):
            continue
        if spec.get("networkMode") == "host":
            out.append(Violation(f"{path}.host", "host ports do not apply with networkMode host: remove it"))
        elif strategy == "start-first":
            out.append(
                Violation(
                    f"{path}.host",
                    f"fixed host port {host} needs update.strategy stop-first "
                    "(start-first would run two containers on one host port)",
                )
            )
        if (
            isinstance(replicas, int)
            and replicas > 1
            and (placement.get("spread") is False or placement.get("node") is not None)
        ):
            out.append(
                Violation(
                    f"{path}.host",
                    f"fixed host port {host} with {replicas} replicas needs "
                    "placement.spread true and no placement.node "
                    "(one replica per node)",
                )
            )
    _duplicates(out, "spec.ports", ports, "name", "name")


def _volume_rules(out: Out, volumes: list[Any], policy: Policy) -> None:
    for i, vol in enumerate(volumes):
        vol = as_dict(vol)
        path = f"spec.volumes[{i}]"
        check(out, f"{path}.name", vol.get("name"), names.is_dns_label(vol.get("name")), LABEL_NAME)
        check(out, f"{path}.mountPath", vol.get("mountPath"), names.is_abs_path(vol.get("mountPath")), ABS_PATH)
        if isinstance(host_path := vol.get("hostPath"), str):
            check(out, f"{path}.hostPath", host_path, names.is_abs_path(host_path), ABS_PATH)
            if not policy.allow_bind_mounts:
                out.append(
                    Violation(f"{path}.hostPath", "bind mounts are refused by the node policy (allowBindMounts)")
                )
            if vol.get("deleteWithService") is True:
                out.append(Violation(f"{path}.deleteWithService", "only named volumes can be deleted with the service"))
    _duplicates(out, "spec.volumes", volumes, "name", "volume")
    _duplicates(out, "spec.volumes", volumes, "mountPath", "mountPath")


def _memory(out: Out, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return
    if isinstance(value, float) and not value.is_integer():
        return  # the schema has reported it: memory is a string or an integer
    try:
        size = parse_memory(value)
    except OutOfRange:
        size = -1
    except ValueError:
        out.append(
            Violation(
                "spec.resources.memory",
                f"{show(value)} is not a memory quantity like 256Mi, 1Gi, 512M or 1048576",
            )
        )
        return
    if size < MIN_MEMORY:
        out.append(Violation("spec.resources.memory", MEMORY_RANGE))
