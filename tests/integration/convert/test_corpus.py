"""The corpus of real Compose files (tests/data/compose/, sources and licences in its README): each one goes
through the real ``docker-compose config`` and ``meshop convert``, without a traceback, and every document
it writes passes ``meshop validate`` (the same command a user runs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from meshop.cli.main import run

CORPUS = Path(__file__).parents[2] / "data" / "compose"
FILES = sorted(p for p in CORPUS.rglob("compose.y*ml"))
# refused by docker-compose 1.29 itself, with its own one-line message (the Compose Specification's `name:`)
REFUSED = {"awesome-compose/react-rust-postgres": "'name' does not match any of the regexes"}

pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")


def _project_copy(source: Path, into: Path) -> Path:
    """The Compose file in a copy of its folder, with the build contexts and env_files it names created
    (empty): the corpus keeps the Compose files, not the projects around them."""
    folder = into / source.parent.name
    shutil.copytree(source.parent, folder)
    services = (yaml.safe_load(source.read_text()) or {}).get("services") or {}
    for svc in services.values():
        build = (svc or {}).get("build")
        context = build.get("context", ".") if isinstance(build, dict) else build
        if isinstance(context, str) and "://" not in context:
            (folder / context).mkdir(parents=True, exist_ok=True)
        env_files = (svc or {}).get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            path = folder / (env_file if isinstance(env_file, str) else env_file["path"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    return folder / source.name


@pytest.mark.parametrize("source", FILES, ids=[str(p.parent.relative_to(CORPUS)) for p in FILES])
def test_every_file_converts_and_every_document_validates(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = _project_copy(source, tmp_path)
    out = tmp_path / "out"
    code = run(["convert", "-f", str(compose), "--domain", "example.com", "-o", str(out)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    name = str(source.parent.relative_to(CORPUS))
    if name in REFUSED:
        assert code == 1
        assert REFUSED[name] in captured.err and captured.err.startswith("Error: ")
        return
    assert code == 0, captured.err
    services = yaml.safe_load(source.read_text())["services"]
    written = sorted(out.glob("*.yaml"))
    assert len(written) == len(services)
    assert run(["validate", "-f", str(out)]) == 0, capsys.readouterr().err
    for line in captured.err.splitlines():  # every warning names a file and line, or the tool
        assert line.startswith(("warning: docker-compose: ", f"warning: {compose}:", "#", "consul kv put ")), line
