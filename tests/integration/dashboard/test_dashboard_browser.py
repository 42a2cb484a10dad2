"""The dashboard in a real headless Chromium against real Consul, controller and agent.

The page is opened once and never reloaded: a service appearing, becoming Ready and a degraded one
with its reason arrive through server-sent events. A cordon clicked on the page (with its confirmation)
shows in ``meshop status``; hostile text in an event is shown, never run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from meshop.consul.acl import AclApi
from meshop.consul.events import EventLog
from meshop.consul.services import Registration, Services
from meshop.model import keys
from meshop.model.records import Observed, loads_json
from tests.conftest import TEST_IMAGE
from tests.integration.cli.conftest import invoke
from tests.integration.dashboard.conftest import Cluster
from tests.integration.operator.sim import service_doc
from tests.support.procs import PATIENCE, wait_until

WEB = {
    "image": TEST_IMAGE,
    "command": ["/bin/httpd"],
    "args": ["-f", "-p", "80", "-h", "/www"],
    "replicas": 1,
    "health": {"http": {"path": "/", "port": "http"}, "interval": "1s", "timeout": "1s"},
}
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>\u202eevil'


def rows(driver: Any, table: str, key: str = "Name") -> dict[str, dict[str, str]]:
    """The rows of one table on the page by their ``key`` cell: {header: text, "class:<header>": classes}.
    Read in one script: the live part is swapped under the driver, so element handles go stale."""
    script = """
      const t = document.querySelector('table.' + arguments[0]);
      if (!t) return [];
      return [...t.querySelectorAll('tbody tr')].map(tr => Object.fromEntries([...tr.querySelectorAll('td')]
        .flatMap(td => [[td.dataset.label, td.innerText.trim()],
                        ['class:' + td.dataset.label, td.firstElementChild ? td.firstElementChild.className : '']])));
    """
    return {r[key]: r for r in driver.execute_script(script, table)}


def text_of(driver: Any, css: str) -> str:
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", css)


def await_page(driver: Any, condition: Any, timeout: float, what: str) -> Any:
    try:
        return WebDriverWait(driver, timeout * PATIENCE, poll_frequency=0.2).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}; the page now:\n{d_text(driver)}") from None


def click(driver: Any, css: str) -> None:
    """Click ``css``; the live table may be swapped between finding and clicking: find it again."""

    def attempt(d: Any) -> bool:
        try:
            d.find_element(By.CSS_SELECTOR, css).click()
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    WebDriverWait(driver, 10, poll_frequency=0.1).until(attempt, message=f"cannot click {css}; page:\n{d_text(driver)}")


def d_text(driver: Any) -> str:
    return text_of(driver, "main")[:3000]


def test_live_table_ready_degraded_and_hostile_text(
    cluster: Cluster, dashboard: Any, browser: Any, tmp_path: Path
) -> None:
    browser.get(dashboard.url)
    assert browser.title == "Fleet · meshop"
    await_page(browser, lambda d: d.find_element(By.ID, "conn").text == "live", 10, "the event stream to open")
    host = f"web.{cluster.prefix}.test"
    cluster.store.put(keys.desired_service("web"), service_doc("web", route={"host": host, "port": "http"}, **WEB))

    def web_ready(d: Any) -> dict[str, str] | None:
        row = rows(d, "services").get("web")
        return row if row and row["Health"] == "Healthy" else None

    web = await_page(browser, web_ready, 60, f"web to become Healthy on the page\n{cluster.logs()}")
    assert (web["Ready"], web["Nodes"], web["Image"], web["Route"]) == ("1/1", cluster.node, TEST_IMAGE, host + "/")
    assert int(browser.find_element(By.ID, "live").get_attribute("data-updates")) > 0  # live, not reloaded

    # a second service claiming web's host: its replica serves, but the gateway will not route it
    cluster.store.put(keys.desired_service("copy"), service_doc("copy", route={"host": host, "port": "http"}, **WEB))

    def degraded(d: Any) -> dict[str, str] | None:
        row = rows(d, "services").get("copy")
        return row if row and row["Health"] == "Degraded" else None

    copy = await_page(browser, degraded, 60, f"copy to be Degraded\n{cluster.logs()}")
    assert copy["Message"].startswith("RouteConflict: ") and "web" in copy["Message"]
    assert copy["class:Health"].split() == ["badge", "warn"]

    EventLog(cluster.store, "test").append("Hostile", "service/web", HOSTILE)
    await_page(browser, lambda d: "Hostile" in rows(d, "events", key="Kind"), 10, "the event")
    shown = rows(browser, "events", key="Kind")["Hostile"]["Message"]
    assert shown == HOSTILE.replace("\u202e", "\\u202e")  # the markup as text; the bidi override visible
    assert browser.execute_script("return window.pwned === undefined")
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main script") == []

    # a gateway registering in Consul's catalog shows up live (the meshop-gateway health watch)
    services = Services(cluster.store.config, cluster.store.client)
    gid = f"gw{cluster.node[-6:]}"
    services.register(Registration(f"meshop-gateway-{gid}", "meshop-gateway", "127.0.0.1", 443))
    try:
        gateway = await_page(browser, lambda d: rows(d, "gw", key="Gateway").get(gid), 10, "the gateway row")
        assert (gateway["Address"], gateway["Health"], gateway["In DNS"]) == ("127.0.0.1", "passing", "no")

        nodes = rows(browser, "nodes")
        assert nodes[cluster.node]["Status"] == "Ready" and nodes[cluster.node]["Labels"] == "zone=test"
        shot = tmp_path / "dashboard.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("MESHOP_DASHBOARD_SCREENSHOT"):  # how docs/dashboard.png is made
            shutil.copy(shot, os.environ["MESHOP_DASHBOARD_SCREENSHOT"])

        browser.set_window_size(390, 844)  # a phone: every row a card, each cell labelled
        try:
            thead = "return getComputedStyle(document.querySelector('table.services thead')).display"
            label = "return getComputedStyle(document.querySelector('table.services td'), '::before').content"
            assert browser.execute_script(thead) == "none"
            assert browser.execute_script(label) == '"Name"'
            assert browser.execute_script("return document.documentElement.scrollWidth") <= 390  # no side-scroll
            if os.environ.get("MESHOP_DASHBOARD_SCREENSHOT"):
                browser.save_screenshot(os.environ["MESHOP_DASHBOARD_SCREENSHOT"].replace(".png", "-phone.png"))
        finally:
            browser.set_window_size(1280, 1000)
    finally:
        services.deregister(f"meshop-gateway-{gid}")

    click(browser, "table.services a[href='/service/copy']")
    await_page(browser, lambda d: d.title == "copy · meshop", 10, "the service page")
    page = d_text(browser)
    assert "RouteConflict" in page and "Conditions" in page and "Document" in page
    container = rows(browser, "containers", key="Node")[cluster.node]
    assert (container["Replica"], container["Phase"], container["Health"]) == ("0", "Ready", "passing")
    cluster.store.delete(keys.desired_service("copy"))


def test_cordon_from_the_page_shows_in_meshop_status(cluster: Cluster, dashboard: Any, browser: Any) -> None:
    wait_until(lambda: cluster.store.get(keys.node(cluster.node)), 30, what="the agent to register")
    browser.get(dashboard.url)
    await_page(browser, lambda d: cluster.node in rows(d, "nodes"), 10, "the node row")
    click(browser, f"a.act[href='/nodes/{cluster.node}/cordon']")
    await_page(browser, lambda d: d.find_elements(By.ID, "confirm"), 10, "the confirmation")
    assert status_of(cluster) == "Ready"  # nothing happens before the confirmation
    click(browser, "#confirm")
    await_page(browser, lambda d: rows(d, "nodes").get(cluster.node, {}).get("Status") == "Cordoned", 10, "Cordoned")
    assert status_of(cluster) == "Cordoned"
    _, out, _ = invoke(cluster.consul.addr, cluster.prefix, "events", f"node/{cluster.node}", "-o", "json")
    (event,) = [json.loads(line) for line in out.splitlines()]
    assert (event["kind"], event["component"]) == ("Cordoned", "dashboard")
    itself = AclApi(dashboard.config).token_self()  # who signed in: the operator's token
    assert itself is not None
    assert event["message"] == f"cordon requested from the dashboard by token {itself.accessor_id[:8]}"

    # the node's own page: its containers as its agent reports them, the event, and the way back (web's
    # replica started at the fixture's apply; on a loaded machine it may still be starting here)
    wait_until(lambda: observed_ready(cluster, "web") == 1, 60, what="web's replica Ready")
    click(browser, f"table.nodes a[href='/node/{cluster.node}']")
    await_page(browser, lambda d: d.title == f"node {cluster.node} · meshop", 10, "the node page")
    web = await_page(browser, lambda d: rows(d, "containers", key="Service").get("web"), 10, "web's container")
    assert (web["Replica"], web["Phase"], web["Image"]) == ("0", "Ready", TEST_IMAGE)
    assert rows(browser, "events", key="Kind")["Cordoned"]["By"] == "dashboard"
    click(browser, f"a.act[href='/nodes/{cluster.node}/uncordon']")
    click(browser, "#confirm")
    await_page(browser, lambda d: rows(d, "nodes").get(cluster.node, {}).get("Status") == "Ready", 10, "Ready again")
    assert status_of(cluster) == "Ready"


def observed_ready(cluster: Cluster, service: str) -> int:
    entry = cluster.store.get(keys.observed(cluster.node, service))
    return Observed.from_dict(loads_json(entry.value)).ready if entry else 0


def status_of(cluster: Cluster) -> str:
    code, out, err = invoke(cluster.consul.addr, cluster.prefix, "status", "-o", "json")
    assert code in (0, 1), err
    return next(n["status"] for n in json.loads(out)["nodes"] if n["name"] == cluster.node)


def test_restart_from_the_service_page_replaces_the_replica(cluster: Cluster, dashboard: Any, browser: Any) -> None:
    def containers() -> tuple[int, set[str]]:
        entry = cluster.store.get(keys.observed(cluster.node, "web"))
        observed = Observed.from_dict(loads_json(entry.value)) if entry else None
        return (observed.ready, {c.id for c in observed.containers}) if observed else (0, set())

    before = wait_until(lambda: containers()[1] if containers()[0] == 1 else None, 60, what="web's replica")
    browser.get(dashboard.url + "service/web")
    click(browser, "a.act[href='/service/web/restart']")
    await_page(browser, lambda d: d.find_elements(By.ID, "confirm"), 10, "the confirmation")
    assert containers()[1] == before  # nothing happens before the confirmation
    click(browser, "#confirm")
    await_page(browser, lambda d: d.title == "web · meshop", 10, "back on the service page")
    wait_until(
        lambda: containers()[0] == 1 and not containers()[1] & before, 60, what=f"a new replica\n{cluster.logs()}"
    )
    await_page(browser, lambda d: "RestartRequested" in rows(d, "events", key="Kind"), 10, "the restart's event")
    doc = json.loads(cluster.store.get(keys.desired_service("web")).value)  # type: ignore[union-attr]
    assert doc["spec"]["restartedAt"].endswith("Z") and doc["spec"]["replicas"] == 1


BUSY = {"image": TEST_IMAGE, "command": ["/bin/sh"], "args": ["-c", "while :; do :; done"], "replicas": 1}
CHART_POINTS = """
  const row = [...document.querySelectorAll('table.' + arguments[0] + ' tbody tr')]
    .find(tr => tr.querySelector('td').innerText.trim() === arguments[1]);
  if (!row) return null;
  return {cpu: row.querySelectorAll('td')[2].innerText.trim(),
          charts: [...row.querySelectorAll('svg.spark')].map(s => {
            return Number(s.dataset.samples); })};
"""


def test_usage_charts_show_real_samples(cluster: Cluster, dashboard: Any, browser: Any, tmp_path: Path) -> None:
    """A replica that burns CPU shows in the usage tables with its CPU and a chart of real samples, live
    (the page is not reloaded), within 30 s of running; the node's charts as well; readable on a phone."""
    browser.get(dashboard.url)
    await_page(browser, lambda d: d.find_element(By.ID, "conn").text == "live", 10, "the event stream to open")
    cluster.store.put(keys.desired_service("busy"), service_doc("busy", **BUSY))
    try:
        wait_until(lambda: observed_ready(cluster, "busy") == 1, 60, what=f"busy running\n{cluster.logs()}")

        def busy_charted(d: Any) -> dict | None:
            found = d.execute_script(CHART_POINTS, "usage-services", "busy")
            # its CPU, and charts drawn from two samples at least (data-samples: real points, not the level line)
            return found if found and found["cpu"] not in ("0m", "") and min(found["charts"]) >= 2 else None

        busy = await_page(browser, busy_charted, 30, f"busy's CPU and charts on the page\n{cluster.logs()}")
        assert int(busy["cpu"].rstrip("m")) > 0 and len(busy["charts"]) == 2
        node = browser.execute_script(CHART_POINTS, "usage-nodes", cluster.node)
        assert node is not None and min(node["charts"]) >= 1
        assert browser.find_elements(By.CSS_SELECTOR, "main script") == []
        shot = tmp_path / "usage.png"
        browser.execute_script("document.querySelector('table.usage-nodes').scrollIntoView()")
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("MESHOP_USAGE_SCREENSHOT"):  # how docs/dashboard-usage.png is made
            shutil.copy(shot, os.environ["MESHOP_USAGE_SCREENSHOT"])
        browser.set_window_size(390, 844)
        try:
            assert browser.execute_script("return document.documentElement.scrollWidth") <= 390  # no side-scroll
        finally:
            browser.set_window_size(1280, 1000)
    finally:
        cluster.store.delete(keys.desired_service("busy"))
