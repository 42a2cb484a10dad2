"""``meshop init [user@]GATEWAY`` and ``meshop node add|remove``: set up hosts over SSH (docs/install.md).

Host keys are verified (known_hosts, ``--host-key SHA256:…``, or ``--accept-new-host-key`` which prints
the fingerprint). ``--dry-run`` prints every step and file (secrets redacted) and contacts nothing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from meshop.cli.commands.remote import ACCEPT_NEW, IDENTITY
from meshop.cli.context import CliContext
from meshop.cli.flags import LOCAL_CLUSTER
from meshop.cli.safe import strip_terminal
from meshop.errors import DocumentError

HOST_KEY = click.option(
    "--host-key", metavar="SHA256:…", help="The host's key fingerprint (ssh-keygen -lf), when it is not in known_hosts."
)
GATEWAY_HOST_KEY = click.option(
    "--gateway-host-key", metavar="SHA256:…", help="The gateway's key fingerprint, when it is not in known_hosts."
)
WHEELS = click.option(
    "--wheels",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MESHOP_WHEELS",
    help="meshop's wheel and its dependencies' (scripts/build-wheels.sh) [default: .dev/wheels of the "
    "checkout this meshop runs from, wherever the command is typed].",
)
CONSUL_BINARY = click.option(
    "--consul-binary", type=click.Path(dir_okay=False), help="Consul binary to install [default: consul on PATH]."
)
DRY_RUN = click.option("--dry-run", is_flag=True, help="Print every step and file; contact nothing.")
NO_START = click.option(
    "--no-start", is_flag=True, help="Install and configure, but do not enable or start units (no systemd)."
)


def _say(text: str) -> None:
    click.echo(strip_terminal(text), err=True)


def _connect(target_text: str, host_key: str | None, accept_new: bool, identity: str | None):
    from meshop.ssh.hostkeys import Trust
    from meshop.ssh.session import connect
    from meshop.ssh.target import TargetError, parse_fingerprint, parse_target

    try:
        target = parse_target(target_text)
        pinned = parse_fingerprint(host_key) if host_key else None
    except TargetError as exc:
        raise DocumentError(str(exc)) from None
    return connect(target, Trust(pinned=pinned, accept_new=accept_new), identity=identity, say=_say)


def _checked(inputs, software, local_cluster: bool):
    from meshop.bootstrap.plan import PlanInputError, check_inputs

    try:
        check_inputs(inputs, software, local_cluster=local_cluster)
    except PlanInputError as exc:
        raise DocumentError(str(exc)) from None


def _print_plan(steps) -> None:
    from meshop.bootstrap.steps import show

    for index, step in enumerate(steps, 1):
        click.echo(f"[{index}/{len(steps)}] {show(step)}")


def _run(steps, host) -> None:
    """Terse: one line per step being applied (a done step says nothing), the wheels as one line."""
    from meshop.bootstrap.execute import execute
    from meshop.bootstrap.render import WHEELS
    from meshop.bootstrap.steps import File

    def wheel(step) -> bool:
        return isinstance(step, File) and step.path.startswith(WHEELS + "/")

    def progress(index: int, total: int, step, what: str) -> None:
        if what == "applying" and not wheel(step):
            _say(f"[{index:>2}/{total}] {step.title}")

    outcomes = execute(steps, host, progress)
    uploaded = sum(o.changed for step, o in zip(steps, outcomes, strict=False) if wheel(step))
    if uploaded:
        _say(f"meshop's wheels: {uploaded} of {sum(map(wheel, steps))} uploaded to {WHEELS}")
    changed = sum(o.changed for o in outcomes)
    click.echo(f"{host.target}: {changed} step(s) changed, {len(outcomes) - changed} already done")


@click.command()
@click.argument("gateway")
@click.option("--address", required=True, help="The gateway's tailnet address (Consul binds here).")
@click.option("--name", default="gateway", show_default=True, help="The gateway's Consul node name.")
@click.option(
    "--gateway-args", default="--bind 0.0.0.0 --tls acme", show_default=True, help="Extra `meshop gateway run` flags."
)
@HOST_KEY
@ACCEPT_NEW
@IDENTITY
@WHEELS
@CONSUL_BINARY
@DRY_RUN
@NO_START
@LOCAL_CLUSTER
@click.pass_obj
def init(
    obj: CliContext,
    gateway: str,
    address: str,
    name: str,
    gateway_args: str,
    host_key: str | None,
    accept_new_host_key: bool,
    identity: str | None,
    wheels: Path | None,
    consul_binary: str | None,
    dry_run: bool,
    no_start: bool,
    local_cluster: bool,
) -> None:
    """Set up GATEWAY ([user@]host[:port]): Consul server with gossip encryption and ACLs (default deny),
    Caddy, meshop, and the controller, gateway and acl-sync units with their role tokens."""
    from meshop.bootstrap.plan import GatewayInputs, plan_gateway
    from meshop.client.bootstrap import gateway_facts, load_software, new_gossip_key

    software = load_software(wheels, consul_binary)
    inputs = GatewayInputs(
        name, address, new_gossip_key(), prefix=obj.consul.prefix, gateway_args=gateway_args, start=not no_start
    )
    _checked(inputs, software, local_cluster)
    if dry_run:
        _print_plan(plan_gateway(inputs, software))
        return
    with _connect(gateway, host_key, accept_new_host_key, identity) as host:
        facts = gateway_facts(host)
        if facts is not None:  # a re-run keeps the cluster's gossip key; what the host says is checked too
            inputs = replace(inputs, gossip_key=facts.gossip_key, datacenter=facts.datacenter)
            _checked(inputs, software, local_cluster)
        _run(plan_gateway(inputs, software), host)


@click.command(name="add")
@click.argument("host")
@click.option("--name", required=True, help="The node's name (RFC 1123 label).")
@click.option("--address", required=True, help="The node's tailnet address.")
@click.option("--gateway", "gateway", required=True, metavar="[USER@]HOST", help="The gateway `meshop init` set up.")
@click.option("--labels", default="", metavar="K=V,...", help="Node labels for placement.")
@click.option(
    "--server",
    is_flag=True,
    help="Also a Consul server (joins the gateway's cluster as a Raft voter), a controller standby and an "
    "`acl sync --watch` standby: two such nodes make three servers, so losing one host keeps the quorum "
    "(docs/install.md).",
)
@click.option(
    "--wait",
    type=click.FloatRange(0),
    default=180,
    show_default=True,
    help="Seconds to wait for Ready (0: do not wait).",
)
@HOST_KEY
@GATEWAY_HOST_KEY
@ACCEPT_NEW
@IDENTITY
@WHEELS
@CONSUL_BINARY
@DRY_RUN
@NO_START
@LOCAL_CLUSTER
@click.pass_obj
def node_add(
    obj: CliContext,
    host: str,
    name: str,
    address: str,
    gateway: str,
    labels: str,
    server: bool,
    wait: float,
    host_key: str | None,
    gateway_host_key: str | None,
    accept_new_host_key: bool,
    identity: str | None,
    wheels: Path | None,
    consul_binary: str | None,
    dry_run: bool,
    no_start: bool,
    local_cluster: bool,
) -> None:
    """Set up HOST ([user@]host[:port]) as node NAME: Docker, Caddy, Consul client joined with its own
    token, meshop, the agent's env file and unit; then wait until the node is Ready. With --server its
    Consul is a server of the gateway's cluster and it runs a controller standby and an `acl sync --watch`
    standby (the management token, in a 0600 file)."""
    from meshop.bootstrap.plan import NodeInputs, plan_node
    from meshop.client.bootstrap import (
        PLACEHOLDER_TOKEN,
        controller_token,
        gateway_facts,
        load_software,
        management_token,
        new_gossip_key,
        node_tokens,
        record_inventory,
        remember_server,
        wait_ready,
    )

    pairs = [p for p in labels.split(",") if p]
    if any("=" not in p for p in pairs):
        raise DocumentError(f"--labels {labels!r}: expected k=v,k=v")
    label_map = dict(p.split("=", 1) for p in pairs)
    software = load_software(wheels, consul_binary)
    inputs = NodeInputs(
        name,
        address,
        "gateway.invalid",
        new_gossip_key(),
        PLACEHOLDER_TOKEN,
        PLACEHOLDER_TOKEN,
        label_map,
        prefix=obj.consul.prefix,
        start=not no_start,
        server=server,
        controller_token=PLACEHOLDER_TOKEN if server else "",
        management_token=PLACEHOLDER_TOKEN if server else "",
    )
    if dry_run:
        _checked(inputs, software, local_cluster)
        _say("dry run: the gateway's address, gossip key and the node's tokens are placeholders")
        _print_plan(plan_node(inputs, software))
        return
    with _connect(gateway, gateway_host_key, accept_new_host_key, identity) as gw:
        facts = gateway_facts(gw)
        if facts is None:
            raise DocumentError(f"{gw.target} has no meshop Consul server: run `meshop init` on it first")
        consul_token, agent_token = node_tokens(gw, name, facts.datacenter, obj.consul.prefix)
        record_inventory(gw, name, address, obj.consul.prefix, local_cluster=local_cluster)  # issue 24
        inputs = NodeInputs(
            name,
            address,
            facts.address,
            facts.gossip_key,
            consul_token,
            agent_token,
            label_map,
            facts.datacenter,
            obj.consul.prefix,
            not no_start,
            server=server,
            controller_token=controller_token(gw, obj.consul.prefix) if server else "",
            management_token=management_token(gw) if server else "",
        )
        _checked(inputs, software, local_cluster)
        with _connect(host, host_key, accept_new_host_key, identity) as node:
            _run(plan_node(inputs, software), node)
        if server:
            try:
                if remember_server(gw, address):
                    _say(f"the gateway's Consul will also join {address} when it starts (its retry_join)")
            except DocumentError as exc:  # the node is set up: carry on to Ready, and say what is missing
                _say(f"warning: {exc}")
        if wait and not no_start:
            wait_ready(gw, name, obj.consul.prefix, wait, _say)


@click.command(name="remove")
@click.argument("name")
@click.option("--gateway", "gateway", required=True, metavar="[USER@]HOST", help="The gateway `meshop init` set up.")
@click.option("--host", metavar="[USER@]HOST", help="The node itself, to stop its units (omit for a dead node).")
@HOST_KEY
@GATEWAY_HOST_KEY
@ACCEPT_NEW
@IDENTITY
@DRY_RUN
@click.pass_obj
def node_remove(
    obj: CliContext,
    name: str,
    gateway: str,
    host: str | None,
    host_key: str | None,
    gateway_host_key: str | None,
    accept_new_host_key: bool,
    identity: str | None,
    dry_run: bool,
) -> None:
    """Take node NAME out: drain it and wait, stop and disable its units (with --host), revoke its tokens
    and policy, make Consul forget it, delete its records. Re-runnable after a failure."""
    from meshop.bootstrap.removal import plan_removal
    from meshop.model.acl import AclInputError

    try:
        before, on_node, after = plan_removal(name, obj.consul.prefix)
    except AclInputError as exc:
        raise DocumentError(str(exc)) from None
    if dry_run:
        _say("on the gateway:")
        _print_plan(before)
        _say("on the node (with --host):")
        _print_plan(on_node)
        _say("on the gateway:")
        _print_plan(after)
        return
    with _connect(gateway, gateway_host_key, accept_new_host_key, identity) as gw:
        _run(before, gw)
        if host:
            with _connect(host, host_key, accept_new_host_key, identity) as node:
                _run(on_node, node)
        else:
            _say(f"no --host: the units on {name} are left as they are (its tokens are revoked next)")
        _run(after, gw)
