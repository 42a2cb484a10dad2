"""DNS records meshop manages: the pure planner and targets, the provider interface, the RFC 2136 driver."""
