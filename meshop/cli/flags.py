"""Click options several commands share (``-o`` lives with the output helpers in ``output.py``)."""

from __future__ import annotations

import click

LOCAL_CLUSTER = click.option(
    "--local-cluster",
    is_flag=True,
    envvar="MESHOP_LOCAL_CLUSTER",
    help="Every node runs on this host (demo, tests): node addresses on loopback/link-local are accepted. "
    "Off in a fleet, where such an address in a node record would point the gateway at its own host.",
)
