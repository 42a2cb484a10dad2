"""How long a cluster goes without exactly one leader when its leader is SIGKILLed and started again
with the same ``--id``, for several delays between kill and restart (issue 12 item 2).

Two real ``meshop controller run`` processes (default ``--check-ttl 3 --lock-delay 5`` unless given) on
a dev Consul; for each delay the leader is killed, started again after the delay, and the time until
exactly one controller holds ``leader`` and answers ``/readyz`` "leader" is printed, from the kill and
from the restart. "never" means not within ``--timeout`` seconds.

    .venv/bin/python benchmarks/leader_restart.py [--delays 0,0.5,1,2,4] [--check-ttl 3] [--lock-delay 5]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meshop.consul.config import ConsulConfig  # noqa: E402
from meshop.consul.store import KVStore  # noqa: E402
from meshop.model import keys  # noqa: E402
from tests.integration.faults.ctl_support import ControllerProc, controller_proc, wait_serving  # noqa: E402
from tests.support.consul_server import ConsulServer  # noqa: E402


def one_leader(store: KVStore, procs: list[ControllerProc]) -> str | None:
    entry = store.get(keys.LEADER)
    if entry is None or not entry.session:
        return None
    who = str(json.loads(entry.value)["id"])
    leaders = [p.ident for p in procs if p.readyz(1.0) == "leader"]
    return who if leaders == [who] else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delays", default="0,0.5,1,2,4")
    parser.add_argument("--check-ttl", default="3")
    parser.add_argument("--lock-delay", default="5")
    parser.add_argument("--timeout", type=float, default=40.0)
    args = parser.parse_args()
    flags = ("--check-ttl", args.check_ttl, "--lock-delay", args.lock_delay)
    with tempfile.TemporaryDirectory(prefix="meshop-leader-") as tmp:
        work = Path(tmp)
        server = ConsulServer(work / "consul").start()
        procs: list[ControllerProc] = []
        try:
            print(f"check-ttl {args.check_ttl} s, lock-delay {args.lock_delay} s")
            print(f"{'restart after':>14} {'one leader after the kill':>27} {'after the restart':>19}")
            for delay in (float(d) for d in args.delays.split(",")):
                prefix = f"b-{secrets.token_hex(3)}"
                store = KVStore(ConsulConfig.from_env({}, addr=server.addr, prefix=prefix, timeout=5.0))
                pair = [controller_proc(server.addr, prefix, name, work, *flags) for name in ("a", "b")]
                procs += pair
                deadline = time.monotonic() + 60
                while not one_leader(store, pair) and time.monotonic() < deadline:
                    time.sleep(0.05)
                leader = next(p for p in pair if p.ident == one_leader(store, pair))
                leader.process.kill()
                killed = time.monotonic()
                time.sleep(delay)
                leader.start()
                restarted = time.monotonic()
                wait_serving(leader)
                found = None
                while time.monotonic() - killed < args.timeout:
                    if one_leader(store, pair):
                        found = time.monotonic()
                        break
                    time.sleep(0.05)
                if found is None:
                    never = f"never (> {args.timeout:.0f} s)"
                    print(f"{delay:>13.1f}s {never:>27} {'never':>19}", flush=True)
                else:
                    print(f"{delay:>13.1f}s {found - killed:>26.2f}s {found - restarted:>18.2f}s", flush=True)
                for proc in pair:
                    proc.stop()
        finally:
            for proc in procs:
                proc.stop()
            server.stop()


if __name__ == "__main__":
    main()
