"""Bootstrap of gateway and nodes over SSH: a pure planner of idempotent steps and one executor."""
