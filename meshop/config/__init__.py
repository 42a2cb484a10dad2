"""Daemon configurations as validated objects: defaults, a YAML file (``--config``), flags over the file.

Below the CLI (which only maps flags and errors) and above the daemons, whose settings these objects
build unchanged (``AgentSettings``, ``DaemonOptions``, ``GatewaySettings``). Keys: docs/config.md.
"""
