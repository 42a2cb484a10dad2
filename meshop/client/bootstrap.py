"""What ``meshop init``, ``meshop node add`` and ``meshop node remove`` do: gather the plan's inputs, run
the plan over SSH, wait for the result.

The gateway is the control point: its Consul server holds the gossip key, and the management token
that ``consul acl bootstrap`` made stays in a 0600 file there. ``node add`` asks the gateway (over SSH)
for the node's two tokens, made idempotently by description, and carries them to the node's 0600 files
over SSH; they are never printed, logged or put on a command line.
"""

from __future__ import annotations

import base64
import json
import secrets
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from meshop import __version__
from meshop.bootstrap import render
from meshop.bootstrap.plan import MANAGEMENT_TOKEN, Software
from meshop.errors import DocumentError
from meshop.ssh.session import SshError, SshSession

PLACEHOLDER_TOKEN = "00000000-0000-0000-0000-000000000000"

# Run on the gateway (``python3 - NODE DC``): the SecretID of the node's Consul agent token, made once.
CONSUL_AGENT_TOKEN_SCRIPT = r"""
import json, os, subprocess, sys
node, dc = sys.argv[1], sys.argv[2]
env = dict(os.environ, CONSUL_HTTP_TOKEN_FILE="/etc/meshop/management.token")
def consul(*args):
    return json.loads(subprocess.run(["consul", "acl", "token", *args, "-format=json"], env=env, check=True,
                                     capture_output=True).stdout or b"null")
desc = "meshop consul agent " + node
for token in consul("list") or []:
    if token.get("Description") == desc:
        print(consul("read", "-id", token["AccessorID"])["SecretID"])
        break
else:
    print(consul("create", "-description", desc, "-node-identity", node + ":" + dc)["SecretID"])
"""


def checkout_wheels() -> Path:
    """``.dev/wheels`` of the checkout this meshop runs from (``make setup`` installs it editable), so the
    default does not depend on the folder the command is typed in."""
    return Path(__file__).resolve().parents[2] / ".dev" / "wheels"


def load_software(wheels: Path | None, consul_binary: str | None) -> Software:
    """meshop's wheels (its own, built locally, and its dependencies: ``scripts/build-wheels.sh``) and the
    Consul binary to upload."""
    wheels = wheels or checkout_wheels()
    if not wheels.is_dir():
        raise DocumentError(f"--wheels {wheels}: not a folder (make one with scripts/build-wheels.sh)")
    found = tuple((p.name, p.read_bytes()) for p in sorted(wheels.glob("*.whl")))
    if not any(name.startswith(f"meshop-{__version__}-") for name, _ in found):
        raise DocumentError(f"--wheels {wheels}: holds no wheel of meshop {__version__} (this CLI's version)")
    binary = consul_binary or shutil.which("consul")
    if not binary or not Path(binary).is_file():
        raise DocumentError("--consul-binary: no consul binary given or on PATH")
    return Software(__version__, Path(binary).read_bytes(), found)


@dataclass(frozen=True)
class GatewayFacts:
    gossip_key: str
    datacenter: str
    address: str


# Run on the gateway (``python3 - PATH ADDRESS``): add a server node's address to the gateway Consul's
# ``retry_join`` (kept sorted, once), in place of the file with its mode and owner; prints "changed" or "same".
REMEMBER_SERVER_SCRIPT = r"""
import json, os, sys, tempfile
path, address = os.path.realpath(sys.argv[1]), sys.argv[2]
with open(path) as f:
    config = json.load(f)
joins = config.get("retry_join", [])
if not isinstance(joins, list) or not all(isinstance(j, str) for j in joins):
    sys.exit("retry_join is not a list of addresses: left as it is")
if address in joins:
    print("same")
    sys.exit(0)
config["retry_join"] = sorted(set(joins) | {address})
st = os.stat(path)
folder = os.path.dirname(path)
fd, tmp = tempfile.mkstemp(dir=folder, prefix=".consul.json.")
try:
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, st.st_mode & 0o7777)
    os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, path)
finally:
    if os.path.exists(tmp):
        os.unlink(tmp)
dir_fd = os.open(folder, os.O_RDONLY)
try:
    os.fsync(dir_fd)
finally:
    os.close(dir_fd)
print("changed")
"""


def remember_server(gateway: SshSession, address: str) -> bool:
    """The gateway's Consul joins ``address`` (a server node) when it starts: without it, a gateway host
    that boots before its network is up (serf's one re-join from its snapshot fails) stays out of the
    cluster, leaderless, until the others happen to reconnect to it (the fleet test saw a minute and more).
    Read at Consul's next start; nothing restarts now. True when the file changed."""
    command = f"python3 - {shlex.quote(render.CONSUL_CONFIG)} {shlex.quote(address)}"
    try:
        return gateway.check(command, stdin=REMEMBER_SERVER_SCRIPT.encode()).text().strip() == "changed"
    except SshError as exc:  # the node is set up already: say so, and what to add by hand
        raise DocumentError(
            f"{gateway.target}: could not add {address} to retry_join in {render.CONSUL_CONFIG} ({exc}); the "
            "node is a server; add the address there by hand so the gateway's Consul joins it when it boots"
        ) from None


def gateway_facts(gateway: SshSession) -> GatewayFacts | None:
    """What the gateway's Consul server was set up with (None before ``meshop init``)."""
    raw = gateway.read_file(render.CONSUL_CONFIG)
    if raw is None:
        return None
    try:
        config = json.loads(raw)
        return GatewayFacts(str(config["encrypt"]), str(config["datacenter"]), str(config["advertise_addr"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise DocumentError(f"{gateway.target}:{render.CONSUL_CONFIG} is not meshop's ({exc})") from None


def new_gossip_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def node_tokens(gateway: SshSession, node: str, datacenter: str, prefix: str) -> tuple[str, str]:
    """(Consul agent token, meshop agent token) of ``node``, made on the gateway when missing."""
    consul_token = (
        gateway.check(
            f"python3 - {shlex.quote(node)} {shlex.quote(datacenter)}",
            stdin=CONSUL_AGENT_TOKEN_SCRIPT.encode(),
            secret_output=True,
        )
        .text()
        .strip()
    )
    agent_token = (
        gateway.check(
            f"CONSUL_HTTP_TOKEN_FILE={MANAGEMENT_TOKEN} MESHOP_PREFIX={shlex.quote(prefix)} {render.BIN} "
            f"acl token agent --node {shlex.quote(node)}",
            secret_output=True,
        )
        .text()
        .strip()
    )
    return consul_token, agent_token


def record_inventory(gateway: SshSession, node: str, address: str, prefix: str, *, local_cluster: bool) -> None:
    """Write ``inventory/nodes/<node>`` (the address the node may be dialled at) on the gateway with the
    management token: the node's own tokens can never write it (issue 24)."""
    from meshop.client.nodes import inventory_entry

    key, value = inventory_entry(node, (address,), local_cluster=local_cluster)
    full = f"{prefix.strip('/')}/{key}"
    gateway.check(f"consul kv put -token-file={MANAGEMENT_TOKEN} {shlex.quote(full)} -", stdin=value.encode())


def controller_token(gateway: SshSession, prefix: str) -> str:
    """The controller role's token (the one the gateway's controller has), for a standby on a server node."""
    return (
        gateway.check(
            f"CONSUL_HTTP_TOKEN_FILE={MANAGEMENT_TOKEN} MESHOP_PREFIX={shlex.quote(prefix)} {render.BIN} "
            "acl token controller",
            secret_output=True,
        )
        .text()
        .strip()
    )


def management_token(gateway: SshSession) -> str:
    """The management token ``consul acl bootstrap`` left on the gateway, for the ``acl sync --watch``
    standby of a server node (which holds every token in its Raft data already: docs/security.md)."""
    return gateway.check(f"cat {MANAGEMENT_TOKEN}", secret_output=True).text().strip()


def node_state(gateway: SshSession, node: str, prefix: str) -> str:
    """The controller's verdict on ``node`` (``status/nodes/<node>``), read on the gateway; "" when none."""
    result = gateway.run(
        f"consul kv get -token-file={MANAGEMENT_TOKEN} {shlex.quote(f'{prefix}/status/nodes/{node}')}", timeout=30
    )
    if not result.ok:
        return ""
    try:
        return str(json.loads(result.stdout).get("state", ""))
    except (ValueError, AttributeError):
        return ""


def wait_ready(gateway: SshSession, node: str, prefix: str, timeout: float, say: Callable[[str], None]) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while True:
        state = node_state(gateway, node, prefix)
        if state != last:
            say(f"node {node}: {state or 'not reported yet'}")
            last = state
        if state == "Ready":
            return
        if time.monotonic() > deadline:
            raise SshError(
                f"node {node} is not Ready after {timeout:.0f}s (last: {state or 'not reported'}); "
                f"see `meshop logs`/`journalctl -u meshop-agent` on the node"
            )
        time.sleep(2)
