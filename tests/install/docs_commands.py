"""docs/install.md's commands as the install test runs them: read from the page, hosts and host keys
substituted. Pure (the page's text in, shell commands out), so a unit test pins the parsing."""

from __future__ import annotations

import re
from collections.abc import Mapping

_BLOCK = re.compile(r"^## The five commands\n.*?^```sh\n(.*?)^```", re.S | re.M)
_TARGET = re.compile(r"root@([A-Za-z0-9.-]+)")


def five_commands(page: str) -> list[str]:
    """The shell commands of the page's "The five commands" block, continuation lines joined."""
    found = _BLOCK.search(page)
    if not found:
        raise ValueError("docs/install.md has no ```sh block under '## The five commands'")
    return _commands(found.group(1))


def command_containing(page: str, needle: str) -> str:
    """The one `...` command of the page that contains ``needle`` (e.g. ``meshop node remove``)."""
    found = [c for c in re.findall(r"`([^`\n]+)`", page) if needle in c]
    if len(found) != 1:
        raise ValueError(f"docs/install.md: {len(found)} inline commands contain {needle!r}, expected 1")
    return found[0]


def _commands(block: str) -> list[str]:
    commands, current = [], ""
    for line in block.splitlines():
        current += line
        if line.endswith("\\"):
            current += "\n"
            continue
        if current.strip():
            commands.append(current)
        current = ""
    return commands


def substitute(command: str, addresses: Mapping[str, str], fingerprints: Mapping[str, str]) -> str:
    """Hosts (``gw.example.com``) replaced by their addresses; ``--host-key SHA256:…`` by the fingerprint
    of the command's first ``root@`` host (the host the flag is about)."""
    targets = _TARGET.findall(command)
    if "SHA256:…" in command:
        if not targets or targets[0] not in fingerprints:
            raise ValueError(f"no host key for the target of: {command}")
        command = command.replace("SHA256:…", fingerprints[targets[0]])
    for name, address in addresses.items():
        command = command.replace(name, address)
    return command
