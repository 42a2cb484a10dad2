"""The only part of meshop that talks to Consul: config, KV store, transactions, sessions, watches."""

from meshop.consul.config import ConsulConfig
from meshop.consul.store import Entry, KVStore, Listing, TxnOp

__all__ = ["ConsulConfig", "Entry", "KVStore", "Listing", "TxnOp"]
