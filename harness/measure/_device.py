"""Choosing the device, timing it honestly, and describing the machine a figure came from."""

from __future__ import annotations

import os
import platform
import socket
import time

import torch

from harness.common import HarnessError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise HarnessError(f"device {name!r} is not understood; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise HarnessError(
                f"device {name!r} asked for, but this torch build ({torch.__version__}) sees no CUDA GPU; "
                f"use --device cpu, or install a CUDA build of torch (see README)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise HarnessError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif device.type != "cpu":
        raise HarnessError(f"device {name!r} is not supported; use auto, cpu or cuda")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that a clock read afterwards includes it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synced_clock(device: torch.device) -> float:
    synchronize(device)
    return time.perf_counter()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def fingerprint(device: torch.device) -> dict:
    """Software and hardware a result was measured on, so figures from two machines are never mixed up."""
    info = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device_type": device.type,
        "device_name": device_name(device),
        "cpu_threads": torch.get_num_threads(),
        "driver": None,
    }
    if device.type == "cuda":
        info["cudnn"] = torch.backends.cudnn.version()
        try:
            import pynvml

            pynvml.nvmlInit()
            info["driver"] = pynvml.nvmlSystemGetDriverVersion()
        except Exception:  # NVML missing or broken: the fingerprint just lacks the driver
            pass
    return info
