"""A preset started from a click in Chromium against the same preset in a plain process.

    python bench/app_preset.py [--preset fig6] [--repeats 1] [--keep]

One after the other, on this machine:

    app  ``streamlit run explorer/app.py`` on a free port of 127.0.0.1, its runs in a fresh folder;
         the Train page open in headless Chromium the whole time; the preset chosen and Start
         clicked. Timed from the click to the last of the preset's runs reading "completed" in its
         status.json. Meanwhile the CPU time (utime + stime, from /proc) of the Streamlit server's
         own process, of its descendants (the fork server and the workers; reaped ones count
         through their parent's cutime + cstime) and of the browser is sampled.
    cli  ``python -m explorer preset fig6 --out <fresh folder> --json``, timed as a whole process
         and by its own clock (submission to the last run's end), its CPU split the same way.

The issue's goal: the app within 1.1 times the plain process. The load average before each part is
written beside its numbers: the machine is shared, and a busy neighbour shows up in both.
Screenshots of the Train page while the preset trains go to test-artifacts/.

The process helpers here (a server on a free port, CPU of a process tree) serve bench/classroom.py too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import common
from explorer.train.store import Run

ROOT = common.ROOT
CHROMIUM = "/usr/bin/chromium"
# Nothing leaves the machine: the server binds 127.0.0.1, Chromium fetches nothing of its own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
SCREENSHOTS = ROOT / "test-artifacts"
TICK = os.sysconf("SC_CLK_TCK")


# --- processes -----------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces); None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def own_cpu(pid: int) -> float:
    """Seconds of CPU the process itself used (utime + stime, all its threads)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK if fields else 0.0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))):
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def tree_cpu(pid: int) -> tuple[float, float]:
    """(the process's own CPU seconds, its descendants'), the latter with the reaped ones: a dead
    child's time is added to its parent's cutime + cstime when the parent waits for it."""
    def with_reaped(fields):
        return sum(int(value) for value in fields[11:15]) / TICK if fields else 0.0

    fields = _stat(pid)
    own = (int(fields[11]) + int(fields[12])) / TICK if fields else 0.0
    reaped_by_it = (int(fields[13]) + int(fields[14])) / TICK if fields else 0.0
    return own, reaped_by_it + sum(with_reaped(_stat(child)) for child in descendants(pid))


def rss_mb(pid: int) -> dict:
    """Resident memory now and at its peak (MB), from /proc/<pid>/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = int(rest.split()[0]) / 1024
    return values


class CpuSampler:
    """Samples a process tree's CPU in the background; the sums only grow, so the last sample
    before ``stop`` minus the first is what the tree used in between."""

    def __init__(self, pid: int, every: float = 0.25):
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float, float]] = []  # (time, own, descendants)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            own, children = tree_cpu(self.pid)
            self.samples.append((time.perf_counter(), own, children))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> CpuSampler:
        self.samples.append((time.perf_counter(), *tree_cpu(self.pid)))  # the start, now, not when the thread runs
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        own, children = tree_cpu(self.pid)
        self.samples.append((time.perf_counter(), own, children))

    def used(self) -> dict:
        # The largest sums, not the last: a process that has ended (and was reaped) reads as 0.
        (start, own0, children0), end = self.samples[0], self.samples[-1][0]
        return {"seconds": end - start, "own_cpu_s": max(own for _, own, _ in self.samples) - own0,
                "descendants_cpu_s": max(children for _, _, children in self.samples) - children0}


def machine_cpu() -> dict:
    """CPU seconds the whole machine has spent busy since boot, and stolen by its hypervisor (/proc/stat)."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return {"busy_s": (user + nice + system + irq + softirq) / TICK, "steal_s": steal / TICK}


class Neighbours:
    """What the rest of the machine did meanwhile: busy CPU seconds not spent by this script's own
    process tree (the server, the browser, a CLI run), and time stolen by the hypervisor."""

    def __enter__(self) -> Neighbours:
        self._start, self._tree = machine_cpu(), CpuSampler(os.getpid()).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._tree.__exit__(*exc)
        end, ours = machine_cpu(), self._tree.used()
        ours_s = ours["own_cpu_s"] + ours["descendants_cpu_s"]
        self.used = {"others_cpu_s": end["busy_s"] - self._start["busy_s"] - ours_s,
                     "steal_s": end["steal_s"] - self._start["steal_s"], "ours_cpu_s": ours_s,
                     "seconds": ours["seconds"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_now() -> float:
    return os.getloadavg()[0]


class Server:
    """``streamlit run explorer/app.py`` on 127.0.0.1 in a session of its own, so that ``close``
    ends it, its fork server and its workers together; a context manager that always does."""

    def __init__(self, runs_dir: str | Path, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile("w+")  # shown if it does not start; gone with it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "explorer/app.py", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "RESNET_EXPLORER_RUNS": str(runs_dir),
                 "RESNET_EXPLORER_WEIGHTS_URL": "http://127.0.0.1:9",  # pretrained weights: offline
                 **(env or {})},
        )
        self.pid = self.process.pid

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"streamlit exited with code {self.process.returncode}:\n{self.log.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"streamlit did not answer within {timeout:.0f} s")

    def wait_quiet(self, cpu_share: float = 0.1, window: float = 3.0, timeout: float = 180) -> float:
        """Until the server's own process uses under ``cpu_share`` of a core over ``window`` seconds
        (its background complexity warm-up has ended); returns the seconds waited."""
        started = time.perf_counter()
        last = own_cpu(self.pid)
        while time.perf_counter() - started < timeout:
            time.sleep(window)
            now = own_cpu(self.pid)
            if now - last < cpu_share * window:
                break
            last = now
        return time.perf_counter() - started

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=30)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of its group is left (workers)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_for_script(page, timeout: float = 120) -> None:
    """Until Streamlit's running indicator has been gone for a second (the script run has ended)."""
    page.wait_for_selector("[data-testid='stMainBlockContainer']", timeout=timeout * 1000)
    deadline = time.time() + timeout
    quiet_since = None
    while time.time() < deadline:
        if page.locator("[data-testid='stStatusWidget']").count() > 0:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 1.0:
            return
        time.sleep(0.2)
    raise TimeoutError("the page kept running")


def run_states(runs_dir: Path) -> dict[str, dict]:
    states = {}
    for status in runs_dir.glob("*/status.json"):
        try:
            states[status.parent.name] = json.loads(status.read_text())
        except (OSError, ValueError):  # written at this moment: read it on the next look
            states[status.parent.name] = {}
    return states


def wait_for_runs(runs_dir: Path, count: int, timeout: float, every: float = 0.2) -> tuple[float, dict]:
    """Until ``count`` runs exist and none is queued or training; (when, their statuses)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        states = run_states(runs_dir)
        if len(states) >= count and all(state.get("state") not in (None, "queued", "running", "paused")
                                        for state in states.values()):
            return time.perf_counter(), states
        time.sleep(every)
    raise TimeoutError(f"runs in {runs_dir} did not end within {timeout:.0f} s: {run_states(runs_dir)}")


# --- the two ways of running a preset ------------------------------------------------------------


def in_the_app(key: str, title_start: str, models: int, screenshots: bool, away: bool = False) -> dict:
    """Timed from the click on Start; with ``away``, the tab then goes to the Home page (no live charts)."""
    from playwright.sync_api import sync_playwright

    runs_dir = Path(tempfile.mkdtemp(prefix="app-preset-runs-"))
    try:
        with Server(runs_dir) as server, sync_playwright() as playwright:
            server.wait_healthy()
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1400, "height": 1700})
            page.goto(f"{server.url}/train")
            page.get_by_role("heading", name="Train").wait_for(timeout=120_000)
            wait_for_script(page)
            starts_so = re.compile(f"^{re.escape(title_start)}")  # the option whose label starts "Fig. 6"
            option = page.locator("[data-testid='stRadio'] label").filter(has_text=starts_so)
            option.click()
            page.get_by_text("Cannot show:").wait_for(timeout=60_000)  # the preset's two lines
            wait_for_script(page)
            # The server's background warm-up (tracing the paper's models for the Complexity page)
            # runs in its own process for a while after it starts; the class's minute starts later.
            warmup_wait = server.wait_quiet()
            load = load_now()
            with CpuSampler(server.pid) as server_cpu, Neighbours() as machine:
                clicked = time.perf_counter()
                page.get_by_role("button", name="Start").click()
                if away:
                    page.get_by_text("running").first.wait_for(timeout=120_000)
                    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name="Home").click()
                    page.get_by_role("heading", name="ResNet Explorer").wait_for(timeout=60_000)
                elif screenshots:
                    page.get_by_text("running").first.wait_for(timeout=120_000)
                    _screenshot_midway(page, runs_dir, f"app-preset-{key}-training.png")
                ended, states = wait_for_runs(runs_dir, models, timeout=1200)
            seconds = ended - clicked
            if screenshots:
                page.get_by_text("completed").first.wait_for(timeout=60_000)
                wait_for_script(page)
                page.screenshot(path=str(SCREENSHOTS / f"app-preset-{key}-done.png"), full_page=True)
            browser.close()
            summaries = [Run(runs_dir / run).summary() for run in states]
            server_used = server_cpu.used()
            # This script's tree is the server's, Playwright's driver and Chromium, and this process.
            browser_s = machine.used["ours_cpu_s"] - server_used["own_cpu_s"] - server_used["descendants_cpu_s"]
            return {"seconds": seconds, "load_before": load, "warmup_wait_s": warmup_wait, "machine": machine.used,
                    "states": {run: state.get("state") for run, state in states.items()},
                    "train_error": {summary["model"]: summary["train_error"] for summary in summaries},
                    "server": server_used, "browser_cpu_s": browser_s}
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)


def _screenshot_midway(page, runs_dir: Path, name: str) -> None:
    """When the runs are about a third of the way: the page as a student sees it while they train."""
    deadline = time.time() + 300
    while time.time() < deadline:
        states = run_states(runs_dir).values()
        steps = [state.get("step", 0) / max(1, state.get("total_steps") or 1) for state in states]
        if steps and min(steps) >= 0.3:
            break
        time.sleep(0.3)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def in_a_plain_process(key: str) -> dict:
    out = Path(tempfile.mkdtemp(prefix="cli-preset-runs-"))
    try:
        load = load_now()
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "explorer", "preset", key, "--out", str(out), "--json"],
                                   cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        try:
            with CpuSampler(process.pid) as cpu, Neighbours() as machine:
                stdout, stderr = process.communicate(timeout=1200)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        wall = time.perf_counter() - started
        if process.returncode != 0:
            raise RuntimeError(f"the CLI failed ({process.returncode}): {stderr[-2000:]}")
        report = json.loads(stdout.strip().splitlines()[-1])
        return {"seconds": report["seconds"], "process_seconds": wall, "load_before": load, "cpu": cpu.used(),
                "machine": machine.used,
                "states": {run["model"]: run["state"] for run in report["runs"]},
                "train_error": {run["model"]: run["train_error"] for run in report["runs"]}}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _median(results: list[dict], *path: str) -> float:
    def get(result):
        for key in path:
            result = result[key]
        return result

    return statistics.median(get(result) for result in results)


def _errors(result: dict) -> str:
    errors = sorted(result["train_error"].items())
    return ", ".join(f"{model.removeprefix('cifar-')} {error:.0%}" for model, error in errors if error is not None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fig6")
    parser.add_argument("--repeats", type=int, default=1, help="every part, this many times, in turn")
    parser.add_argument("--no-away", action="store_true",
                        help="skip the app part whose tab moves to the Home page after Start")
    parser.add_argument("--no-screenshots", action="store_true")
    args = parser.parse_args()

    from explorer.device import resolve_device
    from explorer.train.presets import PRESETS

    preset = PRESETS[args.preset]
    device = resolve_device("auto")
    title_start = preset.title.split(":")[0]  # "Fig. 6"
    models = len(preset.models(device.type))
    load = os.getloadavg()
    app, away, cli = [], [], []
    for repeat in range(args.repeats):
        app.append(in_the_app(args.preset, title_start, models, screenshots=not args.no_screenshots and repeat == 0))
        print(f"app: {app[-1]['seconds']:.1f} s", file=sys.stderr)
        if not args.no_away:
            away.append(in_the_app(args.preset, title_start, models, screenshots=False, away=True))
            print(f"app, tab on Home: {away[-1]['seconds']:.1f} s", file=sys.stderr)
        cli.append(in_a_plain_process(args.preset))
        print(f"cli: {cli[-1]['seconds']:.1f} s ({cli[-1]['process_seconds']:.1f} s as a process)", file=sys.stderr)
    for results in app + away + cli:
        assert all(state == "completed" for state in results["states"].values()), results["states"]

    app_s, cli_s = _median(app, "seconds"), _median(cli, "seconds")
    cli_process_s = _median(cli, "process_seconds")
    server_s, workers_s = _median(app, "server", "own_cpu_s"), _median(app, "server", "descendants_cpu_s")
    payload = {"preset": args.preset, "models": list(preset.models(device.type)), "repeats": args.repeats,
               "load_before": load, "app_seconds": app_s, "cli_seconds": cli_s, "cli_process_seconds": cli_process_s,
               "ratio": app_s / cli_s, "ratio_to_cli_process": app_s / cli_process_s, "goal_ratio": 1.1,
               "server_cpu_s": server_s, "workers_cpu_s": workers_s, "browser_cpu_s": _median(app, "browser_cpu_s"),
               "app": app, "app_tab_on_home": away, "cli": cli}

    def seconds(results, key="seconds"):
        return ", ".join(f"{result[key]:.1f}" for result in results)

    def loads(results):
        return ", ".join(f"{result['load_before']:.2f}" for result in results)

    def others(results):
        return ", ".join(f"{result['machine']['others_cpu_s']:.0f}" for result in results)

    rows = [("app: click on Start to the last run's status \"completed\", the Train page open", app, "seconds")]
    if away:
        rows.append(("app: the same, the tab moved to the Home page once the runs trained", away, "seconds"))
    rows += [(f"`python -m explorer preset {args.preset}`: submission to the last run's end (its own clock)", cli,
              "seconds"),
             ("the same, the whole process (imports and fork server included)", cli, "process_seconds")]
    cpu_rows = [("app, Train page open", app)] + ([("app, tab on Home", away)] if away else [])
    lines = [
        f"# The {title_start} preset from a click in Chromium against a plain process",
        f"{models} nets ({', '.join(preset.models(device.type))}), the preset's {device.type.upper()} schedule, on "
        f"this 2-core machine with the browser on it too; {args.repeats} repeat(s) of every part in turn, medians. "
        f"Load average (1 min) at the start: {load[0]:.2f}; before each part in the table (after the first part "
        "it is mostly the previous part's own load decaying: the \"others\" column is what the rest of the machine "
        "really used meanwhile).",
        "",
        "| | seconds (median) | each | load before | others' CPU s |",
        "|---|---:|---|---|---|",
        *(f"| {name} | {_median(results, key):.1f} | {seconds(results, key)} | {loads(results)} | {others(results)} |"
          for name, results, key in rows),
        "",
        f"Ratio app / CLI: **{app_s / cli_s:.2f}** against the CLI's own clock, {app_s / cli_process_s:.2f} against "
        f"the whole process (goal: at most 1.1)"
        + (f"; with the tab on the Home page {_median(away, 'seconds') / cli_s:.2f}." if away else "."),
        "",
        "CPU seconds while the app's preset trained (from /proc, utime + stime; medians):",
        "",
        "| part | server process itself | its fork server and workers | Chromium, Playwright, this script |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {_median(results, 'server', 'own_cpu_s'):.1f} | "
          f"{_median(results, 'server', 'descendants_cpu_s'):.1f} | {_median(results, 'browser_cpu_s'):.1f} |"
          for name, results in cpu_rows),
        f"| CLI (main process; workers) | {_median(cli, 'cpu', 'own_cpu_s'):.1f} | "
        f"{_median(cli, 'cpu', 'descendants_cpu_s'):.1f} | - |",
        "",
        f"The server's own process used {server_s / max(workers_s, 1e-9):.1%} of the CPU its workers used; Chromium "
        f"(with Playwright and this script) {_median(app, 'browser_cpu_s') / max(workers_s, 1e-9):.0%} of it, on the "
        "same two cores.",
        "",
        f"Final training error, app: {_errors(app[-1])}; CLI: {_errors(cli[-1])}.",
    ]
    common.record(f"app-preset-{args.preset}", device, payload, lines)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the servers' `finally` runs
    main()
