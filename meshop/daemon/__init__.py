"""Running a daemon: the reconcile loop, wake-ups, GC policy, the one backoff policy, single-call retries
(tenacity), background threads, the status server, logging (docs/architecture.md)."""
