"""The agent's pure half: what a node should run and what to do about it. No I/O (an import-linter contract)."""
