"""The gateway: render the gateway Caddy from routes and the Gateway document; DNS."""
