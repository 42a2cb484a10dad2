"""Thin click commands: parse flags, call into the daemons and stores, print; no business logic."""
