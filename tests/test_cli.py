"""`python -m explorer`: its JSON contracts and its one-line errors."""

import json
import subprocess
import sys

import pytest

from explorer.cli import main
from tests.conftest import ROOT


def test_models_lists_every_family(capsys):
    assert main(["models"]) == 0
    names = capsys.readouterr().out.split()
    assert {"cifar-resnet20", "cifar-plain56", "cifar-preact-resnet110", "resnet152", "plain34", "vgg16",
            "mlp-plain"} <= set(names)


def test_complexity_json_contract(capsys):
    assert main(["complexity", "--models", "cifar-resnet20,resnet50", "--json"]) == 0
    records = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    by_name = {record["model"]: record for record in records}
    assert by_name["cifar-resnet20"]["params"] == 269_722
    assert by_name["cifar-resnet20"]["macs"] == 40_551_040
    assert by_name["cifar-resnet20"]["paper_params"] == 270_000
    assert by_name["resnet50"]["paper_macs"] == 3.8e9
    assert by_name["resnet50"]["macs_paper_bottleneck"] < by_name["resnet50"]["macs"]
    assert "forward_ms" not in by_name["resnet50"]


def test_complexity_timing_per_batch_size(capsys):
    assert main(["complexity", "--models", "cifar-resnet20", "--time", "--device", "cpu", "--batch-sizes", "1,4",
                 "--repeats", "2", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])[0]
    assert set(record["forward_ms"]) == {"1", "4"} and all(ms > 0 for ms in record["forward_ms"].values())
    assert record["environment"]["device_type"] == "cpu" and record["environment"]["torch"]


def test_complexity_table_for_people(capsys):
    assert main(["complexity", "--models", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "11,689,512" in out and "+0.8%" in out


@pytest.mark.parametrize("args,reason", [
    (["complexity", "--models", "resnet19"], "ImageNet depths are 18, 34, 50, 101 and 152"),
    (["complexity", "--models", "cifar-resnet21"], "nearest valid: 20 or 26"),
    (["complexity", "--models", "nonsense"], "unknown model 'nonsense'"),
    (["complexity", "--models", ",", "--json"], "at least one model name"),
    (["complexity", "--models", "resnet18", "--time", "--batch-sizes", "0"], "batch size must be"),
    (["complexity", "--models", "vgg19", "--time", "--device", "cpu", "--batch-sizes", "65536"], "needs about"),
])
def test_bad_input_exits_non_zero_with_one_line(capsys, args, reason):
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0]
    assert captured.out == ""


def test_module_entry_point_runs_as_documented():
    result = subprocess.run([sys.executable, "-m", "explorer", "complexity", "--models", "cifar-resnet44", "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])[0]["params"] == 658_586
    bad = subprocess.run([sys.executable, "-m", "explorer", "complexity", "--models", "resnet7"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
