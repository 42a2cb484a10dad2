#!/usr/bin/env bash
# Builds meshop-test/vps:bookworm, a fresh Debian 12 "VPS" (debootstrap --variant=minbase with sshd), once;
# reused while it exists (idempotent). Used by scripts/node-add-e2e.sh, not by `make test`: debootstrap
# costs about 3 minutes and ~240 MB on a cold machine. The mirror is the one this machine's apt uses.
set -euo pipefail
IMAGE=${MESHOP_VPS_IMAGE:-meshop-test/vps:bookworm}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then exit 0; fi
command -v debootstrap >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null; }
src=/etc/apt/sources.list.d/debian.sources
if [ -f "$src" ]; then mirror=$(awk '/^URIs:/{print $2; exit}' "$src"); else mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list); fi
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
echo "building $IMAGE with debootstrap from $mirror (about 3 minutes)" >&2
debootstrap --variant=minbase --include=openssh-server,iproute2,ca-certificates \
  bookworm "$d/rootfs" "$mirror" >"$d/debootstrap.log" 2>&1 || { tail -20 "$d/debootstrap.log" >&2; exit 1; }
rm -f "$d"/rootfs/etc/ssh/ssh_host_*  # each container makes its own host keys
tar -C "$d/rootfs" -c . | docker import -c 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "built $IMAGE" >&2
