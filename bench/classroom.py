"""A class on one server: browser sessions that each start a quick pair, in waves.

    python bench/classroom.py [--sessions 30] [--wave 5] [--steps 300] [--students-niceness 0]

One ``streamlit run explorer/app.py`` on 127.0.0.1 with RESNET_EXPLORER_LOCAL_IS_INSTRUCTOR=0, so
that every session is a student although all come from this machine, its runs in a fresh folder.
Each session is a headless Chromium context of its own (its own cookies: its own key); a wave of
them opens the Train page and starts a quick pair at small settings (depth 8, 300 steps, batch 16,
100 training images, 16x16 pixels: a wave's runs train for a minute or more). While they train,
every open session clicks between the Train and Runs pages in the sidebar, and its Train page
polls its runs as it would in class. Each click is timed twice:

- "server": from the click's request reaching the server to the new page's title leaving it,
  taken on the wire by bench/wire_clock.py (a pass-through proxy at the server's priority, one
  port per session). This is the server's answer, whatever the browsers do.
- "shown": from the click to the title on screen in Chromium. In class each browser has a laptop
  of its own; here every page draws on the server's 2 cores beside the training workers, so this
  measures this machine, and is recorded, not checked.

The students' Chromium weighs as the server's session (under autogroup scheduling, its autogroup
has the server's niceness, 0): the server's answer is timed against every page's full load on its
cores, more than a class puts on it. --students-niceness 10 holds the students' pages below the
server and its workers instead (see BrowserNiceness); their pages then fall behind their own
polling, and so put less load on the server than a class does.

The instructor's page (a Chromium of its own at the server's priority, as a projector's browser on
the server's machine, driven from a thread of its own) opens the app with the instructor's token,
so its Runs page lists every run of the class; it clicks Runs and Train in turn, a second apart, for
the whole class, and is reported apart.

Measured and checked:

- every run completes (two per session, all "completed" in their status.json);
- no session sees another's runs: each session's Runs page lists exactly the run folders whose
  status.json names its key as owner (the key is its cookie), when its wave ends and again at the
  end in a new tab of the same browser context;
- a click on another page while runs train is answered within 1 s at the 95th percentile by the
  server, on the wire: the students' clicks (at least one per session) and the instructor's;
- the server process's memory (RSS, from /proc) before the class and after it.

Recorded beside them: the load the pages put on the server (page runs and fragment reruns asked
for, per page per second, against what a Train page that keeps up asks for), the CPU of each part,
and how long the server's threads waited for a core. The load average before is written beside
the numbers: the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import common
from app_preset import (CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, CpuSampler, Server, descendants,
                        rss_mb, run_states, wait_for_script)
from wire_clock import WireClock

from explorer.train.presets import PRESETS
from explorer.train.worker import WORKER_NICENESS
from explorer.ui.failures import UNFORESEEN
from explorer.ui.live import ACTIVE, CHART_REFRESH_SECONDS, REFRESH_SECONDS

COOKIE = "resnet_explorer_session"  # explorer/ui/session.py
PAIR = {"Training images": "100"}  # and the steps: --steps
SLIDERS = {"Depth": "8", "Batch size": "16", "Image size": "16"}
CLICK_TIMEOUT_S = 30
INSTRUCTOR_TOKEN = "bench-instructor"
STUDENTS_NICENESS = 0  # --students-niceness: as the server's session (see BrowserNiceness)
KEEPING_UP_REQUESTS_PER_S = 1 / REFRESH_SECONDS + 1 / CHART_REFRESH_SECONDS  # a Train page's fragments while runs train
DUMP_SLOW: int | None = None  # --dump-slow: the server's pid


class Student:
    def __init__(self, number: int, browser, clock: WireClock, port: int):
        self.number = number
        self.clock, self.port = clock, port
        self.url = f"http://127.0.0.1:{port}"  # through the wire clock to the server
        self.context = browser.new_context(viewport={"width": 1300, "height": 1100})
        self.page = None
        self.key: str | None = None
        self.clicked_at: float | None = None  # time.time() of Start
        self.start_retries = 0

    def open_train(self, query: str = "") -> None:
        self.page = self.context.new_page()
        self.page.goto(f"{self.url}/train{query}")
        self.page.get_by_role("heading", name="Train", exact=True).wait_for(timeout=120_000)
        self.page.get_by_role("button", name="Start").wait_for(timeout=120_000)
        wait_for_script(self.page)
        self.key = self._cookie()

    def _cookie(self, timeout: float = 30) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for cookie in self.context.cookies():
                if cookie["name"] == COOKIE:
                    return cookie["value"]
            time.sleep(0.2)
        raise AssertionError(f"session {self.number}: the app set no {COOKIE} cookie")

    def fill_form(self, steps: int) -> None:
        page = self.page
        for label, value in {"Steps": str(steps), **PAIR}.items():
            page.get_by_label(label, exact=True).fill(value)
            page.get_by_label(label, exact=True).press("Tab")
        for label, value in SLIDERS.items():
            slider = page.get_by_role("slider", name=label)
            slider.focus()
            slider.press("Home")  # the smallest of each: 8, 16, 16
            assert slider.get_attribute("aria-valuetext") == value, (label, slider.get_attribute("aria-valuetext"))

    def start(self, runs_dir: Path) -> None:
        for attempt in range(2):
            self.clicked_at = time.time()
            self.page.get_by_role("button", name="Start").click()
            if self._wait_own_runs(runs_dir, 2, timeout=60):
                return
            self.start_retries += 1  # a click lost while the page redrew: a student clicks again
        raise AssertionError(f"session {self.number}: Start made no runs")

    def _wait_own_runs(self, runs_dir: Path, count: int, timeout: float) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.own_runs(runs_dir)) >= count:
                return True
            time.sleep(0.2)
        return False

    def own_runs(self, runs_dir: Path) -> dict[str, dict]:
        return {run: status for run, status in run_states(runs_dir).items() if status.get("owner") == self.key}

    def go(self, title: str) -> dict:
        """Click the sidebar link to ``title``. Seconds until the page shows that title (inf if never),
        and from the click's request reaching the server to the title leaving it (the wire clock)."""
        link = self.page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title, exact=True)
        left_showing = self.failures_shown()  # what the page being left showed while it stood (its fragments too)
        started = time.monotonic()
        if DUMP_SLOW:
            threading.Thread(target=self._dump_if_slow, args=(started, title), daemon=True).start()
        try:
            link.click(timeout=CLICK_TIMEOUT_S * 1000)
            self.page.get_by_role("heading", name=title, exact=True).wait_for(timeout=CLICK_TIMEOUT_S * 1000)
        except Exception as error:  # noqa: BLE001 - playwright's: a link never there, a click never answered, ...
            failed_after = time.monotonic() - started
            return {"shown": math.inf, "server": self.clock.answer(self.port, started, title, wait=0),
                    "unanswered": self._what_the_wire_saw(started, title), "failures_shown": left_showing
                    + self.failures_shown(),
                    "error": f"after {failed_after:.1f} s: {type(error).__name__}: {str(error).splitlines()[0][:200]}"}
        shown = time.monotonic() - started
        return {"shown": shown, "server": self.clock.answer(self.port, started, title),
                "failures_shown": left_showing + self.failures_shown()}

    def failures_shown(self) -> int:
        """Exception elements (Streamlit's red box) and the app's own failure messages on the page now."""
        return (self.page.locator("[data-testid='stException']").count()
                + self.page.get_by_text(UNFORESEEN).count())

    def _dump_if_slow(self, started: float, title: str) -> None:
        """With --dump-slow: where the server's threads are when a click's request has waited 1.5 s
        on it (py-spy dump, which must be on PATH), into test-artifacts/slow-clicks.txt."""
        time.sleep(1.5)
        if math.isnan(self.clock.answer(self.port, started, title, wait=0)) and any(
                kind == "rerun" and t >= started for t, kind, _ in self.clock.events(self.port)):
            dump = subprocess.run(["py-spy", "dump", "--nonblocking", "--pid", str(DUMP_SLOW)], capture_output=True,
                                  text=True, check=False)
            with open(SCREENSHOTS / "slow-clicks.txt", "a") as out:
                out.write(f"\n==== session {self.number}, to {title}, 1.5 s after the click ====\n{dump.stdout}")

    def _what_the_wire_saw(self, since: float, title: str) -> str:
        """For a click the page never answered: did its request reach the server, did the title leave it?"""
        events = [(round(t - since, 2), kind, detail) for t, kind, detail in self.clock.events(self.port)
                  if t >= since]
        asked = [event for event in events if event[1] == "rerun"]
        sent = [event for event in events if event[1] == "title" and event[2] == title]
        if not asked:
            return "the request never reached the server (the browser did not send it)"
        if not sent:  # which page each request named (a script hash, or a name on a first load), and what it sent
            titles = sorted({event[2] for event in events if event[1] == "title"})
            return (f"the server got requests for {[event[2] for event in asked][:3]} from +{asked[0][0]} s and sent "
                    f"no {title!r} title (titles sent: {titles})")
        return f"the server got it at +{asked[0][0]} s and sent the title at +{sent[0][0]} s; the page did not draw it"

    def listed_run_ids(self) -> list[str]:
        """The tags of the runs in the Runs page's table (its accessible copy of the canvas grid)."""
        page = self.page
        page.get_by_role("heading", name="Runs", exact=True).wait_for(timeout=60_000)
        wait_for_script(page)
        if page.get_by_text("No runs yet").count():
            return []
        grid = page.locator("[data-testid='stDataFrame'] table[role='grid']")
        grid.wait_for(state="attached", timeout=60_000)
        rows = int(grid.get_attribute("aria-rowcount")) - 1  # less the header
        labels = grid.locator("td[aria-colindex='1']").all_inner_texts()
        assert len(labels) == rows, f"the grid drew {len(labels)} of {rows} rows"
        return [label.rsplit(" · ", 1)[-1] for label in labels]  # "cifar-plain8 · 02f2": the folder's last 4

    def check_sees_only_own(self, runs_dir: Path) -> list[str]:
        """Problems (none: this session's Runs page lists exactly its own runs and the shared ones)."""
        own = {folder[-4:] for folder in self.own_runs(runs_dir)}
        # and the shared ones (the instructor's demo): a student sees those too
        own |= {folder[-4:] for folder, status in run_states(runs_dir).items() if status.get("owner") is None}
        listed = self.listed_run_ids()
        problems = []
        if set(listed) != own:
            others = sorted(set(listed) - own)
            missing = sorted(own - set(listed))
            problems.append(f"session {self.number}: lists {len(others)} run(s) of others {others[:3]}, "
                            f"misses {missing}")
        return problems

    def close_page(self) -> None:
        if self.page is not None:
            self.page.close()
            self.page = None


def chromium_at_niceness(niceness: int, stack: contextlib.ExitStack) -> tuple[Path, Path]:
    """A Chromium executable that runs at ``niceness``, and the file where it writes its pid.
    Playwright starts it with its pipes open: the script only execs it. Lowering the niceness needs
    root (this bench's machine); elsewhere nice warns and the instructor's Chromium stays at the
    students' niceness."""
    folder = Path(tempfile.mkdtemp(prefix="chromium-"))
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    wrapper, pid_file = folder / "chromium", folder / "pid"
    wrapper.write_text(f'#!/bin/sh\necho $$ > {pid_file}\nexec nice -n {niceness - os.nice(0)} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, pid_file


AUTOGROUP_SWITCH = Path("/proc/sys/kernel/sched_autogroup_enabled")


def autogroups_on() -> bool:
    """Whether Linux shares the CPU between sessions first (autogroup scheduling, the default of
    most distributions' kernels, and on this bench's machine)."""
    try:
        return AUTOGROUP_SWITCH.read_text().strip() == "1"
    except OSError:
        return False


class BrowserNiceness:
    """Keeps a browser's every process at ``niceness`` under autogroup scheduling.

    With autogroups, the CPU is shared fairly between sessions (setsid) first, and a process's
    niceness counts only against the processes of its own session. Playwright starts Chromium in a
    session of its own (and Chromium's zygotes may start theirs), and as root Chromium raises its
    display threads to niceness -8: so ``nice`` on Chromium's command line does nothing against the
    server. This thread sets the niceness of each of the browser's autogroups (/proc/PID/autogroup)
    every 0.2 s instead. Measured on this machine, one wave of 5 at 1000 steps: at niceness 10
    the students' pages asked for 0.22 page runs and fragment reruns per second, against the 0.75
    of a page that keeps up, and so loaded the server less than a class would; at 0 they asked for
    0.70, and the server still answered their clicks within 0.22 s at the 95th percentile."""

    def __init__(self, pid_file: Path, niceness: int, every: float = 0.2):
        self.pid_file, self.niceness, self.every = pid_file, niceness, every
        self.groups: set[str] = set()  # autogroups set, by name
        self.refused: str | None = None  # why the system refused, if it did
        self.own_group = (autogroup(os.getpid()) or "").split(" ")[0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> BrowserNiceness:
        if autogroups_on():
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                browser = int(self.pid_file.read_text())
            except (OSError, ValueError):
                continue  # not started yet
            for pid in [browser, *descendants(browser)]:
                self._set(pid)

    def _set(self, pid: int) -> None:
        try:
            group = Path(f"/proc/{pid}/autogroup")
            name, _, nice = group.read_text().split()  # "/autogroup-907 nice 0"
            if name == self.own_group:
                return  # this script's session: not the browser's to change
            if int(nice) != self.niceness:
                group.write_text(str(self.niceness))
            self.groups.add(name)
        except PermissionError as refused:
            self.refused = str(refused)
        except (OSError, ValueError):
            pass  # the process ended meanwhile


class RunDelay:
    """Seconds a process's threads waited, runnable, for a core (/proc's schedstat), sampled every
    0.25 s per thread: Streamlit starts a thread for each script run, which ends with it, so reading
    the threads alive at the start and the end alone would miss the ones that answer the clicks (a
    thread that lives under 0.25 s is missed too)."""

    def __init__(self, pid: int, every: float = 0.25):
        self.pid, self.every = pid, every
        self.first: dict[str, int] = {}  # thread id -> its wait (ns) when first seen before the start
        self.largest: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _read(self) -> dict[str, int]:
        waits = {}
        for schedstat in Path(f"/proc/{self.pid}/task").glob("*/schedstat"):
            try:
                waits[schedstat.parent.name] = int(schedstat.read_text().split()[1])
            except (OSError, IndexError, ValueError):
                pass  # a thread that ended meanwhile
        return waits

    def _sample(self) -> None:
        for thread, wait in self._read().items():
            self.largest[thread] = max(wait, self.largest.get(thread, 0))

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> RunDelay:
        self.first = self._read()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def seconds(self) -> float:
        return sum(wait - self.first.get(thread, 0) for thread, wait in self.largest.items()) / 1e9


def autogroup(pid: int) -> str | None:
    """The autogroup's name and niceness ("/autogroup-907 nice 0"), None if unreadable."""
    try:
        return Path(f"/proc/{pid}/autogroup").read_text().strip()
    except OSError:
        return None


def _seconds(value: float | None) -> str:
    return "never (within 300 s)" if value is None else f"{value:.1f} s"


def percentile(values: list[float], fraction: float) -> float:
    """inf (no answer) counts as the slowest; nan (not measured) is left out."""
    ordered = sorted(value for value in values if not math.isnan(value))
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


DEMO_RUNS = 4  # the Fig. 6 preset's nets on a CPU


def watch_demo(runs_dir: Path, instructor, out: dict, timeout: float = 600) -> None:
    """Into ``out``: seconds from the instructor's Start click to the first and to all of the
    preset's runs training (their status leaving "queued"), and how many students' runs queued at
    the click started before the preset's last one did (none: the instructor's go first)."""
    deadline = time.time() + timeout
    queued_students = None
    while time.time() < deadline and out.get("all_training_s") is None:
        clicked = instructor.demo_clicked
        states = run_states(runs_dir)
        if clicked is not None and queued_students is None:
            queued_students = {run for run, status in states.items()
                               if status.get("owner") is not None and status.get("state") == "queued"}
            out["students_runs_queued_at_the_click"] = len(queued_students)
        started = [status for status in states.values()
                   if status.get("owner") is None and status.get("state") not in (None, "queued")]
        if clicked is not None and started and out.get("first_training_s") is None:
            out["first_training_s"] = time.time() - clicked
        if clicked is not None and len(started) >= DEMO_RUNS:
            out["all_training_s"] = time.time() - clicked
            out["students_started_first"] = sum(states[run].get("state") != "queued" for run in queued_students)
        time.sleep(0.1)


def all_done(runs_dir: Path, count: int) -> bool:
    states = run_states(runs_dir)
    return len(states) >= count and all(s.get("state") not in (None, *ACTIVE)
                                        for s in states.values())


def side_by_side(first: Path, second: Path, out: Path) -> None:
    from PIL import Image

    left, right = Image.open(first), Image.open(second)
    both = Image.new("RGB", (left.width + right.width + 20, max(left.height, right.height)), "white")
    both.paste(left, (0, 0))
    both.paste(right, (left.width + 20, 0))
    both.save(out)


INSTRUCTOR_PAUSE_S = 1.0  # between the instructor page's clicks


def any_training(runs_dir: Path) -> bool:
    return any(status.get("state") in ACTIVE for status in run_states(runs_dir).values())


class InstructorPage(threading.Thread):
    """The instructor's page (the projector's): a Chromium of its own at the server's priority, with
    the instructor's token (its Runs page lists every run of the class), driven from a thread with a
    Playwright of its own. It clicks Runs and Train in turn, a second apart, for the whole class, so
    the server's answer is sampled all the while runs train, not only when the students' pages (below
    the server's priority, on its cores) get round to a click."""

    def __init__(self, number: int, clock: WireClock, port: int, runs_dir: Path, chromium: Path):
        super().__init__(daemon=True)
        self.number, self.clock, self.port, self.runs_dir, self.chromium = number, clock, port, runs_dir, chromium
        self.clicks: list[dict] = []
        self.wave = 0  # set by the class as each wave starts
        self.opened, self.begin, self.finish = threading.Event(), threading.Event(), threading.Event()
        self.failure: BaseException | None = None
        self.reload_failures: list[str] = []
        # Set when the last wave has pressed Start: the instructor then starts the Fig. 6 preset.
        self.demo = threading.Event()
        self.demo_clicked: float | None = None

    def run(self) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(self.chromium), args=CHROMIUM_ARGS)
                page = Student(self.number, browser, self.clock, self.port)
                # Opened before the class comes in: the first visit imports torch and starts the
                # server's warm-up (tracing the paper's models), which then runs for a while.
                page.open_train(f"?instructor={INSTRUCTOR_TOKEN}")
                self.opened.set()
                self.begin.wait()  # until the class begins: the server's warm-up has ended
                titles = ("Runs", "Train")
                while not self.finish.wait(INSTRUCTOR_PAUSE_S):
                    if self.demo.is_set() and self.demo_clicked is None:
                        self.demo_clicked = self._start_demo(page)
                        continue
                    title = titles[len(self.clicks) % 2]
                    training = any_training(self.runs_dir)
                    click = page.go(title)
                    self.clicks.append({**click, "training": training, "wave": self.wave})
                    if math.isinf(click["shown"]):  # reload, as the instructor would
                        try:
                            page.page.goto(f"{page.url}/{title.lower()}?instructor={INSTRUCTOR_TOKEN}")
                        except Exception as error:  # noqa: BLE001 - a reload that timed out: noted, go on
                            self.reload_failures.append(str(error).splitlines()[0])
                page.close_page()
                browser.close()
        except BaseException as error:  # noqa: BLE001 - reported by the class, in its thread
            self.failure = error
            self.opened.set()

    def _start_demo(self, page: Student) -> float:
        """The instructor starts the Fig. 6 preset on the projector: time.time() of the Start click."""
        page.go("Train")
        page.page.get_by_text(PRESETS["fig6"].title_on("cpu")).first.click()
        start = page.page.get_by_role("button", name="Start")
        start.wait_for(timeout=CLICK_TIMEOUT_S * 1000)
        wait_for_script(page.page)
        clicked = time.time()
        start.click()
        return clicked

    def wait_opened(self) -> None:
        self.opened.wait()
        if self.failure is not None:
            raise RuntimeError(f"the instructor's page did not open: {self.failure}") from self.failure

    def stop(self) -> list[dict]:
        self.finish.set()
        self.join(timeout=CLICK_TIMEOUT_S * 2 + 60)
        if self.is_alive():
            raise RuntimeError("the instructor's page did not stop clicking")
        if self.failure is not None:
            raise RuntimeError(f"the instructor's page failed: {self.failure}") from self.failure
        return self.clicks


def run_class(sessions: int, wave: int, steps: int, students_niceness: int, deadline_s: float,
              dump_slow: bool = False) -> dict:
    from playwright.sync_api import sync_playwright

    runs_dir = Path(tempfile.mkdtemp(prefix="classroom-runs-"))
    started = time.time()
    clicks: list[dict] = []
    problems: list[str] = []
    demo: dict = {}  # the instructor's Fig. 6 preset in the last wave (watch_demo)
    waves = []
    try:
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(Server(runs_dir, env={"RESNET_EXPLORER_LOCAL_IS_INSTRUCTOR": "0",
                                                               "RESNET_EXPLORER_INSTRUCTOR_TOKEN": INSTRUCTOR_TOKEN}))
            server.wait_healthy()
            global DUMP_SLOW
            DUMP_SLOW = server.pid if dump_slow else None
            memory_cold = rss_mb(server.pid)  # no page opened yet: the app's modules are not even imported
            clock = WireClock(server.port, sessions + 1)  # a port per student, the last the instructor's
            stack.callback(clock.close)
            # The students' Chromium has --students-niceness for its whole autogroup (BrowserNiceness);
            # this script and Playwright's drivers take niceness 10 within this script's autogroup;
            # the server and the clock keep theirs. The instructor's Chromium (the projector, often
            # on the server's machine) runs at the server's priority.
            os.nice(max(0, WORKER_NICENESS - os.nice(0)))
            playwright = stack.enter_context(sync_playwright())
            students_chromium, students_pid_file = chromium_at_niceness(students_niceness, stack)
            students_nicer = stack.enter_context(BrowserNiceness(students_pid_file, students_niceness))
            students_browser = playwright.chromium.launch(executable_path=str(students_chromium), args=CHROMIUM_ARGS)
            instructor = InstructorPage(sessions, clock, clock.ports[sessions], runs_dir,
                                        chromium_at_niceness(0, stack)[0])
            instructor.start()
            stack.callback(instructor.finish.set)
            instructor.wait_opened()
            server.wait_quiet()
            memory_before = rss_mb(server.pid)
            instructor.begin.set()
            students: list[Student] = []
            server_groups: set[str] = set()  # the autogroups of the server and its workers, while they train
            students_pid = int(students_pid_file.read_text())
            with CpuSampler(server.pid) as cpu, CpuSampler(os.getpid()) as everything, \
                    CpuSampler(students_pid) as students_cpu, CpuSampler(clock.pid) as clock_cpu, \
                    RunDelay(server.pid) as server_waited:
                for first in range(0, sessions, wave):
                    if time.time() - started > deadline_s:
                        raise TimeoutError(f"the class ran past {deadline_s:.0f} s")
                    numbers = range(first, min(sessions, first + wave))
                    group = [Student(number, students_browser, clock, clock.ports[number]) for number in numbers]
                    students += group
                    wave_started = time.time()
                    instructor.wave = len(waves) + 1
                    for student in group:  # the wave opens the page and fills the form...
                        student.open_train()
                        student.fill_form(steps)
                    training_from = time.monotonic()
                    for student in group:  # ...and starts within seconds of each other
                        student.start(runs_dir)
                    if first + wave >= sessions:  # the last wave: the instructor's demo, behind the class's queue
                        instructor.demo.set()
                        threading.Thread(target=watch_demo, args=(runs_dir, instructor, demo), daemon=True).start()
                    server_groups |= {(autogroup(pid) or "?").split(" ")[0]
                                      for pid in [server.pid, *descendants(server.pid)]}
                    expected = 2 * len(students) + (DEMO_RUNS if instructor.demo.is_set() else 0)
                    wave_clicks = []
                    # Each open session clicks to the Runs page and back, at least once and until the
                    # wave's runs have ended; whether any run was queued or training is noted per click.
                    while not all_done(runs_dir, expected) or not wave_clicks:
                        for student in group:
                            for title in ("Runs", "Train"):
                                training = not all_done(runs_dir, expected)
                                wave_clicks.append({**student.go(title), "training": training, "wave": len(waves) + 1})
                        # The demo's wave trains the preset's nets too, after the slots free (measured: 600 s was short).
                        limit = 600 + (900 if instructor.demo.is_set() else 0)
                        if time.time() - wave_started > limit:
                            raise TimeoutError(f"wave {len(waves) + 1}'s runs did not end in {limit} s")
                    trained, training_to = time.time(), time.monotonic()
                    for student in group:
                        click = student.go("Runs")
                        wave_clicks.append({**click, "training": False, "wave": len(waves) + 1})
                        if math.isinf(click["shown"]):  # a student would reload the page: so does this one
                            student.page.goto(f"{student.url}/runs")
                        problems += student.check_sees_only_own(runs_dir)
                    if first == 0 and len(group) >= 2:
                        SCREENSHOTS.mkdir(exist_ok=True)
                        shots = []
                        for student in group[:2]:
                            shots.append(SCREENSHOTS / f"classroom-student-{student.number + 1}-runs.png")
                            student.page.screenshot(path=str(shots[-1]))
                        side_by_side(*shots, SCREENSHOTS / "classroom-two-students-runs.png")
                    for student in group:
                        student.close_page()
                    finished = [(status.get("updated", trained) - student.clicked_at)
                                for student in group for status in student.own_runs(runs_dir).values()]
                    waves.append({"sessions": len(group), "seconds": trained - wave_started,
                                  "click_to_both_runs_done_s": max(finished), "clicks": len(wave_clicks),
                                  "clicks_while_training": sum(click["training"] for click in wave_clicks),
                                  # The page runs and fragment reruns each page asked for from its Start
                                  # to the wave's last run's end: the load the pages put on the server.
                                  "student_requests_per_s": sum(clock.requests(student.port, training_from, training_to)
                                                                for student in group)
                                  / len(group) / (training_to - training_from),
                                  "instructor_requests_per_s": clock.requests(clock.ports[sessions], training_from,
                                                                              training_to) / (training_to - training_from),
                                  "shown_p95_s": percentile([click["shown"] for click in wave_clicks], 0.95),
                                  "server_p95_s": percentile([click["server"] for click in wave_clicks], 0.95),
                                  "load_after": os.getloadavg()[0]})
                    clicks += wave_clicks
                    print(f"wave {len(waves)}: {waves[-1]}", file=sys.stderr)
            instructor_clicks = instructor.stop()
            memory_after = rss_mb(server.pid)
            # Again, in a new tab of each student's browser: the cookie brings back the same key.
            for student in students:
                student.page = student.context.new_page()
                student.page.goto(f"{student.url}/runs")
                problems += student.check_sees_only_own(runs_dir)
                student.close_page()
                student.context.close()
            memory_end = rss_mb(server.pid)
            clock_cpu_s = sum(clock_cpu.used()[key] for key in ("own_cpu_s", "descendants_cpu_s"))
            students_browser.close()
            states = run_states(runs_dir)
            owners = {}
            for status in states.values():
                owners.setdefault(status.get("owner"), []).append(status.get("state"))
            keys = {student.key for student in students}
            return {
                "demo": {"first_training_s": None, "all_training_s": None, "students_runs_queued_at_the_click": None,
                         "students_started_first": None, **demo},
                "runs": len(states), "completed": sum(s.get("state") == "completed" for s in states.values()),
                "states": sorted({s.get("state") for s in states.values()}),
                "sessions": len(students), "distinct_keys": len(keys),
                "every_session_two_runs": all(len(owners.get(key, [])) == 2 for key in keys),
                "runs_of_no_session": sum(len(v) for owner, v in owners.items() if owner not in keys),  # the demo's
                "problems": problems, "start_retries": sum(student.start_retries for student in students),
                "clicks": clicks, "instructor_clicks": instructor_clicks, "waves": waves, "cpu": cpu.used(),
                # This script's tree: the server's, the clock's, Playwright's drivers and Chromium, and this process.
                "browser_cpu_s": sum(everything.used()[key] for key in ("own_cpu_s", "descendants_cpu_s"))
                - sum(cpu.used()[key] for key in ("own_cpu_s", "descendants_cpu_s")) - clock_cpu_s,
                "clock_cpu_s": clock_cpu_s,
                "students_browser_cpu_s": sum(students_cpu.used()[key] for key in ("own_cpu_s", "descendants_cpu_s")),
                "server_waited_for_a_core_s": server_waited.seconds(),
                "autogroups": autogroups_on(), "students_niceness": students_niceness,
                "students_autogroups_niced": len(students_nicer.groups), "niceness_refused": students_nicer.refused,
                "server_autogroups": sorted(server_groups), "instructor_reload_failures": instructor.reload_failures,
                "memory_cold": memory_cold, "memory_before": memory_before, "memory_after": memory_after,
                "memory_end": memory_end,
                "seconds": time.time() - started,
            }
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--wave", type=int, default=5, help="sessions that open the app and train at once")
    parser.add_argument("--steps", type=int, default=300,
                        help="each run's steps: enough that a wave's runs train while its sessions click")
    parser.add_argument("--students-niceness", type=int, default=STUDENTS_NICENESS,
                        help="the students' Chromium's niceness, for its whole autogroup: 0 (the default) weighs as the "
                             "server's session; 10 holds it below the server and its workers, and its pages then "
                             "fall behind their polling")
    parser.add_argument("--deadline", type=float, default=40 * 60, help="seconds the whole class may take")
    parser.add_argument("--dump-slow", action="store_true",
                        help="where the server's threads are when a click waits 1.5 s on it (needs py-spy)")
    args = parser.parse_args()
    load = os.getloadavg()
    result = run_class(args.sessions, args.wave, args.steps, args.students_niceness, args.deadline, args.dump_slow)
    clicks, teacher = result["clicks"], result["instructor_clicks"]
    busy = [click for click in clicks if click["training"]]
    teacher_busy = [click for click in teacher if click["training"]]
    lost = sum(math.isinf(click["shown"]) for click in clicks)
    teacher_lost = sum(math.isinf(click["shown"]) for click in teacher)
    unmeasured = sum(math.isnan(click["server"]) for click in clicks + teacher)
    failures_on_screen = sum(click.get("failures_shown", 0) for click in clicks + teacher)

    def stats(chosen: list[dict], key: str) -> dict:
        values = [click[key] for click in chosen]
        return {"clicks": len(values), "p50_s": percentile(values, 0.5), "p95_s": percentile(values, 0.95),
                "max_s": percentile(values, 1.0)}

    summary = {f"{which}_{key}": stats(chosen, key)
               for which, chosen in (("while_training", busy), ("all", clicks), ("instructor_while_training", teacher_busy))
               for key in ("shown", "server")}
    waves = result["waves"]
    student_rate = sum(wave["student_requests_per_s"] for wave in waves) / len(waves)
    teacher_rate = sum(wave["instructor_requests_per_s"] for wave in waves) / len(waves)
    enough = len(busy) >= args.sessions  # a click per student while runs train, at least
    checks = {
        "no page showed an exception or a failure message (students' and instructor's, each page as it was left "
        "and as it was shown)": failures_on_screen == 0,
        f"every click showed the page it asked for (within {CLICK_TIMEOUT_S} s)": lost == 0 and teacher_lost == 0,
        "every run completed": result["runs"] == 2 * args.sessions + DEMO_RUNS and result["completed"] == result["runs"],
        "the instructor's Fig. 6 preset, started behind the class's queued runs, takes the next free slots: no "
        "student's run queued at its click starts before it":
            result["demo"]["all_training_s"] is not None and result["demo"]["students_started_first"] == 0,
        "no session saw another's runs": not result["problems"] and result["every_session_two_runs"],
        f"a student's click while runs train is answered by the server within 1 s at the 95th percentile "
        f"(request in to title out, on the wire; at least {args.sessions} such clicks)":
            enough and summary["while_training_server"]["p95_s"] <= 1.0,
        "the instructor's click while runs train is answered by the server within 1 s at the 95th percentile":
            bool(teacher_busy) and summary["instructor_while_training_server"]["p95_s"] <= 1.0,
    }
    # Recorded, not checked: in class each student's page draws on a laptop of its own, and the
    # projector's page beside the server alone; here every page draws on the server's 2 cores.
    students_shown_p95 = summary["while_training_shown"]["p95_s"]
    teacher_shown_p95 = summary["instructor_while_training_shown"]["p95_s"]
    from explorer.device import resolve_device

    payload = {"sessions": args.sessions, "wave": args.wave, "steps": args.steps, "load_before": load,
               "click_summary": summary, "clicks_unanswered": lost, "instructor_clicks_unanswered": teacher_lost,
               "failures_on_screen": failures_on_screen, "checks": checks,
               "students_shown_p95_s_this_machine": students_shown_p95,
               "instructor_shown_p95_s_this_machine": teacher_shown_p95, "student_requests_per_s": student_rate,
               "keeping_up_requests_per_s": KEEPING_UP_REQUESTS_PER_S, "instructor_requests_per_s": teacher_rate,
               **result}
    memory = (f"{result['memory_cold']['rss_mb']:.0f} MB started but never opened, "
              f"{result['memory_before']['rss_mb']:.0f} MB before the class (opened once, warm-up done), "
              f"{result['memory_after']['rss_mb']:.0f} MB after its last wave, "
              f"{result['memory_end']['rss_mb']:.0f} MB after every session's last look; peak "
              f"{result['memory_end']['peak_rss_mb']:.0f} MB")
    if not result["autogroups"]:
        priority = (f"Autogroup scheduling is off: the students' Chromium ran at niceness {args.students_niceness} "
                    f"(its threads that Chromium raises, as root, to -8 excepted).")
    elif result["students_autogroups_niced"]:
        priority = (f"Autogroup scheduling is on (the CPU is shared between sessions first; niceness counts only "
                    f"inside one). Chromium started by Playwright runs in a session of its own and, as root, raises "
                    f"its display threads to niceness -8, so the students' Chromium was held at niceness "
                    f"{args.students_niceness} as a whole: its autogroup's ({result['students_autogroups_niced']} "
                    f"autogroup(s), /proc/PID/autogroup). The server and its workers ran in "
                    f"{len(result['server_autogroups'])} autogroup(s) ({', '.join(result['server_autogroups'])}), in "
                    f"which the server comes first.")
    else:
        priority = (f"Autogroup scheduling is on, but the students' Chromium's autogroup could not be set "
                    f"({result['niceness_refused'] or 'no autogroup found'}): it weighed as the server's session.")
    lines = [
        f"# A class of {args.sessions} browser sessions on one server",
        f"Headless Chromium, one browser context (cookie, key) per student, {args.wave} at a time; each starts a "
        f"quick pair at depth 8, {args.steps} steps, batch 16, 100 images, 16x16 pixels; the server treats 127.0.0.1 "
        f"as a student (RESNET_EXPLORER_LOCAL_IS_INSTRUCTOR=0). Load average (1 min) before: {load[0]:.2f} "
        f"({load[1]:.2f} over 5 min). The whole class took {result['seconds']:.0f} s.",
        "",
        "| check | result |",
        "|---|---|",
        *(f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in checks.items()),
        "",
        f"Recorded, not checked: while runs trained, the students' pages showed a click within "
        f"{students_shown_p95:.2f} s at the 95th percentile, the instructor's page within {teacher_shown_p95:.2f} s. "
        f"In class each student's page draws on a laptop of its own, and the projector's page shares the server's "
        f"machine with no other browser; here {args.wave}-{2 * args.wave} students' pages and the instructor's draw "
        f"on the server's 2 cores beside its workers, so these times measure this machine.",
        "",
        f"- Runs: {result['runs']} ({result['completed']} completed; states {', '.join(result['states'])}), "
        f"{result['distinct_keys']} distinct session keys, every session with exactly its two: "
        f"{result['every_session_two_runs']}; runs of no session: {result['runs_of_no_session']}.",
        f"- The instructor's demo: with the last wave's runs started ({result['demo']['students_runs_queued_at_the_click']} "
        f"students' runs queued), the instructor's page started the Fig. 6 preset ({DEMO_RUNS} nets). From the Start "
        f"click, its first run trained after {_seconds(result['demo']['first_training_s'])} and all {DEMO_RUNS} after "
        f"{_seconds(result['demo']['all_training_s'])}; students' runs queued at the click that started before the "
        f"preset's last run: {result['demo']['students_started_first']}. Shared runs take the next free slots ahead of "
        "the students' queued runs; the wait is for the students' runs already training to end (they are not "
        "preempted).",
        f"- Sessions that saw another's runs or missed their own: {len(result['problems'])}"
        + (f" ({'; '.join(result['problems'][:3])})" if result["problems"] else "") + ".",
        f"- A click on the sidebar (Train to Runs or back): the students' {len(clicks)} clicks, {len(busy)} of them "
        f"while some run was queued or training, and the instructor's {len(teacher)}, {len(teacher_busy)} of them "
        f"while runs trained. \"Server\": from the click's request reaching the server to the new page's title "
        f"leaving it, on the wire (bench/wire_clock.py, a pass-through proxy at the server's priority). \"Shown\": "
        f"from the click to the title on screen in Chromium. The instructor's page (a Chromium of its own at the "
        f"server's priority, as a projector's browser on the server's machine, driven from a thread of its own) has "
        f"the instructor's token, so its Runs page lists every run of the class; it clicks Runs and Train in turn, "
        f"{INSTRUCTOR_PAUSE_S:g} s apart, for the whole class. Unanswered within {CLICK_TIMEOUT_S} s: {lost} of the "
        f"students'"
        + (f" ({'; '.join(sorted({click['unanswered'] for click in clicks if 'unanswered' in click}))})" if lost else "")
        + f", {teacher_lost} of the instructor's; server part not seen on the wire: {unmeasured}. Start clicked again "
        f"(lost click): {result['start_retries']}. Exception elements (Streamlit's red box) or the app's failure "
        f"message on a page, counted on each page as it was left and as it was shown: {failures_on_screen}.",
        f"- The load the pages put on the server while a wave trained (page runs and fragment reruns asked for, "
        f"from the wave's first Start to its last run's end): {student_rate:.2f} per second per student's page, "
        f"{teacher_rate:.2f} from the instructor's page. A Train page that keeps up asks for "
        f"{KEEPING_UP_REQUESTS_PER_S:.2f} per second while its runs train (its panel every {REFRESH_SECONDS:g} s, its "
        f"curves every {CHART_REFRESH_SECONDS:g} s), besides its clicks.",
        "",
        "| clicks | n | shown: median | shown: p95 | shown: slowest | server: median | server: p95 | server: slowest |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {name} | {summary[which + '_shown']['clicks']} | {summary[which + '_shown']['p50_s']:.2f} | "
          f"**{summary[which + '_shown']['p95_s']:.2f}** | {summary[which + '_shown']['max_s']:.2f} | "
          f"{summary[which + '_server']['p50_s']:.2f} | **{summary[which + '_server']['p95_s']:.2f}** | "
          f"{summary[which + '_server']['max_s']:.2f} |"
          for name, which in (("students, while runs train", "while_training"),
                              ("students, all (also once a wave's runs ended)", "all"),
                              ("the instructor's page, while runs train", "instructor_while_training"))),
        "",
        f"- Server process memory (RSS): {memory}.",
        f"- CPU during the class: the server's own process {result['cpu']['own_cpu_s']:.0f} s, its fork server "
        f"and workers {result['cpu']['descendants_cpu_s']:.0f} s, Chromium and Playwright on the same two cores "
        f"{result['browser_cpu_s']:.0f} s (the students' Chromium {result['students_browser_cpu_s']:.0f} s of it; "
        f"the rest is the instructor's Chromium, Playwright's drivers and this script), the wire clock "
        f"{result['clock_cpu_s']:.0f} s. The server's threads waited, runnable, "
        f"{result['server_waited_for_a_core_s']:.1f} s in all for a core (/proc schedstat, each thread sampled every "
        f"0.25 s).",
        f"- Priorities: {priority}",
        "",
        "| wave | sessions | seconds | Start to both runs done (slowest) | students' clicks (while training) | "
        "requests per s per student's page | shown p95 (s) | server p95 (s) | load after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {index + 1} | {wave['sessions']} | {wave['seconds']:.0f} | {wave['click_to_both_runs_done_s']:.0f} s | "
          f"{wave['clicks']} ({wave['clicks_while_training']}) | {wave['student_requests_per_s']:.2f} | "
          f"{wave['shown_p95_s']:.2f} | {wave['server_p95_s']:.2f} | {wave['load_after']:.2f} |"
          for index, wave in enumerate(waves)),
    ]
    # Waves of another size are another measurement: recorded beside the default, not over it.
    name = "classroom" if args.wave == 5 else f"classroom-wave{args.wave}"
    if args.sessions != 30:  # a smaller class is another measurement: recorded beside the class of 30
        name += f"-{args.sessions}-sessions"
    if args.students_niceness != STUDENTS_NICENESS:
        name += f"-students-nice{args.students_niceness}"
    common.record(name, resolve_device("cpu"), payload, lines)
    if not all(checks.values()):
        sys.exit(1)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the server's `finally` runs
    main()
