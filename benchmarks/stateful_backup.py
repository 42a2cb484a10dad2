"""Backup and restore times of a stateful volume through meshop's restic driver, local and sftp.

    .venv/bin/python benchmarks/stateful_backup.py [--size-mb 100] [--change-mb 1] [--runs 3]

For each repository kind (an absolute local path; ``sftp:`` to a real sshd on 127.0.0.1, host key
pinned, as the agent uses it) and each run: a fresh repository, a folder of ``--size-mb`` MB of random
data in 4 MB files (a volume's data, incompressible: the worst case for restic), then

* **first backup**: the whole volume (``meshop.restic.backup``, what the agent runs);
* **incremental**: after ``--change-mb`` MB of it is rewritten (one file's first bytes): restic reads
  every file again but stores only the changed chunks;
* **restore**: the latest snapshot into an empty folder, checked byte for byte.

It prints the median of each, with the bytes added, and the peer measured in the same run: a plain
``tar`` of the same folder (local) or ``tar | ssh cat`` (sftp): what a cron-and-tar user would do, with
no deduplication or encryption. Everything is under a temporary folder; the sshd is stopped by its PID.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meshop.restic import RepositorySpec, backup, ensure_repository, restore  # noqa: E402
from tests.support.sshd import SshServer  # noqa: E402

TAGS = ("meshop", "service=bench", "volume=data")
FILE_MB = 4
HEADS = (("first", 8), ("(added)", 10), ("incr.", 8), ("(added)", 10), ("restore", 8), ("tar peer", 9))


def make_volume(root: Path, size_mb: int) -> None:
    root.mkdir(parents=True)
    for i in range(max(1, size_mb // FILE_MB)):
        (root / f"part-{i:03d}.bin").write_bytes(os.urandom(FILE_MB * 2**20))


def change(root: Path, change_mb: int) -> None:
    target = sorted(root.iterdir())[0]
    with target.open("r+b") as handle:
        handle.write(os.urandom(change_mb * 2**20))


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    began = time.monotonic()
    result = fn()
    return time.monotonic() - began, result


def one_run(repo: RepositorySpec, work: Path, size_mb: int, change_mb: int) -> dict[str, float]:
    volume = work / "volume"
    make_volume(volume, size_mb)
    ensure_repository(repo)
    first_s, first = timed(lambda: backup(repo, volume, TAGS, "bench"))
    change(volume, change_mb)
    incr_s, incr = timed(lambda: backup(repo, volume, TAGS, "bench"))
    target = work / "restored"
    restore_s, _ = timed(lambda: restore(repo, "latest", target, TAGS))
    if digest(target) != digest(volume):
        raise SystemExit("restore differs from the volume")
    return {
        "first": first_s,
        "first_added": first.bytes_added / 2**20,  # type: ignore[attr-defined]
        "incremental": incr_s,
        "incremental_added": incr.bytes_added / 2**20,  # type: ignore[attr-defined]
        "restore": restore_s,
    }


def peer(volume_parent: Path, size_mb: int, sshd: SshServer | None, work: Path) -> float:
    make_volume(volume_parent / "peer-volume", size_mb)
    if sshd is None:
        command = ["tar", "-C", str(volume_parent), "-cf", str(work / "peer.tar"), "peer-volume"]
        began = time.monotonic()
        subprocess.run(command, check=True)
        return time.monotonic() - began
    known = work / "peer_known_hosts"
    known.write_text(sshd.known_hosts_line())
    ssh = (
        f"ssh -F /dev/null -p {sshd.port} -i {sshd.workdir / 'client_key'} -o BatchMode=yes "
        f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={known} root@127.0.0.1 'cat > {work / 'peer.tar'}'"
    )
    began = time.monotonic()
    subprocess.run(f"tar -C {volume_parent} -cf - peer-volume | {ssh}", shell=True, check=True)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--change-mb", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshop-bench-backup-") as tmp:
        base = Path(tmp)
        sshd = SshServer(base / "sshd").start()
        try:
            kinds: dict[str, Callable[[Path], RepositorySpec]] = {
                "local": lambda w: RepositorySpec(str(w / "repo"), "bench-password"),
                "sftp": lambda w: RepositorySpec(
                    f"sftp://root@127.0.0.1:{sshd.port}/{w / 'repo'}",
                    "bench-password",
                    known_hosts=sshd.known_hosts_line(),
                    identity=(sshd.workdir / "client_key").read_text(),
                ),
            }
            print(f"volume {args.size_mb} MB of random data, change {args.change_mb} MB, {args.runs} run(s), medians")
            print(f"{'repository':<10} " + " ".join(f"{h:>{w}}" for h, w in HEADS))
            for kind, make in kinds.items():
                results = []
                for run in range(args.runs):
                    work = base / f"{kind}-{run}"
                    work.mkdir()
                    results.append(one_run(make(work), work, args.size_mb, args.change_mb))
                work = base / f"{kind}-peer"
                work.mkdir()
                tar_s = peer(work, args.size_mb, sshd if kind == "sftp" else None, work)
                med = {key: statistics.median(r[key] for r in results) for key in results[0]}
                print(
                    f"{kind:<10} {med['first']:>7.2f}s {med['first_added']:>7.1f} MB {med['incremental']:>7.2f}s "
                    f"{med['incremental_added']:>7.2f} MB {med['restore']:>7.2f}s {tar_s:>8.2f}s"
                )
        finally:
            sshd.stop()


if __name__ == "__main__":
    main()
