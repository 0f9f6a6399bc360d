"""Which device to run on, and what the machine is, for honest labels on every measurement."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(choice: str = "auto") -> torch.device:
    """``auto`` takes CUDA when present, else MPS, else the CPU; an unavailable one fails clearly."""
    choice = str(choice).strip().lower()
    if choice not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {choice!r}; valid: {', '.join(DEVICE_CHOICES)}")
    cuda, mps = torch.cuda.is_available(), _mps_available()
    if choice == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if choice == "cuda" and not cuda:
        raise ValueError("CUDA was asked for but no CUDA GPU is available on this machine; use --device cpu or auto")
    if choice == "mps" and not mps:
        raise ValueError("MPS was asked for but is not available on this machine; use --device cpu or auto")
    return torch.device(choice)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock read after it measures the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    threads = torch.get_num_threads()
    return f"CPU ({platform.processor() or platform.machine()}, {threads} thread{'s' if threads != 1 else ''})"


def environment(device: torch.device) -> dict:
    """Device and library versions, written next to every figure that was timed."""
    return {
        "device": describe_device(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "torchvision": _installed_version("torchvision"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def _installed_version(package: str) -> str:
    # From the package's metadata: importing torchvision only for its version takes seconds, and
    # every training run (each in a fresh worker process) records it.
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def available_memory_bytes(device: torch.device) -> int:
    """Memory free for new allocations on the device (MemAvailable for the CPU)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
