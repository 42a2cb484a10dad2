"""`meshop init` and `meshop node add` on fresh Debian 12 "VPS" containers over real SSH; prints timings.

    .venv/bin/python benchmarks/node_add.py [--keep]

Not part of `make test`: building the Debian 12 image with debootstrap costs ~3.5 min on a cold machine
(scripts/build-vps-image.sh, cached as meshop-test/vps:bookworm afterwards) and the run installs Debian
packages from the mirror. Two non-privileged containers of that image run sshd (published on loopback
ports): a gateway and a node, the node with the host engine's socket mounted (no Docker engine can run
inside). There is no systemd in them: a small stand-in starts Consul once its config file exists, and
the controller and the agent are started with their units' ExecStart and env files. Checks: the
packages, files and modes, `systemd-analyze verify` on the units, the node's Consul client joined, its
agent Ready in the controller's verdict, and a second `node add` that changes nothing. A wrong host key
is refused first, with the fingerprint shown and nothing written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("MESHOP_VPS_IMAGE", "meshop-test/vps:bookworm")
# systemd's stand-in: Consul starts once `meshop init`/`node add` has written its config (binary first).
BOOT = (
    "mkdir -p /run/sshd /root/.ssh; ssh-keygen -A >/dev/null; cat /key.pub > /root/.ssh/authorized_keys; "
    "(until [ -f /etc/consul.d/consul.json ]; do sleep 1; done; sleep 1; "
    "exec /usr/local/bin/consul agent -config-dir=/etc/consul.d >/var/log/consul.log 2>&1) & "
    "exec /usr/sbin/sshd -D -e"
)


def sh(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, text=True, capture_output=True, **kw)


def start(name: str, key: Path, socket: bool) -> tuple[str, int, str, str]:
    """(container id, ssh port on 127.0.0.1, container address, host key fingerprint)."""
    mounts = ["-v", f"{key}:/key.pub:ro"] + (["-v", "/var/run/docker.sock:/var/run/docker.sock"] if socket else [])
    cid = sh(
        "docker",
        "run",
        "-d",
        "--name",
        name,
        "--label",
        "meshop.test=true",
        "-p",
        "127.0.0.1::22",
        *mounts,
        IMAGE,
        "/bin/sh",
        "-c",
        BOOT,
    ).stdout.strip()
    port = int(sh("docker", "port", cid, "22/tcp").stdout.split(":")[-1])
    address = sh(
        "docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", cid
    ).stdout.strip()
    for _ in range(100):
        found = sh("docker", "exec", cid, "ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub", check=False)
        if found.returncode == 0:
            return cid, port, address, found.stdout.split()[1]
        time.sleep(0.2)
    raise SystemExit(f"{name}: no host key")


def unit_exec(cid: str, unit: str) -> None:
    """Start a unit's ExecStart with its EnvironmentFile, as systemd would (no systemd in the container)."""
    text = sh("docker", "exec", cid, "cat", f"/etc/systemd/system/{unit}").stdout
    env_file = re.search(r"^EnvironmentFile=(.+)$", text, re.M).group(1)
    command = re.search(r"^ExecStart=((?:.*\\\n)*.*)$", text, re.M).group(1).replace("\\\n", " ")
    command = re.sub(r"\$\{(\w+)\}", r"$\1", command)
    script = f"set -a; . {env_file}; set +a; exec {command} >/var/log/{unit}.log 2>&1"
    sh("docker", "exec", "-d", cid, "/bin/sh", "-c", script)


def meshop(env: dict[str, str], *args: str, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "meshop", *args], env=env, text=True, capture_output=True)
    took = time.monotonic() - started
    if check and result.returncode != 0:
        raise SystemExit(f"meshop {' '.join(args[:2])} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return took, result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", action="store_true", help="Leave the containers running.")
    opts = parser.parse_args()
    t0 = time.monotonic()
    subprocess.run(["bash", str(REPO / "scripts/build-vps-image.sh")], check=True)
    image_s = time.monotonic() - t0
    wheels = Path(sh("bash", str(REPO / "scripts/build-wheels.sh")).stdout.strip().splitlines()[-1])
    consul = str(REPO / ".dev/bin/consul") if (REPO / ".dev/bin/consul").exists() else "consul"
    work = Path(tempfile.mkdtemp(prefix="meshop-node-add-"))
    key = work / "id"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    tag = secrets.token_hex(3)
    containers: list[str] = []
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(work),
        "MESHOP_KNOWN_HOSTS": str(work / "known_hosts"),
        "PYTHONPATH": str(REPO),
    }
    common = ["-i", str(key), "--wheels", str(wheels), "--consul-binary", consul]
    try:
        gw, gw_port, gw_ip, gw_fp = start(f"meshop-e2e-gw-{tag}", key.with_suffix(".pub"), socket=False)
        node, node_port, node_ip, node_fp = start(f"meshop-e2e-n1-{tag}", key.with_suffix(".pub"), socket=True)
        containers += [gw, node]

        _, refused = meshop(  # before anything: a wrong gateway key stops node add with nothing written
            env,
            "node",
            "add",
            f"root@127.0.0.1:{node_port}",
            "--name",
            "n1",
            "--address",
            node_ip,
            "--gateway",
            f"root@127.0.0.1:{gw_port}",
            "--gateway-host-key",
            "SHA256:" + "A" * 43,
            *common,
            check=False,
        )
        assert refused.returncode == 3 and gw_fp in refused.stderr, refused.stderr
        assert sh("docker", "exec", gw, "test", "-e", "/etc/consul.d", check=False).returncode != 0
        print(f"wrong host key refused, fingerprint shown: {gw_fp}")

        init = ["init", f"root@127.0.0.1:{gw_port}", "--address", gw_ip, "--host-key", gw_fp, "--no-start"]
        init += ["--gateway-args", "--bind 0.0.0.0 --tls internal", *common]
        init_s, out = meshop(env, *init)
        print(out.stdout.strip())
        init_again_s, out = meshop(env, *init)
        assert "0 step(s) changed" in out.stdout, out.stdout + out.stderr
        unit_exec(gw, "meshop-controller.service")
        add = [
            "node",
            "add",
            f"root@127.0.0.1:{node_port}",
            "--name",
            "n1",
            "--address",
            node_ip,
            "--labels",
            "zone=e2e",
            "--gateway",
            f"root@127.0.0.1:{gw_port}",
            "--host-key",
            node_fp,
            "--no-start",
            *common,
        ]
        add_s, out = meshop(env, *add)
        print(out.stdout.strip())
        unit_exec(node, "meshop-agent.service")
        ready_started = time.monotonic()
        state = ""
        while time.monotonic() - ready_started < 120:
            got = sh(
                "docker",
                "exec",
                gw,
                "consul",
                "kv",
                "get",
                "-token-file=/etc/meshop/management.token",
                "meshop/status/nodes/n1",
                check=False,
            )
            state = json.loads(got.stdout).get("state", "") if got.returncode == 0 else ""
            if state == "Ready":
                break
            time.sleep(1)
        ready_s = time.monotonic() - ready_started
        if state != "Ready":
            print(sh("docker", "exec", node, "tail", "-30", "/var/log/meshop-agent.service.log", check=False).stdout)
            raise SystemExit(f"node n1 not Ready: {state!r}")
        second_s, out = meshop(env, *add)
        assert "0 step(s) changed" in out.stdout, out.stdout + out.stderr

        members = sh("docker", "exec", gw, "consul", "members", "-token-file=/etc/meshop/management.token").stdout
        assert re.search(r"^n1\s+\S+\s+alive\s+client", members, re.M), members
        pkgs = sh(
            "docker", "exec", node, "dpkg-query", "-W", "-f=${db:Status-Abbrev}${Package}\n", "caddy", "python3-venv"
        ).stdout
        assert pkgs.count("ii ") == 2, pkgs
        modes = sh(
            "docker", "exec", node, "stat", "-c", "%a %n", "/etc/meshop/agent.env", "/etc/consul.d/consul.json"
        ).stdout
        assert modes.split()[::2] == ["600", "600"], modes
        units = work / "units"
        units.mkdir()
        for cid, names in (
            (node, ["consul", "meshop-agent"]),
            (gw, ["meshop-controller", "meshop-gateway", "meshop-acl-sync"]),
        ):
            for name in names:
                (units / f"{name}.service").write_text(
                    sh("docker", "exec", cid, "cat", f"/etc/systemd/system/{name}.service").stdout
                )
        verify = sh("systemd-analyze", "verify", *map(str, sorted(units.glob("*.service"))), check=False)
        problems = [ln for ln in verify.stderr.splitlines() if "meshop" in ln or "consul" in ln]
        problems = [ln for ln in problems if "Command /usr/local/bin/" not in ln]  # binaries live in the containers
        assert not problems, verify.stderr

        sh("docker", "stop", "-t", "5", node)
        remove = ["node", "remove", "n1", "--gateway", f"root@127.0.0.1:{gw_port}", "-i", str(key)]
        remove_s, out = meshop(env, *remove)
        print(out.stdout.strip())
        remove_again_s, out = meshop(env, *remove)
        assert out.stdout.count(" 0 step(s) changed") == 2, out.stdout + out.stderr
        left = sh("docker", "exec", gw, "consul", "members", "-token-file=/etc/meshop/management.token").stdout
        assert not re.search(r"^n1\s+\S+\s+(alive|failed)", left, re.M), left
        gone = sh(
            "docker",
            "exec",
            gw,
            "consul",
            "kv",
            "get",
            "-token-file=/etc/meshop/management.token",
            "meshop/nodes/n1",
            check=False,
        )
        assert gone.returncode != 0, gone.stdout
        tokens = sh(
            "docker", "exec", gw, "consul", "acl", "token", "list", "-token-file=/etc/meshop/management.token"
        ).stdout
        assert "on node n1" not in tokens and "consul agent n1" not in tokens, tokens
        print(f"image (debootstrap; 0 when cached): {image_s:.1f} s")
        print(f"meshop init (fresh gateway):         {init_s:.1f} s")
        print(f"meshop init again (no-op):           {init_again_s:.1f} s")
        print(f"meshop node add (fresh node):        {add_s:.1f} s")
        print(f"agent started -> node Ready:         {ready_s:.1f} s")
        print(f"meshop node add again (no-op):       {second_s:.1f} s")
        print(f"meshop node remove (dead node):      {remove_s:.1f} s")
        print(f"meshop node remove again (no-op):    {remove_again_s:.1f} s")
        print("checks: wrong host key refused; packages, 0600 files, systemd-analyze verify, consul member, Ready,")
        print("        no-op re-runs; remove: member left, records deleted, tokens revoked, no-op again")
    finally:
        if not opts.keep:
            for cid in containers:
                subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
