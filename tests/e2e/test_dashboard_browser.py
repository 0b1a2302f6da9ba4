"""The dashboard in a real headless Chromium (Selenium), against the local server on 127.0.0.1.

Needs Debian's chromium and chromium-driver (scripts/install-browser); skipped, saying so,
only when chromium is not installed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.local.api import LocalApi
from chalicelib.ui.server import serve_in_thread
from tests.e2e.cli import write_workflow
from updraft import Client

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="chromium and chromium-driver are not installed: scripts/install-browser installs them")
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1200")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="updraft-chromium-")
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Client]]:
    workdir = str(tmp_path / "wd")
    server, base = serve_in_thread(LocalApi(workdir), 0, "browser test")
    assert base.startswith("http://127.0.0.1:")
    try:
        yield base, Client(workdir=workdir)
    finally:
        server.shutdown()
        server.server_close()


def until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the page may be between two renders
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, element_id).text)


def drawn_pixels(driver: Any, canvas_id: str) -> int:
    return int(driver.execute_script(
        "const c = document.getElementById(arguments[0]); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) "
        "if (d[i]) n++; return n;", canvas_id))


def test_a_finished_run_shows_counts_dag_gantt_and_a_task_log(browser: Any, site: tuple[str, Client],
                                                              tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    base, client = site
    wf = write_workflow(tmp_path / "done.json", [
        {"id": "split", "shell": "echo 1 > a; echo 2 > b", "outputs": ["a", "b"], "type": "split"},
        {"id": "left", "shell": "cat a > l; echo left-was-here", "inputs": ["a"], "outputs": ["l"], "type": "work"},
        {"id": "right", "shell": "echo right-broke >&2; exit 4", "inputs": ["b"], "outputs": ["r"], "type": "work"},
        {"id": "join", "command": ["cat", "l", "r"], "inputs": ["l", "r"], "type": "join"}])
    run_id = client.submit(str(wf))["run_id"]
    assert client.wait(run_id, timeout=60)["state"] == "FAILED"

    browser.get(base + "#/runs/" + run_id)
    until(lambda: text(browser, "run-state") == "FAILED", what="the run's state")
    assert text(browser, "count-SUCCEEDED") == "2" and text(browser, "count-FAILED") == "1"
    assert text(browser, "count-UPSTREAM_FAILED") == "1" and text(browser, "run-done") == "4 / 4 done"
    assert text(browser, "run-name") == "done" and text(browser, "run-id") == run_id
    assert until(lambda: drawn_pixels(browser, "dag") > 500, what="the DAG drawing")
    assert drawn_pixels(browser, "gantt") > 500 and drawn_pixels(browser, "conc") > 500
    assert browser.find_element(By.ID, "btn-cancel").get_attribute("disabled") is not None
    rows = {r.get_attribute("data-task"): r for r in browser.find_elements(By.CSS_SELECTOR, "#tasks-table tbody tr")}
    assert set(rows) == {"split", "left", "right", "join"}
    cells = [td.text for td in rows["left"].find_elements(By.TAG_NAME, "td")]
    assert cells[:5] == ["left", "work", "SUCCEEDED", "1", "function"]  # the type comes from the graph
    rows["right"].click()
    until(lambda: "right-broke" in text(browser, "task-log"), what="the failed task's log tail")
    assert "NONZERO_EXIT" in text(browser, "task-meta") and "exit 4" in text(browser, "task-meta")

    browser.get(base + "#/")
    listed = until(lambda: browser.find_elements(By.CSS_SELECTOR, f"#runs-table tr[data-run='{run_id}']"),
                   what="the run in the list")
    assert "FAILED" in listed[0].text and "4/4" in listed[0].text
    listed[0].click()
    until(lambda: text(browser, "run-id") == run_id, what="the run page after a click")


def test_a_running_run_updates_live_and_cancel_stops_it(browser: Any, site: tuple[str, Client],
                                                        tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    base, client = site
    chain = [{"id": f"step{i}", "shell": f"sleep 1; echo {i} > s{i}" + (f"; cat s{i - 1}" if i else ""),
              "inputs": [f"s{i - 1}"] if i else [], "outputs": [f"s{i}"], "type": "step"} for i in range(3)]
    chain.append({"id": "forever", "shell": "sleep 120", "inputs": ["s2"], "type": "wait"})
    run_id = client.submit(str(write_workflow(tmp_path / "live.json", chain)))["run_id"]

    browser.get(base + "#/runs/" + run_id)
    until(lambda: text(browser, "run-state") == "RUNNING", what="the RUNNING badge")
    seen = {int(browser.find_element(By.ID, "run-done").get_attribute("data-done"))}
    until(lambda: seen.add(int(browser.find_element(By.ID, "run-done").get_attribute("data-done"))) or
          len(seen) >= 3, timeout=45, what="the done count to change as tasks finish")
    until(lambda: text(browser, "count-RUNNING") == "1" and text(browser, "count-SUCCEEDED") == "3",
          timeout=30, what="the last task running")
    assert browser.find_element(By.ID, "btn-resume").get_attribute("disabled") is not None
    browser.find_element(By.ID, "btn-cancel").click()
    until(lambda: text(browser, "run-state") == "CANCELLED", what="the CANCELLED badge")
    assert text(browser, "count-CANCELLED") == "1" and text(browser, "count-SUCCEEDED") == "3"
    assert client.get(run_id)["state"] == "CANCELLED"
    assert browser.find_element(By.ID, "btn-resume").get_attribute("disabled") is None
    assert text(browser, "message") == ""


def test_the_gantt_draws_every_attempt_and_counts_the_failed_ones(browser: Any, site: tuple[str, Client],
                                                                  tmp_path: Path) -> None:
    """A retried task is one bar per attempt, its failed attempts hatched in red and counted in
    the Gantt's title, as `updraft report` draws them (report/model.py: TaskRow.spans)."""
    base, client = site
    wf = write_workflow(tmp_path / "tries.json", [
        {"id": "ok", "shell": "echo ok > ok", "outputs": ["ok"], "type": "ok"},
        {"id": "flaky", "shell": 'test "$UPDRAFT_ATTEMPT" -ge 3 && echo f > f', "outputs": ["f"],
         "retries": 2, "type": "flaky"},
        {"id": "bad", "shell": "exit 3", "retries": 1, "type": "bad"}])
    run_id = client.submit(str(wf))["run_id"]
    assert client.wait(run_id, timeout=120)["state"] == "FAILED"

    browser.get(base + "#/runs/" + run_id)
    until(lambda: text(browser, "run-state") == "FAILED", what="the run's state")
    info = until(lambda: text(browser, "gantt-info"), what="the Gantt's attempt count")
    assert info == "6 attempts, 4 failed (3 retried)"
    bars = browser.execute_script("return view.ganttAttempts")
    assert sorted(map(tuple, bars)) == [("bad", 1, "FAILED"), ("bad", 2, "FAILED"), ("flaky", 1, "FAILED"),
                                        ("flaky", 2, "FAILED"), ("flaky", 3, "SUCCEEDED"), ("ok", 1, "SUCCEEDED")]
    red = browser.execute_script(
        "const c = document.getElementById('gantt'); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 0; i < d.length; i += 4) "
        "if (d[i] > 150 && d[i + 1] < 80 && d[i + 2] < 80 && d[i + 3] > 0) n++; return n;")
    assert red > 50  # the failed attempts' red hatching and outline are drawn
