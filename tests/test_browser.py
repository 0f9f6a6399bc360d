"""The real app in a real browser: Playwright drives Debian's Chromium against `streamlit run`."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "test-artifacts"
PAGES = {"": "ResNet Explorer", "architecture": "Architecture", "complexity": "Complexity"}

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "explorer/app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            pytest.fail(f"streamlit did not start:\n{process.stdout.read()}")
        time.sleep(0.5)
    yield url
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM) or os.path.exists(CHROMIUM), f"{CHROMIUM} is missing"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


def wait_until_idle(page, timeout: float = 120) -> None:
    """Until the script has finished: Streamlit shows its status widget while a run is going."""
    page.wait_for_selector("[data-testid='stMainBlockContainer']", timeout=timeout * 1000)
    deadline = time.time() + timeout
    quiet_since = None
    while time.time() < deadline:
        running = page.locator("[data-testid='stStatusWidget']").count() > 0
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 1.5:
            return
        time.sleep(0.25)
    raise AssertionError("the page kept running")


def assert_no_error(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name or 'home'}.png"))
    assert page.locator("[data-testid='stException']").count() == 0, f"{name}: an exception is shown"
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "This app has encountered an error" not in body


def test_every_page_opens_without_error(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    for path, title in PAGES.items():
        page.goto(f"{server}/{path}")
        wait_until_idle(page)
        page.get_by_role("heading", name=title).first.wait_for(timeout=30_000)
        assert_no_error(page, path)
    assert page.locator("[data-testid='stDataFrame']").count() == 2  # the Table 1 and Table 6 comparisons
    assert page.locator(".js-plotly-plot").count() >= 1
    assert not errors, errors


def test_navigation_and_bad_input_in_the_browser(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(server)
    wait_until_idle(page)
    page.get_by_role("link", name="Architecture").first.click()
    wait_until_idle(page)
    page.get_by_role("heading", name="Architecture").wait_for()
    assert page.get_by_text("269,722").count() >= 1
    assert page.locator(".js-plotly-plot").count() == 1  # the diagram

    depth = page.locator("input[type='number']").first
    depth.fill("21")
    depth.press("Enter")
    wait_until_idle(page)
    assert page.get_by_text("nearest valid: 20 or 26").count() == 1
    assert_no_error(page, "architecture-bad-depth")

    depth.fill("56")
    depth.press("Enter")
    wait_until_idle(page)
    page.get_by_text("plain", exact=True).click()
    wait_until_idle(page)
    assert page.get_by_text("cifar-plain56").count() >= 1
    assert page.get_by_text("853,018").count() >= 1
    assert_no_error(page, "architecture-plain56")


CHART_POINTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .map(plot => (plot.data || []).reduce((count, trace) => count + (trace.x ? trace.x.length : 0), 0))
    .reduce((a, b) => a + b, 0)"""


def test_live_training_updates_and_survives_switching_pages(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(f"{server}/train")
    wait_until_idle(page)
    page.get_by_label("Steps (quick, custom)").fill("80")
    page.get_by_label("Steps (quick, custom)").press("Tab")
    page.get_by_label("Training images (quick, custom)").fill("600")
    page.get_by_label("Training images (quick, custom)").press("Tab")
    page.get_by_role("button", name="Start").click()
    page.get_by_text("running").first.wait_for(timeout=60_000)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "train-start.png"))

    seen = [page.evaluate(CHART_POINTS)]
    deadline = time.time() + 120
    while len(set(seen)) < 3 and time.time() < deadline:  # the chart changed at least twice
        time.sleep(0.5)
        seen.append(page.evaluate(CHART_POINTS))
    assert len(set(seen)) >= 3, f"the chart did not update: {sorted(set(seen))}"
    page.screenshot(path=str(SCREENSHOTS / "train-middle.png"))
    assert page.locator("[data-testid='stException']").count() == 0

    page.get_by_role("link", name="Home").first.click()
    page.get_by_role("heading", name="ResNet Explorer").wait_for()
    page.get_by_role("link", name="Train").first.click()
    page.get_by_role("heading", name="Train").wait_for()
    page.locator("[data-testid='stProgress']").first.wait_for(timeout=30_000)
    body = page.locator("body").inner_text()
    assert "cifar-plain20" in body and "cifar-resnet20" in body
    assert "running" in body or "completed" in body
    page.get_by_text("completed").first.wait_for(timeout=180_000)
    page.screenshot(path=str(SCREENSHOTS / "train-end.png"))
    assert page.locator("[data-testid='stException']").count() == 0
