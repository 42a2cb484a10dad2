"""Scheduled restic backups of the stateful volumes this node holds (docs/stateful.md, Backups):
``schedule`` (pure: what is due), ``runner`` (one backup), ``worker`` (the thread, records, metrics)."""
