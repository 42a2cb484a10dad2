"""Everything a node writes to or reads from Consul: fence, state file, observed, journal, registrations, presence."""
