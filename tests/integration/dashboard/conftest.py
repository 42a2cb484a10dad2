"""A real cluster (Consul with ACLs, ``meshop controller run``, ``meshop agent run`` on Docker), a
dashboard served in-process with the operator's token, and Debian's headless Chromium driven by
Selenium through Debian's chromedriver (browsers cannot be downloaded here)."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.dashboard.server import Dashboard, Settings
from tests.integration.routing.helpers import cleanup_node
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.meshop_proc import meshop_process
from tests.support.procs import PATIENCE, Process


@dataclass
class Cluster:
    consul: ConsulServer
    prefix: str
    node: str
    store: KVStore
    agent: Process
    controller: Process

    def logs(self) -> str:
        return f"controller:\n{self.controller.log_tail()}\nagent:\n{self.agent.log_tail()}"


@pytest.fixture(scope="module")
def cluster(
    consul_server: ConsulServer, docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("dash-cluster")
    prefix, node = f"t-{secrets.token_hex(4)}", f"dash{secrets.token_hex(3)}"
    config = ConsulConfig.from_env({}, addr=consul_server.addr, token=consul_server.token, prefix=prefix, timeout=5.0)
    store = KVStore(config)
    controller_args = ["controller", "run", "--id", f"{prefix}-c", "--metrics-addr", "127.0.0.1:0"]
    controller = meshop_process(consul_server.addr, prefix, controller_args, tmp / "controller.log").start()
    agent_args = ["agent", "run", "--node", node, "--advertise-addr", "127.0.0.1", "--labels", "zone=test"]
    agent_args += ["--state-dir", str(tmp / "agent"), "--metrics-addr", "127.0.0.1:0", "--stop-grace", "1"]
    agent_args += ["--usage-interval", "2"]  # the usage charts fill within seconds
    agent = meshop_process(consul_server.addr, prefix, agent_args, tmp / "agent.log").start()
    try:
        yield Cluster(consul_server, prefix, node, store, agent, controller)
    finally:
        agent.stop()
        controller.stop()
        cleanup_node(docker_client, store, node)
        acl.close(consul_server.addr, prefix)


@pytest.fixture(scope="module")
def dashboard(cluster: Cluster) -> Iterator[Dashboard]:
    """Served on loopback with the operator's token and actions on: a login is required (the browser
    signs in with the operator's token, see ``browser``)."""
    config = acl.config_for(cluster.consul.addr, cluster.prefix, "operator")
    server = Dashboard(config, Settings(listen="127.0.0.1:0", actions=True)).start()
    try:
        yield server
    finally:
        server.stop()


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(browser).exists() and Path(driver).exists()):
        pytest.fail("Debian's chromium and chromium-driver are missing; run `make setup`")
    return browser, driver


def sign_in(driver: Any, dashboard: Dashboard) -> None:
    """A dashboard that can act asks for a login on loopback too: sign in on its page with the
    operator's token (the dashboard's own, so the session may act)."""
    from selenium.webdriver.common.by import By

    driver.get(dashboard.url)
    assert driver.current_url.endswith("/login"), driver.current_url
    driver.find_element(By.ID, "token").send_keys(dashboard.config.token or "")
    driver.find_element(By.ID, "login-token").click()
    # click() returns before the POST's answer is loaded: await the overview, as a user would.
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, 20 * PATIENCE, poll_frequency=0.1).until(lambda d: d.title == "Fleet · meshop")
    except TimeoutException:
        raise AssertionError(f"no overview after signing in; title {driver.title!r}") from None


def start_chromium(tmp_path_factory: pytest.TempPathFactory, *extra: str, home: Path | None = None) -> Any:
    """Debian's headless Chromium under chromedriver; ``home``: its HOME (where Chromium on Linux reads
    the NSS database of trusted CAs, ``$HOME/.pki/nssdb``)."""
    import os

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    path, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = path
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
        *extra,
    ):
        options.add_argument(arg)
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    env = {**os.environ, "HOME": str(home)} if home is not None else None
    service = Service(executable_path=driver_path, log_output=str(log), env=env)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(20)
    return driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, dashboard: Dashboard) -> Iterator[Any]:
    driver = start_chromium(tmp_path_factory)
    try:
        sign_in(driver, dashboard)
        yield driver
    finally:
        driver.quit()
