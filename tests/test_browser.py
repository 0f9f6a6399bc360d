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
        # Pretrained weights come from a port where nothing listens: offline, whatever the machine.
        env={**os.environ, "RESNET_EXPLORER_WEIGHTS_URL": "http://127.0.0.1:9",
             "TORCH_HOME": str(ROOT / "test-artifacts" / "torch-home")},
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
    page.get_by_label("Steps (quick, custom)").fill("300")  # 16 px by default: long enough to watch
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


def test_playground_from_a_shared_link_runs_live_and_pauses(server, browser):
    """A student opens an instructor's link: the settings come back, Run trains live, Pause stops it."""
    import re

    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server}/playground?dataset=circles&depth=20&width=8&nets=both&seed=3&lr=0.003")
    wait_until_idle(page)
    page.get_by_role("heading", name="Playground").wait_for()
    assert page.get_by_text("20 hidden layers of 8").count() == 2  # plain and residual, as the link says
    assert "dataset=circles" in page.url and "depth=20" in page.url and "lr=0.003" in page.url
    page.locator(".js-plotly-plot").nth(1).wait_for()  # the loss curves and the gradient norms
    assert page.locator("[data-testid='stImage'] img").count() == 2  # the two decision boundaries
    status = page.locator("strong", has_text=re.compile(r"^Step [\d,]+$"))
    assert status.inner_text() == "Step 0"

    page.get_by_role("button", name="Run").click()
    page.get_by_role("button", name="Pause").wait_for(timeout=30_000)
    seen = [page.evaluate(CHART_POINTS)]
    deadline = time.time() + 60
    while len(set(seen)) < 3 and time.time() < deadline:  # the curves grew at least twice
        time.sleep(0.3)
        seen.append(page.evaluate(CHART_POINTS))
    assert len(set(seen)) >= 3, f"the charts did not update: {sorted(set(seen))}"
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "playground-running.png"), full_page=True)
    assert int(status.inner_text().split()[1].replace(",", "")) > 0

    # Under load a click can land while the fragment redraws the page and be lost; a student clicks
    # again, and so does the test (at most three times). Seen once in CI on 2 busy cores.
    for _ in range(3):
        page.get_by_role("button", name="Pause").click()
        try:
            page.get_by_role("button", name="Run").wait_for(timeout=20_000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; try the click again
            continue
    page.get_by_role("button", name="Run").wait_for(timeout=10_000)
    time.sleep(1.5)  # a redraw already on its way may still land
    paused_at = status.inner_text()
    time.sleep(2)
    assert status.inner_text() == paused_at, "training went on after Pause"
    assert page.locator("body").inner_text().count("paused") >= 1
    assert_no_error(page, "playground-paused")
    assert not errors, errors

    page.get_by_role("link", name="Concepts").first.click()
    page.get_by_role("heading", name="Concepts").wait_for()
    wait_until_idle(page)
    assert page.locator("[data-testid='stGraphVizChart']").count() == 7
    assert_no_error(page, "concepts")


def test_gradcam_with_an_upload_a_sample_photo_and_trained_runs(server, browser, tmp_path):
    import numpy as np
    from PIL import Image

    from explorer.train.store import DEFAULT_RUNS_DIR

    for model in ("cifar-plain8", "cifar-resnet8"):
        out = DEFAULT_RUNS_DIR / f"browser-gradcam-{model}"
        if not (out / "model.pt").exists():
            subprocess.run([sys.executable, "-m", "explorer", "train", "--model", model, "--dataset", "shapes",
                            "--train-size", "128", "--test-size", "32", "--steps", "3", "--batch-size", "32",
                            "--probe-every", "0", "--out", str(out), "--json"], cwd=ROOT, check=True,
                           capture_output=True, timeout=300)
    page = browser.new_page(viewport={"width": 1400, "height": 2200})
    page.goto(f"{server}/gradcam")
    wait_until_idle(page)
    page.get_by_role("heading", name="Grad-CAM").wait_for()
    page.get_by_text("could not download the pretrained resnet50 weights").wait_for(timeout=60_000)
    assert page.get_by_text("upload it").count() >= 1
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "gradcam-offline.png"))

    page.get_by_text("Runs trained here").click()
    wait_until_idle(page)
    page.get_by_text("Heatmaps for").first.wait_for(timeout=120_000)
    assert page.locator("[data-testid='stImage']").count() >= 6  # image, heatmap, overlay for each run
    page.screenshot(path=str(SCREENSHOTS / "gradcam-sample-runs.png"), full_page=True)
    assert_no_error(page, "gradcam-sample")

    image = np.zeros((120, 200, 4), np.uint8)
    image[30:90, 60:140] = (240, 40, 40, 255)
    Image.fromarray(image, "RGBA").save(tmp_path / "drawing.png")
    (tmp_path / "notes.png").write_text("this is text, not a picture")
    page.get_by_text("Upload", exact=True).click()
    wait_until_idle(page)
    page.locator("input[type='file']").first.set_input_files(str(tmp_path / "notes.png"))
    page.get_by_text("not an image").wait_for(timeout=60_000)
    assert_no_error(page, "gradcam-bad-upload")
    page.locator("input[type='file']").first.set_input_files(str(tmp_path / "drawing.png"))
    wait_until_idle(page)
    page.get_by_text("Heatmaps for").first.wait_for(timeout=120_000)
    assert page.get_by_text("transparency composited onto white").count() >= 1
    page.screenshot(path=str(SCREENSHOTS / "gradcam-upload-runs.png"), full_page=True)
    assert_no_error(page, "gradcam-upload")
    page.close()
    for model in ("cifar-plain8", "cifar-resnet8"):  # the other pages' tests expect their own runs to be the latest
        shutil.rmtree(DEFAULT_RUNS_DIR / f"browser-gradcam-{model}", ignore_errors=True)
