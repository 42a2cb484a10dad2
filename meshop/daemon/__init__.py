"""Running a daemon: the reconcile loop, wake-ups, GC policy, backoff, the status server, logging."""
