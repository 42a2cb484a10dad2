"""What ACLs cost: setting up and removing the role tokens of one prefix, and an agent policy's sync.

Against a real Consul 1.8.7 dev server with ACLs on (default deny), started and stopped by PID here:

* ``meshop acl init`` (five shared policies) and a token per role, for a fresh prefix;
* the tokens a typical integration test uses (controller, an agent, readonly, operator; what
  ``tests/support/acl.py`` makes per test, which leaves them in the throwaway Consul), and deleting them;
* one ``meshop acl sync`` pass with 1, 10 and 50 nodes, and how long until an agent can read a newly
  assigned service's secret when ``acl sync --watch`` runs (assignment write -> first successful read).

    .venv/bin/python benchmarks/acl_setup.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meshop.client.acl import AclAdmin, AclSyncWatch  # noqa: E402
from meshop.consul.config import ConsulConfig  # noqa: E402
from meshop.consul.store import KVStore  # noqa: E402
from meshop.errors import ConsulAccessDenied  # noqa: E402
from meshop.model import keys  # noqa: E402
from tests.support import acl  # noqa: E402
from tests.support.consul_server import ConsulServer  # noqa: E402


def ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e3:7.1f} ms   max {max(samples) * 1e3:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    server = ConsulServer(Path(tempfile.mkdtemp(prefix="acl-bench-")), hcl=acl.ACL_HCL)
    server.token = acl.MASTER_TOKEN
    server.start()
    try:
        run(server, args.repeat)
    finally:
        server.stop()


def admin(server: ConsulServer, prefix: str) -> AclAdmin:
    return AclAdmin(ConsulConfig.from_env({}, addr=server.addr, token=server.token, prefix=prefix))


def run(server: ConsulServer, repeat: int) -> None:
    init, per_test, deletion = [], [], []
    for _ in range(repeat):
        prefix = f"b-{secrets.token_hex(4)}"
        started = time.perf_counter()
        admin(server, prefix).init()
        init.append(time.perf_counter() - started)
        started = time.perf_counter()
        roles = acl.RoleTokens(server.addr, prefix, server.token)
        for role, node in (("controller", None), ("agent", "n1"), ("readonly", None), ("operator", None)):
            roles.token(role, node)
        per_test.append(time.perf_counter() - started)
        started = time.perf_counter()
        roles.close(delete=True)
        deletion.append(time.perf_counter() - started)
    print(f"acl init (5 policies)                            {ms(init)}")
    print(f"4 role tokens (what an integration test pays)     {ms(per_test)}")
    print(f"deleting them and their policies (tests skip it)  {ms(deletion)}")

    for nodes in (1, 10, 50):
        prefix = f"b-{secrets.token_hex(4)}"
        a = admin(server, prefix)
        for i in range(nodes):
            a.store.put(keys.assignment(f"n{i}", "web"), "{}")
            a.token("agent", f"n{i}")
        samples = []
        for i in range(max(3, repeat // 4)):
            a.store.put(keys.assignment("n0", f"s{i}"), "{}")
            started = time.perf_counter()
            a.sync()
            samples.append(time.perf_counter() - started)
        print(f"acl sync pass, {nodes:2d} agent policies              {ms(samples)}")

    prefix = f"b-{secrets.token_hex(4)}"
    a = admin(server, prefix)
    agent = KVStore(ConsulConfig.from_env({}, addr=server.addr, token=a.token("agent", "n1"), prefix=prefix))
    watcher = AclSyncWatch(a, resync=30.0).start()
    delays = []
    try:
        for i in range(repeat):
            a.store.put(f"secrets/s{i}/k", "v")
            started = time.perf_counter()
            a.store.put(keys.assignment("n1", f"s{i}"), "{}")
            while True:
                try:
                    agent.get(f"secrets/s{i}/k")
                    break
                except ConsulAccessDenied:
                    time.sleep(0.002)
            delays.append(time.perf_counter() - started)
    finally:
        watcher.stop()
    print(f"assignment -> agent may read its secret (--watch) {ms(delays)}")


if __name__ == "__main__":
    main()
