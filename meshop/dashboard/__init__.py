"""``meshop dashboard``: a thin, server-rendered web view over the readers behind ``meshop status``.

``views``/``pages`` render HTML from plain data (pure, escaped), ``auth`` decides who may see and act
(bind policy, password hashes, sessions, CSRF), ``live`` keeps the latest snapshot from Consul blocking
queries and tells server-sent-event streams when it changed, ``actions`` writes cordon/drain like
``meshop nodes`` does and records an event, ``server`` is the stdlib HTTP server tying them together.
"""
