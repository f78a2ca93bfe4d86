"""NVML and /proc: finding a torch device's NVML handle, and the host-side memory figures.

NVML is optional: without it (CPU machines, laptops) `load_nvml` answers None and the telemetry
samples the process instead.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable
from typing import Any

import torch

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
ENERGY_SCOPE = ("NVML total energy counter of the device (nvmlDeviceGetTotalEnergyConsumption): what the "
                "driver's counter covers, which on a GB10 is the GPU as the driver meters it, not the whole "
                "system")


PID_NAMESPACE_SOURCE = ("torch.cuda.memory_reserved: NVML's process list holds host PIDs and none is this "
                        "process's (a container's PID namespace)")


def in_pid_namespace() -> bool:
    """Whether this process runs in a PID namespace of its own (a container): PID 1 is not init there."""
    try:
        with open("/proc/1/sched") as f:
            first = f.readline()
    except OSError:
        return False
    return not first.startswith(("systemd", "init"))


# NVML's return codes that mean the device or driver never reports a field: NotSupported (a GB10's
# memory queries), NoPermission, FunctionNotFound (an older driver). Every other code is about one
# reading: NotFound is how nvmlDeviceGetProcessUtilization says "no sample newer than the timestamp",
# at a run's start and in any second without kernels; NoData, NotReady, Timeout pass too.
NEVER_READABLE_CODES = frozenset({3, 4, 13})


def never_readable(error: Exception) -> bool:
    """Whether a failed query means the field cannot be read on this device at all (then it is null for
    the whole run, with one warning), rather than that this one reading had nothing to give.

    An error that is not NVML's own answer (a binding without the function, a changed struct) is
    treated as never readable: retrying it would fail the same way at every sample.
    """
    code = getattr(error, "value", None)
    if type(error).__name__.startswith("NVMLError") and isinstance(code, int):
        return code in NEVER_READABLE_CODES
    return True


class TelemetryWarning(UserWarning):
    """A telemetry field the device cannot report; raised once per field."""


def system_memory_used() -> int | None:
    """MemTotal - MemAvailable from /proc/meminfo, in bytes: the memory the machine has given out."""
    try:
        values = {}
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                values[key] = int(rest.split()[0]) * 1024
        return values["MemTotal"] - values["MemAvailable"]
    except (OSError, KeyError, ValueError, IndexError):
        return None


def process_rss() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


def load_nvml():
    """The pynvml module, initialised, or None where there is no NVML (CPU machines, laptops)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def uuid_candidates(uuid: str) -> list[str]:
    """The NVML UUID strings a torch UUID may stand for: torch prints it bare, NVML wants `GPU-<uuid>` for a
    whole GPU and `MIG-<uuid>` for a MIG instance (whose parent GPU reports no utilization under MIG)."""
    if uuid.startswith(("GPU-", "MIG-")):
        return [uuid]
    return [uuid, f"MIG-{uuid}", f"GPU-{uuid}"]


def nvml_handle(nvml, device: torch.device):
    """The NVML handle of the torch device: by UUID, then by PCI bus id (CUDA_VISIBLE_DEVICES-proof)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        for candidate in uuid_candidates(str(uuid)):
            with contextlib.suppress(Exception):
                return nvml.nvmlDeviceGetHandleByUUID(candidate)
    if hasattr(props, "pci_bus_id"):
        bus = f"{props.pci_domain_id:08X}:{props.pci_bus_id:02X}:{props.pci_device_id:02X}.0"
        with contextlib.suppress(Exception):
            return nvml.nvmlDeviceGetHandleByPciBusId(bus)
    warnings.warn(f"telemetry: could not match {device} to an NVML device by UUID or PCI bus id; using NVML "
                  f"index {index}", TelemetryWarning, stacklevel=2)
    return nvml.nvmlDeviceGetHandleByIndex(index)


def device_fields(n: Any, h: Any) -> dict[str, Callable[[], Any]]:
    """The device-wide readings Telemetry samples at its full rate, each a call into NVML (`n`) for handle `h`."""
    return {
        "gpu_util": lambda: n.nvmlDeviceGetUtilizationRates(h).gpu,
        "mem_util": lambda: n.nvmlDeviceGetUtilizationRates(h).memory,
        "power_w": lambda: n.nvmlDeviceGetPowerUsage(h) / 1000.0,
        "sm_clock_mhz": lambda: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM),
        "temperature_c": lambda: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
        "mem_used_bytes": lambda: n.nvmlDeviceGetMemoryInfo(h).used,
        "energy_j": lambda: n.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0,
    }
