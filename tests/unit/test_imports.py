"""What each entry point loads: the CLI's quick commands and the daemons stay clear of libraries they do not use.

Each case runs a fresh interpreter with ``-X importtime`` (the import list of that process alone) and
checks which top-level packages it loaded. The commands run from a copy of the package laid out as pip
installs it, without ``site`` (``-S``; the dependencies on ``PYTHONPATH``): the dev venv's editable-install
finder imports pathlib, urllib.parse and re at start-up, which would hide whether meshop imports them.
The issue-17 figures (start-up time, idle memory) come from benchmarks/cli_latency.py and
benchmarks/footprint.py; these tests keep the imports from creeping back.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "charts" / "examples" / "whoami.yaml"
CONSUL_CLIENT = {"consul", "requests", "urllib3"}
TABLES = {"rich"}
NEVER = {"jsonschema", "paramiko", "cryptography", "docker"}
CLICK = {"click"}
# what the model and the fast path no longer need to validate a YAML document (start-up time)
VALIDATE_NEVER = {"urllib", "pathlib", "dataclasses", "inspect", "json", "ipaddress"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment for a ``python -S`` that sees meshop as pip installs it (``crds`` inside the package)."""
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(REPO / "meshop", root / "meshop", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "crds", root / "meshop" / "crds", ignore=shutil.ignore_patterns("__pycache__"))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), sysconfig.get_paths()["purelib"]])}


def loaded(code: list[str], env: dict[str, str]) -> set[str]:
    """Top-level packages a fresh ``python -P -S -X importtime ...`` imported."""
    done = subprocess.run(
        [sys.executable, "-P", "-S", "-X", "importtime", *code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env=env,
    )
    assert "Traceback" not in done.stderr, done.stderr
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            names.add(line.rsplit("|", 1)[-1].strip().split(".")[0])
    return names


@pytest.mark.parametrize(
    ("argv", "absent"),
    [
        (["version"], NEVER | CONSUL_CLIENT | TABLES | CLICK),
        (["validate", "-f", str(EXAMPLE)], NEVER | CONSUL_CLIENT | TABLES | CLICK | VALIDATE_NEVER),
        (["validate", "--filename", str(EXAMPLE), "-o", "json"], NEVER | CONSUL_CLIENT | TABLES),  # click's: -o
        (["--help"], NEVER),  # lists every command: their modules load, still without docker
    ],
    ids=["version", "validate", "validate-unusual", "help"],
)
def test_quick_commands_load_only_what_they_use(argv: list[str], absent: set[str], installed: dict[str, str]) -> None:
    """The fast path (``meshop.cli.fast``) runs version and validate without click; any other command line
    goes to click."""
    names = loaded(["-m", "meshop", *argv], installed)
    assert "meshop" in names
    assert names & absent == set()
    assert ("click" in names) == (argv[0] == "--help" or "-o" in argv)


def test_apply_talks_to_consul_without_py_consul_tables_planner_or_docker(installed: dict[str, str]) -> None:
    """A real ``meshop apply`` (against an address where nothing listens: it stops at the first request)
    loads the standard library's HTTP client only (``KVStore.over_http``)."""
    with socket.socket() as sock:  # a free port, closed again: nothing listens there
        sock.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{sock.getsockname()[1]}"
    argv = ["-m", "meshop", "--consul-addr", addr, "apply", "-f", str(EXAMPLE)]
    names = loaded(argv, installed)
    assert "meshop" in names
    assert names & (NEVER | CONSUL_CLIENT | TABLES | CLICK | {"http", "ssl"}) == set()
    done = subprocess.run([sys.executable, "-P", *argv], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 2 and f"Consul at http://{addr} is unreachable" in done.stderr  # it got to the request
    code = "import meshop.cli.commands.documents, meshop.consul.store"
    modules = subprocess.run(
        [sys.executable, "-P", "-c", f"{code}; import sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout.split()
    assert not [m for m in modules if m.startswith(("meshop.operator", "meshop.agent"))]


def test_the_controller_does_not_load_docker_rich_or_jsonschema(installed: dict[str, str]) -> None:
    names = loaded(["-c", "import meshop.cli.commands.controller, meshop.operator.controller"], installed)
    assert names & (NEVER | TABLES | {"tenacity"}) == set()


@pytest.mark.parametrize(
    "module",
    ["meshop.gateway.daemon", "meshop.operator.dns", "meshop.agent.daemon"],
    ids=["gateway", "dns-writer", "agent"],
)
def test_no_daemon_loads_tenacity_at_start(module: str) -> None:
    """tenacity (``meshop.daemon.retry``) retries single calls: today the agent's Docker pull, and it loads
    on the first one, not with the daemon (a returning node's agent start is part of its return time)."""
    code = f"import sys, {module}; print('tenacity' in sys.modules)"
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_the_agents_first_retried_call_loads_tenacity_and_retries() -> None:
    code = (
        "import sys, meshop.agent.daemon\n"
        "from meshop.daemon.backoff import BackoffPolicy\n"
        "from meshop.daemon.retry import retry_call\n"
        "calls = []\n"
        "def flaky():\n"
        "    calls.append(1)\n"
        "    if len(calls) < 3:\n"
        "        raise OSError('not yet')\n"
        "    return 'pulled'\n"
        "before = 'tenacity' in sys.modules\n"
        "policy = BackoffPolicy(base=0.01)\n"
        "got = retry_call(flaky, attempts=3, policy=policy, retry_on=(OSError,), sleep=lambda s: None)\n"
        "print(before, got, len(calls), 'tenacity' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert done.stdout.split() == ["False", "pulled", "3", "True"], done.stderr


def test_the_docker_driver_loads_without_paramiko_and_brings_ssh_back_on_demand() -> None:
    code = (
        "import sys, meshop.agent.engine.docker_driver as d, docker.api.client as c\n"
        "print('paramiko' in sys.modules, hasattr(c, 'SSHHTTPAdapter'))\n"
        "d._enable_ssh('ssh://user@127.0.0.1:1')\n"
        "print('paramiko' in sys.modules, hasattr(c, 'SSHHTTPAdapter'))\n"
        "import paramiko\n"  # still importable by meshop's own SSH code afterwards
    )
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "True", "True"]


def test_the_consul_config_does_not_load_the_document_model() -> None:
    """``meshop.consul.config`` needs ``meshop.model.keys``: the package must not load documents, schemas
    and the YAML loader with it (``meshop.model`` exports lazily)."""
    code = "import sys, meshop.cli.main; print(sorted(m for m in sys.modules if m.startswith('meshop.model')))"
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert done.stdout.strip() == "['meshop.model', 'meshop.model.exports', 'meshop.model.keys']"


def test_the_daemons_load_requests_without_its_charset_detector() -> None:
    """``meshop.libs``: ~4 MB less per daemon; bodies without a declared charset still decode (UTF-8)."""
    code = (
        "import sys, meshop.cli.commands.agent, meshop.cli.commands.controller, meshop.agent.engine.docker_driver\n"
        "names = ('requests', 'consul', 'docker', 'charset_normalizer', 'chardet')\n"
        "print(sorted(m for m in names if sys.modules.get(m)))\n"
    )
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert done.stdout.strip() == "['consul', 'docker', 'requests']", done.stderr
    code = (
        "import meshop.consul.client, requests, warnings\n"
        "warnings.simplefilter('error')\n"
        'r = requests.models.Response(); r._content = \'é {"a": "ü"}\'.encode(); r.status_code = 200\n'
        'print(r.text == \'é {"a": "ü"}\', r.apparent_encoding)\n'
        "r._content = '{\"a\": \"ü\"}'.encode(); print(r.json() == {'a': 'ü'})\n"
    )
    done = subprocess.run([sys.executable, "-P", "-W", "error", "-c", code], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "utf-8", "True"]


def test_the_agent_loads_restic_commands_and_ssh_only_when_a_backup_runs() -> None:
    """``meshop.restic`` exports lazily: the agent's start-up (part of a returning node's return time)
    loads only the repository allow-list; the commands, restic's output parser and SSH come on first use."""
    code = (
        "import sys, meshop.cli.commands.agent, meshop.agent.daemon\n"
        "print(sorted(m for m in sys.modules if m.startswith(('meshop.restic', 'meshop.ssh'))))\n"
        "from meshop import restic\n"
        "from meshop.restic.commands import backup\n"
        "print(restic.backup is backup, restic.RepositorySpec.__module__, 'meshop.ssh.session' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert done.stdout.splitlines() == [
        "['meshop.restic', 'meshop.restic.repository']",
        "True meshop.restic.repository True",
    ], done.stderr
    missing = subprocess.run(
        [sys.executable, "-P", "-c", "import meshop.restic as r; r.nothing"], capture_output=True, text=True, cwd="/"
    )
    assert "module 'meshop.restic' has no attribute 'nothing'" in missing.stderr
