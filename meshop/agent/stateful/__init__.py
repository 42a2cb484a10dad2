"""Stateful volumes on the agent: the single-writer lock keeper (docs/stateful.md)."""
