"""Shell checks the bootstrap plans run on a host, each stating what "done" means. Pure (text only).

Every daemon's readiness is checked explicitly, not through a unit type the daemon may not honour:
Consul as a lone server never sends systemd's READY=1 (hashicorp/consul#7137), so its unit is
``Type=exec`` and the plan waits for a leader on its HTTP API. Checks are careful with ``systemctl``'s
many-unit forms: ``is-active A B`` passes when *any* unit is active, and ``show --value A B`` separates
the units' values with blank lines; so every unit is checked on its own.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from meshop.bootstrap.steps import Command

CONSUL_HTTP = "http://127.0.0.1:8500"
READY_SECONDS = 120


def units_running(units: Sequence[str]) -> str:
    """Passes when every unit is enabled, active, and needs no daemon-reload (its file is the loaded one)."""
    names = " ".join(shlex.quote(u) for u in units)
    one = (
        '{ [ "$(systemctl is-enabled "$u" 2>/dev/null)" = enabled ] && systemctl is-active -q "$u" && '
        '[ "$(systemctl show -p NeedDaemonReload --value "$u")" = no ]; }'
    )
    return f'! for u in {names}; do {one} || echo "$u"; done | grep -q .'


def _poll(check: str, what: str, hint: str) -> str:
    """Apply of a readiness step: wait up to READY_SECONDS for ``check``, else show its last answer and
    say what and where to look."""
    return (
        f"for i in $(seq {READY_SECONDS}); do {check} 2>/dev/null && exit 0; sleep 1; done; {check}; "
        f"echo {shlex.quote(f'{what} after {READY_SECONDS} s; {hint}')} >&2; exit 1"
    )


def _http_ok(url: str, refuse: str = "") -> str:
    """python3 (always there: python3-venv is installed first): the URL answers 2xx, and not ``refuse``;
    else its answer (a daemon's /readyz says why it is not ready) on stderr."""
    code = (
        "import sys,urllib.error,urllib.request\n"
        "try: body=urllib.request.urlopen(sys.argv[1], timeout=5).read().strip()\n"
        "except urllib.error.HTTPError as e: sys.exit(sys.argv[1]+': '+e.read().decode(errors='replace')[:300])\n"
        "except Exception as e: sys.exit(sys.argv[1]+': '+str(e))\n"
        "sys.exit(sys.argv[1]+': '+body.decode() if body == sys.argv[2].encode() else 0)"
    )
    return f"python3 -c {shlex.quote(code)} {shlex.quote(url)} {shlex.quote(refuse)}"


def consul_leader(after_change: Sequence[str] = ()) -> Command:
    """Consul is up and its cluster has a leader (a server elected itself; a client joined one)."""
    check = _http_ok(f"{CONSUL_HTTP}/v1/status/leader", refuse='""')
    return Command(
        "Consul answers and has a leader (/v1/status/leader)",
        check=check,
        apply=_poll(check, "Consul has no leader", "see journalctl -u consul"),
        after_change=tuple(after_change),
        changes=False,
    )


def http_ready(name: str, url: str, unit: str, after_change: Sequence[str] = ()) -> Command:
    check = _http_ok(url)
    return Command(
        f"{name} ready ({url})",
        check=check,
        apply=_poll(check, f"{name} is not ready", f"see journalctl -u {unit}"),
        after_change=tuple(after_change),
        changes=False,
    )


def stock_caddy_off() -> Command:
    """Debian's caddy package enables its own caddy.service on :80 (admin :2019); meshop runs its own
    Caddy (the gateway's and the nodes'), so the stock one is stopped and masked."""
    return Command(
        "Debian's own caddy.service stopped and masked (meshop runs its own Caddy)",
        check='[ "$(systemctl is-enabled caddy.service 2>/dev/null)" = masked ] && '
        "! systemctl is-active -q caddy.service",
        apply="systemctl disable --now -q caddy.service 2>/dev/null; systemctl mask -q caddy.service "
        "&& systemctl stop caddy.service",
    )


def ports_free(ports: Sequence[int], owner: str) -> Command:
    """Nothing but ``owner`` (a unit, by its cgroup) listens on ``ports``; a precondition that fails
    with the holders' names, for the user to stop (nothing is stopped for them)."""
    spec = " or ".join(f"sport = :{p}" for p in ports)
    held = (
        f"held=$(ss -Hltnp {shlex.quote(spec)} | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u | while read -r p; do "
        f'grep -q {shlex.quote("/" + owner)} /proc/"$p"/cgroup 2>/dev/null || '
        'printf \'%s (pid %s) \' "$(cat /proc/"$p"/comm 2>/dev/null)" "$p"; done)'
    )
    listed = "/".join(str(p) for p in ports)
    return Command(
        f"ports {listed} free for {owner}",
        check=f'{held}; [ -z "$held" ]',
        apply=f'{held}; [ -z "$held" ] || {{ echo "ports {listed} are held by: $held- stop it first" >&2; exit 1; }}',
    )
