"""The real app in a real browser: Playwright drives Debian's Chromium against `streamlit run`."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import ROOT
from tests.live_server import streamlit_server

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "test-artifacts"
# The pages the other browser tests do not open (Train, Playground, Concepts, Grad-CAM have their own); last
# Complexity, whose tables the test then checks.
PAGES = {"": "ResNet Explorer", "architecture": "Architecture", "runs": "Runs", "responses": "Layer responses",
         "gradients": "Gradient flow", "lesion": "Lesion study", "landscape": "Loss landscape",
         "complexity": "Complexity"}

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)", allow_module_level=True)


@pytest.fixture(scope="module")
def server():
    with streamlit_server() as (url, _):
        yield url


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


def requests_leaving(page, server: str) -> list[str]:
    """Every request the page makes to anywhere but the app's own server (none may leave the machine:
    offline it would fail, and in class it would tell a third party who opened the app)."""
    own = (server, server.replace("http://", "ws://", 1), "data:", "blob:", "about:")
    leaving: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(own) else leaving.append(request.url))
    return leaving


def _poll(condition, message: str, timeout: float = 30) -> None:
    """Wait for a condition of the page, checked every 0.1 s (a busy machine only makes it later)."""
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, message
        time.sleep(0.1)


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
    leaving = requests_leaving(page, server)
    for path, title in PAGES.items():
        page.goto(f"{server}/{path}")
        wait_until_idle(page)
        page.get_by_role("heading", name=title).first.wait_for(timeout=30_000)
        assert_no_error(page, path)
    assert page.locator("[data-testid='stDataFrame']").count() == 2  # the Table 1 and Table 6 comparisons
    page.locator(".js-plotly-plot").first.wait_for()  # plotly draws after the script run has ended
    assert not errors, errors
    assert not leaving, f"requests that left the machine: {leaving}"


def test_navigation_and_bad_input_in_the_browser(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(server)
    wait_until_idle(page)
    page.get_by_role("link", name="Architecture").first.click()
    wait_until_idle(page)
    page.get_by_role("heading", name="Architecture").wait_for()
    page.get_by_text("269,722").first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()  # plotly draws after the script run has ended
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
    leaving = requests_leaving(page, server)
    page.goto(f"{server}/train")
    wait_until_idle(page)
    page.get_by_label("Steps", exact=True).fill("300")  # 16 px by default: long enough to watch
    page.get_by_label("Steps", exact=True).press("Tab")
    page.get_by_label("Training images", exact=True).fill("600")
    page.get_by_label("Training images", exact=True).press("Tab")
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
    for model in ("cifar-plain20", "cifar-resnet20"):  # the panel draws one run after the other
        page.get_by_text(model).first.wait_for(timeout=30_000)
    body = page.locator("body").inner_text()
    assert "running" in body or "completed" in body
    page.get_by_text("completed").first.wait_for(timeout=180_000)
    page.screenshot(path=str(SCREENSHOTS / "train-end.png"))
    assert page.locator("[data-testid='stException']").count() == 0
    assert not leaving, f"requests that left the machine: {leaving}"


def test_playground_from_a_shared_link_runs_live_and_pauses(server, browser):
    """A student opens an instructor's link: the settings come back, Run trains live, Pause stops it."""
    import re

    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    leaving = requests_leaving(page, server)
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

    # Training runs in the playground's worker thread, not in the page's script, so every click is
    # answered: ten pauses and resumes in a row, each with one click and never a second.
    run_button, pause_button = page.get_by_role("button", name="Run"), page.get_by_role("button", name="Pause")
    status_line = page.locator("p", has=status)
    for _ in range(10):
        pause_button.click()
        run_button.wait_for(timeout=20_000)
        run_button.click()
        pause_button.wait_for(timeout=20_000)
    pause_button.click()
    run_button.wait_for(timeout=20_000)
    # 'pausing' while the worker finishes its slice in flight, then 'paused' on the nets' final state
    _poll(lambda: status_line.inner_text().endswith("paused"), "the status line did not say paused")

    def shown_steps() -> int:
        return int(status.inner_text().split()[1].replace(",", ""))

    paused_at = shown_steps()
    page.get_by_role("button", name="Step").click()  # paused means paused: one Step adds exactly one step
    _poll(lambda: shown_steps() != paused_at, "Step did not train")
    assert shown_steps() == paused_at + 1, "training went on after Pause"
    assert page.locator("body").inner_text().count("paused") >= 1
    assert_no_error(page, "playground-paused")
    assert not errors, errors

    page.get_by_role("link", name="Concepts").first.click()
    page.get_by_role("heading", name="Concepts").wait_for()
    wait_until_idle(page)
    assert page.locator("[data-testid='stGraphVizChart']").count() == 7
    assert_no_error(page, "concepts")
    assert not leaving, f"requests that left the machine: {leaving}"


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
    leaving = requests_leaving(page, server)
    page.goto(f"{server}/gradcam")
    wait_until_idle(page)
    page.get_by_role("heading", name="Grad-CAM").wait_for()
    # Offline, with runs here: it opens on them, and works.
    page.get_by_text("Heatmaps for").first.wait_for(timeout=120_000)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.get_by_role("radiogroup", name="Model").get_by_text("ImageNet ResNet (pretrained)").click()
    wait_until_idle(page)
    page.get_by_text("cannot be downloaded").wait_for(timeout=60_000)
    assert page.get_by_text("Errno").count() == 0 and page.get_by_text("Downloading").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "gradcam-offline.png"))

    page.get_by_role("radiogroup", name="Model").get_by_text("Runs trained here").click()
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
    assert not leaving, f"requests that left the machine: {leaving}"
    page.close()
    for model in ("cifar-plain8", "cifar-resnet8"):  # the other pages' tests expect their own runs to be the latest
        shutil.rmtree(DEFAULT_RUNS_DIR / f"browser-gradcam-{model}", ignore_errors=True)


# --- a class: students on one server, training in worker processes (issue 12) -------------------

SESSION_COOKIE = "resnet_explorer_session"  # explorer/ui/session.py
TICK = os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def student_server(tmp_path_factory):
    """A server that treats this machine as a student (every browser here is one), its runs apart."""
    runs = tmp_path_factory.mktemp("student-runs")
    with streamlit_server({"RESNET_EXPLORER_LOCAL_IS_INSTRUCTOR": "0", "RESNET_EXPLORER_RUNS": str(runs)}) as (url, process):
        yield SimpleNamespace(url=url, pid=process.pid, runs=runs)


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # the fields after the command name


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(the process's own CPU seconds, its descendants'), from /proc: utime + stime, and for the
    descendants also the children they reaped (cutime + cstime), so a worker that ended still counts."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _proc_stat(int(entry))):
            parents[int(entry)] = int(fields[1])
    tree, grew = {pid}, True
    while grew:
        found = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    fields = _proc_stat(pid) or ["0"] * 15
    own = (int(fields[11]) + int(fields[12])) / TICK
    children = (int(fields[13]) + int(fields[14])) / TICK
    for child in tree - {pid}:
        if child_fields := _proc_stat(child):
            children += sum(int(value) for value in child_fields[11:15]) / TICK
    return own, children


def _wait_until_server_rests(pid: int, timeout: float = 120) -> None:
    """Until the server's own process is nearly idle: its background warm-up (tracing the paper's
    models for the Complexity page) runs in it for a while after it starts."""
    deadline = time.time() + timeout
    last = _cpu_seconds(pid)[0]
    while time.time() < deadline:
        time.sleep(2)
        now = _cpu_seconds(pid)[0]
        if now - last < 0.3:
            return
        last = now
    raise AssertionError("the server process kept working while nothing was asked of it")


def _session_key(context, timeout: float = 30) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for cookie in context.cookies():
            if cookie["name"] == SESSION_COOKIE:
                return cookie["value"]
        time.sleep(0.2)
    raise AssertionError(f"the app set no {SESSION_COOKIE} cookie")


def _open_train(context, url: str):
    page = context.new_page()
    page.goto(f"{url}/train")
    page.get_by_role("heading", name="Train", exact=True).wait_for(timeout=60_000)
    page.get_by_role("button", name="Start").wait_for(timeout=60_000)
    wait_until_idle(page)
    return page


def _start_quick_pair(page, steps: int, images: int, smallest_net: bool = True) -> None:
    """Fill the Train page's form for a quick pair and click Start (16x16 images, the CPU default)."""
    for label, value in (("Steps", steps), ("Training images", images)):
        page.get_by_label(label, exact=True).fill(str(value))
        page.get_by_label(label, exact=True).press("Tab")
    sliders = ["Batch size", "Image size"]
    for label in sliders + (["Depth"] if smallest_net else []):
        slider = page.get_by_role("slider", name=label)
        slider.focus()
        slider.press("Home")  # depth 8, batch 16, 16 pixels: the smallest of each
    assert page.get_by_role("slider", name="Image size").get_attribute("aria-valuetext") == "16"
    page.get_by_role("button", name="Start").click()


def _runs_of(runs: Path, key: str) -> dict[str, dict]:
    """Run folder name -> status, for the runs whose status.json names ``key`` as their owner."""
    found = {}
    for path in runs.glob("*/status.json"):
        try:
            status = json.loads(path.read_text())
        except ValueError:  # being replaced at this moment; the next look reads it
            continue
        if status.get("owner") == key:
            found[path.parent.name] = status
    return found


def _wait_for_runs(runs: Path, key: str, condition, timeout: float = 120) -> dict[str, dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = _runs_of(runs, key)
        if len(found) == 2 and all(condition(status) for status in found.values()):
            return found
        time.sleep(0.2)
    raise AssertionError(f"{key}'s runs never got there: {_runs_of(runs, key)}")


def _listed_run_ids(page) -> list[str]:
    """The tags of the runs in the Runs page's table (``cifar-plain8 · 02f2``: the folder name's last
    4 hex digits), read from the grid's accessible copy (the grid is a canvas)."""
    page.get_by_role("heading", name="Runs", exact=True).wait_for(timeout=60_000)
    wait_until_idle(page)
    grid = page.locator("[data-testid='stDataFrame'] table[role='grid']")
    grid.wait_for(state="attached", timeout=30_000)
    labels = grid.locator("td[aria-colindex='1']").all_inner_texts()
    assert len(labels) == int(grid.get_attribute("aria-rowcount")) - 1, "the grid left rows out"
    return [label.rsplit(" · ", 1)[-1] for label in labels]


def _tags(folders) -> list[str]:
    return [folder[-4:] for folder in folders]


def test_two_students_each_see_only_their_own_runs(student_server, browser):
    from PIL import Image

    contexts = [browser.new_context(viewport={"width": 1200, "height": 1000}) for _ in range(2)]
    pages = [_open_train(context, student_server.url) for context in contexts]
    keys = [_session_key(context) for context in contexts]
    assert keys[0] != keys[1]
    for page in pages:  # both train at once
        _start_quick_pair(page, steps=10, images=100)
    owned = [_wait_for_runs(student_server.runs, key, lambda status: status.get("state") == "completed")
             for key in keys]

    SCREENSHOTS.mkdir(exist_ok=True)
    shots = []
    for number, (page, own, other) in enumerate(zip(pages, owned, owned[::-1]), 1):
        page.get_by_role("link", name="Runs", exact=True).first.click()
        listed = _listed_run_ids(page)
        assert sorted(listed) == sorted(_tags(own)), f"student {number} sees {listed}, owns {sorted(own)}"
        assert not set(listed) & set(_tags(other))
        whose = page.locator("[data-testid='stDataFrame'] table[role='grid'] td[aria-colindex='2']").all_inner_texts()
        assert whose and set(whose) == {"yours"}, f"student {number}'s table says whose: {whose}"
        page.locator(".js-plotly-plot").first.wait_for()  # drawn, for the screenshot
        assert_no_error(page, f"student-{number}-runs")
        shots.append(Image.open(SCREENSHOTS / f"student-{number}-runs.png"))
    both = Image.new("RGB", (shots[0].width + shots[1].width + 16, max(shot.height for shot in shots)), "black")
    both.paste(shots[0], (0, 0))
    both.paste(shots[1], (shots[0].width + 16, 0))
    both.save(SCREENSHOTS / "two-students-runs.png")

    # A new tab of the same browser brings back the same key, and so the same runs.
    again = contexts[0].new_page()
    again.goto(f"{student_server.url}/runs")
    assert sorted(_listed_run_ids(again)) == sorted(_tags(owned[0]))
    for context in contexts:
        context.close()


def test_training_runs_in_workers_not_in_the_server_process(student_server, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = _open_train(context, student_server.url)
    key = _session_key(context)
    _wait_until_server_rests(student_server.pid)
    server_before, workers_before = _cpu_seconds(student_server.pid)
    # ResNet-20 and plain-20 (the default depth), a few seconds of training each, the page open.
    _start_quick_pair(page, steps=200, images=400, smallest_net=False)
    page.get_by_text("running").first.wait_for(timeout=60_000)
    _wait_for_runs(student_server.runs, key, lambda status: status.get("state") == "completed", timeout=150)
    server_after, workers_after = _cpu_seconds(student_server.pid)
    server, workers = server_after - server_before, workers_after - workers_before
    print(f"CPU seconds while the pair trained: server process {server:.2f}, its workers {workers:.2f}")
    page.get_by_text("completed").first.wait_for(timeout=30_000)
    assert_no_error(page, "student-train-done")
    assert workers > 2, f"the workers used only {workers:.1f} CPU seconds: did anything train?"
    assert server < 0.25 * workers, f"the server process used {server:.1f} CPU seconds, its workers {workers:.1f}"
    context.close()


def test_a_killed_worker_leaves_the_run_resumable_from_its_checkpoint(student_server, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    page = _open_train(context, student_server.url)
    key = _session_key(context)
    _start_quick_pair(page, steps=1000, images=200)  # a checkpoint every 100 steps
    # Killed between a checkpoint and the next, so that the last logged step is not the checkpoint's.
    running = _wait_for_runs(student_server.runs, key, lambda status: status.get("state") == "running"
                             and status.get("step", 0) > (status.get("checkpoint_step") or 10**9) >= 100)
    server_session = set()  # the server started a session of its own: its fork server and workers are in it
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _proc_stat(int(entry))) and int(fields[3]) == student_server.pid:
            server_session.add(int(entry))
    for status in running.values():
        assert status["pid"] in server_session, f"worker {status['pid']} is not this server's"  # only ours, by id
        os.kill(status["pid"], signal.SIGKILL)
    ended = _wait_for_runs(student_server.runs, key, lambda status: status.get("state") == "interrupted", timeout=60)
    for status in ended.values():
        checkpoint = status["checkpoint_step"]
        assert status["step"] >= checkpoint, status  # > but for a checkpoint written in the instant before the kill
        assert f"resumes from the checkpoint at step {checkpoint}" in status["message"], status["message"]
        page.get_by_text(f"resumes from the checkpoint at step {checkpoint}").first.wait_for(timeout=30_000)
    assert page.get_by_role("button", name="Resume").count() == 2
    assert_no_error(page, "student-worker-killed")

    page.get_by_role("button", name="Resume").first.click()  # picked up at once, not after a minute
    page.get_by_text(" of 1,000; running").first.wait_for(timeout=30_000)
    context.close()
