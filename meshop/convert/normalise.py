"""The Compose tool's own normalisation, and the source lines it loses.

``docker-compose config`` (1.29, the Compose tool Debian ships and ``make setup`` installs) applies every
rule of the Compose file format before meshop reads a key: interpolation (``${VAR:-default}``, ``$$``)
from the environment and the project's ``.env``, ``env_file`` contents, ``extends``, YAML anchors and
merge keys, ``x-*`` extension fields (dropped), several ``-f`` files merged, short forms expanded (port
ranges) and relative paths made absolute; it refuses a file Compose itself would refuse. A hand-written
loader would get some of these subtly wrong. Its output has no line numbers, so ``SourceLines`` reads the
original files with PyYAML's composer (node marks) to point each warning at its line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import yaml

from meshop.errors import DocumentError

TOOL_ENV = "MESHOP_COMPOSE"  # the Compose command to run (default: docker-compose on PATH)
TIMEOUT = 60.0


class Normalised(NamedTuple):
    project: dict[str, Any]
    name: str  # the Compose project name (COMPOSE_PROJECT_NAME, else the first file's folder)
    notes: list[str]  # what the Compose tool said on stderr (unset variables, ...)


def normalise(paths: Sequence[str], environ: Mapping[str, str] | None = None) -> Normalised:
    """``docker-compose -f P... config`` run in the first file's folder; raises DocumentError with the
    tool's own message when it refuses the files."""
    environ = dict(os.environ if environ is None else environ)
    tool = environ.get(TOOL_ENV) or shutil.which("docker-compose")
    if not tool:
        raise DocumentError(
            "meshop convert needs docker-compose (1.29: `apt-get install docker-compose`, or `make setup`) to "
            f"read Compose files as Compose does; set {TOOL_ENV} to use another"
        )
    for path in paths:
        if not os.path.isfile(path):
            raise DocumentError(f"{path}: no such file")
    folder = os.path.dirname(os.path.abspath(paths[0]))
    argv = [tool, *(arg for p in paths for arg in ("-f", os.path.abspath(p))), "config"]
    try:
        done = subprocess.run(argv, cwd=folder, env=environ, capture_output=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DocumentError(f"{tool} config could not run: {exc}") from None
    said = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        raise DocumentError(f"{paths[0]}: docker-compose refuses it: {said or f'exit code {done.returncode}'}")
    try:
        project = yaml.safe_load(done.stdout) or {}
    except yaml.YAMLError as exc:
        raise DocumentError(f"docker-compose config printed what is not YAML: {exc}") from None
    if not isinstance(project, dict):
        raise DocumentError("docker-compose config printed no project")
    project = _unescape(project)
    name = environ.get("COMPOSE_PROJECT_NAME") or os.path.basename(folder) or "app"
    notes = [line.removeprefix("WARNING: ") for line in said.splitlines() if line.strip()]
    return Normalised(project, name, notes)


def _unescape(value: Any) -> Any:
    """The values Compose passes on: ``config`` prints a literal ``$`` escaped again (``$$``), so that its
    output stays a valid Compose file; Docker gets one ``$``."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, dict):
        return {_unescape(k): _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value


class SourceLines:
    """Where each service's keys are written in the source files (the last file that names one wins, as
    Compose's merge does); a key brought in by a merge key (``<<: *common``) points at the anchor's line."""

    def __init__(self, files: Sequence[tuple[str, str]]) -> None:
        self.lines: dict[tuple[str, str], str] = {}
        for name, text in files:
            try:
                root = yaml.compose(text, Loader=yaml.SafeLoader)
            except yaml.YAMLError:
                continue  # docker-compose said why already; warnings then name the file only
            if isinstance(root, yaml.MappingNode):
                self._index(name, root)

    @classmethod
    def read(cls, paths: Sequence[str]) -> SourceLines:
        files = []
        for path in paths:
            with open(path, encoding="utf-8", errors="replace") as handle:
                files.append((path, handle.read()))
        return cls(files)

    def _index(self, name: str, root: yaml.MappingNode) -> None:
        for key, value in _pairs(root):
            self.lines[("", key.value)] = f"{name}:{key.start_mark.line + 1}"
            if isinstance(value, yaml.MappingNode):
                for sub, sub_value in _pairs(value):
                    self.lines[("", f"{key.value}.{sub.value}")] = f"{name}:{sub.start_mark.line + 1}"
                    if key.value == "services" and isinstance(sub_value, yaml.MappingNode):
                        self.lines[(sub.value, "")] = f"{name}:{sub.start_mark.line + 1}"
                        for field, _ in _pairs(sub_value):
                            self.lines[(sub.value, field.value)] = f"{name}:{field.start_mark.line + 1}"

    def locate(self, service: str, key: str) -> str:
        """``file:line`` of ``services.<service>.<key>`` (or of the service, or of a top-level ``key``)."""
        return self.lines.get((service, key)) or self.lines.get((service, "")) or ""


def _pairs(node: yaml.MappingNode) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
    """A mapping's (key, value) nodes, merge keys (``<<``) followed first so the mapping's own keys win."""
    own: list[tuple[yaml.ScalarNode, yaml.Node]] = []
    merged: list[tuple[yaml.ScalarNode, yaml.Node]] = []
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        if key.tag == "tag:yaml.org,2002:merge" or (key.value == "<<" and key.style is None):
            sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for source in sources:
                if isinstance(source, yaml.MappingNode):
                    merged.extend(_pairs(source))
        else:
            own.append((key, value))
    return merged + own
