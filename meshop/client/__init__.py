"""Client-side operations on desired state (apply, delete, cordon, read a snapshot) used by the CLI.

The CLI stays thin: it parses flags, calls these, and prints with the pure formatters in cli/views.
"""
