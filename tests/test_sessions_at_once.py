"""Many sessions on one real server at once, as a class is: script runs that overlap must never
share anything a run keeps for itself (issue 24).

Each session is a websocket client of the server (tests/stream_client.py), so a dozen of them cost
what a dozen browser tabs' requests cost the server, without a Chromium each. Pages are asked for
as the browser asks for them: a first visit by the address's path, a sidebar click by the page's
script hash.
"""

import threading
import time

import pytest

from tests.live_server import streamlit_server
from tests.stream_client import Shown, StreamSession

# How the h1 each page draws begins, by its title in the sidebar or its path (Home's is the app's name).
HEADINGS = {"Home": "ResNet Explorer", "": "ResNet Explorer", "train": "Train", "runs": "Runs",
            "playground": "Playground"}
SWITCH_SECONDS = 10
STUDENTS = 6
SAME_LINK_SESSIONS = 10
PLAYGROUND_LINK = ("playground", "dataset=circles&depth=20&width=8&nets=both&seed=3&lr=0.003")


@pytest.fixture(scope="module")
def class_server(tmp_path_factory):
    """A server that treats this machine as a student, its runs apart, opened once (the first
    visit imports torch and the pages' modules)."""
    runs = tmp_path_factory.mktemp("class-runs")
    with streamlit_server({"RESNET_EXPLORER_LOCAL_IS_INSTRUCTOR": "0", "RESNET_EXPLORER_RUNS": str(runs)}) as (url, _):
        with StreamSession(url, timeout=120) as session:
            first = session.open("train")
        assert first.title == "Train", first
        yield url


def _problems(shown: list[Shown]) -> list[str]:
    """Every run that did not show its page whole: an exception element, an app failure message, a
    missing or wrong title, or no end."""
    problems = []
    for run in shown:
        expected = HEADINGS.get(run.asked, run.asked)
        if run.exceptions or run.errors or not (run.title or "").startswith(expected) or run.finished != "FINISHED_SUCCESSFULLY":
            problems.append(f"asked {run.asked!r}: title {run.title!r}, exceptions {run.exceptions}, "
                            f"errors {run.errors}, finished {run.finished}")
    return problems


def _overlapping_pairs(shown: list[Shown]) -> int:
    """How many pairs of script runs were in the server at the same time."""
    spans = sorted((run.started, run.ended) for run in shown)
    return sum(1 for i, (_, end) in enumerate(spans) for start, _ in spans[i + 1:] if start < end)


def _in_threads(count: int, work) -> list[Shown]:
    """``work(number, record)`` in ``count`` threads at once; every Shown they recorded, and the
    first error any of them raised (raised here)."""
    shown: list[Shown] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def record(run: Shown) -> None:
        with lock:
            shown.append(run)

    def guarded(number: int) -> None:
        try:
            work(number, record)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return shown


def test_students_switching_pages_at_once_always_see_their_page(class_server):
    """Six students click between Runs and Train as fast as the server answers, at the same time:
    before issue 24's fix, about 1 switch in 35 here showed Streamlit's error box instead
    ("This page cannot be called directly")."""
    def student(number: int, record) -> None:
        with StreamSession(class_server) as session:
            record(session.open("runs" if number % 2 else "train"))
            deadline = time.monotonic() + SWITCH_SECONDS
            clicks = 0
            while time.monotonic() < deadline:
                record(session.switch(("Train", "Runs")[(clicks + number) % 2]))
                clicks += 1

    shown = _in_threads(STUDENTS, student)
    problems = _problems(shown)
    overlaps = _overlapping_pairs(shown)
    print(f"{len(shown)} script runs, {overlaps} overlapping pairs, {len(problems)} not shown whole")
    assert len(shown) >= 10 * STUDENTS, f"only {len(shown)} switches in {SWITCH_SECONDS} s"
    assert overlaps >= len(shown), f"the sessions' runs hardly overlapped ({overlaps} pairs): nothing was tested"
    assert not problems, f"{len(problems)} of {len(shown)} switches: {problems[:3]}"


def test_a_class_opening_the_same_link_at_once_all_see_it(class_server):
    """Ten students open the instructor's Playground link within the same second."""
    ready = threading.Barrier(SAME_LINK_SESSIONS)

    def student(_: int, record) -> None:
        with StreamSession(class_server, timeout=120) as session:
            ready.wait()
            record(session.open(*PLAYGROUND_LINK))

    shown = _in_threads(SAME_LINK_SESSIONS, student)
    assert len(shown) == SAME_LINK_SESSIONS
    problems = _problems(shown)
    assert not problems, problems
    assert _overlapping_pairs(shown) >= SAME_LINK_SESSIONS, "the first visits did not overlap"


def test_the_home_pages_links_open_their_pages(class_server):
    with StreamSession(class_server) as session:
        home = session.open()
        assert not _problems([home]), home
        assert len(home.links) == len(session.pages) - 1  # every page but Home itself
        for label, script_hash in home.links.items():
            shown = session.follow(script_hash)
            assert shown.asked == label.split("**")[1], label  # "**Architecture**: Build a ...": that page's link
            assert not _problems([shown]), shown


# --- who is the instructor, behind a tunnel or proxy on the server's machine (issue 21) ----------

TOKEN = "a-classroom-secret"
INSTRUCTOR_SAYS = "You are the instructor"
STUDENT_SAYS = "Your runs are yours"


@pytest.fixture(scope="module")
def instructor_server(tmp_path_factory):
    """A server as an instructor starts it (loopback is the instructor), with a token."""
    runs = tmp_path_factory.mktemp("proxy-runs")
    with streamlit_server({"RESNET_EXPLORER_INSTRUCTOR_TOKEN": TOKEN, "RESNET_EXPLORER_RUNS": str(runs)}) as (url, _):
        yield url


def _who(url: str, headers: dict | None = None, query: str = "") -> Shown:
    with StreamSession(url, timeout=120, headers=headers) as session:
        return session.open("runs", query=query)


def _says(shown: Shown) -> str:
    text = " ".join(shown.texts)
    assert (INSTRUCTOR_SAYS in text) != (STUDENT_SAYS in text), text
    return "instructor" if INSTRUCTOR_SAYS in text else "student"


def test_a_request_through_a_proxy_is_never_the_instructor_without_the_token(instructor_server):
    assert _says(_who(instructor_server)) == "instructor"  # the projector's browser on the server's machine
    for header in ({"X-Forwarded-For": "203.0.113.7"}, {"Forwarded": "for=203.0.113.7;proto=https"},
                   {"X-Real-IP": "203.0.113.7"}, {"x-real-ip": "203.0.113.7"}):
        assert _says(_who(instructor_server, header)) == "student", header


def test_the_token_makes_an_instructor_through_a_proxy_and_leaves_the_address(instructor_server):
    proxied = {"X-Real-IP": "203.0.113.7"}
    shown = _who(instructor_server, proxied, query=f"instructor={TOKEN}&lang=en")
    assert _says(shown) == "instructor"
    assert shown.query_string is not None and TOKEN not in shown.query_string and "lang=en" in shown.query_string
    wrong = _who(instructor_server, proxied, query="instructor=a-guess")
    assert _says(wrong) == "student" and "a-guess" not in (wrong.query_string or "")


def test_a_reload_of_the_instructors_browser_keeps_its_rights_without_the_token(instructor_server):
    """The token left the address; the browser's key (its cookie) is remembered as the instructor's."""
    proxied = {"X-Real-IP": "203.0.113.7"}
    teacher, student = "teacherkey12345", "studentkey67890"
    assert _says(_who(instructor_server, {**proxied, "Cookie": f"resnet_explorer_session={teacher}"},
                      query=f"instructor={TOKEN}")) == "instructor"
    assert _says(_who(instructor_server, {**proxied, "Cookie": f"resnet_explorer_session={teacher}"})) == "instructor"
    assert _says(_who(instructor_server, {**proxied, "Cookie": f"resnet_explorer_session={student}"})) == "student"
