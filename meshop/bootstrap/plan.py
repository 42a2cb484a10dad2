"""Bootstrap plans for a gateway (``meshop init``) and a node (``meshop node add``). Pure.

The rule: a plan is a list of idempotent steps (``steps.py``) rendered only from its inputs; it reads
nothing and runs nothing. The executor checks each step on the host and applies only what differs, so
``--dry-run`` shows every step and file, a second run changes nothing, and a failed run can be repeated.

Secrets never appear in a command line: tokens and the gossip key are in files (mode 0600) whose
contents ``show`` redacts; on the gateway, role tokens are made there, by the meshop just installed,
with the management token that ``consul acl bootstrap`` wrote to a 0600 file on the gateway itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from meshop.bootstrap import checks, render, wheels
from meshop.bootstrap.steps import Command, File, Packages, Step
from meshop.model.addresses import address_problem
from meshop.model.names import is_dns_label, is_label_key, is_label_value

MANAGEMENT_TOKEN = "/etc/meshop/management.token"  # on the gateway only
ACL_SYNC_ENV = "/etc/meshop/acl-sync.env"  # the management token again, for `acl sync --watch` (0600)
AGENT_TOKEN_JSON = "/etc/consul.d/agent-token.json"
_TOKEN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_VERSION = re.compile(r"^[0-9A-Za-z.+!-]{1,40}$")
_WHEEL = re.compile(r"^[A-Za-z0-9_.+!-]+\.whl$")


class PlanInputError(ValueError):
    """An input a plan cannot be made from; the message names the field and the reason."""


@dataclass(frozen=True)
class Software:
    """What is uploaded: Consul's binary and meshop's wheels (meshop's own and its dependencies)."""

    version: str
    consul: bytes
    wheels: tuple[tuple[str, bytes], ...]

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for name, data in sorted(self.wheels):
            h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return h.hexdigest()[:32]


@dataclass(frozen=True)
class NodeInputs:
    name: str
    address: str  # tailnet address: Consul binds here, the gateway reaches published ports here
    join: str  # the Consul server (gateway) address
    gossip_key: str
    consul_token: str  # the Consul client agent's token (node identity)
    agent_token: str  # the meshop agent's token (agent role of this node)
    labels: Mapping[str, str] = field(default_factory=dict)
    datacenter: str = "dc1"
    prefix: str = "meshop"
    start: bool = True  # enable and start the units (no systemd in a container: off)
    # ``node add --server``: a Consul server joining the gateway's cluster, a controller standby and an
    # ``acl sync --watch`` standby here (so losing the gateway host loses neither the quorum, nor the
    # leading controller, nor the process that widens agent policies); the controller token is the
    # controller role's, made on the gateway like the others; the management token is the one
    # ``consul acl bootstrap`` made (a Consul server holds every token in its Raft data anyway:
    # docs/security.md).
    server: bool = False
    controller_token: str = ""
    management_token: str = ""


@dataclass(frozen=True)
class GatewayInputs:
    name: str
    address: str
    gossip_key: str
    datacenter: str = "dc1"
    prefix: str = "meshop"
    gateway_args: str = "--bind 0.0.0.0 --tls acme"
    start: bool = True


def gateway_args(inputs: GatewayInputs) -> str:
    """``meshop gateway run``'s flags: the user's, registering the gateway at its tailnet address unless
    they say otherwise (without it `meshop status` and the dashboard say "no gateway" while it serves)."""
    if "--advertise-addr" in inputs.gateway_args.split():
        return inputs.gateway_args
    return f"{inputs.gateway_args} --advertise-addr {inputs.address}".strip()


def check_inputs(inputs: NodeInputs | GatewayInputs, software: Software, *, local_cluster: bool = False) -> None:
    """Every input that reaches a file or command, checked: PlanInputError names the first bad one."""
    problems: list[str] = []
    if not is_dns_label(inputs.name):
        problems.append(f"--name {inputs.name!r}: not an RFC 1123 label (a-z, 0-9, '-', at most 63)")
    if problem := address_problem(inputs.address, local_cluster=local_cluster):
        problems.append(f"--address: {problem}")
    if not is_dns_label(inputs.datacenter):
        problems.append(f"datacenter {inputs.datacenter!r}: not an RFC 1123 label")
    if not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*", inputs.prefix):
        problems.append(f"prefix {inputs.prefix!r}: segments of letters, digits, '_' and '-'")
    try:
        if len(base64.b64decode(inputs.gossip_key, validate=True)) not in (16, 24, 32):
            problems.append("gossip key: not 16, 24 or 32 bytes")
    except (binascii.Error, ValueError):
        problems.append("gossip key: not base64")
    if isinstance(inputs, NodeInputs):
        if problem := address_problem(inputs.join, local_cluster=local_cluster):
            problems.append(f"--join: {problem}")
        tokens = [("Consul agent token", inputs.consul_token), ("agent token", inputs.agent_token)]
        if inputs.server:
            tokens += [("controller token", inputs.controller_token), ("management token", inputs.management_token)]
        for what, token in tokens:
            if not _TOKEN.match(token):
                problems.append(f"{what}: not a Consul token (UUID)")
        for key, value in inputs.labels.items():
            if not is_label_key(key) or not is_label_value(value) or "," in value or "=" in value:
                problems.append(f"--labels {key}={value}: not a label (key and value without ',' or '=')")
    elif any(c in inputs.gateway_args for c in "\n\\\"'$`"):
        problems.append("gateway args: no newline, quote, backslash, '$' or '`'")
    if not _VERSION.match(software.version):
        problems.append(f"version {software.version!r}: not a version")
    for name, _ in software.wheels:
        if not _WHEEL.match(name):
            problems.append(f"wheel {name!r}: not a wheel file name")
    try:
        wheels.python_need(name for name, _ in software.wheels)
    except ValueError as exc:
        problems.append(str(exc))
    if not any(name.startswith("meshop-") for name, _ in software.wheels):
        problems.append("wheels: meshop's own wheel is missing")
    if problems:
        raise PlanInputError("; ".join(problems))


def _software(software: Software) -> list[Step]:
    venv, folder, stamp = render.VENV, render.WHEELS, f"{render.VENV}/.meshop-wheels"
    steps: list[Step] = [File(render.CONSUL_BIN, software.consul, 0o755)]
    if python := wheels.python_check(wheels.python_need(name for name, _ in software.wheels)):
        steps.append(python)  # before pip: a wrong python3 fails here with the version the wheels need
    steps += [File(f"{folder}/{name}", data, 0o644) for name, data in sorted(software.wheels)]
    steps.append(
        Command(
            f"meshop {software.version} in its own virtualenv {venv}, linked as {render.BIN}",
            check=(
                f'[ "$(cat {stamp} 2>/dev/null)" = {software.digest} ] && '
                f'[ "$(readlink {render.BIN})" = {venv}/bin/meshop ]'
            ),
            apply=(
                f"rm -rf {venv} && python3 -m venv {venv} && {venv}/bin/pip install -q --no-index "
                f"--find-links {folder} {shlex.quote('meshop==' + software.version)} && "
                f"echo {software.digest} > {stamp} && ln -sfn {venv}/bin/meshop {render.BIN}"
            ),
        )
    )
    return steps


def _units(names: Sequence[str]) -> list[Step]:
    return [File(f"/etc/systemd/system/{name}", render.UNITS[name].encode(), 0o644) for name in names]


def _start(names: Sequence[str], changed_by: Sequence[str]) -> Command:
    units = " ".join(names)
    return Command(
        f"systemd: {units} enabled and running",
        check=checks.units_running(names),
        apply=f"systemctl daemon-reload && systemctl enable -q {units} && systemctl restart {units}",
        after_change=tuple(changed_by),
    )


def plan_node(inputs: NodeInputs, software: Software) -> tuple[Step, ...]:
    """``meshop node add``: Docker (unless an engine is there), Caddy, Consul client joined with its own
    token, meshop in a virtualenv, the agent's config file (no secrets), env file (its token) and unit;
    then both units running. With ``server``: Consul as a server joining the gateway's cluster (it must
    become a Raft peer), a controller standby with its role token and an ``acl sync --watch`` standby
    with the management token (the watchers elect one active syncer: ``meshop/client/acl.py``)."""
    consul_json = render.consul_config(
        node=inputs.name,
        address=inputs.address,
        datacenter=inputs.datacenter,
        gossip_key=inputs.gossip_key,
        agent_token=inputs.consul_token,
        server=inputs.server,
        join=inputs.join,
    )
    config = render.agent_config(node=inputs.name, address=inputs.address, labels=inputs.labels)
    env = render.env_file(
        f"meshop agent of node {inputs.name}, written by `meshop node add` (mode 0600: holds its token)",
        {"MESHOP_PREFIX": inputs.prefix, "CONSUL_HTTP_ADDR": "127.0.0.1:8500", "CONSUL_HTTP_TOKEN": inputs.agent_token},
    )
    secrets = (inputs.gossip_key, inputs.consul_token, inputs.agent_token)
    config_files = [
        File(render.CONSUL_CONFIG, consul_json.encode(), 0o600, secrets),
        File(render.AGENT_CONFIG, config.encode(), 0o644),
        File("/etc/meshop/agent.env", env.encode(), 0o600, secrets),
    ]
    units = ["consul.service", "meshop-fence.service", "meshop-agent.service"]
    if inputs.server:
        controller_env = render.env_file(
            "meshop controller standby, written by `meshop node add --server` (mode 0600: holds its token)",
            {
                "MESHOP_PREFIX": inputs.prefix,
                "CONSUL_HTTP_ADDR": "127.0.0.1:8500",
                "MESHOP_METRICS_ADDR": "127.0.0.1:9465",
                "MESHOP_CONTROLLER_ID": inputs.name,  # not the host name: two hosts may share one
                "CONSUL_HTTP_TOKEN": inputs.controller_token,
            },
        )
        config_files.append(
            File("/etc/meshop/controller.env", controller_env.encode(), 0o600, (inputs.controller_token,))
        )
        sync_env = render.env_file(
            "meshop acl sync --watch standby, written by `meshop node add --server` (mode 0600: holds the "
            "management token)",
            {
                "MESHOP_PREFIX": inputs.prefix,
                "CONSUL_HTTP_ADDR": "127.0.0.1:8500",
                "MESHOP_ACL_SYNC_ID": inputs.name,
                "CONSUL_HTTP_TOKEN": inputs.management_token,
            },
        )
        config_files.append(File(ACL_SYNC_ENV, sync_env.encode(), 0o600, (inputs.management_token,)))
        units += ["meshop-controller.service", "meshop-acl-sync.service"]
    steps: list[Step] = [
        Packages(("docker.io",), unless="[ -S /var/run/docker.sock ]", why="skipped when /var/run/docker.sock exists"),
        Packages(("caddy", "python3-venv", "ca-certificates")),
        *([checks.stock_caddy_off()] if inputs.start else []),  # no systemd: no caddy.service running
        *_software(software),
        *config_files,
        *_units(units),
    ]
    if inputs.start:
        changed = [s.path for s in steps if isinstance(s, File)]  # new config, binary or wheels: restart
        steps.append(_start(units, changed))
        steps.append(checks.consul_leader(changed))
        if inputs.server:
            steps.append(checks.raft_peer(inputs.address, changed))
        steps.append(checks.http_ready("meshop agent", "http://127.0.0.1:9464/readyz", "meshop-agent", changed))
    return tuple(steps)


def plan_gateway(inputs: GatewayInputs, software: Software) -> tuple[Step, ...]:
    """``meshop init``: Consul server (gossip encryption, ACLs bootstrapped, default deny), Caddy, meshop,
    and the controller, gateway and ``acl sync`` units, each with its role token in a 0600 env file."""
    consul_json = render.consul_config(
        node=inputs.name,
        address=inputs.address,
        datacenter=inputs.datacenter,
        gossip_key=inputs.gossip_key,
        agent_token="",
        server=True,
    )
    steps: list[Step] = [
        Packages(("caddy", "python3-venv", "ca-certificates")),
        *([checks.stock_caddy_off()] if inputs.start else []),  # no systemd: no caddy.service running
        *_software(software),
        File(render.CONSUL_CONFIG, consul_json.encode(), 0o600, (inputs.gossip_key,)),
        *_units(["consul.service"]),
    ]
    if inputs.start:
        steps.append(_start(["consul.service"], [render.CONSUL_CONFIG, render.CONSUL_BIN]))
        steps.append(checks.consul_leader([render.CONSUL_CONFIG, render.CONSUL_BIN]))
    env = f"CONSUL_HTTP_TOKEN_FILE={MANAGEMENT_TOKEN} MESHOP_PREFIX={shlex.quote(inputs.prefix)}"
    steps += [
        Command(
            "Consul ACLs bootstrapped; the management token kept in " + MANAGEMENT_TOKEN + " (0600)",
            check=f"[ -s {MANAGEMENT_TOKEN} ]",
            apply=(
                # the leader was awaited by the step before (`consul info` is refused before this bootstrap)
                "umask 077; mkdir -p /etc/meshop && "
                "consul acl bootstrap -format=json | "
                "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"SecretID\"])' "
                f"> {MANAGEMENT_TOKEN}.new && mv {MANAGEMENT_TOKEN}.new {MANAGEMENT_TOKEN}"
            ),
        ),
        Command(
            "Consul server's own agent token (node identity) in " + AGENT_TOKEN_JSON + " (0600)",
            check=f"[ -s {AGENT_TOKEN_JSON} ]",
            apply=(
                f"umask 077; CONSUL_HTTP_TOKEN_FILE={MANAGEMENT_TOKEN} consul acl token create -description "
                f"{shlex.quote('meshop consul agent ' + inputs.name)} -node-identity {inputs.name}:{inputs.datacenter} "
                '-format=json | python3 -c \'import json,sys; t=json.load(sys.stdin)["SecretID"]; '
                'print(json.dumps({"acl": {"tokens": {"agent": t}}}))\' '
                f"> {AGENT_TOKEN_JSON}.new && mv {AGENT_TOKEN_JSON}.new {AGENT_TOKEN_JSON} && "
                f"consul reload -token-file={MANAGEMENT_TOKEN}"
            ),
        ),
        Command(
            "meshop role policies (meshop acl init; the check brings them up to date)",
            check=f"! {env} {render.BIN} acl init | grep -q ' written'",
            apply=f"{env} {render.BIN} acl init >/dev/null",
        ),
    ]
    steps.append(  # made 0700 by the ACL bootstrap above; the gateway runs as its own user and reads gateway.yaml
        Command(
            "/etc/meshop (0755: the gateway's own user reads gateway.yaml there; the secrets are 0600 files)",
            check='[ "$(stat -c %a /etc/meshop 2>/dev/null)" = 755 ]',
            apply="mkdir -p /etc/meshop && chmod 755 /etc/meshop",
        )
    )
    steps.append(File(render.GATEWAY_CONFIG, render.gateway_config().encode(), 0o644))
    for role, extra in (
        ("controller", {"MESHOP_METRICS_ADDR": "127.0.0.1:9465", "MESHOP_CONTROLLER_ID": inputs.name}),
        ("gateway", {"MESHOP_GATEWAY_ARGS": gateway_args(inputs)}),
        ("acl-sync", {"MESHOP_ACL_SYNC_ID": inputs.name}),
    ):
        path = f"/etc/meshop/{role}.env"
        token = f"$(cat {MANAGEMENT_TOKEN})" if role == "acl-sync" else f"$({env} {render.BIN} acl token {role})"
        lines = "".join(  # handed to printf as an argument, never as its format: a % stays a %
            f"{k}={v}\n"
            for k, v in {"MESHOP_PREFIX": inputs.prefix, "CONSUL_HTTP_ADDR": "127.0.0.1:8500", **extra}.items()
        )
        steps.append(
            Command(
                f"{path} (0600) with the {role} token",
                check=f"[ \"$(stat -c %a {path} 2>/dev/null)\" = 600 ] && grep -q '^CONSUL_HTTP_TOKEN=.' {path} "
                + "".join(f"&& grep -qxF {shlex.quote(line)} {path} " for line in lines.splitlines()).rstrip(),
                apply=(
                    f"umask 077; t={token} && printf '%sCONSUL_HTTP_TOKEN=%s\\n' {shlex.quote(lines)} \"$t\" "
                    f"> {path}.new && mv {path}.new {path}"
                ),
            )
        )
    units = ["meshop-controller.service", "meshop-gateway.service", "meshop-acl-sync.service"]
    steps += _units(units)
    if inputs.start:
        steps.append(checks.ports_free((80, 443), "meshop-gateway.service"))  # its Caddy's; refused loads else
        env_files = [s.title for s in steps if isinstance(s, Command) and s.title.startswith("/etc/meshop/")]
        files = [s.path for s in steps if isinstance(s, File) and s.path != render.CONSUL_CONFIG]
        steps.append(_start(units, files + env_files))  # a rewritten env file restarts its daemon
        # ready: its Caddy loaded the config (a refused load, e.g. a port taken, fails init here, with why)
        steps.append(
            checks.http_ready("meshop gateway", "http://127.0.0.1:9466/readyz", "meshop-gateway", files + env_files)
        )
    return tuple(steps)
