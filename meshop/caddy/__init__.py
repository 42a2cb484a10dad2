"""Everything meshop does with Caddy: render Caddyfile text from validated fields, load it through the
admin API with a rollback on rejection, and run a Caddy of its own when asked to."""
