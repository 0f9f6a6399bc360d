"""The run store: resuming without a duplicate or a lost record, what an interrupted run says, a
listing that only reads, and records read incrementally."""

import json
import os
import subprocess
import sys
import threading

import pytest

from explorer.cli import main
from explorer.train import trainer as trainer_module
from explorer.train.config import DataConfig, ModelConfig, OptimConfig, ProbeConfig, RunConfig
from explorer.train.jsonl import JsonlCache, last_records
from explorer.train.store import Run, mark_interrupted
from explorer.train.trainer import train
from tests.conftest import call_at_once


def tiny(steps=12) -> RunConfig:
    return RunConfig(
        model=ModelConfig(name="cifar-resnet8"), data=DataConfig(dataset="shapes", train_size=256, test_size=96),
        optim=OptimConfig(steps=steps, batch_size=32),
        probes=ProbeConfig(probe_every=4, probe_batch=16, log_every=4, eval_every=8, checkpoint_every=4),
        device="cpu",
    )


def _steps(run: Run) -> dict:
    metrics, probes = run.metrics().records, run.probes().records
    return {"train": [m["step"] for m in metrics if m["split"] == "train"],
            "test": [m["step"] for m in metrics if m["split"] == "test"],
            "grad_norm": [p["step"] for p in probes if p["kind"] == "grad_norm"],
            "response_std": [p["step"] for p in probes if p["kind"] == "response_std"]}


# Probes every 4 steps before the update, and once more for the saved weights at the end (step 12).
COMPLETE = {"train": [4, 8, 12], "test": [8, 12], "grad_norm": [0, 4, 8, 12], "response_std": [0, 4, 8, 12]}


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _left_running_by_a_dead_process(run: Run, step: int, **extra) -> None:
    status = {**run.status(), "state": "running", "message": f"step {step}", "step": step, "pid": _dead_pid(),
              **extra}
    (run.path / "status.json").write_text(json.dumps(status))


def _killed_after_first_checkpoint(tmp_path, monkeypatch) -> Run:
    """A run that saved its checkpoint at step 4, then went on recording to step 12 and died."""
    real_save, saves = trainer_module._save, []

    def save_once(t, step):
        saves.append(step)
        if len(saves) == 1:
            real_save(t, step)

    monkeypatch.setattr(trainer_module, "_save", save_once)
    run = Run.create(tmp_path / "run", tiny().to_json())
    assert train(tiny(), run).state == "completed"
    monkeypatch.setattr(trainer_module, "_save", real_save)
    assert saves[0] == 4 and _steps(run) == COMPLETE
    _left_running_by_a_dead_process(run, 12)
    return run


def test_a_resume_from_a_checkpoint_keeps_exactly_the_records_before_its_next_step(tmp_path, monkeypatch):
    run = _killed_after_first_checkpoint(tmp_path, monkeypatch)
    assert train(tiny(), run).state == "completed"
    # Step 4's probes are taken before step 4's update, after the checkpoint: made again, once.
    assert _steps(run) == COMPLETE
    assert run.status()["checkpoint_step"] == 12


def test_a_resume_without_a_checkpoint_starts_clean(tmp_path):
    run = Run.create(tmp_path / "run", tiny().to_json())
    for step in (4, 8):  # what a run killed before its first checkpoint left
        run.append_metric({"step": step, "epoch": 0.5, "split": "train", "loss": 2.0, "error": 0.9, "lr": 0.1,
                           "time": 1.0})
        run.append_probe({"step": step - 4, "kind": "grad_norm", "blocks": [], "layers": []})
    _left_running_by_a_dead_process(run, 8)
    assert train(tiny(), run).state == "completed"
    assert _steps(run) == COMPLETE
    assert all(m["loss"] != 2.0 for m in run.metrics().records)  # none of the dead process's records


def test_an_interrupted_run_names_the_checkpoint_it_restarts_from(tmp_path, monkeypatch):
    run = _killed_after_first_checkpoint(tmp_path, monkeypatch)
    assert run.status()["checkpoint_step"] == 4
    [marked] = mark_interrupted(tmp_path)
    assert marked.status()["state"] == "interrupted"
    assert marked.status()["message"] == ("interrupted at step 12 when its process ended; resumes from the "
                                          "checkpoint at step 4")

    early = Run.create(tmp_path / "early", tiny().to_json())
    _left_running_by_a_dead_process(early, 3)
    assert [r.id for r in mark_interrupted(tmp_path)] == ["early"]
    assert early.status()["message"] == ("interrupted at step 3 when its process ended, before its first "
                                         "checkpoint; restarts from step 0")


def test_update_status_merges_keys_and_keeps_the_state(tmp_path):
    run = Run.create(tmp_path / "run", tiny().to_json())
    run.set_status("paused", "paused at step 4", step=4)
    run.update_status(checkpoint_step=4)
    status = run.status()
    assert (status["state"], status["message"], status["step"], status["checkpoint_step"]) == \
        ("paused", "paused at step 4", 4, 4)


def _snapshot(root) -> dict:
    return {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in root.rglob("*") if path.is_file()}


def test_the_runs_listing_only_reads(tmp_path, capsys):
    orphan = Run.create(tmp_path / "orphan", tiny().to_json())
    orphan.append_metric({"step": 4, "split": "train", "error": 0.5})
    orphan.append_metric({"step": 4, "split": "test", "error": 0.6})
    (orphan.path / "checkpoint.pt").write_bytes(b"")  # only its presence counts here
    _left_running_by_a_dead_process(orphan, 6, checkpoint_step=4)
    live = Run.create(tmp_path / "live", tiny().to_json())
    live.set_status("running", "step 2", step=2)  # this process: alive
    before = _snapshot(tmp_path)
    assert main(["runs", str(tmp_path), "--json"]) == 0
    listed = {summary["id"]: summary for summary in json.loads(capsys.readouterr().out)}
    assert main(["runs", str(tmp_path)]) == 0
    assert "interrupted" in capsys.readouterr().out
    assert _snapshot(tmp_path) == before  # every byte and every mtime
    assert listed["orphan"]["state"] == "interrupted"
    assert listed["orphan"]["message"] == ("interrupted at step 6 when its process ended; resumes from the "
                                           "checkpoint at step 4")
    assert (listed["orphan"]["train_error"], listed["orphan"]["test_error"]) == (0.5, 0.6)
    assert listed["live"]["state"] == "running"
    assert {"run_dir", "id", "state", "message", "model", "dataset", "step", "total_steps", "train_error",
            "test_error", "images_per_sec"} <= set(listed["orphan"])


# --- reading records incrementally -----------------------------------------------------------------

def _append(path, *lines: str) -> None:
    with open(path, "a") as handle:
        handle.write("".join(lines))


def test_a_second_read_parses_only_the_new_lines(tmp_path):
    path, cache = tmp_path / "metrics.jsonl", JsonlCache()
    _append(path, *(json.dumps({"step": step}) + "\n" for step in range(1000)))
    assert [r["step"] for r in cache.read(path).records] == list(range(1000))
    assert cache.parsed_lines == 1000
    _append(path, '{"step": 1000}\n', '{"step": 1001}\n')
    assert [r["step"] for r in cache.read(path).records] == list(range(1002))
    assert cache.parsed_lines == 1002
    cache.read(path)
    assert cache.parsed_lines == 1002  # nothing new, nothing parsed


def test_a_half_written_line_is_reported_then_read_when_complete(tmp_path):
    path, cache = tmp_path / "metrics.jsonl", JsonlCache()
    _append(path, '{"step": 1}\n', "\n", '{"step": 2, "spl')
    first = cache.read(path)
    assert [r["step"] for r in first.records] == [1]
    assert first.problems == ["metrics.jsonl line 3: half-written (skipped)"]
    _append(path, 'it": "train"}\n', "{not json\n")
    second = cache.read(path)
    assert second.records == [{"step": 1}, {"step": 2, "split": "train"}]
    assert second.problems == ["metrics.jsonl line 4: corrupt (skipped)"]
    _append(path, '{"step": 5}')  # a whole record, its newline not yet written
    assert cache.read(path).records[-1] == {"step": 5}
    _append(path, "\n")
    assert [r["step"] for r in cache.read(path).records] == [1, 2, 5]


def test_a_file_truncated_or_replaced_is_read_again(tmp_path):
    path, cache = tmp_path / "metrics.jsonl", JsonlCache()
    _append(path, *(json.dumps({"step": step}) + "\n" for step in range(10)))
    assert len(cache.read(path).records) == 10
    # A resume rewrites the file and renames it over the old one: another inode, fewer lines.
    replacement = tmp_path / "metrics.jsonl.tmp"
    replacement.write_text("".join(json.dumps({"step": step}) + "\n" for step in range(4)))
    os.replace(replacement, path)
    assert [r["step"] for r in cache.read(path).records] == [0, 1, 2, 3]
    with open(path, "w") as handle:  # truncated in place, then grown past the old offset
        handle.write("".join(json.dumps({"step": 100 + step}) + "\n" for step in range(10)))
    assert [r["step"] for r in cache.read(path).records] == list(range(100, 110))
    path.unlink()
    assert cache.read(path).records == []


def test_the_cache_is_bounded_and_shared_between_threads(tmp_path):
    cache = JsonlCache(max_files=3)
    paths = [tmp_path / f"{index}.jsonl" for index in range(5)]
    for index, path in enumerate(paths):
        _append(path, *(json.dumps({"run": index, "step": step}) + "\n" for step in range(200)))
    for path in paths:
        cache.read(path)
    assert len(cache) == 3 and not cache.holds(paths[0]) and cache.holds(paths[-1])

    shared, results = JsonlCache(), []
    threads = [threading.Thread(target=lambda: results.append(shared.read(paths[0]).records)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all([r["step"] for r in records] == list(range(200)) for records in results)
    assert shared.parsed_lines == 200  # read once, by whichever thread came first


def test_the_last_records_come_from_the_end_of_the_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": step, "split": "train", "error": step / 1e4}) + "\n" for step in range(1, 20_001)]
    lines.insert(10_000, json.dumps({"step": 10_000, "split": "test", "error": 0.25}) + "\n")
    _append(path, *lines, '{"step": 20001, "spl')
    wanted = {"train": {"split": "train"}, "test": {"split": "test"}}
    last = last_records(path, wanted, scan_bytes=2**20)
    assert last["train"]["step"] == 20_000 and last["test"]["error"] == 0.25
    assert last_records(path, wanted, scan_bytes=4096)["test"]["error"] == 0.25  # not in the tail: whole file
    assert last_records(tmp_path / "missing.jsonl", wanted) == {}


@pytest.mark.parametrize("kind", ["metrics", "probes"])
def test_run_readers_see_appends(tmp_path, kind):
    run = Run.create(tmp_path / "run", tiny().to_json())
    append = run.append_metric if kind == "metrics" else run.append_probe
    read = run.metrics if kind == "metrics" else run.probes
    append({"step": 1})
    assert [r["step"] for r in read().records] == [1]
    append({"step": 2})
    assert [r["step"] for r in read().records] == [1, 2]


def test_the_servers_warm_up_reads_every_run_so_a_page_parses_nothing(tmp_path):
    import threading

    from explorer.analysis.runs import read_run, warm_runs
    from explorer.train.jsonl import CACHE

    runs = [Run.create(tmp_path / name, tiny().to_json()) for name in ("20260101-000000-a-0001", "20260102-000000-b-0002")]
    for run in runs:
        for step in range(50):
            run.append_metric({"step": step, "split": "train", "loss": 1.0, "error": 0.5})
    stopped = threading.Event()
    stopped.set()
    assert warm_runs(tmp_path, stop=stopped) == 0  # told to stop: reads nothing
    for run in runs:
        CACHE.forget(run.path / "metrics.jsonl")
    assert warm_runs(tmp_path) == 2
    before = CACHE.parsed_lines
    assert [len(read_run(run).metrics) for run in runs] == [50, 50]
    assert CACHE.parsed_lines == before  # the page's read: from the cache


def test_runs_started_in_the_same_second_get_their_own_folders_even_when_the_short_tag_repeats(tmp_path, monkeypatch):
    """A class pressing Start at once asks for many names in one second; a repeated four-digit tag draws
    again instead of failing the student's run (seen in CI: 'is not empty; give a new folder')."""
    import uuid as uuid_module

    from explorer.train import store as store_module

    drawn = iter(["aaaa" + "0" * 28] * 3 + ["bbbb" + "0" * 28] * 2 + ["cccc" + "0" * 28] * 20)
    monkeypatch.setattr(store_module.uuid, "uuid4", lambda: uuid_module.UUID(next(drawn)))
    monkeypatch.setattr(store_module.time, "strftime", lambda _format: "20261207-024843")
    runs = [Run.new_in(tmp_path, tiny().to_json(), "class") for _ in range(3)]
    assert [run.id[-4:] for run in runs] == ["aaaa", "bbbb", "cccc"]
    assert all(run.config() == json.loads(json.dumps(tiny().to_json())) for run in runs)


def test_many_threads_naming_runs_at_once_never_share_a_folder(tmp_path, monkeypatch):
    import uuid as uuid_module

    from explorer.train import store as store_module

    tags = iter(f"{index % 4:04x}" + "0" * 28 for index in range(10_000))
    lock = threading.Lock()

    def few_tags():  # four tags among sixteen runs: most draws collide, and do so across threads
        with lock:
            return uuid_module.UUID(next(tags))

    monkeypatch.setattr(store_module.uuid, "uuid4", few_tags)
    monkeypatch.setattr(store_module.time, "strftime", lambda _format: "20261207-024843")
    made, errors = call_at_once(lambda: Run.new_in(tmp_path / "runs", tiny().to_json(), "class"))
    assert errors == [] and len({run.path for run in made}) == 4
