"""The files a bootstrap writes, rendered from validated inputs. Pure.

systemd units for Consul, the agent and its fence, the controller, the gateway and ``acl sync``; the agent's and the
gateway's configuration files (``/etc/meshop/agent.yaml``, ``gateway.yaml``: the keys of
``meshop.config``, no secrets); their env files (mode 0600: they hold the tokens); Consul's server and
client configuration with gossip encryption and ACLs (default deny). The units shipped in ``agents/`` are
these texts (a unit test keeps them equal). Values are checked before they get here
(``plan.check_inputs``); env values are written one per line, never quoted into a shell.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

BIN = "/usr/local/bin/meshop"
VENV = "/opt/meshop/venv"
WHEELS = "/opt/meshop/wheels"
CONSUL_BIN = "/usr/local/bin/consul"
CONSUL_DIR = "/etc/consul.d"
CONSUL_CONFIG = f"{CONSUL_DIR}/consul.json"
CONSUL_DATA = "/var/lib/consul"
AGENT_CONFIG = "/etc/meshop/agent.yaml"
GATEWAY_CONFIG = "/etc/meshop/gateway.yaml"

_HARDENING = """NoNewPrivileges=yes
ProtectHome=yes
PrivateTmp=yes
"""


def _unit(description: str, after: str, service: str, comment: str, wants: str = "") -> str:
    return (
        f"{comment}[Unit]\nDescription={description}\nAfter={' '.join(['network-online.target', after]).strip()}\n"
        f"Wants={' '.join(['network-online.target', wants]).strip()}\n\n[Service]\n{service}\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


AGENT_UNIT = _unit(
    "meshop node agent",
    "docker.service consul.service meshop-fence.service",
    """Type=simple
EnvironmentFile=/etc/meshop/agent.env
ExecStart=/usr/local/bin/meshop agent run --config /etc/meshop/agent.yaml
StateDirectory=meshop/agent meshop/caddy
# SIGTERM: the agent finishes its pass, deregisters itself and exits; containers keep running.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=30
Restart=always
RestartSec=2
# The agent needs the Docker socket (root or the docker group) and nothing else on the host.
"""
    + _HARDENING,
    """# systemd unit for the meshop node agent. `meshop node add` installs it (docs/install.md); by hand:
#   cp agents/meshop-agent.service /etc/systemd/system/
#   cp agents/meshop-agent.yaml /etc/meshop/agent.yaml # then edit it (node name, address, labels, policy)
#   cp agents/meshop-agent.env /etc/meshop/agent.env   # then edit it (Consul token); mode 0600
#   systemctl daemon-reload && systemctl enable --now meshop-agent
#
# See docs/agent.md. The agent keeps this node's containers equal to meshop/assignments/<node>/ in Consul. Stopping it
# leaves the containers running; it deregisters the node's meshop-agent-<node> service on a clean stop.
""",
    # Wants, not Requires: an engine of the user's own (rootless, podman's socket, snap) has no docker.service.
    # The fence first: the agent starts no stateful copy while no fence watches.
    wants="docker.service meshop-fence.service",
)

FENCE_UNIT = _unit(
    "meshop fence (kills stateful copies whose lease ran out, with or without the agent)",
    "docker.service",
    """Type=simple
ExecStart=/usr/local/bin/meshop fence run --config /etc/meshop/agent.yaml
# SIGTERM: the fence stops looking; the copies keep running (the agent still guards them) and the agent
# starts no new stateful copy until the fence beats again. Restarted at once: it is the only guard of a
# stateful copy while the agent is down.
KillSignal=SIGTERM
TimeoutStopSec=10
Restart=always
RestartSec=1
# Root: the Docker socket, and the lease folder /run/meshop/fence (tmpfs, 0700) it shares with the agent.
"""
    + _HARDENING,
    """# systemd unit for the meshop fence, beside the agent on every node; `meshop node add` installs it
# (docs/install.md). It reads node, docker_host and lease_dir from the agent's /etc/meshop/agent.yaml,
# needs no Consul and no token, and SIGKILLs every stateful container of the node whose lease (written by
# the agent at each renewal of its volume locks) ran out: a crashed, stopped or hung agent's copy dies
# before another node may take its volume lock (docs/stateful.md).
""",
    wants="docker.service",
)

CONTROLLER_UNIT = _unit(
    "meshop controller",
    "consul.service",
    """Type=simple
EnvironmentFile=/etc/meshop/controller.env
ExecStart=/usr/local/bin/meshop controller run --metrics-addr ${MESHOP_METRICS_ADDR} --log-format json
# SIGTERM: the leader releases its lock, so a standby takes over at once.
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=always
RestartSec=2
DynamicUser=yes
"""
    + _HARDENING,
    """# systemd unit for the meshop controller (on the gateway; more hosts for hot standbys). `meshop init`
# installs it with /etc/meshop/controller.env (mode 0600: CONSUL_HTTP_TOKEN of the controller role).
# The controller only talks to Consul: no Docker, no files (docs/controller.md).
""",
)

GATEWAY_UNIT = _unit(
    "meshop gateway (Caddy for every route)",
    "consul.service",
    """Type=simple
EnvironmentFile=/etc/meshop/gateway.env
ExecStart=/usr/local/bin/meshop gateway run --config /etc/meshop/gateway.yaml $MESHOP_GATEWAY_ARGS
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=always
RestartSec=2
# Not root: a user systemd makes for this unit (no account to manage), with a read-only system. Its
# state (Caddy's certificates and internal CA, the DNS responder's socket folder) lives in
# /var/lib/private/meshop/gateway, reached as /var/lib/meshop/gateway; systemd moves a folder an older,
# root-run gateway left there and hands it to this user, contents included.
DynamicUser=yes
StateDirectory=meshop/gateway
StateDirectoryMode=0700
# Caddy binds 80 and 443 as this unit's child: that is the only capability it has or can ever gain.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
"""
    + _HARDENING,
    """# systemd unit for the meshop gateway: runs its own Caddy (TLS), as a user of its
# own (not root), with state in /var/lib/meshop/gateway.
# `meshop init` installs it with /etc/meshop/gateway.yaml (its settings: docs/config.md) and
# /etc/meshop/gateway.env (mode 0600: the gateway role's token; MESHOP_GATEWAY_ARGS, flags over the
# file, e.g. --bind 0.0.0.0 --tls acme). See docs/routing.md.
""",
)

ACL_SYNC_UNIT = _unit(
    "meshop acl sync --watch (agent policies follow placement)",
    "consul.service",
    """Type=simple
EnvironmentFile=/etc/meshop/acl-sync.env
ExecStart=/usr/local/bin/meshop acl sync --watch
Restart=always
RestartSec=5
DynamicUser=yes
"""
    + _HARDENING,
    """# systemd unit for `meshop acl sync --watch`, next to the Consul server: it holds the management token
# (/etc/meshop/acl-sync.env, mode 0600), which no meshop daemon holds (docs/security.md).
""",
)

CONSUL_UNIT = _unit(
    "Consul agent",
    "",
    f"""# A lone Consul server never sends READY=1 (hashicorp/consul#7137): systemd would kill it after 90 s.
# Started once exec'd; meshop checks readiness itself (a leader on /v1/status/leader).
Type=exec
ExecStart={CONSUL_BIN} agent -config-dir={CONSUL_DIR}
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGTERM
Restart=on-failure
RestartSec=2
LimitNOFILE=65536
""",
    "# systemd unit for Consul, installed by `meshop init` (server) and `meshop node add` (client).\n",
)

UNITS = {
    "meshop-agent.service": AGENT_UNIT,
    "meshop-fence.service": FENCE_UNIT,
    "meshop-controller.service": CONTROLLER_UNIT,
    "meshop-gateway.service": GATEWAY_UNIT,
    "meshop-acl-sync.service": ACL_SYNC_UNIT,
    "consul.service": CONSUL_UNIT,
}


def config_file(comment: str, values: Mapping[str, object]) -> str:
    """A daemon's YAML configuration (``meshop.config`` reads it): plain keys in the given order."""
    import yaml

    return f"# {comment}\n" + yaml.safe_dump(dict(values), sort_keys=False, default_flow_style=False)


AGENT_STATE_DIR = "/var/lib/meshop/agent"  # the agent's fence and holds; `node remove --host` deletes it


def agent_config(*, node: str, address: str, labels: Mapping[str, str]) -> str:
    """``/etc/meshop/agent.yaml`` of a node ``meshop node add`` sets up; the token stays in agent.env."""
    return config_file(
        f"meshop agent of node {node}, written by `meshop node add`; keys: docs/config.md",
        {
            "node": node,
            "advertise_addr": address,
            "labels": dict(sorted(labels.items())),
            "state_dir": AGENT_STATE_DIR,
            "metrics_addr": "127.0.0.1:9464",
            "log_format": "json",
        },
    )


def gateway_config() -> str:
    """``/etc/meshop/gateway.yaml`` that ``meshop init`` writes (``--gateway-args`` go to the env file)."""
    return config_file(
        "meshop gateway, written by `meshop init`; keys: docs/config.md",
        {"caddy_dir": "/var/lib/meshop/gateway", "metrics_addr": "127.0.0.1:9466", "log_format": "json"},
    )


def env_file(comment: str, values: Mapping[str, str]) -> str:
    """systemd EnvironmentFile text; values were checked to hold no newline, quote or backslash."""
    return f"# {comment}\n" + "".join(f"{key}={value}\n" for key, value in values.items())


# Consul's LAN gossip tuned for a handful of nodes on a tailnet (defaults: 1s / 500ms / 4). A powered-off
# node is marked failed after about one probe round plus suspicion_mult x probe_interval (1.5 s with
# fewer than 10 nodes), ~2-2.5 s instead of ~6 s; the replacement starts the controller's grace period
# later. probe_timeout is the peers' round trip it tolerates: a node reached only through a slow DERP relay
# (round trip > 300 ms) is probed indirectly through the others, and suspected (it refutes) more often.
GOSSIP_LAN = {"probe_interval": "500ms", "probe_timeout": "300ms", "suspicion_mult": 3}


CLIENT_ACL_TTL = {"token_ttl": "5s", "policy_ttl": "5s", "role_ttl": "5s"}


def gossip_lan_hcl() -> str:
    """``GOSSIP_LAN`` as HCL, for ``consul agent -hcl`` (the fleet harness's agents)."""
    fields = " ".join(f"{k} = {json.dumps(v)}" for k, v in GOSSIP_LAN.items())
    return f"gossip_lan {{ {fields} }}"


# Every server, explicitly (Consul's default, written down so nobody turns it off unawares): autopilot
# removes a failed server from the Raft peers when the rest keep a quorum, so a powered-off host does not
# count against the quorum of the next failure; a new server becomes a voter after 10 s of good health.
AUTOPILOT = {"cleanup_dead_servers": True}
# Raft timing at Consul's production recommendation (its default 5 is for the smallest VMs): a follower
# calls an election 1 s after the leader's last heartbeat instead of 5 s, so losing the leading server's
# host costs the KV (and the controllers' leader lock) ~1-2 s, not ~5-10 s.
PERFORMANCE = {"raft_multiplier": 1}


def consul_config(
    *,
    node: str,
    address: str,
    datacenter: str,
    gossip_key: str,
    agent_token: str,
    server: bool,
    join: str = "",
) -> str:
    """Consul's JSON config: bound to the tailnet address, gossip encrypted, ACLs on with default deny,
    LAN gossip tuned for quick failure detection (``GOSSIP_LAN``).

    Three shapes. The gateway's server founds the cluster (no ``join``: ``bootstrap_expect`` 1), because
    ACLs are bootstrapped there and every other host needs a token made by a leader before it can join.
    A server with ``join`` (``node add --server``) never bootstraps: it joins the founder's cluster, the
    leader adds it and autopilot makes it a voter, so one, three or five servers grow from one without a
    new cluster (its KV is the leader's, replicated). Servers answer HTTP on loopback and the tailnet
    address (operators point ``CONSUL_HTTP_ADDR`` at any of them); a client joins ``join`` and answers
    HTTP on loopback only."""
    config: dict[str, object] = {
        "node_name": node,
        "datacenter": datacenter,
        "data_dir": CONSUL_DATA,
        "bind_addr": address,
        "advertise_addr": address,
        "client_addr": f"127.0.0.1 {address}" if server else "127.0.0.1",
        "encrypt": gossip_key,
        "encrypt_verify_incoming": True,
        "encrypt_verify_outgoing": True,
        "acl": {
            "enabled": True,
            "default_policy": "deny",
            "down_policy": "extend-cache",
            "enable_token_persistence": True,
            **({"tokens": {"agent": agent_token}} if agent_token else {}),
            # A client agent caches tokens and policies (default 30 s): an agent policy `acl sync` widened
            # for a newly placed service was refused that long (the agent NotReady after every apply).
            **({} if server else CLIENT_ACL_TTL),
        },
        "ports": {"dns": -1, "grpc": -1},
        "gossip_lan": dict(GOSSIP_LAN),
        "disable_update_check": True,
        "leave_on_terminate": False,
    }
    if server:
        config |= {"server": True, "autopilot": dict(AUTOPILOT), "performance": dict(PERFORMANCE)}
        config |= {"retry_join": [join]} if join else {"bootstrap_expect": 1}
    else:
        config |= {"retry_join": [join]}
    return json.dumps(config, indent=2, sort_keys=True) + "\n"
