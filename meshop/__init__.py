"""meshop: declarative Docker services across a handful of VPS nodes, on Consul KV."""

__version__ = "0.1.0"
