"""Documents (Service, Node, Gateway), their validation and hashing, and the KV records; pure."""
