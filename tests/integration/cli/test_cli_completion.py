"""Shell completion for real: the console script's scripts loaded into bash, zsh and fish (each runs a
completion through meshop), and resource names read from the test Consul with the read-only role's token."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from meshop.consul.store import KVStore
from meshop.model import keys
from tests.support import acl

BIN = Path(sys.executable).parent
MESHOP = str(BIN / "meshop")


@pytest.fixture
def env(consul_server, prefix: str, store: KVStore) -> dict[str, str]:
    """The console script's environment against the test Consul (read-only token), with a service ``web``,
    a node ``n1`` registered by its agent, a Node document for ``n2`` and a Gateway document ``edge``."""
    store.put(keys.desired_service("web"), '{"kind":"Service"}')
    store.put(keys.node("n1"), "{}")
    store.put(keys.desired_node("n2"), "{}")
    store.put(keys.DESIRED_GATEWAY, '{"kind":"Gateway","metadata":{"name":"edge"}}')
    store.put(keys.node_assignments("n1") + "web", "{}")  # deeper keys are not names
    store.put(keys.desired_service("Web,plain"), "{}")  # nor what is no name (written by hand): never offered
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/root"),
        "CONSUL_HTTP_ADDR": consul_server.addr,
        "MESHOP_PREFIX": prefix,
        "CONSUL_HTTP_TOKEN": acl.token_for(consul_server.addr, prefix, ["get"]) or "",
    }


def bash_complete(words: str, env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [MESHOP],
        env={
            **env,
            "_MESHOP_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split(" ")) - 1),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stderr) == (0, "")
    return [line.split(",", 1)[1] for line in done.stdout.splitlines() if line]


@pytest.mark.parametrize(
    ("words", "names"),
    [
        ("meshop get svc ", ["web"]),
        ("meshop get nodes ", ["n1", "n2"]),
        ("meshop edit node n", ["n1", "n2"]),
        ("meshop describe service w", ["web"]),
        ("meshop logs web --node ", ["n1", "n2"]),
        ("meshop nodes cordon ", ["n1", "n2"]),
        ("meshop events node/", ["node/n1", "node/n2"]),
        ("meshop delete service x", []),
        ("meshop get gw ", ["edge"]),
        ("meshop edit gateway e", ["edge"]),
    ],
)
def test_resource_names_come_from_consul(words: str, names: list[str], env: dict[str, str]) -> None:
    assert bash_complete(words, env) == names


def shell(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, ""), done
    return done.stdout


def test_bash_loads_the_script_and_completes_through_it(env: dict[str, str]) -> None:
    out = shell(
        [
            "bash",
            "-c",
            'eval "$(_MESHOP_COMPLETE=bash_source meshop)"; complete -p meshop; '
            'COMP_WORDS=(meshop get svc ""); COMP_CWORD=3; _meshop_completion meshop; echo "${COMPREPLY[*]}"',
        ],
        env,
    )
    assert out.splitlines() == ["complete -o nosort -F _meshop_completion meshop", "web"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (scripts/setup.sh installs it)")
def test_zsh_loads_the_script(env: dict[str, str], tmp_path: Path) -> None:
    """zsh runs completion widgets only at an interactive prompt: the script is loaded under compinit and
    registered for meshop, and its completion call (what the widget runs) answers."""
    script = shell([MESHOP], {**env, "_MESHOP_COMPLETE": "zsh_source"})
    (tmp_path / "meshop.zsh").write_text(script)
    assert shell(["zsh", "-n", str(tmp_path / "meshop.zsh")], env) == ""
    out = shell(
        [
            "zsh",
            "-f",
            "-c",
            f"autoload -U compinit; compinit -u -D; source {tmp_path / 'meshop.zsh'}; print $_comps[meshop]",
        ],
        {**env, "ZDOTDIR": str(tmp_path)},
    )
    assert out == "_meshop_completion\n"
    words = {"_MESHOP_COMPLETE": "zsh_complete", "COMP_WORDS": "meshop get svc ", "COMP_CWORD": "3"}
    assert shell([MESHOP], {**env, **words}).splitlines() == ["plain", "web", "_"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed (scripts/setup.sh installs it)")
def test_fish_loads_the_script_and_completes_through_it(env: dict[str, str], tmp_path: Path) -> None:
    fish_env = {**env, "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    out = shell(
        ["fish", "--no-config", "-c", '_MESHOP_COMPLETE=fish_source meshop | source; complete -C "meshop get svc "'],
        fish_env,
    )
    assert out.splitlines() == ["web"]
    out = shell(
        ["fish", "--no-config", "-c", '_MESHOP_COMPLETE=fish_source meshop | source; complete -C "meshop ed"'], fish_env
    )
    assert out.split("\t")[0] == "edit"
