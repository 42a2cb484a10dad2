#!/usr/bin/env bash
# Builds a fresh Debian 12 "VPS" image with systemd as PID 1 for the end-to-end install test
# (tests/install/, `make test-install`): debootstrap --variant=minbase with systemd, dbus and sshd, a
# first-boot oneshot that makes the sshd host keys, nothing else of meshop's. Idempotent: the root
# filesystem is cached as a tarball under .dev/vps/ (build once, ~3 min cold) and imported again when the
# image is gone (seconds). The mirror is the one this machine's apt uses, read at run time.
# Prints the image name on stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The recipe's version: change it when the rootfs below changes, so caches of the old one are not reused.
RECIPE=3
IMAGE=${MESHOP_SYSTEMD_VPS_IMAGE:-meshop-test/systemd-vps:bookworm-$RECIPE}
CACHE=${MESHOP_VPS_CACHE:-$ROOT/.dev/vps}
TAR="$CACHE/bookworm-systemd-$RECIPE.tar"
log() { printf 'build-systemd-vps: %s\n' "$*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then echo "$IMAGE"; exit 0; fi
mkdir -p "$CACHE"
if [ ! -s "$TAR" ]; then
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
  }
  src=/etc/apt/sources.list.d/debian.sources
  if [ -f "$src" ]; then mirror=$(awk '/^URIs:/{print $2; exit}' "$src"); else mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list); fi
  d=$(mktemp -d "$CACHE/build.XXXXXX")
  trap 'rm -rf "$d"' EXIT
  log "debootstrap bookworm from $mirror into $d (about 3 minutes, once)"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,openssh-server,iproute2,ca-certificates,python3,procps \
    bookworm "$d/rootfs" "$mirror" >"$d/debootstrap.log" 2>&1 || { tail -20 "$d/debootstrap.log" >&2; exit 1; }
  r="$d/rootfs"
  rm -f "$r"/etc/ssh/ssh_host_*                   # each container makes its own, on first boot
  : > "$r/etc/machine-id"                          # and its own machine id
  cat > "$r/etc/systemd/system/ssh-host-keys.service" <<'UNIT'
# First boot of a test VPS: sshd's host keys, made once (a provider's image does the same).
[Unit]
Description=sshd host keys (first boot)
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target ssh.service
UNIT
  mkdir -p "$r/etc/systemd/system/multi-user.target.wants" "$r/etc/systemd/system/ssh.service.wants"
  ln -sf /etc/systemd/system/ssh-host-keys.service "$r/etc/systemd/system/multi-user.target.wants/"
  ln -sf /etc/systemd/system/ssh-host-keys.service "$r/etc/systemd/system/ssh.service.wants/"
  # No console in a container: gettys would only fail and restart.
  for unit in getty@tty1.service console-getty.service systemd-firstboot.service; do
    ln -sf /dev/null "$r/etc/systemd/system/$unit"
  done
  mkdir -p "$r/root/.ssh" && chmod 0700 "$r/root/.ssh"
  tar -C "$r" -cf "$TAR.part" . && mv "$TAR.part" "$TAR"
  log "cached the root filesystem in $TAR ($(du -h "$TAR" | cut -f1))"
fi
docker import -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' \
  "$TAR" "$IMAGE" >/dev/null
log "imported $IMAGE"
echo "$IMAGE"
