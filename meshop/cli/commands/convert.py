"""``meshop convert -f docker-compose.yml [--domain D] [-o DIR]``: Compose files into Service documents."""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING

import click

from meshop.errors import DocumentError

if TYPE_CHECKING:
    from meshop.cli.context import CliContext
    from meshop.convert.compose import Conversion, Secret


@click.command()
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Compose file; repeat for override files, merged as docker-compose merges them.",
)
@click.option("--domain", metavar="DOMAIN", help="Route every HTTP service without a proxy label as NAME.DOMAIN.")
@click.option(
    "-o",
    "--output-dir",
    "out_dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Write DIR/<service>.yaml (and DIR/secrets.sh) instead of printing the documents.",
)
@click.pass_obj
def convert(obj: CliContext, paths: tuple[str, ...], domain: str | None, out_dir: str | None) -> None:
    """Convert Compose files into Service documents (stdout, or one file per service with -o).

    Warnings on stderr name each Compose key meshop cannot express, its service and line, and what to do
    instead; the `consul kv put` lines for the secrets the documents read are printed too (never values).
    The documents pass `meshop validate`."""
    from meshop.cli.views import to_yaml
    from meshop.client.checks import check_all
    from meshop.client.sources import SourcedDocument
    from meshop.convert.compose import convert as convert_project
    from meshop.convert.normalise import SourceLines, normalise
    from meshop.model.names import is_hostname

    if domain is not None and not is_hostname(domain):
        raise click.BadParameter(f"{domain!r} is not a lowercase hostname", param_hint="--domain")
    normalised = normalise(paths)
    result = convert_project(
        normalised.project,
        project_name=normalised.name,
        domain=domain,
        prefix=obj.prefix,
        locate=SourceLines.read(paths).locate,
        source=paths[0],
    )
    try:
        check_all([SourcedDocument(d["metadata"]["name"], d) for d in result.documents], obj.prefix)
    except DocumentError as exc:  # the converter's promise is that this never happens
        raise DocumentError(f"meshop convert made an invalid document (a bug: please report it): {exc}") from None
    for note in normalised.notes:
        click.echo(f"warning: docker-compose: {note}", err=True)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if out_dir is None:
        click.echo("---\n".join(to_yaml(doc) for doc in result.documents), nl=False)
        if result.secrets:
            click.echo(secrets_script(result.secrets), err=True, nl=False)
        return
    write_files(out_dir, result, to_yaml)


def secrets_script(secrets: list[Secret]) -> str:
    """The ``consul kv put`` lines for the secrets, each naming where its value comes from (never the value)."""
    lines = ["# the secrets these documents read from Consul: put each before applying (values are not shown)\n"]
    for secret in secrets:
        lines.append(f"consul kv put {secret.key} {shlex.quote(secret.source)}    # {secret.note}\n")
    return "".join(lines)


def write_files(out_dir: str, result: Conversion, to_yaml: object) -> None:
    os.makedirs(out_dir, exist_ok=True)
    for doc in result.documents:
        path = os.path.join(out_dir, f"{doc['metadata']['name']}.yaml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(to_yaml(doc))  # type: ignore[operator]
        click.echo(f"service/{doc['metadata']['name']} written to {path}")
    if result.secrets:
        path = os.path.join(out_dir, "secrets.sh")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("#!/bin/sh\n" + secrets_script(result.secrets))
        click.echo(f"{len(result.secrets)} secret(s) to put into Consul first: {path}")
