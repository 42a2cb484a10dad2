"""A real meshop fleet on one machine: network namespaces as nodes, one harness for `make fleet`, the
fleet fault suite (tests/fleet/) and benchmarks/fleet.py, so the three never diverge.

Layout (K: the fleet's subnet octet, 10.231.K.0/24)::

    host ── mf<id> (10.231.K.1) ──┐
                                  │  switch namespace mf-<id>-net: bridge br0, fixed MAC, empty
                                  │  iptables (the host's FORWARD policy never sees fleet traffic)
    gateway  mf-<id>-gw 10.231.K.2 ─ Consul server, controller (leader at start), meshop gateway + Caddy
    node n1  mf-<id>-n1 10.231.K.11 ─ dockerd, Consul client, meshop agent + node Caddy, standby controller
    node n2  mf-<id>-n2 10.231.K.12 ─ dockerd, Consul client, meshop agent + node Caddy
    ...
    with --servers 3: n1 and n2 run Consul servers too, and a standby controller each (docs/install.md's
    layout for 3+ hosts: losing any one host keeps the Raft quorum and a controller)
    with --gateways 2: g2 mf-<id>-g2 10.231.K.3 ─ Consul client, a second meshop gateway + Caddy
    with --dns: BIND9 (named) in a namespace of its own, dns mf-<id>-dns 10.231.K.253:53 (the stand-in for
    the user's DNS provider, which never lives on the gateway), zone fleet.test, and a client namespace
    cl mf-<id>-cl 10.231.K.250 (nothing runs there until a test or benchmark starts a client)

Every Consul agent runs with the JSON config ``meshop init`` / ``node add [--server]`` write
(``meshop.bootstrap.render.consul_config``: gossip encryption, default-deny ACLs, LAN gossip timing,
autopilot, raft timing; the gateway founds the cluster with ``bootstrap_expect`` 1, the other servers join
it and autopilot makes them voters), plus HTTP on the member's address. Every meshop daemon talks to the
Consul agent of its own host, as on real hosts.

ACLs as ``meshop init`` sets them up: ``consul acl bootstrap`` on the gateway's server once it leads (the
management token kept in ``<root>/tokens/management.token``), a node-identity token per Consul agent
(``consul acl token create -node-identity``, in that agent's config), the role policies and tokens made by
meshop's own ``AclAdmin`` (``meshop acl init`` / ``token``), and ``meshop acl sync --watch`` on the gateway
with the management token. Every daemon gets its role's token as a 0600 file (``CONSUL_HTTP_TOKEN_FILE``):
controllers the controller token, gateways the gateway token, the agent of N node N's agent token; ``cli``
runs commands as operator (writes) or readonly (reads). Only the harness's own reads and set-up writes
(assertions, the inventory, the DNS writer's TSIG secret) use the management token.

Every process is started with ``nsenter --net=/var/run/netns/<ns>`` (never ``ip netns exec``: it
remounts /sys and dockerd then fails), in its own session, with ``MESHOP_FLEET_DIR=<root>`` in its
environment; its PID goes to ``<root>/<member>/<name>.pid``, and a PID is only signalled after its
/proc environ shows that marker. Tearing down also kills whatever is left inside the fleet's own
namespaces (their processes and descendants, found by namespace, never by name), unmounts what the
engines left under their folders, and deletes the namespaces and the host's veth.

Run it as ``python -m tests.support.fleet up|down|status|power-off NODE|power-on NODE|add-node|...``;
``add-node`` (``Fleet.add_node``) joins the next node to a running fleet as ``meshop node add`` would.
"""

from __future__ import annotations

import argparse
import base64
import compileall
import contextlib
import datetime
import fcntl
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshop.bootstrap.render import consul_config
from meshop.client.acl import AclAdmin
from meshop.consul.config import ConsulConfig
from tests.support.acl import role_of
from tests.support.procs import PATIENCE

REPO = Path(__file__).resolve().parents[2]
MARK = "MESHOP_FLEET_DIR"
SUBNET = "10.231"  # 10.231.K.0/24 per fleet; only namespaces this harness creates use it
LOCK = Path("/run/meshop-fleet.lock")
IMAGE = "meshop-test/busybox:1"
TEST_PAGE = "meshop test page"  # what the image's busybox httpd serves at / (scripts/build-test-image.sh)
INGRESS_PORT = 8080
GATEWAY_PORT = 80
DNS_ZONE = "fleet.test"
DNS_KEY = "meshop-key"
GATEWAY_CHECK_INTERVAL = 1.0  # seconds; the gateways' Consul checks when DNS follows them
DATACENTER = "dc1"
# the token each spawned process runs with, by its process name: its role (None: the management token,
# which only `acl sync --watch` holds, as on an installed gateway); processes not listed get no token (the
# fence needs no Consul, as agents/meshop-fence.service)
PROC_ROLES: dict[str, str | None] = {
    "controller": "controller",
    "gateway": "gateway",
    "agent": "agent",
    "acl-sync": None,
}
# CLI commands that write (as operator) beyond those tests.support.acl.role_of knows
OPERATOR_CLI = {"node", "rebalance", "cluster"}


def log(message: str) -> None:
    print(f"fleet: {message}", file=sys.stderr, flush=True)


def run(*args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(list(args), input=input, capture_output=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; TimeoutError naming ``what`` after ``timeout``
    (times ``procs.PATIENCE`` in a parallel test run)."""
    timeout *= PATIENCE
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - the peer may still be starting
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last!r})" if last else "")
            )
        time.sleep(interval)


def find_binary(name: str) -> str:
    for candidate in (shutil.which(name), REPO / ".dev" / "bin" / name, Path("/usr/sbin") / name):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise FileNotFoundError(f"{name} not found: run `make setup`")


def compile_bytecode() -> None:
    """meshop's bytecode next to its sources, as ``pip install`` (``meshop node add``) leaves it. Without
    it every daemon the fleet starts compiles the modules changed since the checkout was last compiled
    (this machine sets ``PYTHONDONTWRITEBYTECODE``, so nothing is ever written back): 83 modules and a
    quarter of a returning agent's start-up CPU, which no installed node pays."""
    compileall.compile_dir(str(REPO / "meshop"), quiet=1)


def parallel(actions: list[Callable[[], object]]) -> None:
    """Run ``actions`` in threads and wait for all; the first error is raised after every one finished."""
    errors: list[BaseException] = []

    def guarded(action: Callable[[], object]) -> None:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(a,)) for a in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# --- processes --------------------------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22): with the PID, unique."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _ppids() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        out[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def _ns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def tree_in_namespace(ns: str) -> set[int]:
    """Every process whose network namespace is ``ns``, and all their descendants (container processes
    live in namespaces of their own below the node's containerd shims)."""
    inode = _ns_inode(f"/var/run/netns/{ns}")
    if inode is None:
        return set()
    parents = _ppids()
    roots = {pid for pid in parents if _ns_inode(f"/proc/{pid}/ns/net") == inode}
    found = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    found.discard(os.getpid())
    return found


def kill_tree(ns: str) -> int:
    """SIGSTOP then SIGKILL everything in ``ns`` (and below) until nothing is left: a power cut."""
    killed = 0
    for _ in range(50):
        pids = tree_in_namespace(ns)
        if not pids:
            return killed
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        killed += len(pids)
        time.sleep(0.05)
    raise RuntimeError(f"processes in {ns} survive SIGKILL: {sorted(tree_in_namespace(ns))}")


@dataclass
class Member:
    """The gateway or a node: a namespace with an address, a folder and its processes."""

    name: str
    ns: str
    addr: str
    port: str  # the switch port (in the switch namespace) its link hangs on
    root: Path
    mark: str

    @property
    def dir(self) -> Path:
        return self.root / self.name

    @property
    def docker_sock(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.docker_sock}"

    def pidfile(self, proc: str) -> Path:
        return self.dir / f"{proc}.pid"

    def pid(self, proc: str) -> int | None:
        """The recorded PID of ``proc``, or None when that PID now names another process (pid_max is 32768
        here: a PID is reused within minutes, and a reused one may carry the fleet's mark too, e.g. a
        container shim of a node; spawn then took gw's dead Consul for running and never started it)."""
        try:
            fields = self.pidfile(proc).read_text().split()
            pid = int(fields[0])
        except (OSError, ValueError, IndexError):
            return None
        if len(fields) > 1 and _start_time(pid) != fields[1]:
            return None
        return pid

    def ours(self, pid: int | None) -> bool:
        """Alive (not a zombie) and started by this fleet: its environment carries our marker."""
        if not pid:
            return False
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z" and f"{MARK}={self.mark}".encode() in _environ(pid).split(b"\0")

    def running(self, proc: str) -> bool:
        return self.ours(self.pid(proc))


@dataclass
class Fleet:
    """N nodes and a gateway in network namespaces; see the module docstring."""

    root: Path
    fid: str = "dev"
    nodes: int = 3
    octet: int | None = None
    grace: float = 10.0
    prefix: str = "meshop"
    gateways: int = 1  # 2: a second gateway namespace g2; both register with --advertise-addr
    dns: bool = False  # BIND9 on the gateway namespace, the Gateway document's dns section, a client namespace
    dns_ttl: int = 5
    servers: int = 1  # 3: Consul servers (and controller standbys) on gw, n1 and n2
    # the controllers' rebalancing window and pace: short, so a fleet test sees a move within seconds
    rebalance_stable: float = 8.0
    rebalance_interval: float = 0.5
    _children: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _acl_lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        state = self.root / "fleet.json"
        if state.exists():  # a fleet that is (or was) up keeps its shape: down and status need it
            saved = json.loads(state.read_text())
            self.fid, self.nodes, self.octet = saved["fid"], saved["nodes"], saved["octet"]
            self.grace, self.prefix = saved.get("grace", self.grace), saved.get("prefix", self.prefix)
            self.gateways, self.dns = saved.get("gateways", 1), saved.get("dns", False)
            self.dns_ttl = saved.get("dns_ttl", self.dns_ttl)
            self.servers = saved.get("servers", 1)
            self.rebalance_stable = saved.get("rebalance_stable", self.rebalance_stable)
            self.rebalance_interval = saved.get("rebalance_interval", self.rebalance_interval)
        if self.gateways not in (1, 2):
            raise ValueError(f"gateways {self.gateways}: 1 or 2")
        if self.servers not in (1, 3) or (self.servers == 3 and self.nodes < 2):
            raise ValueError(f"servers {self.servers}: 1, or 3 (on gw, n1 and n2: at least 2 nodes)")
        if len(self.fid) > 8 or not self.fid.isalnum():
            raise ValueError(f"fleet id {self.fid!r}: at most 8 letters or digits (it names interfaces)")

    # -- names -------------------------------------------------------------------------------------------
    @property
    def switch_ns(self) -> str:
        return f"mf-{self.fid}-net"

    @property
    def host_if(self) -> str:
        return f"mf{self.fid}"

    @property
    def host_addr(self) -> str:
        return f"{SUBNET}.{self.octet}.1"

    @property
    def cidr(self) -> str:
        return f"{SUBNET}.{self.octet}.0/24"

    @property
    def gateway(self) -> Member:
        return Member("gw", f"mf-{self.fid}-gw", f"{SUBNET}.{self.octet}.2", "p-gw", self.root, str(self.root))

    @property
    def gateway2(self) -> Member:
        return Member("g2", f"mf-{self.fid}-g2", f"{SUBNET}.{self.octet}.3", "p-g2", self.root, str(self.root))

    @property
    def client(self) -> Member:
        """An empty namespace for a client (a benchmark's resolver and request loop), only with ``dns``."""
        return Member("cl", f"mf-{self.fid}-cl", f"{SUBNET}.{self.octet}.250", "p-cl", self.root, str(self.root))

    @property
    def dns_host(self) -> Member:
        """BIND's own namespace (only with ``dns``): no fleet machine's loss takes the provider with it."""
        return Member("dns", f"mf-{self.fid}-dns", f"{SUBNET}.{self.octet}.253", "p-dns", self.root, str(self.root))

    @property
    def gateway_members(self) -> list[Member]:
        return [self.gateway, self.gateway2][: self.gateways]

    @property
    def server_members(self) -> list[Member]:
        """The hosts running a Consul server (and a controller): gw, and with ``servers`` 3 also n1, n2."""
        return [self.gateway, *(self.node(n) for n in self.node_names[: self.servers - 1])]

    def is_server(self, name: str) -> bool:
        return name in {m.name for m in self.server_members}

    @property
    def dns_server(self) -> str:
        return f"{self.dns_host.addr}:53"

    @property
    def node_names(self) -> list[str]:
        return [f"n{i}" for i in range(1, self.nodes + 1)]

    def node(self, name: str) -> Member:
        index = int(name[1:])
        return Member(
            name, f"mf-{self.fid}-{name}", f"{SUBNET}.{self.octet}.{10 + index}", f"p-{name}", self.root, str(self.root)
        )

    @property
    def members(self) -> list[Member]:
        extra = [self.gateway2] if self.gateways > 1 else []
        extra += [self.client, self.dns_host] if self.dns else []
        return [self.gateway, *(self.node(n) for n in self.node_names), *extra]

    @property
    def consul_addr(self) -> str:
        """A Consul server's HTTP address for the host's CLI and reads: the first server host whose Consul
        runs (gw while it does), as an operator points ``CONSUL_HTTP_ADDR`` at any live server."""
        live = [m for m in self.server_members if m.running("consul")]
        return f"{(live or [self.gateway])[0].addr}:8500"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway.addr}:{GATEWAY_PORT}"

    @property
    def ingress_port(self) -> int:
        """The node Caddies' HTTP port: with ``dns`` the gateways' (80), as docs/dns.md's direct mode needs
        (the records then name the nodes, and clients come on the same port); else ``INGRESS_PORT``."""
        return GATEWAY_PORT if self.dns else INGRESS_PORT

    def exec_root(self, member: Member) -> Path:
        return Path("/run/meshop-fleet") / self.fid / member.name

    # -- network -----------------------------------------------------------------------------------------
    def _allocate_octet(self) -> int:
        """The first 10.231.K.0/24 no interface on this machine uses (make fleet prefers K=0)."""
        used = run("ip", "-o", "-4", "addr").stdout.decode()
        start = 0 if self.fid == "dev" else 1
        for k in range(start, 255):
            if f" {SUBNET}.{k}." not in used:
                return k
        raise RuntimeError(f"no free {SUBNET}.K.0/24 left for a fleet")

    def network_up(self) -> None:
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        with open(LOCK, "w") as lock:  # two fleets (a test session and `make fleet`) never pick one subnet
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.octet is None:
                self.octet = self._allocate_octet()
            self.root.mkdir(parents=True, exist_ok=True)
            state = {
                "fid": self.fid,
                "nodes": self.nodes,
                "octet": self.octet,
                "grace": self.grace,
                "prefix": self.prefix,
                "gateways": self.gateways,
                "dns": self.dns,
                "dns_ttl": self.dns_ttl,
                "servers": self.servers,
                "rebalance_stable": self.rebalance_stable,
                "rebalance_interval": self.rebalance_interval,
            }
            (self.root / "fleet.json").write_text(json.dumps(state) + "\n")
            namespaces = set(run("ip", "netns", "list").stdout.decode().split())
            sw = self.switch_ns
            if sw not in namespaces:
                run("ip", "netns", "add", sw)
                run("ip", "-n", sw, "link", "set", "lo", "up")
                run("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
                # a fixed MAC: a bridge otherwise takes its ports' lowest, and peers stall when it changes
                run("ip", "-n", sw, "link", "set", "br0", "address", f"02:6d:66:00:{self.octet:02x}:01")
                run("ip", "-n", sw, "link", "set", "br0", "up")
            if not Path(f"/sys/class/net/{self.host_if}").exists():
                run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", "p-host", "netns", sw)
                run("ip", "-n", sw, "link", "set", "p-host", "master", "br0", "up")
                run("ip", "addr", "add", f"{self.host_addr}/24", "dev", self.host_if)
                run("ip", "link", "set", self.host_if, "up")
            for member in self.members:
                if member.ns not in namespaces:
                    run("ip", "netns", "add", member.ns)
                    run("ip", "-n", member.ns, "link", "set", "lo", "up")
                    veth = ("type", "veth", "peer", "name", "eth0", "netns", member.ns)
                    run("ip", "link", "add", member.port, "netns", sw, *veth)
                    run("ip", "-n", sw, "link", "set", member.port, "master", "br0", "up")
                    run("ip", "-n", member.ns, "addr", "add", f"{member.addr}/24", "dev", "eth0")
                    run("ip", "-n", member.ns, "link", "set", "eth0", "up")

    def set_link(self, name: str, up: bool) -> None:
        """A node's cable: down is a partition (or part of a power cut), up heals it."""
        member = self.member(name)
        run("ip", "-n", self.switch_ns, "link", "set", member.port, "up" if up else "down")

    # -- processes ---------------------------------------------------------------------------------------
    def spawn(self, member: Member, proc: str, args: list[str], env: dict[str, str] | None = None) -> int:
        """Start ``args`` inside ``member``'s namespace unless ``proc`` already runs; the PID is recorded."""
        pid = member.pid(proc)
        if member.ours(pid):
            assert pid is not None
            return pid
        member.dir.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}  # no token of the caller's
        if proc in PROC_ROLES:  # its role's token, as a 0600 file (the installed units' env files are 0600)
            role = PROC_ROLES[proc]
            path = self.token_file(role, member.name if role == "agent" else None) if role else self.management_file
            base["CONSUL_HTTP_TOKEN_FILE"] = str(path)
        with open(member.dir / f"{proc}.log", "ab") as out:
            child = subprocess.Popen(
                ["nsenter", f"--net=/var/run/netns/{member.ns}", *args],  # nsenter execs: same PID
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**base, "PYTHONUNBUFFERED": "1", **(env or {}), MARK: member.mark},
                start_new_session=True,
                cwd=member.dir,
            )
        self._children[child.pid] = child
        member.pidfile(proc).write_text(f"{child.pid} {_start_time(child.pid)}\n")
        return child.pid

    def signal(self, member: Member, proc: str, sig: int) -> bool:
        pid = member.pid(proc)
        if not member.ours(pid):
            return False
        assert pid is not None
        os.kill(pid, sig)
        return True

    def stop(self, member: Member, proc: str, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; only the recorded PID, and only while it is ours."""
        pid = member.pid(proc)
        if member.ours(pid):
            assert pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while member.ours(pid) and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.05)
            if member.ours(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_for(lambda: not member.ours(pid) or self._reap(), 10, f"{proc} on {member.name} to exit")
        self._reap()
        member.pidfile(proc).unlink(missing_ok=True)

    def _reap(self) -> bool:
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                self._children.pop(pid, None)
        return False

    def meshop(self, member: Member, consul: str) -> list[str]:
        return [sys.executable, "-m", "meshop", "--consul-addr", consul, "--prefix", self.prefix]

    def start_dockerd(self, node: Member) -> None:
        self.exec_root(node).mkdir(parents=True, exist_ok=True)
        config = node.dir / "daemon.json"  # its own (empty) config: the host's /etc/docker/daemon.json is not ours
        node.dir.mkdir(parents=True, exist_ok=True)
        config.write_text("{}\n")
        args = [
            find_binary("dockerd"),
            "--config-file", str(config),
            "--data-root", str(node.dir / "docker"),
            "--exec-root", str(self.exec_root(node)),
            "-H", node.docker_host,
            "--pidfile", str(node.dir / "engine.pid"),
            "--cgroup-parent", f"meshop-fleet-{self.fid}-{node.name}",
            "--log-level", "warn",
            "--bip", "172.18.0.1/24",  # the engine's own docker0, inside the node's namespace
        ]  # fmt: skip
        self.spawn(node, "dockerd", args)

    def gossip_key(self) -> str:
        """The fleet's gossip encryption key, made once and kept in its folder (a rebooted host reuses it)."""
        path = self.root / "gossip.key"
        if not path.exists():
            path.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
            path.chmod(0o600)
        return path.read_text().strip()

    def consul_json(self, member: Member) -> str:
        """What ``meshop init`` (gw) and ``node add [--server]`` (the others) write to consul.json (ACLs on,
        default deny; the agent's node-identity token once the ACLs are bootstrapped: gw's first start has
        none, as with ``meshop init``), with the fleet's folder as data_dir and HTTP also on the member's
        address."""
        server = self.is_server(member.name)
        join = "" if member.name == "gw" else self.gateway.addr
        rendered = consul_config(
            node=member.name,
            address=member.addr,
            datacenter=DATACENTER,
            gossip_key=self.gossip_key(),
            agent_token=self.consul_agent_token(member) if self.management_file.exists() else "",
            server=server,
            join=join,
        )
        config = json.loads(rendered)
        config |= {"data_dir": str(member.dir / "consul"), "client_addr": f"127.0.0.1 {member.addr}"}
        if member.name == "gw" and self.servers > 1:  # what `node add --server` adds to the gateway's (remember_server)
            config["retry_join"] = sorted(m.addr for m in self.server_members if m.name != "gw")
        config |= {"retry_interval": "1s"} if "retry_join" in config else {}
        return json.dumps(config, indent=2, sort_keys=True) + "\n"

    def start_consul(self, member: Member) -> None:
        (member.dir / "consul").mkdir(parents=True, exist_ok=True)
        config = member.dir / "consul.json"
        config.write_text(self.consul_json(member))
        config.chmod(0o600)  # it holds the gossip key
        args = [find_binary("consul"), "agent", "-config-file", str(config), "-log-level", "warn"]
        args += ["-disable-host-node-id"]  # every namespace shares the machine's id
        self.spawn(member, "consul", args)

    def start_controller(self, member: Member) -> None:
        args = ["controller", "run", "--id", f"ctl-{member.name}", "--grace-period", str(self.grace)]
        args += ["--metrics-addr", f"{member.addr}:9465"]
        args += ["--rebalance-stable", str(self.rebalance_stable), "--rebalance-interval", str(self.rebalance_interval)]
        self.spawn(member, "controller", [*self.meshop(member, f"{member.addr}:8500"), *args])

    def start_gateway(self, gw: Member | None = None) -> None:
        """The gateway on ``gw`` (default the first); with two, each registers its address for DNS and drains
        for the record TTL + 3 s on SIGTERM (a planned handover)."""
        gw = gw or self.gateway
        args = ["gateway", "run", "--id", gw.name, "--caddy-dir", str(gw.dir / "caddy"), "--tls", "off"]
        args += ["--http-port", str(GATEWAY_PORT), "--https-port", "443", "--bind", gw.addr]
        args += ["--metrics-addr", f"{gw.addr}:9466"]
        if self.gateways > 1 or self.dns:
            args += ["--advertise-addr", gw.addr, "--check-interval", str(GATEWAY_CHECK_INTERVAL)]
            args += ["--drain", str(self.dns_ttl + 3)]
        self.spawn(gw, "gateway", [*self.meshop(gw, f"{gw.addr}:8500"), *args])

    def bind(self) -> Any:
        """The fleet's BIND9 (tests.support.bind_server, imported only with ``dns``: it needs dnspython);
        its TSIG secret is kept beside named.conf so a restart keeps the key."""
        from tests.support.bind_server import BindServer

        folder = self.dns_host.dir / "named"
        server = BindServer(folder, zone=DNS_ZONE, key_name=DNS_KEY, address=self.dns_host.addr, port=53)
        secret = folder / "tsig.secret"
        if secret.exists():
            server.secret = secret.read_text().strip()
        else:
            server.write_config()
            secret.write_text(server.secret + "\n")
            secret.chmod(0o600)
        return server

    def start_named(self) -> None:
        self.spawn(self.dns_host, "named", self.bind().command())

    def dns_query(self, host: str) -> list[str]:
        """The A records BIND answers for ``host`` (a name under the zone, e.g. web.fleet.test)."""
        return list(self.bind().query(host.removesuffix(f".{DNS_ZONE}"), "A", timeout=1))

    def configure_dns(self) -> None:
        """The TSIG secret where the DNS writer reads it (``<prefix>/secrets/meshop-dns/``, the secrets
        folder, written with the management token: no role writes secrets) and the Gateway document
        pointing at BIND."""
        key = f"{self.prefix}/secrets/meshop-dns/tsig"
        self.consul_put(f"/v1/kv/{key}", self.bind().secret.encode())
        dns = {"provider": "rfc2136", "server": self.dns_server, "zone": DNS_ZONE, "keyName": DNS_KEY}
        dns.update({"keySecretKey": key, "ttl": self.dns_ttl, "records": "hosts"})
        spec = {"domains": [DNS_ZONE], "tls": {"mode": "off"}, "dns": dns}
        self.apply({"apiVersion": "meshop.io/v1alpha1", "kind": "Gateway", "metadata": {"name": "fleet"}, "spec": spec})

    def start_agent(self, node: Member) -> None:
        args = [
            "agent", "run", "--node", node.name, "--advertise-addr", node.addr, "--docker-host", node.docker_host,
            "--state-dir", str(node.dir / "agent"), "--metrics-addr", f"{node.addr}:9464", "--stop-grace", "1",
            "--labels", f"fleet={self.fid}", "--caddy-dir", str(node.dir / "caddy"),
            "--ingress-port", str(self.ingress_port), "--ingress-bind", node.addr, "--ingress-trusted-proxy", self.cidr,
            "--lease-dir", str(node.dir / "fence"),
        ]  # fmt: skip
        self.record_inventory(node)
        fence = ["fence", "run", "--node", node.name, "--docker-host", node.docker_host, "--lease-dir", args[-1]]
        self.spawn(node, "fence", [*self.meshop(node, f"{node.addr}:8500"), *fence])  # beside the agent (systemd)
        self.spawn(node, "agent", [*self.meshop(node, f"{node.addr}:8500"), *args])

    def record_inventory(self, node: Member) -> None:
        """The node's address in ``inventory/nodes/<n>``, as ``meshop node add`` records it (issue 24: the
        controller dials a node only at an address listed there; written with the management token)."""
        self.consul_put(f"/v1/kv/{self.prefix}/inventory/nodes/{node.name}", json.dumps({"addresses": [node.addr]}))

    # -- readiness ---------------------------------------------------------------------------------------
    def engine_ready(self, node: Member) -> bool:
        return docker_api(node.docker_sock, "GET", "/_ping")[0] == 200

    def load_image(self, node: Member) -> None:
        if docker_api(node.docker_sock, "GET", f"/images/{IMAGE}/json")[0] == 200:
            return
        saved = run("docker", "save", IMAGE).stdout
        run("docker", "-H", node.docker_host, "load", input=saved)

    def consul_get(self, path: str, addr: str | None = None) -> Any:
        """GET ``path`` from Consul (default ``consul_addr``) with the management token: the harness's own
        reads for its assertions."""
        request = urllib.request.Request(f"http://{addr or self.consul_addr}{path}", headers=self.consul_headers())
        with urllib.request.urlopen(request, timeout=3) as response:
            body = response.read()
        return json.loads(body) if body else None

    def consul_put(self, path: str, data: bytes | str, addr: str | None = None, token: str | None = None) -> Any:
        """PUT ``data`` to ``path`` with ``token`` (default the management token: the harness's own set-up
        writes); an HTTPError (403 for a refused token) is raised as it comes."""
        headers = {"X-Consul-Token": token} if token else self.consul_headers()
        body = data.encode() if isinstance(data, str) else data
        url = f"http://{addr or self.consul_addr}{path}"
        with urllib.request.urlopen(urllib.request.Request(url, body, headers, method="PUT"), timeout=5) as response:
            answer = response.read()
        return json.loads(answer) if answer else None

    # -- ACLs (as `meshop init` / `node add` set them up) ---------------------------------------------------
    @property
    def tokens_dir(self) -> Path:
        return self.root / "tokens"

    @property
    def management_file(self) -> Path:
        return self.tokens_dir / "management.token"

    def consul_headers(self) -> dict[str, str]:
        """The management token header once the ACLs are bootstrapped (before: none; only gw's leader and
        ``/v1/status`` are asked then, which need no token)."""
        path = self.management_file
        return {"X-Consul-Token": path.read_text().strip()} if path.exists() else {}

    def _keep_secret(self, path: Path, secret: str) -> None:
        """``secret`` into ``path``, mode 0600 from its creation (the folder is 0700)."""
        self.tokens_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fresh = path.with_suffix(".new")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secret + "\n")
        fresh.replace(path)

    def _consul_cli(self, *args: str) -> dict[str, Any]:
        """``consul ARGS -format=json`` against ``consul_addr`` with the management token (when there is one),
        as ``meshop init`` runs it on the gateway; its answer (a secret) is returned, never logged."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
        env["CONSUL_HTTP_ADDR"] = self.consul_addr
        if self.management_file.exists():
            env["CONSUL_HTTP_TOKEN_FILE"] = str(self.management_file)
        result = subprocess.run(
            [find_binary("consul"), *args, "-format=json"], capture_output=True, env=env, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"consul {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
        return dict(json.loads(result.stdout))

    def acl_bootstrap(self) -> None:
        """Once gw's Consul leads: ``consul acl bootstrap`` (retried while the new leader sets its ACLs up),
        gw's own agent token (node identity) set on the running agent (it persists it) and in its config,
        and the role policies (``meshop acl init``). Nothing again on a fleet that has them."""
        with self._acl_lock:
            if not self.management_file.exists():
                made = wait_for(lambda: self._consul_cli("acl", "bootstrap"), 60, "consul acl bootstrap", 0.5)
                self._keep_secret(self.management_file, str(made["SecretID"]))
            gw = self.gateway
            token = json.dumps({"Token": self.consul_agent_token(gw)})
            self.consul_put("/v1/agent/token/agent", token, f"{gw.addr}:8500")
            config = gw.dir / "consul.json"
            config.write_text(self.consul_json(gw))  # its next start has the token from the beginning
            config.chmod(0o600)
            with self._admin() as admin:
                admin.init()
        for role in ("operator", "readonly"):  # the host CLI's, made now: a first `status` may come in a fault
            self.token_file(role)

    def consul_agent_token(self, member: Member) -> str:
        """``member``'s Consul agent token: a node identity (``node <name>`` write, for its anti-entropy),
        made once as ``meshop init`` / ``node add`` make it, kept in ``tokens/consul-<name>.token``."""
        with self._acl_lock:
            path = self.tokens_dir / f"consul-{member.name}.token"
            if not path.exists():
                made = self._consul_cli(
                    "acl", "token", "create", "-description", f"meshop consul agent {member.name}",
                    "-node-identity", f"{member.name}:{DATACENTER}",
                )  # fmt: skip
                self._keep_secret(path, str(made["SecretID"]))
            return path.read_text().strip()

    @contextlib.contextmanager
    def _admin(self) -> Iterator[AclAdmin]:
        token = self.management_file.read_text().strip()
        config = ConsulConfig.from_env({}, addr=self.consul_addr, token=token, prefix=self.prefix, timeout=10.0)
        admin = AclAdmin(config)
        try:
            yield admin
        finally:
            admin.api.client.http.session.close()

    def token_file(self, role: str, node: str | None = None) -> Path:
        """The 0600 file holding ``role``'s token (an agent's: of ``node``), made by meshop's own ``AclAdmin``
        (``meshop acl token ROLE [--node N]``) on first use."""
        with self._acl_lock:
            path = self.tokens_dir / (f"{role}-{node}.token" if node else f"{role}.token")
            if not path.exists():
                with self._admin() as admin:
                    self._keep_secret(path, admin.token(role, node))
            return path

    def start_acl_sync(self, member: Member | None = None) -> None:
        """``meshop acl sync --watch`` where ``meshop init`` and ``node add --server`` put it: on a server
        host (default the gateway), next to its Consul server, with the management token; a short resync
        so a missed wake-up costs seconds. Several elect one active syncer (``locks/acl-sync``)."""
        member = member or self.gateway
        args = ["acl", "sync", "--watch", "--resync", "5", "--id", member.name]
        self.spawn(member, "acl-sync", [*self.meshop(member, f"{member.addr}:8500"), *args])

    def kv(self, key: str) -> Any:
        """The JSON value at ``<prefix>/<key>``, or None."""
        try:
            entries = self.consul_get(f"/v1/kv/{self.prefix}/{key}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        raw = entries[0].get("Value")
        return json.loads(base64.b64decode(raw)) if raw else None

    def kv_keys(self, prefix: str) -> list[str]:
        """The keys under ``<fleet prefix>/<prefix>``, without the fleet's prefix; [] when there are none."""
        try:
            found = self.consul_get(f"/v1/kv/{self.prefix}/{prefix}?keys")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise
        return [k.removeprefix(f"{self.prefix}/") for k in found or []]

    def consul_delete(self, key: str, recurse: bool = False) -> None:
        """Delete ``<prefix>/<key>`` (and below it with ``recurse``) with the management token."""
        url = f"http://{self.consul_addr}/v1/kv/{self.prefix}/{key}" + ("?recurse" if recurse else "")
        request = urllib.request.Request(url, headers=self.consul_headers(), method="DELETE")
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def members_alive(self) -> set[str]:
        return {m["Name"] for m in self.consul_get("/v1/agent/members") if m.get("Status") == 1}

    def node_state(self, name: str) -> str:
        status = self.kv(f"status/nodes/{name}")
        return str(status.get("state")) if status else "Unknown"

    def nodes_ready(self, names: list[str] | None = None) -> bool:
        return all(self.node_state(n) == "Ready" for n in names or self.node_names)

    def voters(self, addr: str | None = None) -> set[str]:
        """The Raft voters (Consul node names) as the server at ``addr`` (default ``consul_addr``) sees them;
        empty while it has no leader."""
        config = self.consul_get("/v1/operator/raft/configuration", addr)
        return {s["Node"] for s in config.get("Servers", []) if s.get("Voter")}

    def control_plane_ready(self) -> bool:
        """Every server host's Consul is a Raft voter and a leader is elected."""
        return self.voters() == {m.name for m in self.server_members} and bool(self.consul_get("/v1/status/leader"))

    def leader(self) -> str:
        """The id of the controller holding the leader lock ("" while nobody holds it)."""
        return self.lock_holder("leader")

    def acl_sync_holder(self) -> str:
        """The ``--id`` (host name) of the active ``acl sync --watch`` ("" while none holds its lock)."""
        return self.lock_holder("locks/acl-sync")

    def make_acl_sync_active(self, name: str) -> None:
        """Make ``name``'s ``acl sync --watch`` the active one: the others stopped (a clean stop releases
        the lock at once), then started again as standbys."""
        if self.acl_sync_holder() == name:
            return
        others = [m for m in self.server_members if m.name != name]
        parallel([lambda m=m: self.stop(m, "acl-sync") for m in others])
        wait_for(lambda: self.acl_sync_holder() == name, 60, f"acl sync on {name} to be the active one")
        for member in others:
            self.start_acl_sync(member)

    def lock_holder(self, key: str) -> str:
        """The ``id`` in the value of the session lock ``key`` ("" while nobody holds it)."""
        try:
            entries = self.consul_get(f"/v1/kv/{self.prefix}/{key}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return ""
            raise
        if not entries or not entries[0].get("Session") or not entries[0].get("Value"):
            return ""
        return str(json.loads(base64.b64decode(entries[0]["Value"])).get("id", ""))

    # -- up / down ---------------------------------------------------------------------------------------
    def up(self, timeout: float = 120.0) -> float:
        """Bring the whole fleet up (reusing what runs); returns the seconds it took."""
        started = time.monotonic()
        compile_bytecode()
        self.network_up()
        gw = self.gateway
        for node in self.node_names:
            self.start_dockerd(self.node(node))
        self.start_consul(gw)
        if self.dns:
            self.start_named()
        wait_for(lambda: self.consul_get("/v1/status/leader"), 60, "a Consul leader on the gateway")
        self.acl_bootstrap()  # the other agents start with their tokens made by then, as `node add` does
        for node in self.node_names:
            self.start_consul(self.node(node))
        if self.gateways > 1:
            self.start_consul(self.gateway2)
        for member in self.server_members:
            self.start_acl_sync(member)
        for name in self.node_names:
            node = self.node(name)
            wait_for(lambda n=node: self.engine_ready(n), 60, f"dockerd on {name}")  # type: ignore[misc]
            self.load_image(node)
        agents = {m.name for m in self.gateway_members} | set(self.node_names)
        wait_for(lambda: self.members_alive() >= agents, 60, "every Consul agent to join")
        if self.dns:
            wait_for(lambda: self.dns_query(f"ns1.{DNS_ZONE}") == ["127.0.0.1"], 30, "named in its namespace")
            self.configure_dns()
        self.start_controller(gw)
        wait_for(lambda: self.leader() == "ctl-gw" or self.leader(), 30, "a controller to lead")
        for member in self.gateway_members:
            self.start_gateway(member)
        for name in self.node_names:
            self.start_agent(self.node(name))
        for member in self.standby_hosts:
            self.start_controller(member)
        wait_for(self.nodes_ready, timeout, "every node to be Ready", interval=0.25)
        # autopilot makes a joined server a voter after 10 s of good health (all the while the rest started)
        wait_for(self.control_plane_ready, 60, f"{self.servers} Raft voters", interval=0.25)
        return time.monotonic() - started

    @property
    def standby_hosts(self) -> list[Member]:
        """Where hot standby controllers run: every other server host (with one server: n1)."""
        return self.server_members[1:] if self.servers > 1 else [self.node(self.node_names[0])]

    def make_leader(self, name: str) -> None:
        """Make ``name``'s controller the leader: the others stopped (a clean stop releases the lock at once,
        no lock-delay), then started again as standbys."""
        want = f"ctl-{name}"
        if self.leader() == want:
            return
        hosts = [m for m in [self.gateway, *self.standby_hosts] if m.name != name]
        parallel([lambda m=m: self.stop(m, "controller") for m in hosts])
        wait_for(lambda: self.leader() == want, 60, f"{want} to lead")
        for member in hosts:
            self.start_controller(member)

    def member(self, name: str) -> Member:
        named = {m.name: m for m in (self.gateway, self.gateway2, self.client, self.dns_host)}
        return named[name] if name in named else self.node(name)

    def power_off(self, name: str) -> int:
        """Pull the plug on a node (or the gateway, "gw"): its link down and every process in its namespace
        (engine, shims, containers, Consul agent, meshop daemons, Caddy) SIGKILLed at once. Returns how many
        were killed."""
        self.set_link(name, False)
        killed = kill_tree(self.member(name).ns)
        self._reap()
        shutil.rmtree(self.member(name).dir / "fence", ignore_errors=True)  # the lease folder is on tmpfs
        return killed

    def power_on(self, name: str) -> None:
        """Boot a node again: link up, engine, Consul agent, agent (and its standby controller); the
        gateway: Consul server (its data dir kept), controller, gateway."""
        member = self.member(name)
        self.set_link(name, True)
        if name == "gw":
            self.start_consul(member)
            try:
                at = f"{member.addr}:8500"
                wait_for(lambda: self.consul_get("/v1/status/leader", at), 60, "gw's Consul to rejoin")
            except TimeoutError as exc:  # seen twice in ~10 boots, logs gone with the scratch fleet: keep why
                tail = (member.dir / "consul.log").read_text(errors="replace")[-2000:]
                alive = member.running("consul")
                raise TimeoutError(f"{exc}; consul running: {alive}; its log ends:\n{tail}") from None
            self.start_acl_sync()
            self.start_controller(member)
            self.start_gateway()
            return
        if name == "g2":
            self.start_consul(member)
            self.start_gateway(member)
            return
        self.start_dockerd(member)
        self.start_consul(member)
        wait_for(lambda: self.engine_ready(member), 60, f"dockerd on {name}")
        self.start_agent(member)
        if name in {m.name for m in self.standby_hosts}:
            self.start_controller(member)
        if self.is_server(name):
            self.start_acl_sync(member)

    def add_node(self, name: str | None = None, timeout: float = 120.0) -> Member:
        """A new node joins the running fleet: the stand-in for ``meshop node add`` (which needs sshd and
        systemd, neither of which a namespace has). The steps ``plan_node`` renders, each by the same
        per-node function ``up()`` calls: the engine (its ``Packages docker.io``), consul.json from
        ``consul_config`` and Consul started (its ``File`` + units), the member joined (its
        ``checks.consul_leader``), the inventory record and the agent (``start_agent``: ``record_inventory``
        as ``node add`` writes it), then the agent's ``/readyz`` (its ``checks.http_ready``) and the
        controller's Ready. ``name`` is the next node (``n<nodes+1>``); fleet.json records it, so
        ``down`` stops it with the rest."""
        name = name or f"n{self.nodes + 1}"
        if name != f"n{self.nodes + 1}":
            raise ValueError(f"node {name!r}: the next node of this fleet is n{self.nodes + 1}")
        self.nodes += 1
        self.network_up()  # fleet.json with the new count first, then the namespace and its link
        node = self.node(name)
        self.start_dockerd(node)
        self.start_consul(node)
        wait_for(lambda: self.engine_ready(node), 60, f"dockerd on {name}")
        self.load_image(node)
        wait_for(lambda: name in self.members_alive(), 60, f"{name}'s Consul agent to join")
        self.start_agent(node)
        wait_for(lambda: url_ok(f"http://{node.addr}:9464/readyz"), timeout, f"{name}'s agent ready (/readyz)")
        wait_for(lambda: self.node_state(name) == "Ready", timeout, f"{name} Ready", interval=0.1)
        return node

    def remove_node(self, name: str) -> None:
        """Take the last node out again, as ``meshop node remove`` (``plan_removal``) does: drained until
        nothing is assigned to it, its agent and fence stopped and their memory (state dir, leases) removed,
        its engine stopped, its Consul agent made to leave (``leave_on_terminate`` is off) and stopped, its
        records deleted; then the namespace goes and fleet.json shrinks. Only the last node: the others'
        names and addresses follow from the count."""
        if name != f"n{self.nodes}" or self.is_server(name) or self.nodes <= 1:
            raise ValueError(f"node {name!r}: only the last node (n{self.nodes}) can be removed, and no server")
        node = self.node(name)
        if self.node_state(name) == "Ready":
            self.cli("nodes", "drain", name)
            wait_for(lambda: not self.kv_keys(f"assignments/{name}/"), 120, f"nothing assigned to {name}", 0.25)
        self.stop(node, "agent")
        self.stop(node, "fence")
        self._engine_down(node)
        if node.running("consul"):  # leave_on_terminate is off (consul_config): leave first, as force-leave would
            with contextlib.suppress(OSError):
                url = f"http://{node.addr}:8500/v1/agent/leave"
                leave = urllib.request.Request(url, headers=self.consul_headers(), method="PUT")
                urllib.request.urlopen(leave, timeout=10).close()
            wait_for(lambda: name not in self.members_alive(), 30, f"{name}'s Consul agent to leave")
        self.stop(node, "consul")
        kill_tree(node.ns)  # its node Caddy and whatever else the agent started
        self._reap()
        for key in ("nodes", "fences", "status/nodes", "desired/nodes", "inventory/nodes"):
            self.consul_delete(f"{key}/{name}")
        self.consul_delete(f"observed/{name}/", recurse=True)
        self._unmount_leftovers()
        run("ip", "netns", "del", node.ns, check=False)
        run("ip", "-n", self.switch_ns, "link", "del", node.port, check=False)
        shutil.rmtree(self.exec_root(node), ignore_errors=True)
        for state in ("consul", "agent", "caddy", "fence"):
            shutil.rmtree(node.dir / state, ignore_errors=True)
        self.nodes -= 1
        self.network_up()  # rewrites fleet.json with the count
        wait_for(lambda: self.kv(f"status/nodes/{name}") is None, 30, f"the controller to forget {name}", 0.25)

    def restart_dockerd(self, name: str) -> None:
        node = self.node(name)
        self.stop(node, "dockerd", timeout=60)
        self.start_dockerd(node)
        wait_for(lambda: self.engine_ready(node), 60, f"dockerd on {name}")

    def restart_consul_server(self, name: str = "gw") -> None:
        """A clean restart of one host's Consul server (an upgrade step): SIGTERM, start, a leader again
        and, with three servers, every server a voter again."""
        member = self.member(name)
        self.stop(member, "consul")
        self.start_consul(member)
        at = f"{member.addr}:8500"
        wait_for(lambda: self.consul_get("/v1/status/leader", at), 60, f"a Consul leader after {name}'s restart")
        wait_for(self.control_plane_ready, 60, f"{self.servers} Raft voters after {name}'s restart", 0.1)

    def down(self) -> None:
        """Stop exactly what the fleet started, remove its namespaces and veth; engines' images stay cached."""
        if not (self.root / "fleet.json").exists():
            log(f"no fleet in {self.root}")
            return
        gw = self.gateway
        nodes = [self.node(n) for n in self.node_names]
        errors: list[str] = []

        def step(action: Callable[[], object]) -> None:  # every step runs, whatever failed before it
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - reported at the end
                errors.append(repr(exc))

        gateways = self.gateway_members
        drains = self.gateways > 1 or self.dns  # --drain: no need to wait for it at teardown
        step(lambda: parallel([lambda m=m: self.stop(m, "gateway", timeout=2 if drains else 30) for m in gateways]))
        step(lambda: self.stop(gw, "controller"))
        step(lambda: parallel([lambda m=m: self.stop(m, "acl-sync") for m in self.server_members]))
        procs = ("controller", "agent", "fence")
        step(lambda: parallel([lambda n=n, p=p: self.stop(n, p) for n in nodes for p in procs]))
        step(lambda: parallel([lambda n=n: self._engine_down(n) for n in nodes]))
        servers = {m.name for m in self.server_members}
        clients = [m for m in [*nodes, *gateways[1:]] if m.name not in servers]
        step(lambda: parallel([lambda n=n: self.stop(n, "consul") for n in clients]))  # leave while the servers run
        step(lambda: parallel([lambda n=n: self.stop(n, "consul") for n in self.server_members]))
        if self.dns:
            step(lambda: self.stop(self.dns_host, "named"))
        for member in [*self.members, Member("net", self.switch_ns, "", "", self.root, str(self.root))]:
            step(lambda m=member: kill_tree(m.ns))  # anything left in our own namespaces (Caddies, shims)
        self._reap()
        step(self._unmount_leftovers)
        for member in self.members:
            run("ip", "netns", "del", member.ns, check=False)
            shutil.rmtree(self.exec_root(member), ignore_errors=True)
            for state in ("consul", "agent", "caddy"):
                shutil.rmtree(member.dir / state, ignore_errors=True)
        run("ip", "link", "del", self.host_if, check=False)
        run("ip", "netns", "del", self.switch_ns, check=False)
        with contextlib.suppress(OSError):
            (Path("/run/meshop-fleet") / self.fid).rmdir()
        shutil.rmtree(self.tokens_dir, ignore_errors=True)  # the ACLs they belong to went with Consul's data
        if errors:
            raise RuntimeError(f"fleet {self.fid} down with errors (namespaces removed): {'; '.join(errors)}")
        (self.root / "fleet.json").unlink(missing_ok=True)

    def _engine_down(self, node: Member) -> None:
        if node.running("dockerd") and self.engine_ready(node):
            with contextlib.suppress(Exception):
                for container in docker_api(node.docker_sock, "GET", "/containers/json?all=1")[1] or []:
                    docker_api(node.docker_sock, "DELETE", f"/containers/{container['Id']}?force=1&v=1", timeout=30)
        self.stop(node, "dockerd", timeout=30)

    def _unmount_leftovers(self) -> None:
        """Mounts a killed engine left under its folders (container rootfs, netns handles)."""
        prefixes = tuple(str(p) + "/" for p in (self.root, Path("/run/meshop-fleet") / self.fid))
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for point in sorted((m for m in mounts if m.startswith(prefixes)), key=len, reverse=True):
            run("umount", "-l", point, check=False)

    # -- what the fleet runs -----------------------------------------------------------------------------
    def env(self, role: str = "operator") -> dict[str, str]:
        """The environment a host shell needs for `meshop` against this fleet (as operator by default)."""
        token = {"CONSUL_HTTP_TOKEN_FILE": str(self.token_file(role))} if self.management_file.exists() else {}
        return {"CONSUL_HTTP_ADDR": self.consul_addr, "MESHOP_PREFIX": self.prefix, **token}

    def cli_role(self, args: tuple[str, ...]) -> str:
        """The role ``meshop ARGS`` runs as: operator for commands that write, readonly for the rest."""
        role, _ = role_of(list(args))
        command = next((a for a in args if not a.startswith("-")), "")
        return "operator" if role == "readonly" and command in OPERATOR_CLI else role

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``meshop ARGS`` from the host against this fleet's Consul server, with its role's token."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
        env.update(self.env(self.cli_role(args)))
        result = subprocess.run(
            [sys.executable, "-m", "meshop", *args], input=input, capture_output=True, text=True, env=env, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"meshop {' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def apply(self, doc: dict[str, Any]) -> None:
        self.cli("apply", "-f", "-", input=json.dumps(doc))

    def containers(self, service: str, names: list[str] | None = None) -> list[dict[str, Any]]:
        """Running containers of ``service`` on the given nodes (default: every node whose engine answers)."""
        found: list[dict[str, Any]] = []
        filters = urllib.parse.quote(json.dumps({"label": [f"meshop.service={service}"], "status": ["running"]}))
        for name in names or self.node_names:
            node = self.node(name)
            if not node.running("dockerd"):
                continue
            status, body = docker_api(node.docker_sock, "GET", f"/containers/json?filters={filters}")
            if status == 200:
                found.extend({**c, "node": name} for c in body)
        return found

    def replicas(self, service: str) -> dict[tuple[str, int], int]:
        """(node, replica index) -> how many containers run for it (more than one: a duplicate)."""
        out: dict[tuple[str, int], int] = {}
        for container in self.containers(service):
            key = (container["node"], int(container["Labels"].get("meshop.replica", -1)))
            out[key] = out.get(key, 0) + 1
        return out

    def service_ready(self, name: str, replicas: int, nodes: list[str] | None = None) -> bool:
        """The controller says Ready and exactly ``replicas`` containers run (on ``nodes``, default all)."""
        status = self.kv(f"status/services/{name}") or {}
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions", [])}
        return conditions.get("Ready") == "True" and len(self.containers(name, nodes)) == replicas

    def metric(self, addr: str, name: str, **labels: str) -> float | None:
        """One sample from a daemon's /metrics (``addr`` host:port), or None when it is not there."""
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=3) as response:
            text = response.read().decode()
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            if series == (f"{name}{{{want}}}" if want else name):
                return float(value)
        return None

    def engine_info(self, name: str) -> dict[str, Any]:
        status, info = docker_api(self.node(name).docker_sock, "GET", "/info")
        if status != 200:
            raise RuntimeError(f"the engine of {name} does not answer")
        return dict(info)


# --- small clients: the engines' API over their unix sockets, HTTP through the gateway -------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


def docker_api(sock: Path, method: str, path: str, timeout: float = 10.0) -> tuple[int, Any]:
    """One Docker Engine API call; (0, None) when the engine does not answer."""
    conn = _UnixConnection(sock, timeout)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read()
        try:
            return response.status, json.loads(body) if body else None
        except ValueError:
            return response.status, body.decode(errors="replace")
    except OSError:
        return 0, None
    finally:
        conn.close()


def url_ok(url: str, timeout: float = 3.0) -> bool:
    """A GET of ``url`` answers 200 (an HTTP error or no answer: False)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):
        return False


def http_get(addr: str, port: int, host: str, path: str = "/", timeout: float = 5.0) -> tuple[int, str]:
    """One GET with ``Host: host``, no retry of any kind; (0, why) when no answer came."""
    conn = http.client.HTTPConnection(addr, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return 0, repr(exc)
    except http.client.HTTPException as exc:
        return 0, repr(exc)
    finally:
        conn.close()


@dataclass
class RequestLoop:
    """GETs through the gateway one after another in a thread, bounded in count and time. No retries:
    every request that does not get a 200 with the service's page (``expect``: the test image's index,
    which every fleet service serves; a 200 from anything else, such as Caddy's empty one for a host with
    no site before the gateway's 404 catch-all, must not count) is a failure, recorded as (start, end,
    what); requests slower than ``slow_after`` seconds (answered or not) are also kept as (start, end)."""

    addr: str
    host: str
    path: str = "/"
    port: int = GATEWAY_PORT
    limit: int = 20000
    max_seconds: float = 300.0
    timeout: float = 5.0
    slow_after: float = 1.0
    ok: int = 0
    failures: list[tuple[float, float, str]] = field(default_factory=list)
    slow: list[tuple[float, float]] = field(default_factory=list)
    expect: str = TEST_PAGE  # a 200 whose body lacks it fails too
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RequestLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        for _ in range(self.limit):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            began = time.monotonic()
            status, body = http_get(self.addr, self.port, self.host, self.path, self.timeout)
            ended = time.monotonic()
            if ended - began > self.slow_after:
                self.slow.append((began, ended))
            if status == 200 and self.expect in body:
                self.ok += 1
            else:
                self.failures.append((began, ended, f"{status} {body[:80]}"))
                time.sleep(0.02)

    def stop(self) -> RequestLoop:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.timeout + 5)
        return self

    def disturbed_until(self, since: float) -> float:
        """Seconds from ``since`` to the end of the last failed or slow request that ended after it (0: none)."""
        ends = [end for _, end, _ in self.failures] + [end for _, end in self.slow]
        late = [end for end in ends if end >= since]
        return max(late) - since if late else 0.0

    @property
    def total(self) -> int:
        return self.ok + len(self.failures)

    def report(self) -> str:
        """The failures for an assertion message, with their wall-clock span to find them in the fleet's logs
        (``MESHOP_FLEET_KEEP_LOGS``)."""
        if not self.failures:
            return f"{self.host} via {self.addr}: none of {self.total} failed"
        offset = time.time() - time.monotonic()
        first, last = (
            datetime.datetime.fromtimestamp(t + offset).strftime("%H:%M:%S.%f")[:-3]
            for t in (self.failures[0][0], self.failures[-1][1])
        )
        span = self.failures[-1][1] - self.failures[0][0]
        return (
            f"{self.host} via {self.addr}: {len(self.failures)} of {self.total} failed, {first} to {last} "
            f"({span:.2f} s): "
            f"{self.failures[:3]}"
        )


def service_doc(
    name: str, replicas: int, host: str, *, spread: bool = True, version: str = "1", **extra: Any
) -> dict[str, Any]:
    """busybox httpd behind ``host`` with an HTTP health check; ``version`` changes the spec (a rolling update)."""
    spec: dict[str, Any] = {
        "image": IMAGE,
        "command": ["/bin/httpd"],
        "args": ["-f", "-p", "80", "-h", "/www"],
        "env": [{"name": "VERSION", "value": version}],
        "ports": [{"name": "http", "container": 80}],
        "replicas": replicas,
        "placement": {"spread": spread},
        "route": {"host": host, "port": "http"},
        "health": {"http": {"path": "/", "port": "http"}, "interval": "1s", "timeout": "1s"},
        "update": {"strategy": "start-first", "healthTimeout": "30s"},
    }
    spec.update(extra)
    return {"apiVersion": "meshop.io/v1alpha1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


@contextlib.contextmanager
def session_fleet(
    root: Path, nodes: int = 3, grace: float = 10.0, gateways: int = 1, dns: bool = False, servers: int = 1
) -> Iterator[Fleet]:
    """A fleet of its own (random id, its own subnet) for a test session or a benchmark; always torn down."""
    fid = f"t{secrets.token_hex(3)}"
    fleet = Fleet(root, fid=fid, nodes=nodes, grace=grace, gateways=gateways, dns=dns, servers=servers)
    try:
        fleet.up()
        yield fleet
    finally:
        fleet.down()


@contextlib.contextmanager
def scratch_fleet(prefix: str, **shape: Any) -> Iterator[Fleet]:
    """``session_fleet(**shape)`` in a new folder under /tmp (short: unix socket paths are limited to 108
    bytes), removed after a complete teardown (else kept for ``python -m tests.support.fleet down``)."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        with session_fleet(root, **shape) as fleet:
            yield fleet
    finally:
        keep = os.environ.get("MESHOP_FLEET_KEEP_LOGS")  # a folder: every member's logs are copied there
        if keep:
            keep_logs(root, Path(keep) / root.name)
        if not (root / "fleet.json").exists():
            shutil.rmtree(root, ignore_errors=True)


def keep_logs(root: Path, into: Path) -> None:
    """Copy every member's logs out of a fleet's folder before it is removed (to read a failure later)."""
    for found in root.glob("*/*.log"):
        target = into / found.parent.name / found.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found, target)


# --- command line (make fleet / make fleet-down) -----------------------------------------------------------

EXAMPLE = "hello"
EXAMPLE_HOST = "hello.fleet.test"


def _cmd_up(fleet: Fleet) -> None:
    took = fleet.up()
    log(f"{fleet.nodes} nodes and the gateway are up and Ready in {took:.1f}s")
    started = time.monotonic()
    fleet.apply(service_doc(EXAMPLE, 2, EXAMPLE_HOST))
    wait_for(lambda: fleet.service_ready(EXAMPLE, 2), 120, f"service {EXAMPLE} to be Ready", interval=0.25)
    wait_for(
        lambda: http_get(fleet.gateway.addr, GATEWAY_PORT, EXAMPLE_HOST)[0] == 200, 60, "a route through the gateway"
    )
    where = sorted(c["node"] for c in fleet.containers(EXAMPLE))
    log(f"service {EXAMPLE} Ready on {', '.join(where)} in {time.monotonic() - started:.1f}s")
    print(fleet.cli("status").stdout)
    status, body = http_get(fleet.gateway.addr, GATEWAY_PORT, EXAMPLE_HOST)
    print(f"$ curl -H 'Host: {EXAMPLE_HOST}' {fleet.gateway_url}/\n{status} {body.strip()}\n")
    if fleet.dns:
        wanted = sorted(m.addr for m in fleet.gateway_members)
        wait_for(lambda: fleet.dns_query(EXAMPLE_HOST) == wanted, 60, f"{EXAMPLE_HOST} in DNS")
        print(f"$ dig @{fleet.dns_host.addr} {EXAMPLE_HOST} A\n{', '.join(wanted)} (TTL {fleet.dns_ttl} s)\n")
    env = " ".join(f"{k}={v}" for k, v in fleet.env().items())
    print(f"Try:\n  {env} .venv/bin/meshop status\n  curl -H 'Host: {EXAMPLE_HOST}' {fleet.gateway_url}/")
    print(f"  {sys.executable} -m tests.support.fleet power-off n2     # then power-on n2")
    print("  make fleet-down")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fleet", description=__doc__.split("\n\n")[0])
    commands = ["up", "down", "status", "env", "power-off", "power-on", "partition", "heal"]
    parser.add_argument("command", choices=[*commands, "add-node", "remove-node"])
    parser.add_argument("node", nargs="?")
    parser.add_argument("--root", type=Path, default=REPO / ".dev" / "fleet")
    parser.add_argument("--nodes", type=int, default=int(os.environ.get("FLEET_NODES", "3")))
    parser.add_argument("--gateways", type=int, choices=[1, 2], default=1, help="2: a second gateway namespace g2")
    parser.add_argument("--dns", action="store_true", help="BIND9 in a namespace of its own, the Gateway's dns section")
    parser.add_argument("--servers", type=int, choices=[1, 3], default=1, help="3: Consul servers on gw, n1, n2")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("fleet: network namespaces need root", file=sys.stderr)
        return 1
    fleet = Fleet(args.root, nodes=args.nodes, gateways=args.gateways, dns=args.dns, servers=args.servers)
    try:
        if args.command == "up":
            _cmd_up(fleet)
        elif args.command == "down":
            fleet.down()
            log("down")
        elif args.command == "env":
            print("\n".join(f"export {k}={v}" for k, v in fleet.env().items()))
        elif args.command == "status":
            print(fleet.cli("status", check=False).stdout)
        elif args.command == "add-node":  # NAME optional: the next one
            started = time.monotonic()
            log(f"{fleet.add_node(args.node).name} joined and Ready in {time.monotonic() - started:.1f}s")
        elif args.command == "remove-node":
            fleet.remove_node(args.node or f"n{fleet.nodes}")
            log(f"n{fleet.nodes + 1} removed")
        else:
            if not args.node:
                parser.error(f"{args.command} needs a node name")
            action = {"power-off": fleet.power_off, "power-on": fleet.power_on}.get(args.command)
            if action:
                action(args.node)
            else:
                fleet.set_link(args.node, args.command == "heal")
    except (RuntimeError, TimeoutError, FileNotFoundError, ValueError) as exc:
        print(f"fleet: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
