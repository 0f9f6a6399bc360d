"""Precision chosen per machine, its override, probes in fp32, and torch.compile's fallback (issue 22)."""

import dataclasses
import logging

import pytest
import torch
from torch import nn

from explorer.cli import main
from explorer.train import precision, trainer as trainer_module
from explorer.train.config import DataConfig, ModelConfig, OptimConfig, ProbeConfig, RunConfig
from explorer.train.precision import cpu_bf16_support, resolve_compile, resolve_precision
from explorer.train.probes import GradientProbe
from explorer.train.store import Run
from explorer.train.trainer import train

CPU = torch.device("cpu")


def tiny(**fields) -> RunConfig:
    return RunConfig(model=ModelConfig(name="cifar-resnet8"),
                     data=DataConfig(dataset="shapes-easy", train_size=128, test_size=32, image_size=16),
                     optim=OptimConfig(steps=6, batch_size=16),
                     probes=ProbeConfig(probe_every=3, probe_batch=8, log_every=3, eval_every=6, checkpoint_every=6),
                     device="cpu", **fields)


@pytest.fixture
def native(monkeypatch):
    """Pretend the CPU has (or lacks) native bfloat16, whatever this machine has."""
    def set_support(feature):
        monkeypatch.setattr(precision, "cpu_bf16_support", lambda: feature)
    return set_support


def test_auto_takes_bf16_only_where_the_cpu_computes_it(native):
    native("AMX")
    assert resolve_precision("auto", CPU)[0] == "bf16"
    assert "AMX" in resolve_precision("auto", CPU)[1]
    native("AVX512-BF16")
    assert resolve_precision("auto", CPU) [0] == "bf16"
    native(None)
    used, why = resolve_precision("auto", CPU)
    assert used == "fp32" and "no native bfloat16" in why


def test_an_override_wins_and_an_emulated_bf16_says_it_is_slow(native):
    native("AMX")
    assert resolve_precision("fp32", CPU)[0] == "fp32"
    native(None)
    used, why = resolve_precision("bf16", CPU)
    assert used == "bf16" and "emulated" in why and "slower" in why
    with pytest.raises(ValueError, match="valid: auto, fp32, bf16"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="MPS"):
        resolve_precision("bf16", torch.device("mps"))


def test_the_cpu_check_reads_torch_then_cpuinfo(monkeypatch):
    cpu_bf16_support.cache_clear()
    try:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
        assert cpu_bf16_support() == "AVX512-BF16"
        cpu_bf16_support.cache_clear()
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
        assert cpu_bf16_support() == "AMX"
        cpu_bf16_support.cache_clear()
        monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")  # an older torch: the kernel's flags
        monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: {"avx2", "avx512_bf16"})
        assert cpu_bf16_support() == "AVX512-BF16"
        cpu_bf16_support.cache_clear()
        monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: {"avx2"})
        assert cpu_bf16_support() is None
    finally:
        cpu_bf16_support.cache_clear()


def test_compile_is_auto_on_cuda_only():
    assert resolve_compile("auto", CPU) is False and resolve_compile("auto", torch.device("cuda")) is True
    assert resolve_compile("on", CPU) is True and resolve_compile("off", torch.device("cuda")) is False
    with pytest.raises(ValueError, match="valid: auto, on, off"):
        resolve_compile("yes", CPU)


class _DtypeProbe(GradientProbe):
    """The gradient probe, also noting the dtype of the logits of each probed forward pass."""

    seen: list = []

    def __init__(self, model, *args, **kwargs):
        super().__init__(model, *args, **kwargs)
        self.watched = model

    def __enter__(self):
        self._hook = self.watched.register_forward_hook(lambda module, args, out: _DtypeProbe.seen.append(out.dtype))
        return super().__enter__()

    def __exit__(self, *exc):
        self._hook.remove()
        return super().__exit__(*exc)


def test_bf16_trains_in_bf16_and_probes_in_fp32(tmp_path, monkeypatch, native):
    native("AMX")  # auto picks bf16, as on a machine that has it (here it is emulated: slower, the same numbers)
    _DtypeProbe.seen = []
    monkeypatch.setattr(trainer_module, "GradientProbe", _DtypeProbe)
    autocast_in_response_probe = []
    measure = trainer_module.measure_responses
    monkeypatch.setattr(trainer_module, "measure_responses", lambda model, images: (
        autocast_in_response_probe.append(torch.is_autocast_enabled("cpu")), measure(model, images))[1])
    step_dtypes = []
    build = trainer_module.build_model

    def build_and_watch(*args, **kwargs):
        model = build(*args, **kwargs)
        model.register_forward_hook(lambda module, inputs, out: step_dtypes.append(out.dtype))
        return model

    monkeypatch.setattr(trainer_module, "build_model", build_and_watch)
    config = tiny()
    run = Run.create(tmp_path / "run", config.to_json())
    result = train(config, run)
    assert result.state == "completed", result.message
    environment = run.status()["environment"]
    assert environment["precision"] == "bf16" and "AMX" in environment["precision_reason"]
    assert environment["compiled"] is False
    assert torch.bfloat16 in step_dtypes  # the training steps between probes
    # Probes at steps 0, 3 and the saved weights (6): each forward in fp32, no autocast around them.
    assert _DtypeProbe.seen == [torch.float32] * 3
    assert autocast_in_response_probe == [False] * 3
    assert run.summary()["precision"] == "bf16"


def test_fp32_asked_for_is_recorded(tmp_path, native):
    native("AMX")
    config = tiny(precision="fp32")
    run = Run.create(tmp_path / "run", config.to_json())
    assert train(config, run).state == "completed"
    assert run.status()["environment"]["precision"] == "fp32"
    assert run.status()["environment"]["precision_reason"] == "fp32, as asked"


class _FailsAtFirstCall(nn.Module):
    """What torch.compile returns where the compiler is missing: the failure comes at the first call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        raise RuntimeError("InductorError: CppCompileError: C++ compile error\n(the compiler's long log)")


def test_a_compile_failure_trains_eagerly_with_one_logged_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(precision.torch, "compile", _FailsAtFirstCall)
    config = tiny(compile="on")
    run = Run.create(tmp_path / "run", config.to_json())
    with caplog.at_level(logging.WARNING, logger="explorer.train.precision"):
        result = train(config, run)
    assert result.state == "completed", result.message
    environment = run.status()["environment"]
    assert environment["compiled"] is False
    assert environment["compile_note"].startswith("torch.compile failed (RuntimeError: InductorError")
    assert "\n" not in environment["compile_note"]
    assert len([record for record in caplog.records if "torch.compile failed" in record.message]) == 1


def test_a_compiled_model_trains_and_saves_the_modules_own_weights(tmp_path, monkeypatch):
    calls = []

    class Wrapped(nn.Module):  # stands for torch.compile's OptimizedModule, which prefixes its keys
        def __init__(self, model):
            super().__init__()
            self._orig_mod = model

        def forward(self, images):
            calls.append(len(images))
            return self._orig_mod(images)

    monkeypatch.setattr(precision.torch, "compile", Wrapped)
    config = tiny(compile="on")
    run = Run.create(tmp_path / "run", config.to_json())
    assert train(config, run).state == "completed"
    assert run.status()["environment"]["compiled"] is True
    assert len(calls) == 4  # steps 1, 2, 4, 5: the probed steps 0 and 3 run the module itself
    saved = torch.load(run.path / "model.pt", weights_only=True)
    assert not any(key.startswith("_orig_mod") for key in saved)


def test_the_cli_refuses_an_unknown_precision_in_one_line(tmp_path, capsys):
    assert main(["train", "--precision", "fp16", "--steps", "2", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fp16" in err and "auto, fp32, bf16" in err
    assert not (tmp_path / "run").exists()


def test_the_cli_warns_that_an_emulated_bf16_is_slow_and_trains(tmp_path, capsys, native):
    native(None)
    config = tiny()
    flags = ["train", "--model", config.model.name, "--dataset", "shapes-easy", "--train-size", "64",
             "--test-size", "16", "--image-size", "16", "--steps", "2", "--batch-size", "8", "--probe-every", "0",
             "--device", "cpu", "--precision", "bf16", "--out", str(tmp_path / "run")]
    assert main(flags) == 0
    err = capsys.readouterr().err
    assert "warning: this CPU has no native bfloat16" in err
    assert Run(tmp_path / "run").status()["environment"]["precision"] == "bf16"


def test_old_run_configs_read_as_auto():
    record = tiny().to_json()
    del record["precision"], record["compile"]
    config = RunConfig.from_json(record)
    assert (config.precision, config.compile) == ("auto", "auto")
    assert dataclasses.replace(config, precision="bf16").precision == "bf16"


def test_the_reason_is_kept_as_a_code_and_said_in_the_pages_language(tmp_path, native):
    from explorer.i18n import translator
    from explorer.train.precision import precision_reason

    native("AMX")
    config = tiny()
    run = Run.create(tmp_path / "run", config.to_json())
    assert train(config, run).state == "completed"
    environment = run.status()["environment"]
    assert environment["precision_why"] == "auto-bf16-native" and environment["bf16_feature"] == "AMX"
    assert precision_reason(environment) == environment["precision_reason"] == \
        "bf16 autocast: this CPU (AMX) computes bfloat16 natively"
    assert precision_reason(environment, translator("ko")) == "bf16 autocast: 이 CPU(AMX)는 bfloat16을 하드웨어로 계산합니다"
    # A run recorded before the code was kept: its English sentence, as it was written.
    assert precision_reason({"precision_reason": "fp32, as asked"}, translator("ko")) == "fp32, as asked"
