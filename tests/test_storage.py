"""A semester of runs (issue 21): a session's quota, pruning old runs, runs as one zip and back, and
zips that must not be unpacked."""

import io
import json
import os
import re
import stat
import time
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from explorer.cli import main
from explorer.train.execution import ThreadBackend
from explorer.train.jobs import JobManager
from explorer.train.storage import (
    MAX_COMPRESSION_RATIO,
    QUOTA_ENV,
    import_runs,
    prunable,
    session_quota_bytes,
)
from explorer.train.store import DEFAULT_RUNS_DIR, Run
from tests.conftest import ROOT
from tests.test_disk_full import tiny

DAY = 86_400


def made_run(root, name: str, owner: str | None, days_old: float = 0, state: str = "completed") -> Run:
    run = Run.create(root / name, tiny().to_json())
    (run.path / "model.pt").write_bytes(b"\0" * 1000)
    run.append_metric({"step": 1, "split": "train", "loss": 1.0, "error": 0.5})
    run.set_status(state, "done", owner=owner)
    status = run.status()
    status["updated"] = time.time() - days_old * DAY
    (run.path / "status.json").write_text(json.dumps(status))
    return run


def test_the_quota_comes_from_the_environment_and_bad_values_are_one_line(monkeypatch):
    monkeypatch.delenv(QUOTA_ENV, raising=False)
    assert session_quota_bytes() == 200 * 2**20
    monkeypatch.setenv(QUOTA_ENV, "12.5")
    assert session_quota_bytes() == int(12.5 * 2**20)
    for bad in ("0", "-3", "many", "inf"):
        monkeypatch.setenv(QUOTA_ENV, bad)
        with pytest.raises(ValueError, match=f"RESNET_EXPLORER_SESSION_QUOTA_MB must be a number above zero, got '{bad}'"):
            session_quota_bytes()


def test_a_run_that_would_pass_a_students_quota_is_refused_with_a_way_out(tmp_path, monkeypatch):
    made_run(tmp_path, "old", owner="alice")
    monkeypatch.setenv(QUOTA_ENV, "1")  # 1 MB: alice's new pair needs about 2 MB of records alone
    manager = JobManager(tmp_path, max_concurrent=1, backend=ThreadBackend())
    with pytest.raises(ValueError, match=r"your runs take 0.0 MB of your 1 MB, and these need about .* delete some "
                                         r"of your old runs on the Runs page"):
        manager.submit_group([tiny(), tiny()], group="g", owner="alice")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["old"]
    job = manager.submit(tiny(steps=1))  # shared runs (the instructor's, the CLI's) have no quota
    assert manager.wait(job.run_dir, timeout=120).state == "completed"
    manager.shutdown()


def test_pruning_takes_old_students_runs_never_training_or_shared_ones(tmp_path, capsys):
    made_run(tmp_path, "alice-old", "alice", days_old=40)
    made_run(tmp_path, "alice-new", "alice", days_old=2)
    made_run(tmp_path, "bob-old", "bob", days_old=90)
    made_run(tmp_path, "shared-old", None, days_old=90)
    made_run(tmp_path, "bob-training", "bob", days_old=90, state="running").update_status(pid=os.getpid())
    assert sorted(run.path.name for run in prunable(tmp_path, 30)) == ["alice-old", "bob-old"]
    assert [run.path.name for run in prunable(tmp_path, 30, "alice")] == ["alice-old"]
    assert [run.path.name for run in prunable(tmp_path, 30, None)] == ["shared-old"]
    assert main(["runs", str(tmp_path), "--prune-older-than", "30", "--owner", "bob"]) == 0
    assert "deleted 1 run(s)" in capsys.readouterr().out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["alice-new", "alice-old", "bob-training", "shared-old"]
    assert main(["runs", str(tmp_path), "--prune-older-than", "30"]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["alice-new", "bob-training", "shared-old"]
    for bad in ("0", "-1", "soon"):
        assert main(["runs", str(tmp_path), "--prune-older-than", bad]) == 2
        assert "must be a number above zero" in capsys.readouterr().err


def test_runs_export_and_import_round_trip(tmp_path, capsys):
    source, target = tmp_path / "source", tmp_path / "target"
    runs = [made_run(source, name, "alice") for name in ("first", "second")]
    archive = tmp_path / "mine.zip"
    assert main(["runs", "export", *(str(run.path) for run in runs), "--out", str(archive)]) == 0
    assert main(["runs", "import", str(archive), "--into", str(target)]) == 0
    assert "imported 2 run(s)" in capsys.readouterr().out
    for run in runs:
        for path in run.path.iterdir():
            assert (target / run.path.name / path.name).read_bytes() == path.read_bytes()
    assert main(["runs", "import", str(archive), "--into", str(target)]) == 2  # they exist now
    assert "exists already" in capsys.readouterr().err
    with zipfile.ZipFile(archive) as opened:  # unzipping by hand gives the same folders
        opened.extractall(tmp_path / "unzipped")
    assert Run(tmp_path / "unzipped" / "first").exists()


def _zip(entries: list[tuple[str, bytes]], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


CONFIG = ("run/config.json", b"{}")


@pytest.mark.parametrize("data, refused", [
    (_zip([CONFIG, ("../evil.py", b"x")]), "outside the runs folder"),
    (_zip([CONFIG, ("run/../../evil.py", b"x")]), "outside the runs folder"),
    (_zip([CONFIG, ("/etc/evil", b"x")]), "outside the runs folder"),
    (_zip([CONFIG], link="run/model.pt"), "is a link"),
    (_zip([("run/metrics.jsonl", b"{}")]), "not a run folder (no config.json)"),
    (_zip([CONFIG, ("run/model.pt", b"\0" * (MAX_COMPRESSION_RATIO * 5000))]), "zip bomb"),
    (b"this is not a zip", "not a zip file"),
], ids=["dot-dot", "dot-dot-inside", "absolute", "symlink", "no-config", "bomb", "not-a-zip"])
def test_an_unsafe_or_foreign_zip_is_refused_without_writing_anything(tmp_path, data, refused):
    target = tmp_path / "runs"
    with pytest.raises(ValueError, match=re.escape(refused)):
        import_runs(io.BytesIO(data), target)
    assert not list(target.iterdir()), list(target.iterdir())
    assert not (tmp_path / "evil.py").exists()


def _runs_page(monkeypatch, student: bool) -> AppTest:
    monkeypatch.setenv("RESNET_EXPLORER_LOCAL_IS_INSTRUCTOR", "0" if student else "1")
    app = AppTest.from_file(str(ROOT / "explorer" / "app.py"), default_timeout=180)
    app.run()
    app.switch_page(str(ROOT / "pages" / "runs.py"))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_the_runs_page_shows_a_students_quota_and_the_instructor_every_owners_storage(monkeypatch):
    made = [made_run(DEFAULT_RUNS_DIR, f"storage-page-{index}", owner, days_old=60)
            for index, owner in enumerate(("studentkey0001", None))]
    try:
        student = _runs_page(monkeypatch, student=True)
        assert any("of your 200.0 MB" in bar.proto.text for bar in student.get("progress"))
        instructor = _runs_page(monkeypatch, student=False)
        owners = list(instructor.dataframe[-1].value["owner"])
        assert "student ·0001" in owners and "shared (yours, the CLI's)" in owners
        assert any("MB free" in caption.value for caption in instructor.caption)
        assert instructor.number_input(key="prune-days").value == 30
    finally:
        for run in made:
            run.delete()
