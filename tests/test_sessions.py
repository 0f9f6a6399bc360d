"""A class on one server: each browser session sees and controls its own runs and the shared ones."""

import pytest
from streamlit.testing.v1 import AppTest

from explorer.train.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from explorer.train.store import DEFAULT_RUNS_DIR, Run
from explorer.ui.session import COOKIE, LOCAL_IS_INSTRUCTOR_ENV, TOKEN_ENV
from tests.conftest import ROOT

APP = str(ROOT / "explorer" / "app.py")


def _session(page: str, key: str | None = None, query: dict | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    if key:  # as a browser that already has its cookie
        app.session_state["viewer_key"] = key
    for name, value in (query or {}).items():
        app.query_params[name] = value
    app.run()
    app.switch_page(str(ROOT / "pages" / page))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


@pytest.fixture
def class_runs():
    """A finished run of each student and a shared one, as the store holds them."""
    config = RunConfig(model=ModelConfig("cifar-resnet8"), data=DataConfig("shapes-easy"), optim=OptimConfig(steps=4))
    runs = {}
    for owner in ("alice-key-123", "bob-key-4567", None):
        run = Run.new_in(DEFAULT_RUNS_DIR, config.to_json(), f"class-{owner}")
        run.append_metric({"step": 4, "epoch": 0.1, "split": "train", "loss": 2.0, "error": 0.8, "lr": 0.1, "time": 1})
        run.set_status("completed", "completed 4 steps", owner=owner, step=4, total_steps=4)
        runs[owner] = run
    yield runs
    for run in runs.values():
        run.delete()


def _listed(app: AppTest) -> set[str]:
    return set(app.dataframe[0].value["id"])


def test_a_student_sees_their_own_and_shared_runs_but_not_another_students(class_runs, monkeypatch):
    monkeypatch.setenv(LOCAL_IS_INSTRUCTOR_ENV, "0")
    alice = _session("runs.py", key="alice-key-123")
    listed = _listed(alice)
    assert class_runs["alice-key-123"].id in listed and class_runs[None].id in listed
    assert class_runs["bob-key-4567"].id not in listed
    whose = dict(zip(alice.dataframe[0].value["id"], alice.dataframe[0].value["whose"]))
    assert whose[class_runs["alice-key-123"].id] == "yours" and whose[class_runs[None].id] == "shared"
    assert any("Your runs are yours" in caption.value for caption in alice.sidebar.caption)


def test_the_instructor_sees_every_run_by_token_or_at_the_servers_machine(class_runs, monkeypatch):
    monkeypatch.setenv(LOCAL_IS_INSTRUCTOR_ENV, "0")
    monkeypatch.setenv(TOKEN_ENV, "s3cret-token")
    wrong = _session("runs.py", query={"instructor": "guess"})
    assert class_runs["bob-key-4567"].id not in _listed(wrong)
    instructor = _session("runs.py", query={"instructor": "s3cret-token"})
    assert {run.id for run in class_runs.values()} <= _listed(instructor)
    whose = dict(zip(instructor.dataframe[0].value["id"], instructor.dataframe[0].value["whose"]))
    assert whose[class_runs["bob-key-4567"].id] == "student"
    monkeypatch.setenv(LOCAL_IS_INSTRUCTOR_ENV, "1")  # the default: the laptop on the projector
    assert {run.id for run in class_runs.values()} <= _listed(_session("runs.py"))


def test_a_new_browser_gets_a_key_and_a_cookie_for_it_and_a_known_cookie_is_kept(monkeypatch):
    monkeypatch.setenv(LOCAL_IS_INSTRUCTOR_ENV, "0")
    first = _session("runs.py")
    key = first.session_state["viewer_key"]
    assert 8 <= len(key) <= 64 and first.session_state["viewer_cookie_set"]
    other = _session("runs.py")
    assert other.session_state["viewer_key"] != key  # another browser, another student
    assert COOKIE == "resnet_explorer_session"


def test_the_token_leaves_the_address_and_the_playground_keeps_its_settings(monkeypatch):
    """The screen is projected: the token is read once and taken out of the address (issue 21)."""
    monkeypatch.setenv(TOKEN_ENV, "s3cret-token")
    app = _session("playground.py", query={"instructor": "s3cret-token"})
    assert "instructor" not in app.query_params and app.query_params["depth"] == "50"
    assert any("You are the instructor" in caption.value for caption in app.sidebar.caption)