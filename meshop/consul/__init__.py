"""The only part of meshop that talks to Consul: config, KV store, transactions, sessions, watches.

Nothing is imported here: ``meshop.consul.config`` is pure data the CLI needs at start-up, and loading it
must not pull in the HTTP client (``consul``, ``requests``) that only ``meshop.consul.store`` and its
siblings need.
"""
