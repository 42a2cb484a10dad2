"""Real components for tests and benchmarks: processes started on free loopback ports, stopped by PID."""
