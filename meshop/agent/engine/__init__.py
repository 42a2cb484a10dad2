"""The container runtime: its protocol, the Docker driver, events, pulls, the executor and probes."""
