#!/usr/bin/env bash
# Builds the local test image meshop-test/busybox:1 from Debian's busybox-static, when it is missing.
# No public registry is reachable here, so tests and the demo run this small image: `busybox httpd`
# gives a real HTTP server to route to and health-check.
set -euo pipefail
IMAGE=${MESHOP_TEST_IMAGE:-meshop-test/busybox:1}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then exit 0; fi
echo "setup: building test image $IMAGE from busybox-static" >&2
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
(cd "$d" && apt-get download busybox-static >/dev/null)
dpkg -x "$d"/busybox-static_*.deb "$d/x"
mkdir -p "$d/rootfs/bin" "$d/rootfs/www" "$d/rootfs/tmp" "$d/rootfs/data"
cp "$d/x/bin/busybox" "$d/rootfs/bin/busybox"
for applet in sh httpd sleep nc wget echo cat ls env mkdir rm hostname date true false kill ps grep; do
  ln -s busybox "$d/rootfs/bin/$applet"
done
echo "meshop test page" > "$d/rootfs/www/index.html"
tar -C "$d/rootfs" -c . | docker import -q -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
