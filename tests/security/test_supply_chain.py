"""Supply chain: setup installs exactly the distributions in requirements.lock, each checked by hash.

Attack: a mirror or index (or anyone between it and the machine) serves a tampered wheel under a
pinned name and version. ``pip install --require-hashes -r requirements.lock`` (what scripts/setup.sh
runs) refuses it; before, setup ran ``pip install -e .[test]`` with open version ranges and no hashes.
"""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from tests.support.procs import REPO

LOCK = REPO / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)")


def pins() -> dict[str, tuple[str, list[str]]]:
    """name (normalised) -> (version, hashes) from the lock."""
    found: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in LOCK.read_text().splitlines():
        if match := PIN.match(line):
            current = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            found[current] = (match.group(2), [])
        elif "--hash=sha256:" in line:
            found[current][1].append(line.split("--hash=sha256:")[1].strip(" \\"))
    return found


def test_every_requirement_of_setup_cfg_is_pinned_with_a_hash_and_installed_as_pinned() -> None:
    locked = pins()
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    wanted = config["options"]["install_requires"].split() + config["options.extras_require"]["test"].split()
    names = {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[]", w)[0]).lower() for w in wanted if w[0].isalpha()}
    assert names <= set(locked), f"not in requirements.lock: {sorted(names - set(locked))}"
    assert all(len(hashes) >= 1 and all(len(h) == 64 for h in hashes) for _, hashes in locked.values())
    for name, (version, _) in locked.items():
        assert metadata.version(name) == version, f"{name}: installed {metadata.version(name)}, locked {version}"


def test_a_tampered_wheel_is_refused(tmp_path: Path) -> None:
    name, (version, hashes) = "tenacity", pins()["tenacity"]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    # build the "mirror's" wheel from the installed files, with one file changed: same name and version
    wheel = mirror / f"tenacity-{version}-py3-none-any.whl"
    dist = metadata.distribution(name)
    with zipfile.ZipFile(wheel, "w") as out:
        for file in dist.files or []:
            data = Path(dist.locate_file(file)).read_bytes() if Path(dist.locate_file(file)).is_file() else b""
            if str(file).endswith("tenacity/__init__.py"):
                data += b"\nimport os  # a backdoor would go here\n"
            out.writestr(str(file), data)
    requirement = tmp_path / "one.lock"
    requirement.write_text(f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in hashes) + "\n")
    pip = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(mirror), "--no-deps"]
    result = subprocess.run(
        [*pip, "--require-hashes", "--target", str(tmp_path / "target"), "-r", str(requirement)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "DO NOT MATCH THE HASHES" in result.stderr, result.stderr
    assert not (tmp_path / "target" / "tenacity").exists()


def test_setup_installs_from_the_lock_with_hashes_required() -> None:
    script = (REPO / "scripts" / "setup.sh").read_text()
    assert '--require-hashes -r "$ROOT/requirements.lock"' in script
    assert "--no-deps --no-build-isolation -e" in script
    assert "pip install -q -e" not in script and "--upgrade pip" not in script
