"""The lesion study and the loss landscape as jobs: through the backends, cached per run and settings,
refusals as messages; and their pages under AppTest."""

import json
import shutil
import time

import pytest
from streamlit.testing.v1 import AppTest

from explorer.analysis.landscape import landscape_reading, loss_landscape
from explorer.analysis.lesion import lesion_reading, lesion_study
from explorer.analysis.tasks import TaskBoard, cache_path
from explorer.train.execution import LocalBackend, TaskSpec, ThreadBackend
from explorer.train.store import DEFAULT_RUNS_DIR, Run
from tests.conftest import ROOT
from tests.tiny_runs import run_config

LESION = {"blocks": 2, "images": 64, "draws": 2, "device": "cpu", "clip_blocks": True}
LANDSCAPE = {"dims": 1, "points": 5, "span": 0.5, "images": 64, "seed": 0, "device": "cpu", "max_seconds": 120.0}


def _done(task, timeout=180):
    assert task.ended.wait(timeout), f"{task.kind} of {task.run_dir} did not end"
    return task


def test_a_worker_process_computes_what_the_library_does_and_the_cache_answers_next_time(runs, tmp_path):
    run_dir = tmp_path / "resnet"
    shutil.copytree(runs["cifar-resnet8"], run_dir)
    board = TaskBoard(LocalBackend(), max_concurrent=1)
    task = _done(board.request("lesion", run_dir, LESION))
    assert task.state == "done", task.message
    here = lesion_study(run_dir, **LESION)
    assert task.result["baseline_error"] == here["baseline_error"]
    assert [b["error"] for b in task.result["blocks"]] == [b["error"] for b in here["blocks"]]
    assert json.loads(cache_path("lesion", run_dir, LESION).read_text()) == task.result
    # The same settings again, from a fresh board (a restarted server): from the cache, no worker.
    again = TaskBoard(backend=None).request("lesion", run_dir, LESION)
    assert again.state == "done" and again.result == task.result
    # New weights: a new analysis.
    (run_dir / "model.pt").write_bytes((run_dir / "model.pt").read_bytes())
    assert cache_path("lesion", run_dir, LESION) != task.path


def test_one_task_per_run_and_settings_however_many_pages_ask(runs, tmp_path):
    run_dir = tmp_path / "plain"
    shutil.copytree(runs["cifar-plain8"], run_dir)
    board = TaskBoard(ThreadBackend(), max_concurrent=2)
    first, second = board.request("landscape", run_dir, LANDSCAPE), board.request("landscape", run_dir, LANDSCAPE)
    assert first is second
    assert _done(first).state == "done", first.message
    here = loss_landscape(run_dir, **LANDSCAPE)
    assert first.result["loss"] == pytest.approx(here["loss"]) and first.result["centre_loss"] == pytest.approx(
        here["centre_loss"])
    other = board.request("landscape", run_dir, {**LANDSCAPE, "seed": 1})
    assert other is not first and _done(other).state == "done"


def test_refusals_are_messages_and_a_failed_task_is_retried_only_when_asked(runs, tmp_path):
    board = TaskBoard(LocalBackend())
    empty = Run.create(tmp_path / "no-model", run_config("cifar-resnet8").to_json())
    task = board.request("lesion", empty.path, LESION)
    assert task.state == "failed" and "has saved no model yet" in task.message
    run_dir = tmp_path / "resnet"
    shutil.copytree(runs["cifar-resnet8"], run_dir)
    strict = {**LESION, "blocks": 99, "clip_blocks": False}
    too_many = _done(board.request("lesion", run_dir, strict))
    assert too_many.state == "failed" and too_many.message.startswith("--blocks 99 is more than the")
    assert board.request("lesion", run_dir, strict) is too_many  # a rerun does not start it again
    assert board.request("lesion", run_dir, strict, retry=True) is not too_many
    slow = _done(board.request("landscape", run_dir, {**LANDSCAPE, "dims": 2, "points": 201, "max_seconds": 1.0}))
    assert slow.state == "failed" and slow.message.startswith("would take about")
    with pytest.raises(ValueError, match="unknown analysis"):
        board.request("surgery", run_dir, {})


def test_a_worker_that_dies_is_a_message(tmp_path):
    handle = LocalBackend().start_task(TaskSpec("os:_exit", {"status": 3}, threads=1))
    assert handle.wait(60)
    result, why = handle.outcome()
    assert result is None and why == "its worker process exited with code 3"


def test_the_readings_say_what_was_measured(runs):
    studies = [lesion_study(runs[name], **LESION) for name in ("cifar-plain8", "cifar-resnet8")]
    lines = lesion_reading(studies)
    plain, residual = studies
    assert f"{100 * plain['mean_single_increase']:+.1f} points on average" in lines[0]
    assert lines[-1].startswith("At depth 8, one deleted block hurts **")
    shares = [s["mean_single_increase"] / (0.9 - s["baseline_error"]) for s in (residual, plain)]
    assert ("hurts **" + residual["label"] + "** less than" in lines[-1]) == (shares[0] < shares[1])
    assert f"{shares[0]:.0%} against {shares[1]:.0%} of the way to chance" in lines[-1]
    slices = [loss_landscape(runs[name], **LANDSCAPE) for name in ("cifar-plain8", "cifar-resnet8")]
    lines = landscape_reading(slices)
    assert f"loss {slices[0]['centre_loss']:.3f} at its weights" in lines[0]
    assert lines[-1].startswith("At depth 8 the residual net's slice is")


def _page(name: str) -> AppTest:
    app = AppTest.from_file(str(ROOT / "explorer" / "app.py"), default_timeout=180)
    app.run()
    app.switch_page(str(ROOT / "pages" / name))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


@pytest.fixture(scope="module")
def shared_pair(runs):
    """The tiny pair copied into the app's runs folder (runs made outside a session count as shared)."""
    made = []
    for name in ("cifar-plain8", "cifar-resnet8"):
        target = DEFAULT_RUNS_DIR / f"analysis-page-{name}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(runs[name], target)
        made.append(str(target))
    yield made
    for target in made:
        shutil.rmtree(target, ignore_errors=True)


def _until_drawn(app: AppTest, charts: int, timeout: float = 180) -> AppTest:
    """Until every asked task has ended (no progress bar left) and ``charts`` charts are drawn: the
    page draws a net's result as soon as it is there, so one chart may show one net of two."""
    deadline = time.time() + timeout
    while len(app.get("plotly_chart")) < charts or app.get("progress"):
        assert not app.error, [e.value for e in app.error]
        assert time.time() < deadline, "the results were not drawn"
        time.sleep(0.5)
        app.run()
    return app


def _settings(app: AppTest, page: str, runs: list[str]) -> AppTest:
    app.multiselect[0].set_value(runs).run()
    if page == "lesion.py":
        app.number_input[0].set_value(2)  # K
        app.number_input[1].set_value(64)  # images
    else:
        app.number_input[0].set_value(5)  # points
        app.number_input[2].set_value(100)  # images (the runs have 64)
    return app.run()


@pytest.mark.parametrize("page, start, charts, said", [
    ("lesion.py", "Run the lesion study", 2, "one deleted block hurts"),
    ("landscape.py", "Compute the slices", 1, "the residual net's slice is"),
])
def test_the_page_runs_its_analysis_as_a_job_and_draws_it(shared_pair, page, start, charts, said):
    app = _settings(_page(page), page, shared_pair)
    assert not app.get("plotly_chart")  # nothing computed before the click
    next(b for b in app.button if b.label.startswith(start)).click().run()
    assert not app.exception, [e.value for e in app.exception]
    _until_drawn(app, charts)
    text = " ".join(m.value for m in app.markdown)
    assert said in text and not app.exception
    if page == "landscape.py":
        assert any("asked for 100 images; the run's test set has 64, all used" in c.value for c in app.caption)
    # Another session with the same settings gets the results from the cache, without a click.
    other = _settings(_page(page), page, shared_pair)
    assert len(other.get("plotly_chart")) == charts and not other.get("progress")


def test_the_page_asks_one_k_of_nets_with_fewer_blocks_and_is_told_so(runs):
    study = lesion_study(runs["cifar-plain8"], blocks=3, images=64, draws=1, clip_blocks=True)
    assert [row["k"] for row in study["random_deletions"]] == [1]
    assert "K lowered from 3 to 1: cifar-plain8 has 1 blocks that can be deleted" in study["notes"]


def test_an_answer_larger_than_the_pipe_comes_back(tmp_path):
    """A worker blocks in send() until a large answer is read (a 2-D landscape of 61+ points a side
    is over the pipe's 64 KiB): waiting must read it, not only join the process."""
    big = "a" * 300_000
    handle = LocalBackend().start_task(TaskSpec("json:loads", {"s": json.dumps({"text": big})}, threads=1))
    assert handle.wait(60)
    result, why = handle.outcome()
    assert why == "" and result == {"text": big}


def test_waiting_for_a_worker_that_answered_and_is_slow_to_exit_takes_no_cpu():
    """Once the answer is read the pipe stays readable (end of file): waiting on it too spun the
    waiting thread, and with it the server's interpreter, until the worker exited."""
    handle = LocalBackend().start_task(TaskSpec("tests.tiny_runs:answer_then_linger", {"seconds": 2.0}, threads=1))
    cpu_before, wall_before = time.thread_time(), time.monotonic()
    assert handle.wait(60)
    assert handle.outcome() == ({"answered": True}, "")
    assert time.monotonic() - wall_before >= 1.5  # it did wait for the slow exit...
    assert time.thread_time() - cpu_before < 0.2  # ...asleep (spinning, it used about the whole 2 s)


def test_a_worker_that_answered_and_does_not_exit_is_killed_after_a_grace():
    handle = LocalBackend().start_task(TaskSpec("tests.tiny_runs:answer_then_linger", {"seconds": 120.0}, threads=1))
    handle.EXIT_GRACE_SECONDS = 1.0
    started = time.monotonic()
    assert handle.wait(60)  # not the 120 s it would linger
    assert time.monotonic() - started < 30
    assert handle.outcome() == ({"answered": True}, "")  # its answer counts


def test_a_task_whose_run_was_deleted_while_it_waited_fails_with_a_message(runs, tmp_path):
    run_dir = tmp_path / "resnet"
    shutil.copytree(runs["cifar-resnet8"], run_dir)
    board = TaskBoard(ThreadBackend(), max_concurrent=1)
    board._slots.acquire()  # the only slot busy: the task waits
    task = board.request("lesion", run_dir, LESION)
    shutil.rmtree(run_dir)
    board._slots.release()
    assert _done(task).state == "failed" and task.message == "resnet was deleted"
    assert not run_dir.exists()  # not made again for the cache


def test_a_diverged_nets_slice_is_described_without_error():
    result = {"label": "cifar-plain8 · 0001", "weights": "final", "model": "cifar-plain8", "centre_loss": None,
              "loss": [None, 2.0, None], "smoothness": {"nonconvexity": None, "local_minima": 0, "gaps": 2}}
    [line] = landscape_reading([result])
    assert "loss - at its weights" in line and "2 points gave NaN or infinite losses" in line
