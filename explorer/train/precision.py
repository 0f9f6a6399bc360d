"""Which number format a run trains in, chosen per machine, and torch.compile where it pays.

bfloat16 autocast speeds up training only where the processor computes bfloat16 natively:
CUDA GPUs from Ampere on, and CPUs with AVX512-BF16 (AMD Zen 4/5, Intel Xeon since Cooper Lake)
or AMX (Intel Sapphire Rapids and later). Elsewhere oneDNN emulates it, and a CPU run gets slower
(measured in bench/results/train-throughput-*): there ``auto`` keeps fp32.

Probes (layer responses, gradient norms) are always measured in fp32, so a figure made on a
machine with bfloat16 compares with one made without it.
"""

from __future__ import annotations

import contextlib
import functools
import logging

import torch

from explorer.i18n import N_, Translate, untranslated

PRECISION_CHOICES = ("auto", "fp32", "bf16")
COMPILE_CHOICES = ("auto", "on", "off")

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def cpu_bf16_support() -> str | None:
    """The CPU feature that computes bfloat16 natively ("AMX", "AVX512-BF16"), or None.

    torch's own run-time checks of the processor (the ones its CPU kernels dispatch on) where this
    torch has them; /proc/cpuinfo's flags otherwise. oneDNN's ``_is_mkldnn_bf16_supported`` is not
    enough on its own: it also answers yes on AVX-512 processors that only emulate bfloat16.
    """
    checks = torch.cpu  # torch >= 2.3: cpuinfo's own reading, as torch's kernels dispatch on it
    amx = getattr(checks, "_is_amx_tile_supported", None)
    avx512_bf16 = getattr(checks, "_is_avx512_bf16_supported", None)
    if amx is not None and avx512_bf16 is not None:
        if amx():
            return "AMX"
        return "AVX512-BF16" if avx512_bf16() else None
    flags = _cpuinfo_flags()
    if "amx_bf16" in flags:
        return "AMX"
    return "AVX512-BF16" if "avx512_bf16" in flags else None


def _cpuinfo_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return cpu_bf16_support() is not None
    return False


# Why a run trains in the precision it does: the code a run's environment keeps (``precision_why``),
# and its sentence (pages say it in their language; the CLI and status.json in English).
REASONS = {
    "asked-fp32": N_("fp32, as asked"),
    "asked-bf16-native": N_("bf16 autocast, as asked ({where} computes bfloat16 natively)"),
    "asked-bf16-emulated": N_("bf16 autocast, as asked, but {where} has no native bfloat16: it is emulated and "
                              "slower than fp32"),
    "auto-bf16-native": N_("bf16 autocast: {where} computes bfloat16 natively"),
    "auto-fp32-emulated": N_("fp32: {where} has no native bfloat16 (emulated, it would be slower)"),
    "mps": N_("fp32: MPS trains in fp32"),
}


def choose_precision(choice: str, device: torch.device) -> tuple[str, str, str | None]:
    """(``"fp32"`` or ``"bf16"``, the reason's code in REASONS, the CPU's bfloat16 feature or None)."""
    if choice not in PRECISION_CHOICES:
        raise ValueError(f"unknown precision {choice!r}; valid: {', '.join(PRECISION_CHOICES)}")
    feature = cpu_bf16_support() if device.type == "cpu" else None
    if device.type == "mps":
        if choice == "bf16":
            raise ValueError("bf16 training is not supported on MPS here; use --precision fp32 or auto")
        return "fp32", "mps", feature
    native = native_bf16(device)
    if choice == "fp32":
        return "fp32", "asked-fp32", feature
    if choice == "bf16":
        return "bf16", "asked-bf16-native" if native else "asked-bf16-emulated", feature
    return ("bf16", "auto-bf16-native", feature) if native else ("fp32", "auto-fp32-emulated", feature)


def resolve_precision(choice: str, device: torch.device) -> tuple[str, str]:
    """(``"fp32"`` or ``"bf16"``, why): what a run on ``device`` trains in when ``choice`` is asked.

    A bf16 asked for where the processor lacks it runs (emulated, slower) and says so; MPS trains in
    fp32 only.
    """
    used, code, feature = choose_precision(choice, device)
    return used, reason_sentence(code, device.type, feature)


def reason_sentence(code: str, device_type: str, feature: str | None, _: Translate = untranslated) -> str:
    """REASONS[code] for this processor, in ``_``'s language."""
    translate = _  # REASONS' sentences are marked with N_ where they are defined
    return translate(REASONS[code]).format(where=processor_words(device_type, feature, _))


def processor_words(device_type: str, feature: str | None, _: Translate = untranslated) -> str:
    """"this GPU", "this CPU (AMX)", "this CPU": the ``{where}`` of REASONS."""
    if device_type == "cuda":
        return _("this GPU")
    return _("this CPU ({feature})").format(feature=feature) if feature else _("this CPU")


def precision_reason(environment: dict, _: Translate = untranslated) -> str:
    """Why a run trained in its precision, from its environment (status.json), in ``_``'s language;
    a run recorded before the reason's code was kept says its English sentence."""
    why = environment.get("precision_why")
    if why not in REASONS:
        return str(environment.get("precision_reason", ""))
    return reason_sentence(why, str(environment.get("device_type", "cpu")), environment.get("bf16_feature"), _)


def autocast(device: torch.device, precision: str):
    """The context a training step's forward pass runs in."""
    if precision == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# torch.compile on the CPU, measured by bench/train_throughput.py on 2 cores (train-throughput-cpu-2026-12-07):
# inductor's compile added 42 s (ResNet-20, 32 px) and 75 s (ResNet-56, 16 px) to a run's first steps with an
# empty cache, 4 s and 7 s with the cache the run before left on disk; then ResNet-56 at the presets' 16 px
# trained slower compiled (384-390 images/s) than eager (447). A preset's wall time would not get shorter, so
# ``auto`` compiles on CUDA only, where the paper's schedule runs for hours.
def resolve_compile(choice: str, device: torch.device) -> bool:
    if choice not in COMPILE_CHOICES:
        raise ValueError(f"unknown compile setting {choice!r}; valid: {', '.join(COMPILE_CHOICES)}")
    if choice == "auto":
        return device.type == "cuda"
    return choice == "on"


def compiled(model: torch.nn.Module) -> tuple[torch.nn.Module, str | None]:
    """(the model to train, a one-line note): ``torch.compile``'s module, or ``model`` itself with why not.

    Compilation happens at the first call, so the caller runs one step through ``first_step``;
    this only wraps. A platform where torch.compile is not available says so and trains eagerly.
    """
    try:
        return torch.compile(model), None
    except Exception as error:  # noqa: BLE001 - any failure to compile trains eagerly instead
        return model, compile_failure(error)


def compile_failure(error: BaseException) -> str:
    line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    note = f"torch.compile failed ({type(error).__name__}{': ' + line[:160] if line else ''}); training eagerly"
    log.warning(note)
    return note
