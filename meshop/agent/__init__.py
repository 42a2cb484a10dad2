"""The node agent: reconcile local Docker containers and Caddy snippets to the node's assignments."""
