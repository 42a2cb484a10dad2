"""Pure: a normalised Compose project (``docker-compose config``'s output) -> meshop Service documents.

The rule: every service becomes one Service document that ``meshop validate`` accepts; whatever of a
service meshop cannot express is left out of the document and reported as a ``ConvertWarning`` naming the key,
the service, the source line and what to do instead. Nothing is silently dropped, and nothing secret is
written into a document: Compose ``secrets`` and environment variables whose names say they hold a
secret (``*PASSWORD*``, ``*TOKEN*``, ...) become ``valueFrom.consulKey`` references, and the caller prints
a ``consul kv put`` line per ``Secret`` (where the value comes from, never the value).

Compose's own rules (interpolation, ``.env``, ``x-*`` extension fields, anchors and merge keys, ``env_file``
and relative paths) are applied before this module sees the project, by the Compose tool itself
(``meshop.convert.normalise``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from meshop.convert import fields
from meshop.convert.routes import is_proxy_label, route_labels
from meshop.model import API_VERSION, names
from meshop.model.keys import DEFAULT_PREFIX
from meshop.model.rules import ADDABLE_CAPS, KNOWN_CAPS

Locate = Callable[[str, str], str]  # (compose service, key) -> "file:line" of that key, or the file


class ConvertWarning(NamedTuple):
    where: str  # "compose.yaml:12"
    path: str  # "services.web.depends_on"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.path}: {self.message}"


class Secret(NamedTuple):
    key: str  # the full Consul key the document reads
    source: str  # "@/abs/file" (consul kv put reads the file) or "-" (the value is typed on stdin)
    note: str  # where the value comes from


class Conversion(NamedTuple):
    documents: list[dict[str, Any]]
    warnings: list[ConvertWarning]
    secrets: list[Secret]


# keys handled below; anything else in a service is reported with the generic advice
HANDLED = {
    "image", "build", "command", "entrypoint", "environment", "ports", "expose", "volumes", "healthcheck",
    "restart", "deploy", "labels", "secrets", "user", "mem_limit", "cpus", "read_only", "cap_add", "cap_drop",
    "privileged", "network_mode", "security_opt", "env_file",
}  # fmt: skip
ADVICE = {
    "depends_on": "meshop starts every service on its own; make the program retry its dependencies (a health "
    "check keeps a replica out of routing until it answers)",
    "networks": "every service reaches the others through the node's addresses or the gateway; there are no "
    "per-project networks",
    "links": "use the other service's route or its node address and published port",
    "container_name": "meshop names the containers itself (one per replica)",
    "hostname": "meshop names the containers itself",
    "working_dir": "set WORKDIR in the image, or start the command with `cd DIR &&` under /bin/sh -c",
    "extra_hosts": "put the names in DNS, or in the image's /etc/hosts",
    "profiles": "every service of the file was converted; leave out the documents you do not want",
    "stdin_open": "services run detached; use `meshop exec` for an interactive shell",
    "tty": "services run detached; use `meshop exec --tty`",
    "logging": "the nodes' Docker logging configuration applies; read logs with `meshop logs`",
    "configs": "meshop mounts no config files: bake them into the image or a named volume",
    "devices": "meshop passes no host devices to containers",
}
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL", re.IGNORECASE)
NOT_HTTP = {21, 22, 25, 53, 110, 143, 389, 445, 587, 1433, 1521, 1883, 2181, 3306, 5432, 5672, 6379, 9042, 9092,
            11211, 27017, 51820}  # fmt: skip
RESTARTS = {"no": "no", "always": "always", "unless-stopped": "unless-stopped", "on-failure": "on-failure"}
POLICY_RESTARTS = {"none": "no", "on-failure": "on-failure", "any": "always"}


def convert(
    project: Mapping[str, Any],
    *,
    project_name: str = "app",
    domain: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    locate: Locate = lambda _service, _key: "",
    source: str = "compose.yaml",
) -> Conversion:
    """Every service of ``project`` as a Service document, sorted by name, with the warnings and secrets."""
    out = _Converter(project, project_name, domain, prefix, locate, source)
    return out.run()


class _Converter:
    def __init__(
        self, project: Mapping[str, Any], name: str, domain: str | None, prefix: str, locate: Locate, source: str
    ) -> None:
        self.project, self.project_name, self.domain, self.prefix = project, name, domain, prefix
        self.locate, self.source = locate, source
        self.warnings: list[ConvertWarning] = []
        self.secrets: list[Secret] = []

    def warn(self, service: str, key: str, message: str) -> None:
        where = self.locate(service, key.split(".")[0]) if service else self.locate("", key)
        path = f"services.{service}.{key}" if service else key
        self.warnings.append(ConvertWarning(where or self.source, path, message))

    def run(self) -> Conversion:
        services = self.project.get("services") or {}
        for key in ("networks", "configs"):
            if self.project.get(key):
                self.warn("", key, ADVICE[key])
        for volume, spec in sorted((self.project.get("volumes") or {}).items()):
            if isinstance(spec, dict) and (spec.get("driver") or spec.get("external") or spec.get("driver_opts")):
                self.warn("", f"volumes.{volume}", "meshop volumes are local Docker volumes on the node, per service")
        names_taken: dict[str, str] = {}
        documents = []
        for original in sorted(services):
            label = fields.dns_label(original)
            while label in names_taken:
                label = fields.dns_label(f"{label[:58]}-{len(names_taken)}")
            names_taken[label] = original
            if label != original:
                self.warn(original, "name", f"renamed to {label} (meshop names are RFC 1123 labels)")
            documents.append(self.service(original, label, services[original] or {}))
        self.shared_volumes(services)
        return Conversion(documents, self.warnings, self.secrets)

    def shared_volumes(self, services: Mapping[str, Any]) -> None:
        users: dict[str, list[str]] = {}
        for name, spec in services.items():
            for volume in (spec or {}).get("volumes") or []:
                source = _volume_parts(volume)[0]
                if source and not source.startswith(("/", ".", "~")):
                    users.setdefault(source, []).append(name)
        for volume, who in sorted(users.items()):
            if len(who) > 1:
                self.warn(
                    "",
                    f"volumes.{volume}",
                    f"shared by {', '.join(sorted(who))}: meshop volumes belong to one service each; each "
                    "service gets its own (put data that must be shared behind one service)",
                )

    def service(self, original: str, name: str, svc: Mapping[str, Any]) -> dict[str, Any]:
        spec: dict[str, Any] = {"image": self.image(original, name, svc)}
        if svc.get("entrypoint") is not None:
            spec["command"] = self.argv(original, "entrypoint", svc["entrypoint"])
        if svc.get("command") is not None:
            spec["args"] = self.argv(original, "command", svc["command"])
        ports = self.ports(original, svc)
        env = self.env(original, name, svc, spec)
        if env:
            spec["env"] = env
        volumes = self.volumes(original, svc)
        if volumes:
            spec["volumes"] = volumes
        self.deploy(original, svc, spec)
        self.security(original, svc, spec)
        health = self.health(original, svc, ports)
        route = self.route(original, name, svc, ports)
        if ports:
            spec["ports"] = [ports[key] for key in sorted(ports, key=lambda k: (k[1], k[0]))]
        if health:
            spec["health"] = health
        if route:
            spec["route"] = route
        if any("host" in port for port in spec.get("ports", [])):
            # a fixed host port cannot be held by the old and the new container at once
            spec["update"] = {**spec.get("update", {}), "strategy": "stop-first"}
        for key in sorted(set(svc) - HANDLED):
            self.warn(original, key, ADVICE.get(key, f"meshop cannot express {key}; it was left out"))
        metadata: dict[str, Any] = {"name": name}
        if name != original:
            metadata["annotations"] = {"meshop.io/compose-service": original}
        return {"apiVersion": API_VERSION, "kind": "Service", "metadata": metadata, "spec": spec}

    def image(self, original: str, name: str, svc: Mapping[str, Any]) -> str:
        image = svc.get("image")
        if svc.get("build") is not None:
            advice = "meshop builds no images: build and push it to a registry every node can pull from"
            if image:
                self.warn(original, "build", f"{advice} (as {image})")
            else:
                image = f"{fields.dns_label(self.project_name)}_{name}:latest"
                self.warn(original, "build", f"{advice}, then set spec.image (now {image}, the name Compose gives it)")
        if not isinstance(image, str) or not names.is_image_reference(image):
            self.warn(original, "image", f"{image!r} is not an image reference; replace the placeholder")
            image = f"{name}:latest"
        return image

    def argv(self, original: str, key: str, value: object) -> list[str]:
        words, note = fields.argv(value)
        if note:
            self.warn(original, key, note)
        return words[:256]

    def ports(self, original: str, svc: Mapping[str, Any]) -> dict[tuple[int, str], dict[str, Any]]:
        ports: dict[tuple[int, str], dict[str, Any]] = {}
        hosts: set[tuple[int, str]] = set()
        entries = [*(svc.get("ports") or []), *(str(e) for e in svc.get("expose") or [])]
        for entry in entries:
            parsed = fields.parse_port(entry)
            if parsed is None:
                self.warn(original, "ports", f"{entry!r} is not a port meshop can publish; left out")
                continue
            for port in parsed:
                key = (port.container, port.protocol)
                if port.protocol not in ("tcp", "udp") or not 0 < port.container < 65536:
                    self.warn(original, "ports", f"{entry!r}: only tcp and udp ports 1-65535; left out")
                    continue
                if port.host_ip and port.host_ip not in ("0.0.0.0", "::"):
                    self.warn(
                        original, "ports", f"{entry!r}: published on every address of the node, not {port.host_ip}"
                    )
                item = ports.setdefault(key, {"name": fields.port_name(*key), "container": port.container})
                if port.protocol != "tcp":
                    item["protocol"] = port.protocol
                if port.host is not None and not 0 <= port.host < 65536:
                    self.warn(original, "ports", f"{entry!r}: host port {port.host} is out of range; an ephemeral one")
                elif port.host:  # 0: Docker picks one, as without a host port
                    if "host" in item or (port.host, port.protocol) in hosts:
                        self.warn(original, "ports", f"{entry!r}: a container port is published once; left out")
                    else:
                        item["host"] = port.host
                        hosts.add((port.host, port.protocol))
        if len(ports) > 64:
            self.warn(original, "ports", f"{len(ports)} ports: meshop takes 64; the first 64 are kept")
            ports = dict(list(ports.items())[:64])
        return ports

    def env(self, original: str, name: str, svc: Mapping[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
        raw = svc.get("environment") or {}
        if isinstance(raw, list):  # docker-compose config gives a mapping; a list is tolerated
            raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in map(str, raw))
        env: dict[str, dict[str, Any]] = {}
        secret_files = self.secret_refs(original, name, svc)
        for var, value in raw.items():
            var = str(var)
            if not names.is_env_name(var):
                self.warn(original, "environment", f"{var!r} is not a variable name meshop passes on; left out")
            elif value is None:
                self.warn(original, "environment", f"{var} takes its value from the shell running compose; set it")
            elif var.endswith("_FILE") and str(value).startswith("/run/secrets/") and str(value)[13:] in secret_files:
                target = var[: -len("_FILE")]  # POSTGRES_PASSWORD_FILE=/run/secrets/x -> POSTGRES_PASSWORD
                env[target] = {"name": target, "valueFrom": {"consulKey": secret_files.pop(str(value)[13:])}}
                self.warn(original, "environment", f"{var} read a secret file; {target} now reads the secret itself")
            elif SECRET_NAME.search(var):
                key = f"{self.prefix}/secrets/{name}/{fields.key_segment(var)}"
                env[var] = {"name": var, "valueFrom": {"consulKey": key}}
                where = self.locate(original, "environment") or self.source
                self.secrets.append(Secret(key, "-", f"{var} of service {original} ({where})"))
            else:
                env[var] = {"name": var, "value": _text(value)}
        for secret, key in secret_files.items():
            var = re.sub(r"[^A-Za-z0-9_]", "_", secret).upper()
            if var[:1].isdigit():
                var = "_" + var
            if var in env:
                self.warn(original, "secrets", f"{secret}: {var} is set already; the secret is left out")
                continue
            env[var] = {"name": var, "valueFrom": {"consulKey": key}}
            self.warn(
                original,
                "secrets",
                f"{secret} is the environment variable {var} (meshop has no secret files); a program that "
                f"reads /run/secrets/{secret} must read {var} instead",
            )
        if len(env) > 256:
            self.warn(original, "environment", f"{len(env)} variables: meshop takes 256; the first 256 are kept")
        return list(env.values())[:256]

    def secret_refs(self, original: str, name: str, svc: Mapping[str, Any]) -> dict[str, str]:
        """The service's Compose secrets: name -> the Consul key meshop reads it from (one kv put line each)."""
        declared = self.project.get("secrets") or {}
        refs: dict[str, str] = {}
        for ref in svc.get("secrets") or []:
            secret = str(ref.get("source") if isinstance(ref, dict) else ref)
            key = f"{self.prefix}/secrets/{name}/{fields.key_segment(secret)}"
            top = declared.get(secret) or {}
            if top.get("file"):
                self.secrets.append(Secret(key, f"@{top['file']}", f"secret {secret} of service {original}"))
            else:
                origin = f"environment variable {top['environment']}" if top.get("environment") else "external"
                self.secrets.append(Secret(key, "-", f"secret {secret} ({origin}) of service {original}"))
            refs[secret] = key
        return refs

    def volumes(self, original: str, svc: Mapping[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        mounts: set[str] = set()
        for i, volume in enumerate(svc.get("volumes") or []):
            source, target, read_only, kind = _volume_parts(volume)
            if not names.is_abs_path(target) or target in mounts or ".." in target.split("/"):
                self.warn(original, "volumes", f"{target!r} is not a mount path meshop takes (or a repeated one)")
                continue
            if kind == "tmpfs":
                self.warn(original, "volumes", f"tmpfs at {target}: meshop mounts no tmpfs; left out")
                continue
            if kind == "bind" or source.startswith(("/", ".", "~")):
                what = "the Docker socket" if source.endswith("docker.sock") else source
                self.warn(
                    original,
                    "volumes",
                    f"bind mount of {what} at {target} left out: it needs the path on every node and a Node "
                    f"policy with allowBindMounts (then add {{hostPath: {source}, mountPath: {target}}}); "
                    "or bake the files into the image, or use a named volume",
                )
                continue
            name = fields.dns_label(source) if source else f"data-{i}"
            if not source:
                self.warn(original, "volumes", f"anonymous volume at {target} is the named volume {name}")
            item: dict[str, Any] = {"name": name, "mountPath": target}
            if read_only:
                item["readOnly"] = True
            mounts.add(target)
            out.append(item)
        if len(out) > 32:
            self.warn(original, "volumes", f"{len(out)} volumes: meshop takes 32; the first 32 are kept")
        return out[:32]

    def deploy(self, original: str, svc: Mapping[str, Any], spec: dict[str, Any]) -> None:
        deploy = svc.get("deploy") or {}
        replicas = deploy.get("replicas")
        if isinstance(replicas, int) and not isinstance(replicas, bool):
            spec["replicas"] = min(max(replicas, 0), 100)
            if replicas > 100:
                self.warn(original, "deploy", f"replicas {replicas}: meshop runs at most 100")
        if deploy.get("mode") == "global":
            self.warn(
                original, "deploy", "mode global: set replicas to the number of nodes (spread keeps one per node)"
            )
        limits = (deploy.get("resources") or {}).get("limits") or {}
        if (deploy.get("resources") or {}).get("reservations"):
            self.warn(original, "deploy", "resources.reservations: meshop places by limits only; left out")
        resources: dict[str, Any] = {}
        mem = limits.get("memory", svc.get("mem_limit"))
        where = "deploy" if "memory" in limits else "mem_limit"
        if mem is not None:
            quantity = fields.memory(mem)
            if quantity is None:
                self.warn(original, where, f"memory {mem!r} is not a size; left out")
            elif fields.memory_bytes(quantity) < fields.MIN_MEMORY:
                self.warn(original, where, f"memory {mem!r} is below Docker's minimum; 6Mi instead")
                resources["memory"] = "6Mi"
            else:
                resources["memory"] = quantity
        cpus = limits.get("cpus", svc.get("cpus"))
        if cpus is not None:
            try:
                value = float(cpus)
            except (TypeError, ValueError):
                value = 0.0
            if 0 < value <= 1024:
                resources["cpus"] = value
            else:
                self.warn(original, "deploy", f"cpus {cpus!r} is not a number of CPUs meshop takes; left out")
        if resources:
            spec["resources"] = resources
        self.placement(original, deploy, spec)
        restart = svc.get("restart")
        condition = (deploy.get("restart_policy") or {}).get("condition")
        if condition in POLICY_RESTARTS:
            spec["restart"] = POLICY_RESTARTS[condition]
        elif isinstance(restart, str) and restart.split(":")[0] in RESTARTS:
            spec["restart"] = RESTARTS[restart.split(":")[0]]
            if ":" in restart:
                self.warn(original, "restart", f"{restart}: meshop does not count retries; on-failure")
        elif restart is not None:
            self.warn(original, "restart", f"{restart!r} is not a restart policy meshop knows; unless-stopped")
        order = (deploy.get("update_config") or {}).get("order")
        if order in ("start-first", "stop-first"):
            spec["update"] = {"strategy": order}
        for key in sorted(
            set(deploy) - {"replicas", "mode", "resources", "restart_policy", "update_config", "placement"}
        ):
            self.warn(original, f"deploy.{key}", f"meshop cannot express deploy.{key}; left out")

    def placement(self, original: str, deploy: Mapping[str, Any], spec: dict[str, Any]) -> None:
        selector: dict[str, str] = {}
        for constraint in (deploy.get("placement") or {}).get("constraints") or []:
            match = re.fullmatch(r"\s*node\.(labels\.([^=\s]+)|hostname)\s*==\s*(\S+)\s*", str(constraint))
            if match and match[2] and names.is_label_key(match[2]) and names.is_label_value(match[3]):
                selector[match[2]] = match[3]
            elif match and not match[2] and names.is_dns_label(match[3]):
                spec.setdefault("placement", {})["node"] = match[3]
            else:
                self.warn(
                    original, "deploy", f"placement constraint {constraint!r}: meshop has node and nodeSelector only"
                )
        if selector:
            spec.setdefault("placement", {})["nodeSelector"] = selector

    def security(self, original: str, svc: Mapping[str, Any], spec: dict[str, Any]) -> None:
        security: dict[str, Any] = {}
        user = svc.get("user")
        if user is not None:
            if names.is_user(str(user)):
                security["user"] = str(user)
            else:
                self.warn(original, "user", f"{user!r} is not user[:group] as meshop takes it; left out")
        if svc.get("read_only") is True:
            security["readOnlyRootFilesystem"] = True
        caps: dict[str, list[str]] = {}
        if svc.get("cap_drop"):
            dropped = [str(c).upper().removeprefix("CAP_") for c in svc["cap_drop"]]
            caps["drop"] = [c for c in dropped if c in KNOWN_CAPS or c == "ALL"]
            for cap in sorted(set(dropped) - set(caps["drop"])):
                self.warn(original, "cap_drop", f"{cap} is not a capability meshop knows; left out")
            if not caps["drop"]:
                del caps["drop"]
        if svc.get("cap_add"):
            wanted = [str(c).upper().removeprefix("CAP_") for c in svc["cap_add"]]
            caps["add"] = [c for c in wanted if c in ADDABLE_CAPS]
            for cap in sorted(set(wanted) - set(caps["add"])):
                self.warn(original, "cap_add", f"{cap} is outside Docker's default set, which meshop refuses")
            if not caps["add"]:
                del caps["add"]
        if caps:
            security["capabilities"] = caps
        if security:
            spec["security"] = security
        if svc.get("privileged"):
            self.warn(original, "privileged", "privileged needs a Node policy with allowPrivileged; left out")
        if svc.get("network_mode"):
            self.warn(original, "network_mode", "meshop runs containers on the bridge (host needs allowHostNetwork)")
        for opt in svc.get("security_opt") or []:
            if not str(opt).startswith("no-new-privileges"):
                self.warn(original, "security_opt", f"{opt}: meshop cannot express it; left out")

    def health(
        self, original: str, svc: Mapping[str, Any], ports: dict[tuple[int, str], dict[str, Any]]
    ) -> dict[str, Any] | None:
        check = svc.get("healthcheck") or {}
        test = check.get("test")
        if not check or check.get("disable") or not test or test in (["NONE"], "NONE"):
            return None
        probe = fields.health_probe(test)
        if probe is None:
            tcp = sorted(c for c, proto in ports if proto == "tcp")
            if not tcp:
                self.warn(original, "healthcheck", "meshop checks by HTTP or TCP only, and the service has no tcp port")
                return None
            probe = fields.HealthProbe("tcp", tcp[0])
            self.warn(original, "healthcheck", f"meshop runs no check commands: a TCP check of port {tcp[0]} instead")
        ports.setdefault((probe.port, "tcp"), {"name": fields.port_name(probe.port, "tcp"), "container": probe.port})
        health: dict[str, Any] = (
            {"http": {"port": probe.port, "path": probe.path}}
            if probe.kind == "http"
            else {"tcp": {"port": probe.port}}
        )
        for key, floor in (("interval", 1.0), ("timeout", 1e-9)):
            if key in check:
                value = fields.duration(check[key])
                if value is None or not floor <= fields.seconds(value) <= 168 * 3600:
                    self.warn(original, "healthcheck", f"{key} {check[key]!r}: not one meshop takes; its default")
                else:
                    health[key] = value
        for key in sorted(set(check) - {"test", "interval", "timeout"}):
            self.warn(original, "healthcheck", f"{key}: meshop judges with update.healthTimeout instead; left out")
        return health

    def route(
        self, original: str, name: str, svc: Mapping[str, Any], ports: dict[tuple[int, str], dict[str, Any]]
    ) -> dict[str, Any] | None:
        labels = {str(k): str(v) for k, v in (svc.get("labels") or {}).items()}
        others = sorted(k for k in labels if not is_proxy_label(k))
        if others:
            self.warn(original, "labels", f"container labels are not set by meshop: {', '.join(others)}")
        asked = route_labels(labels)
        tcp = sorted(c for c, proto in ports if proto == "tcp")
        if asked is not None:
            if asked.ignored:
                self.warn(
                    original,
                    "labels",
                    f"{asked.source} labels meshop's gateway does not need: {', '.join(asked.ignored)}",
                )
            hosts = [h for h in asked.hosts if names.is_wildcard_hostname(h)]
            if len(asked.hosts) > 1:
                self.warn(original, "labels", f"several hosts {', '.join(asked.hosts)}: meshop routes one, {hosts[:1]}")
            if not hosts:
                self.warn(original, "labels", f"no valid route host in {', '.join(asked.hosts)}; no route")
                return None
            port = asked.port or (tcp[0] if tcp else 80)
            path = asked.path if names.is_url_path(asked.path) else "/"
            host = hosts[0]
        elif self.domain and tcp and tcp[0] not in NOT_HTTP:
            port, path, host = tcp[0], "/", f"{name}.{self.domain}"
        else:
            return None
        ports.setdefault((port, "tcp"), {"name": fields.port_name(port, "tcp"), "container": port})
        route = {"host": host, "port": port}
        if path != "/":
            route["path"] = path
        return route


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _volume_parts(volume: object) -> tuple[str, str, bool, str]:
    """(source, target, read-only, type) of a short (``src:dst[:ro]``) or long volume entry."""
    if isinstance(volume, dict):
        return (
            str(volume.get("source") or ""),
            str(volume.get("target") or ""),
            bool(volume.get("read_only")),
            str(volume.get("type") or "volume"),
        )
    parts = str(volume).split(":")
    if len(parts) == 1:
        return "", parts[0], False, "volume"
    mode = parts[2] if len(parts) > 2 else ""
    return parts[0], parts[1], "ro" in mode.split(","), "volume"
