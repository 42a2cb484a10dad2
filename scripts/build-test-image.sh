#!/usr/bin/env bash
# Builds the local test image meshop-test/busybox:1 from Debian's busybox-static, when it is missing.
# No public registry is reachable here, so tests and the demo run this small image: `busybox httpd`
# gives a real HTTP server to route to and health-check.
set -euo pipefail
IMAGE=${MESHOP_TEST_IMAGE:-meshop-test/busybox:1}
REVISION=2  # bump when the image's content changes; an older local image is then rebuilt
have=$(docker image inspect -f '{{ index .Config.Labels "meshop.test-image" }}' "$IMAGE" 2>/dev/null || true)
if [ "$have" = "$REVISION" ]; then exit 0; fi
echo "setup: building test image $IMAGE from busybox-static" >&2
d=$(mktemp -d)
chmod 0755 "$d"  # apt downloads as the _apt user
trap 'rm -rf "$d"' EXIT
(cd "$d" && apt-get -o APT::Sandbox::User=root download busybox-static >/dev/null)
dpkg -x "$d"/busybox-static_*.deb "$d/x"
mkdir -p "$d/rootfs/bin" "$d/rootfs/www" "$d/rootfs/tmp" "$d/rootfs/data"
cp "$d/x/bin/busybox" "$d/rootfs/bin/busybox"
for applet in sh httpd sleep nc wget echo cat ls env mkdir rm hostname date true false kill ps grep; do
  ln -s busybox "$d/rootfs/bin/$applet"
done
echo "meshop test page" > "$d/rootfs/www/index.html"
# /cgi-bin/env echoes the request's CGI environment (HTTP_HOST, HTTP_X_FORWARDED_FOR, ...) for proxy tests
mkdir -p "$d/rootfs/www/cgi-bin"
printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\nenv\n' > "$d/rootfs/www/cgi-bin/env"
chmod 0755 "$d/rootfs/www/cgi-bin/env"
tar -C "$d/rootfs" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' \
  -c "LABEL meshop.test-image=$REVISION" - "$IMAGE" >/dev/null
