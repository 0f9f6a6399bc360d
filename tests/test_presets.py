"""The Train page's presets and schedules, the easy shapes they use on a CPU, and how concurrent runs share it."""

import threading

import numpy as np
import pytest
import torch

import explorer.data.shapes as shapes
from explorer.analysis.runs import RunRecords, response_summary
from explorer.data import load_dataset
from explorer.models import build_model, seeded_weights
from explorer.threads import cpu_thread_share
from explorer.train.config import validate
from explorer.train.trainer import check_config_fits
from explorer.train.presets import CLAIMS, PRESETS, SHORT_RUN_STEPS, custom_configs
from explorer.train.trainer import lr_at

# --- presets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(PRESETS))
def test_cpu_presets_run_the_short_schedule_on_easy_shapes(key):
    configs = PRESETS[key].configs("cpu", seed=3)
    assert [c.model.name for c in configs] == list(PRESETS[key].cpu_models)
    for config in configs:
        validate(config)
        check_config_fits(config)
        assert config.device == "cpu" and config.seed == 3
        assert (config.data.dataset, config.data.image_size, config.data.train_size) == ("shapes-easy", 16, 5_000)
        assert (config.optim.steps, config.optim.batch_size, config.optim.lr) == (140, 64, 0.02)
        assert not config.data.augment  # 16-pixel images: the pad-4 crop slows a short run (module docstring)
        # One drop, for the last 10% of the steps.
        lrs = [lr_at(step, 140, config.optim) for step in (0, 125, 126, 139)]
        assert lrs == pytest.approx([0.02, 0.02, 0.002, 0.002])
    text = PRESETS[key].describe("cpu")
    assert "140 steps at batch 64" in text and "shapes-easy at 16x16" in text and "90%" in text
    assert "without augmentation" in text


@pytest.mark.parametrize("key", list(PRESETS))
def test_gpu_presets_run_the_papers_schedule(key):
    configs = PRESETS[key].configs("cuda")
    for config in configs:
        validate(config)
        assert (config.data.dataset, config.data.image_size, config.data.train_size) == ("shapes", 32, None)
        assert (config.optim.steps, config.optim.batch_size, config.optim.lr) == (64_000, 128, 0.1)
        assert config.optim.lr_milestones == (0.5, 0.75)  # 32k and 48k iterations
        assert config.optim.warmup_steps == (400 if config.model.name.endswith("110") else 0)
        assert config.data.augment
    assert "cifar-resnet110" in PRESETS["fig6"].gpu_models and "cifar-resnet110" not in PRESETS["fig6"].cpu_models


def test_a_preset_on_another_data_set_keeps_its_schedule():
    config = PRESETS["fig1"].configs("cpu", dataset="cifar10")[0]
    assert config.data.dataset == "cifar10" and config.data.image_size == 16
    assert "of cifar10 at 16x16" in PRESETS["fig1"].describe("cpu", "cifar10")


def test_custom_runs_drop_the_rate_once_unless_they_are_long():
    short = custom_configs(["cifar-plain20", "cifar-resnet20"], "shapes-easy", 300, 64, 0.05, "cpu", 5_000,
                           image_size=16)
    assert [c.model.name for c in short] == ["cifar-plain20", "cifar-resnet20"]
    assert short[0].optim.lr_milestones == (0.9,) and short[0].data.image_size == 16 and short[0].data.augment
    assert not custom_configs(["cifar-resnet20"], "shapes-easy", 300, 64, 0.05, "cpu", augment=False)[0].data.augment
    long = custom_configs(["cifar-resnet20"], "shapes", SHORT_RUN_STEPS, 128, 0.1, "cuda")
    assert long[0].optim.lr_milestones == (0.5, 0.75) and long[0].data.image_size == 32


# --- easy shapes -----------------------------------------------------------------------------------


def test_easy_shapes_have_a_smooth_background_and_the_same_objects():
    easy = shapes.generate_shapes(300, 7, clutter=False, return_masks=True)
    cluttered = shapes.generate_shapes(300, 7, return_masks=True)
    # The same classes, places and sizes: only the background, contrast and noise change.
    assert np.array_equal(easy.labels, cluttered.labels) and np.array_equal(easy.boxes, cluttered.boxes)

    def background_roughness(drawn):
        """Median step between neighbouring background pixels, far from the object."""
        images = drawn.images.astype(np.float64) / 255
        steps = np.abs(np.diff(images, axis=2)).max(-1)  # (N, H, W-1)
        background = (drawn.masks[:, :, 1:] == 0) & (drawn.masks[:, :, :-1] == 0)
        return np.median([np.percentile(step[mask], 95) for step, mask in zip(steps, background)])

    # Strokes and blotches make sharp steps in the cluttered background; the easy one is a gradient plus
    # faint noise.
    assert background_roughness(easy) < 0.06 < background_roughness(cluttered)
    assert np.array_equal(easy.images, shapes.generate_shapes(300, 7, clutter=False).images)


def test_load_dataset_shapes_easy_is_its_own_set():
    easy = load_dataset("shapes-easy", seed=2, train_size=60, test_size=20, image_size=16)
    cluttered = load_dataset("shapes", seed=2, train_size=60, test_size=20, image_size=16)
    assert easy.name == "shapes-easy" and easy.x_train.shape == (60, 16, 16, 3) and easy.classes == cluttered.classes
    assert np.array_equal(easy.y_train, cluttered.y_train) and not np.array_equal(easy.x_train, cluttered.x_train)


# --- sharing the CPU -------------------------------------------------------------------------------


def test_concurrent_trainers_get_one_thread_each_and_the_count_comes_back():
    before = torch.get_num_threads()
    with cpu_thread_share():
        assert torch.get_num_threads() == before  # alone: every thread
        with cpu_thread_share():
            assert torch.get_num_threads() == 1  # two at once: one each
        assert torch.get_num_threads() == before
        with cpu_thread_share(single=True):
            assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_runs_built_at_once_get_the_weights_of_their_own_seed():
    """Jobs build their models in threads at the same time; the global generator is shared by all of them."""
    expected = {}
    for seed in (5, 6):
        with seeded_weights(seed):
            expected[seed] = build_model("cifar-resnet8", input_size=16).state_dict()
    assert not torch.equal(expected[5]["conv1.weight"], expected[6]["conv1.weight"])
    built, start = {}, threading.Barrier(4)

    def build(index, seed):
        start.wait()
        for repeat in range(3):
            with seeded_weights(seed):
                built[index, repeat] = seed, build_model("cifar-resnet8", input_size=16).state_dict()

    workers = [threading.Thread(target=build, args=(index, seed)) for index, seed in enumerate((5, 6, 5, 6))]
    [worker.start() for worker in workers]
    [worker.join() for worker in workers]
    assert len(built) == 12
    for seed, state in built.values():
        assert all(torch.equal(state[key], expected[seed][key]) for key in expected[seed])


# --- the responses table -----------------------------------------------------------------------------


def test_the_residual_column_comes_from_the_model_not_the_label():
    snapshot = [{"step": 0, "kind": "response_std", "layers": [{"name": "a", "std": 1.0}]}]
    rows = response_summary([RunRecords(run_dir="a", label="my plain run", model="cifar-resnet20", responses=snapshot),
                             RunRecords(run_dir="b", label="resnet?", model="cifar-plain20", responses=snapshot),
                             RunRecords(run_dir="c", label="vgg", model="vgg16", responses=snapshot),
                             RunRecords(run_dir="d", label="odd", model="no-such-model", responses=snapshot)])
    assert [row["residual"] for row in rows] == [True, False, False, None]


# --- the CLI ---------------------------------------------------------------------------------------


def test_cli_preset_trains_every_model_at_once(tmp_path, monkeypatch, capsys):
    import dataclasses
    import json

    from explorer.cli import main

    tiny = dataclasses.replace(PRESETS["fig1"].cpu, steps=6, train_size=128, test_size=32, log_every=3, eval_every=3,
                               probe_every=3)
    monkeypatch.setitem(PRESETS, "fig1", dataclasses.replace(PRESETS["fig1"], cpu=tiny))
    assert main(["preset", "fig1", "--device", "cpu", "--seed", "2", "--out", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["preset"] == "fig1" and result["device"] == "cpu" and result["seconds"] > 0
    assert [run["model"] for run in result["runs"]] == ["cifar-plain20", "cifar-plain56"]
    for run in result["runs"]:
        assert run["state"] == "completed" and 0 <= run["train_error"] <= 1 and 0 <= run["test_error"] <= 1
        config = json.loads((tmp_path / run["run_dir"].rsplit("/", 1)[-1] / "config.json").read_text())
        assert config["seed"] == 2 and config["data"]["dataset"] == "shapes-easy" and config["data"]["image_size"] == 16


@pytest.mark.parametrize("args, reason", [
    (["preset", "fig9"], "unknown preset 'fig9'; valid: fig1, fig6, fig7"),
    (["preset", "fig1", "--dataset", "mnist"], "unknown data set 'mnist'"),
])
def test_cli_preset_bad_input(tmp_path, capsys, args, reason):
    from explorer.cli import main

    assert main([*args, "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and reason in error and len(error.splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing was created


def test_every_claim_a_preset_rests_on_is_defined_and_names_its_nets():
    for preset in PRESETS.values():
        assert preset.claims and len(preset.shows.splitlines()) == 1 and len(preset.cannot.splitlines()) == 1
        for claim in preset.claims:
            assert {CLAIMS[claim]["left"], CLAIMS[claim]["right"]} <= set(preset.cpu_models)


def test_measured_figures_come_from_the_newest_readable_record(tmp_path):
    from explorer.measurements import latest

    (tmp_path / "presets-cpu-2026-01-02.json").write_text('{"date": "2026-01-02", "seeds": [0]}')
    (tmp_path / "presets-cpu-2026-03-04.json").write_text('{"date": "2026-03-04", "seeds": [0, 1]}')
    (tmp_path / "presets-cpu-2026-05-06.json").write_text('{"date": ')  # half-written: skipped
    (tmp_path / "presets-gpu-2026-07-08.json").write_text('{"date": "2026-07-08"}')  # another record
    recorded = latest("presets-cpu", tmp_path)
    assert recorded.date == "2026-03-04" and recorded.source == "bench/results/presets-cpu-2026-03-04.json"
    assert latest("degradation-shapes-cpu", tmp_path) is None


def test_titles_name_only_the_nets_this_device_trains():
    import re

    for preset in PRESETS.values():
        for device in ("cpu", "cuda"):
            named = preset.title_on(device).split(":", 1)[1].split("(")[0]  # before "(a GPU adds ...)"
            depths_named = set(re.findall(r"\d+", named))
            depths_trained = {re.search(r"\d+$", model).group() for model in preset.models(device)}
            assert depths_named and depths_named <= depths_trained, (preset.key, device, named)


# --- real images when the machine has them (issue 22) ----------------------------------------------


def _image_folder(root):
    for split in ("train", "test"):
        (root / split / "cat").mkdir(parents=True)
    return root


def test_without_real_images_the_cpu_presets_train_on_the_built_in_shapes(tmp_path, monkeypatch):
    from explorer.train.presets import real_images_on_machine

    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path / "empty"))
    monkeypatch.delenv("RESNET_EXPLORER_REAL_IMAGES", raising=False)
    assert real_images_on_machine() is None
    assert {config.data.dataset for config in PRESETS["fig6"].configs("cpu")} == {"shapes-easy"}
    monkeypatch.setenv("RESNET_EXPLORER_REAL_IMAGES", f"folder:{tmp_path / 'missing'}")  # named but not there
    assert real_images_on_machine() is None
    monkeypatch.setenv("RESNET_EXPLORER_REAL_IMAGES", "shapes")  # not real images at all
    assert real_images_on_machine() is None
    monkeypatch.setenv("RESNET_EXPLORER_REAL_IMAGES", "cifar10")  # named, but not downloaded: nothing is fetched
    assert real_images_on_machine() is None


def test_a_downloaded_cifar10_becomes_the_cpu_presets_default(tmp_path, monkeypatch):
    from explorer.data import cifar10
    from explorer.train.presets import real_images_on_machine

    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path))
    monkeypatch.delenv("RESNET_EXPLORER_REAL_IMAGES", raising=False)
    batches = tmp_path / cifar10.FOLDER
    batches.mkdir()
    for name in cifar10.BATCH_FILES[:-1]:
        (batches / name).write_bytes(b"")
    assert real_images_on_machine() is None  # a batch missing: not on the machine
    (batches / cifar10.BATCH_FILES[-1]).write_bytes(b"")
    assert real_images_on_machine() == "cifar10"
    configs = PRESETS["fig6"].configs("cpu", seed=1)
    assert {config.data.dataset for config in configs} == {"cifar10"}
    assert (configs[0].optim.steps, configs[0].data.image_size) == (140, 16)  # the same schedule
    assert "of cifar10 at 16x16" in PRESETS["fig6"].describe("cpu")
    assert {config.data.dataset for config in PRESETS["fig6"].configs("cuda")} == {"shapes"}  # a GPU: unchanged
    assert PRESETS["fig6"].configs("cpu", dataset="shapes-easy")[0].data.dataset == "shapes-easy"  # asked for


def test_a_named_folder_of_real_images_becomes_the_default(tmp_path, monkeypatch):
    from explorer.train.presets import real_images_on_machine

    folder = _image_folder(tmp_path / "cifar-png")
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("RESNET_EXPLORER_REAL_IMAGES", f" folder:{folder} ")
    assert real_images_on_machine() == f"folder:{folder}"
    assert PRESETS["fig1"].configs("cpu")[0].data.dataset == f"folder:{folder}"


def _record(path, name, date, dataset, note, counts):
    import json

    seeds = list(range(10))
    runs = [{"seed": seed, "seconds": 40.0 + seed, "models": {
        "cifar-plain20": {"train_error": 0.7}, "cifar-plain56": {"train_error": 0.85},
        "cifar-resnet20": {"train_error": 0.5}, "cifar-resnet56": {"train_error": 0.6}}} for seed in seeds]
    (path / f"{name}-{date}.json").write_text(json.dumps({
        "date": date, "environment": {"device": "CPU (x86_64, 2 threads)"}, "seeds": seeds, "dataset": dataset,
        "dataset_note": note, "summary": {"fig6": {"seconds": [40.0, 49.0], "claims_held_on_seeds": counts}},
        "runs": {"fig6": runs}}))


def test_the_page_quotes_the_table_of_the_data_it_trains_on(tmp_path, monkeypatch):
    from explorer import measurements
    from explorer.train import presets

    _record(tmp_path, "presets-cpu", "2026-12-07", "shapes-easy", "", {"plain56_behind_plain20": 10})
    _record(tmp_path, "presets-real-images-cpu", "2026-12-07", "folder:/x", "the CIFAR-10 subset (8,068 images)",
            {"plain56_behind_plain20": 9})
    monkeypatch.setattr(presets, "latest", lambda name: measurements.latest(name, tmp_path))
    monkeypatch.delenv("RESNET_EXPLORER_REAL_IMAGES", raising=False)
    on_shapes = PRESETS["fig6"].measured_on_cpu("shapes-easy")
    on_real = PRESETS["fig6"].measured_on_cpu("cifar10")
    assert "on 10 of 10 seeds" in on_shapes and "Real images" not in on_shapes
    assert "on 9 of 10 seeds" in on_real and "Real images: the CIFAR-10 subset (8,068 images)." in on_real
    assert "40-49 s from submitting them" in on_real
    (tmp_path / "presets-real-images-cpu-2026-12-07.json").unlink()
    assert PRESETS["fig6"].measured_on_cpu("folder:/data/cifar") is None  # no table for real images: none shown


def test_the_train_form_defaults_to_the_real_images_on_the_machine(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    folder = _image_folder(tmp_path / "cifar-png")
    monkeypatch.setenv("RESNET_EXPLORER_REAL_IMAGES", f"folder:{folder}")
    app = AppTest.from_file(str(ROOT / "explorer" / "app.py"), default_timeout=120).run()
    app.switch_page(str(ROOT / "pages" / "train.py")).run()
    assert not app.exception
    assert app.selectbox(key="train_dataset").value == f"folder:{folder}"
    assert f"folder:{folder}" in app.selectbox(key="train_dataset").options


def test_a_page_states_a_claim_only_where_the_record_bears_it_out(tmp_path, monkeypatch):
    """Fig. 7's line says the ResNet-20's responses are smaller than plain-20's only when the record for
    the data has that on 9 of 10 seeds; on 8 it says the order depends on the seed."""
    import json

    from explorer import measurements
    from explorer.train import presets

    monkeypatch.setattr(presets, "latest", lambda name: measurements.latest(name, tmp_path))
    monkeypatch.delenv("RESNET_EXPLORER_REAL_IMAGES", raising=False)
    fig7 = PRESETS["fig7"]
    assert fig7.lines("cpu", "shapes-easy") == (fig7.shows, fig7.cannot)  # nothing recorded: the written lines

    def record(name, held):
        (tmp_path / f"{name}-2026-12-07.json").write_text(json.dumps({
            "date": "2026-12-07", "seeds": list(range(10)),
            "summary": {"fig7": {"claims_held_on_seeds": {"resnet20_smaller_responses": held}}}}))

    record("presets-cpu", 9)
    assert fig7.lines("cpu", "shapes-easy") == (fig7.shows, fig7.cannot)
    assert "smaller than plain-20's" in fig7.lines("cpu", "shapes-easy")[0]
    record("presets-cpu", 8)
    shows, cannot = fig7.lines("cpu", "shapes-easy")
    assert (shows, cannot) == (fig7.shows_if_unheld, fig7.cannot_if_unheld)
    assert "depends on the seed" in shows and "smaller than plain-20's" not in shows
    assert fig7.lines("cuda") == (fig7.shows, fig7.cannot)  # the paper's schedule: the paper's claim
    # Real images are judged by their own record: none yet, so the written lines; then one that holds.
    assert fig7.lines("cpu", "cifar10") == (fig7.shows, fig7.cannot)
    record("presets-real-images-cpu", 10)
    assert fig7.lines("cpu", "cifar10") == (fig7.shows, fig7.cannot)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32 machine", "bf16 machine"])
def test_the_recorded_claims_of_every_line_a_preset_says_hold_on_nine_of_ten(monkeypatch, bf16):
    """The lines the Train page says on this project's own records, on a machine of either kind: every
    claim in them held on 9 of 10 in the record the page reads."""
    from explorer.train import presets

    monkeypatch.setattr(presets, "cpu_trains_in_bf16", lambda: bf16)
    checked = 0
    for dataset in ("shapes-easy", "folder:/real"):
        recorded = PRESETS["fig6"].measured_record(dataset)
        if recorded is None:
            continue
        name = presets.MEASURED_ON_REAL_IMAGES if presets.is_real_images(dataset) else presets.MEASURED_ON_CPU
        own = presets.latest(name + presets.BF16_RECORD if bf16 else name)
        assert recorded.source == (own or recorded).source
        seeds = len(recorded.data["seeds"])
        for preset in PRESETS.values():
            counts = recorded.data["summary"][preset.key]["claims_held_on_seeds"]
            shows, _cannot = preset.lines("cpu", dataset)
            if shows == preset.shows:
                assert all(counts[claim] >= 0.9 * seeds for claim in preset.shows_rests_on), (recorded.source, preset.key)
            checked += 1
    assert checked  # the project has records to check


def test_a_machine_quotes_the_record_of_its_own_precision_and_says_when_it_has_none(tmp_path, monkeypatch):
    import json

    from explorer import measurements
    from explorer.train import presets

    monkeypatch.setattr(presets, "latest", lambda name: measurements.latest(name, tmp_path))
    monkeypatch.delenv("RESNET_EXPLORER_REAL_IMAGES", raising=False)
    _record(tmp_path, "presets-cpu", "2026-12-07", "shapes-easy", "", {"plain56_behind_plain20": 10})
    monkeypatch.setattr(presets, "cpu_trains_in_bf16", lambda: True)
    fallback = PRESETS["fig6"].measured_on_cpu("shapes-easy")
    assert "In float32." in fallback and "This machine trains in bfloat16, and has no record of its own kind" in fallback
    _record(tmp_path, "presets-cpu-bf16", "2026-12-06", "shapes-easy", "", {"plain56_behind_plain20": 7})
    record = json.loads((tmp_path / "presets-cpu-bf16-2026-12-06.json").read_text())
    (tmp_path / "presets-cpu-bf16-2026-12-06.json").write_text(json.dumps({**record, "precision": "bf16"}))
    own = PRESETS["fig6"].measured_on_cpu("shapes-easy")  # older than the fp32 record, but of its own kind
    assert "on 7 of 10 seeds" in own and "In bfloat16" in own and "no record of its own kind" not in own
    monkeypatch.setattr(presets, "cpu_trains_in_bf16", lambda: False)
    fp32 = PRESETS["fig6"].measured_on_cpu("shapes-easy")
    assert "on 10 of 10 seeds" in fp32 and "no record of its own kind" not in fp32
