"""The click commands, one module per command group; ``meshop.cli.main`` loads each on first use."""
