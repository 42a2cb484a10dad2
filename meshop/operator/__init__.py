"""The controller: validate desired state, place services, write assignments, routes and status."""
