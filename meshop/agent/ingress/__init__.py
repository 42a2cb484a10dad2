"""The node's own Caddy: which snippets it should serve (``snippets``, pure), keeping it serving them
with validated reloads (``sync``), and the Caddy itself, run by meshop or the operator's (``node_caddy``)."""
