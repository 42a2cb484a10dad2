"""The install test reads docs/install.md's commands: the page has five, each parses and substitutes.
(Part of `make test`: a page edit that breaks the install test's reading fails here first.)"""

from __future__ import annotations

from tests.install.docs_commands import command_containing, five_commands, substitute
from tests.support.systemd_hosts import REPO

ADDRESSES = {"gw.example.com": "100.64.0.1", "vps1.example.com": "100.64.0.11", "vps2.example.com": "100.64.0.12"}
KEYS = {"gw.example.com": "SHA256:gw", "vps1.example.com": "SHA256:one", "vps2.example.com": "SHA256:two"}


def test_the_page_has_five_commands_and_each_is_substituted():
    page = (REPO / "docs" / "install.md").read_text()
    commands = [substitute(c, ADDRESSES, KEYS) for c in five_commands(page)]
    assert len(commands) == 5
    assert commands[0].startswith("meshop init root@100.64.0.1 --address 100.64.0.1 --host-key SHA256:gw ")
    assert "root@100.64.0.11 " in commands[1] and "--host-key SHA256:one " in commands[1]
    assert "--host-key SHA256:two " in commands[2] and "--gateway root@100.64.0.1 " in commands[2]
    assert "\\\n" in commands[3] and "example.com" not in commands[3]  # a continued line, kept whole
    assert commands[4].startswith("meshop apply -f charts/fleet/")
    assert (REPO / "charts" / "fleet").is_dir()
    remove = substitute(command_containing(page, "meshop node remove"), ADDRESSES, KEYS)
    assert remove == "meshop node remove n2 --gateway root@100.64.0.1 --host root@100.64.0.12"
