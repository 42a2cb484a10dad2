"""The node's tailnet address from the ``tailscale`` CLI: the one module that runs it.

``--advertise-addr tailscale`` (agent and gateway) asks ``tailscale ip -4`` (then ``-6``) for this
machine's tailnet address. Without the CLI, or when it answers nothing usable, the command fails with
a clear error and the user gives the address by hand.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess

from meshop.errors import MeshopError

KEYWORD = "tailscale"


class TailscaleError(MeshopError):
    """The ``tailscale`` CLI is missing, failed, or printed no tailnet address."""


def parse_ip_output(text: str) -> str | None:
    """The first line of ``tailscale ip`` output that is a plain IP address, normalised."""
    for line in text.splitlines():
        try:
            return str(ipaddress.ip_address(line.strip()))
        except ValueError:
            continue
    return None


def tailnet_address(binary: str = "tailscale", timeout: float = 5.0) -> str:
    path = shutil.which(binary)
    if path is None:
        raise TailscaleError(
            f"--advertise-addr {KEYWORD}: no `{binary}` command on PATH; give the node's address instead"
        )
    errors = []
    for family in ("-4", "-6"):
        try:
            done = subprocess.run([path, "ip", family], capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(f"{binary} ip {family}: {exc}")
            continue
        address = parse_ip_output(done.stdout) if done.returncode == 0 else None
        if address:
            return address
        errors.append(f"{binary} ip {family}: exit {done.returncode}: {(done.stderr or done.stdout).strip()[:200]}")
    raise TailscaleError(f"--advertise-addr {KEYWORD}: no tailnet address ({'; '.join(errors)})")


def resolve_advertise(value: str) -> str:
    """``value`` itself, or the tailnet address when it is the keyword ``tailscale``."""
    return tailnet_address() if value.strip().lower() == KEYWORD else value.strip()
