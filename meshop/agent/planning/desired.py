"""From an assignment to what the planner and the Docker driver need; pure.

* ``config_hash``: the assignment's spec hash, combined with a digest of the resolved secret values
  when the spec takes env from Consul keys, so a changed secret rolls the container. It goes on the
  container as a label (readable by whoever can already ``docker inspect`` the env itself), never
  into Consul: observed state carries the plain spec hash only.
* ``policy_refusal``: privileged mode and host networking are refused unless the agent was started
  with the matching ``--allow-*`` flag (defence in depth behind the controller's check); bind mounts
  are checked against ``--allow-bind-mount`` folders in ``hostpaths``.
* ``container_config``: one replica's full Docker configuration, secret values included.
* ``check_assignment``: the model's validation of the resolved spec, so nothing unchecked reaches Docker.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from meshop.agent.planning import labels as L
from meshop.agent.planning.config import ContainerConfig, Mount, PortBinding
from meshop.agent.planning.plan import Container, Note, ServiceTarget, Strategy
from meshop.model import API_VERSION, PERMISSIVE_POLICY, Policy, ServiceSpec, validate
from meshop.model.records import Assignment


def secret_keys(spec: ServiceSpec) -> dict[str, str]:
    """Env name -> Consul key, for every env var taken from a Consul key."""
    return {env.name: env.consul_key for env in spec.env if env.consul_key is not None}


def config_hash(spec_hash: str, secret_values: Mapping[str, str]) -> str:
    if not secret_values:
        return spec_hash
    digests = {name: hashlib.sha256(value.encode("utf-8")).hexdigest() for name, value in secret_values.items()}
    material = spec_hash + "\n" + json.dumps(digests, sort_keys=True)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]


def policy_refusal(spec: ServiceSpec, policy: Policy) -> str | None:
    refused = []
    if spec.privileged and not policy.allow_privileged:
        refused.append("privileged mode (--allow-privileged)")
    if spec.network_mode == "host" and not policy.allow_host_network:
        refused.append("host networking (--allow-host-network)")
    if not refused:
        return None
    return "this node's agent does not allow " + ", ".join(refused)


def effective_strategy(spec: ServiceSpec) -> Strategy:
    """Start-first needs a second host port for the new container: fixed ports and host networking are
    stop-first; so is a stateful volume, which has one writer ever (docs/stateful.md)."""
    if spec.network_mode == "host" or any(port.host for port in spec.ports) or spec.stateful_volumes:
        return "stop-first"
    return "start-first" if spec.update.strategy == "start-first" else "stop-first"


def desired_service(
    assignment: Assignment,
    spec: ServiceSpec,
    policy: Policy,
    secrets: Mapping[str, str] | None,
    hold: Note | None = None,
) -> ServiceTarget:
    """``secrets`` None means they could not be read now: the config hash is unknown."""
    refusal = policy_refusal(spec, policy)
    if refusal and hold is None:
        hold = Note("PolicyRefused", refusal)
    needs_secrets = bool(secret_keys(spec))
    known = secrets is not None or not needs_secrets
    return ServiceTarget(
        name=assignment.service,
        replicas=assignment.replicas,
        spec_hash=assignment.spec_hash,
        generation=assignment.generation,
        image=spec.image,
        config_hash=config_hash(assignment.spec_hash, secrets or {}) if known else None,
        strategy=effective_strategy(spec),
        health_timeout=spec.update.health_timeout,
        auto_rollback=spec.update.auto_rollback,
        has_health=spec.health is not None,
        restart=spec.restart,
        hold=hold,
        min_ready=spec.min_ready_seconds,
    )


def host_port(container: Container, port: int, protocol: str, spec: ServiceSpec) -> int | None:
    """The host port a container's ``port/protocol`` is published on (the port itself with host networking)."""
    if spec.network_mode == "host":
        return port
    return container.host_ports.get(f"{port}/{protocol}")


def primary_port(spec: ServiceSpec) -> tuple[int, str] | None:
    """The container port a replica's Consul registration advertises: route, else health, else the first."""
    if spec.route is not None:
        return spec.route.port, "tcp"
    if spec.health is not None:
        return spec.health.port, "tcp"
    if spec.ports:
        return spec.ports[0].container, spec.ports[0].protocol
    return None


def container_config(
    node: str,
    assignment: Assignment,
    spec: ServiceSpec,
    replica: int,
    config_hash_: str,
    secrets: Mapping[str, str],
    publish_addr: str,
    binds: Mapping[str, str] | None = None,
) -> ContainerConfig:
    """``binds``: each hostPath resolved and allowed by ``hostpaths.resolve_binds``; what Docker mounts."""
    service = assignment.service
    container_labels = L.container_labels(
        node, service, replica, assignment.spec_hash, config_hash_, assignment.generation
    )
    if spec.stateful_volumes:
        container_labels[L.STATEFUL] = "true"  # the lock keeper's watchdog kills it unless its lock is held
    # always set: an image's own LABEL tsdproxy.enable=true would otherwise expose it on the tailnet
    container_labels["tsdproxy.enable"] = "false"
    if spec.expose_tailnet is not None and spec.expose_tailnet.enabled:
        container_labels["tsdproxy.enable"] = "true"
        container_labels["tsdproxy.name"] = spec.expose_tailnet.machine_name(service)
        primary = primary_port(spec)
        if primary is not None:
            container_labels["tsdproxy.container_port"] = str(primary[0])
    env = tuple(
        f"{var.name}={secrets[var.name] if var.consul_key is not None else (var.value or '')}" for var in spec.env
    )
    ports = [PortBinding(p.container, p.protocol, publish_addr, p.host) for p in spec.ports]
    mounts = []
    for volume in spec.volumes:
        if volume.host_path:
            source = (binds or {}).get(volume.host_path)
            if source is None:
                raise ValueError(f"host path {volume.host_path} was not checked against the allowed folders")
            mounts.append(Mount(volume.mount_path, source, "bind", volume.read_only))
        elif volume.name:
            mounts.append(
                Mount(
                    volume.mount_path,
                    L.volume_name(node, service, volume.name),
                    "volume",
                    volume.read_only,
                    L.volume_labels(
                        node, service, volume.name, volume.delete_with_service, volume.stateful is not None
                    ),
                )
            )
        else:
            mounts.append(Mount(volume.mount_path, None, "volume", volume.read_only))
    return ContainerConfig(
        name=L.container_name(node, service, replica, config_hash_),
        image=spec.image,
        labels=container_labels,
        entrypoint=spec.command,
        command=spec.args,
        env=env,
        secret_names=tuple(sorted(secret_keys(spec))),
        ports=tuple(ports) if spec.network_mode != "host" else (),
        mounts=tuple(mounts),
        # a stateful copy is never started by Docker itself (at boot, say): only the agent, holding its lock
        restart="no" if spec.stateful_volumes else spec.restart,
        memory=spec.resources.memory,
        nano_cpus=int(spec.resources.cpus * 1e9) if spec.resources.cpus else None,
        pids=spec.resources.pids,
        privileged=spec.privileged,
        network_mode=spec.network_mode,
        user=spec.security.user,
        read_only_root=spec.security.read_only_root,
        no_new_privileges=spec.security.no_new_privileges,
        cap_drop=spec.security.cap_drop,
        cap_add=spec.security.cap_add,
    )


def check_assignment(assignment: Assignment, prefix: str) -> tuple[ServiceSpec | None, Note | None]:
    """Validate the resolved spec with the model's rules (every input checked before a driver sees it);
    ``prefix`` is meshop's KV prefix, under which the service's secret keys must be."""
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": {"name": assignment.service},
        "spec": dict(assignment.spec),
    }
    violations = validate(doc, PERMISSIVE_POLICY, prefix=prefix)  # the agent's own policy is applied separately
    if violations:
        text = "; ".join(str(v) for v in violations[:5])
        return None, Note("InvalidAssignment", f"assignment {assignment.service} is invalid: {text}"[:500])
    try:
        return ServiceSpec.from_dict(dict(assignment.spec)), None
    except Exception as exc:  # noqa: BLE001 - DocumentError or anything the reader trips over
        return None, Note("InvalidAssignment", f"assignment {assignment.service} is unreadable: {exc}"[:500])
