"""The dashboard in a real browser: Debian's headless chromium driven by Selenium, against
``pyworkflow dashboard`` started as a subprocess on a free loopback port.

Without a browser the test is skipped, except in CI (``CI=true``), where it fails: the
browser is part of what CI installs (``.ci/run``). Screenshots of each page go to the
test's tmp dir (and to ``$DASHBOARD_SCREENSHOTS`` when set, e.g. ``docs/``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from pyworkflow import start
from pyworkflow.storage import FileStorageBackend

from . import dash_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
WAIT = 20.0  # seconds a page may take to show what is awaited (an upper bound, not a sleep)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser test can't run in CI: {why}")
    pytest.skip(why)


@pytest.fixture
def browser() -> Iterator[object]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        _unavailable(f"selenium is not installed ({exc})")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        _unavailable("no chromium/chromedriver on PATH (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
    except Exception as exc:
        _unavailable(f"chromium did not start: {exc}")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    data = tmp_path / "data"
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "pyworkflow", "dashboard", "--storage", f"file:{data}",
        "--app", "tests.dashboard.dash_app", "--port", str(port), "--interval", "0.2",
    ]  # fmt: skip
    log = (tmp_path / "dashboard.log").open("w")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + WAIT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail((tmp_path / "dashboard.log").read_text())
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", data
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _start(data: Path, workflow: object, *args: object) -> str:
    async def go() -> str:
        storage = FileStorageBackend(data, durability="none")
        return await start(workflow, *args, storage=storage)  # type: ignore[arg-type]

    return anyio.run(go)


def _shoot(driver: object, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path)), path  # type: ignore[attr-defined]
    extra = os.environ.get("DASHBOARD_SCREENSHOTS")
    if extra:
        shutil.copy(path, Path(extra) / f"dashboard-{name}.png")


def test_the_dashboard_in_a_browser(
    browser: object, dashboard: tuple[str, Path], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver: object = browser
    base, data = dashboard
    wait = WebDriverWait(driver, WAIT)  # type: ignore[arg-type]

    driver.get(base + "/")  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "body.connected")))
    run_id = _start(data, dash_app.approval, "order-1")  # while the page is open
    row = (By.CSS_SELECTOR, f'tr[data-run-id="{run_id}"]')
    wait.until(ec.presence_of_element_located(row))  # appeared live, without a reload
    _shoot(driver, tmp_path, "runs")

    driver.find_element(*row).find_element(By.TAG_NAME, "a").click()  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "svg#timeline g.bar.hook")))
    assert driver.find_elements(By.CSS_SELECTOR, "svg#timeline g.bar.step.ok")  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "body.connected")))
    driver.execute_script("window.notReloaded = true")  # type: ignore[attr-defined]
    payload = driver.find_element(By.CSS_SELECTOR, "form.hook textarea")  # type: ignore[attr-defined]
    payload.clear()
    payload.send_keys('{"by": "dana"}')
    driver.find_element(By.CSS_SELECTOR, "form.hook button").click()  # type: ignore[attr-defined]
    wait.until(ec.text_to_be_present_in_element((By.ID, "run-status"), "completed"))
    assert driver.execute_script("return window.notReloaded === true")  # type: ignore[attr-defined]
    assert "dana" in driver.find_element(By.CSS_SELECTOR, "pre.result").text  # type: ignore[attr-defined]
    _shoot(driver, tmp_path, "run")

    other = _start(data, dash_app.napper, "order-2", 3600)
    driver.get(f"{base}/runs/{other}")  # type: ignore[attr-defined]
    field = (By.CSS_SELECTOR, "form.cancel input[name=reason]")
    reason = wait.until(ec.presence_of_element_located(field))
    reason.send_keys("customer called")
    driver.find_element(By.CSS_SELECTOR, "form.cancel button").click()  # type: ignore[attr-defined]
    wait.until(ec.text_to_be_present_in_element((By.ID, "run-status"), "cancelled"))
    wait.until(ec.text_to_be_present_in_element((By.ID, "run-live"), "customer called"))
    _shoot(driver, tmp_path, "cancelled")
