"""Plain containers for tests (not managed by meshop): a busybox httpd on an ephemeral loopback port."""

from __future__ import annotations

import secrets

TEST_IMAGE = "meshop-test/busybox:1"
TEST_LABEL = "meshop.test"


def run_httpd(client, name_hint: str, page: str | None = None):
    """Start ``busybox httpd`` serving /www (and /cgi-bin/env); returns (container, host_port)."""
    command = (
        ["/bin/sh", "-c", f"echo {page} > /www/index.html; exec /bin/httpd -f -p 80 -h /www"]
        if page
        else ["/bin/httpd", "-f", "-p", "80", "-h", "/www"]
    )
    container = client.containers.run(
        TEST_IMAGE,
        command,
        name=f"t-{name_hint}-{secrets.token_hex(3)}",
        detach=True,
        labels={TEST_LABEL: "true"},
        ports={"80/tcp": ("127.0.0.1", None)},
    )
    container.reload()
    port = int(container.ports["80/tcp"][0]["HostPort"])
    return container, port
