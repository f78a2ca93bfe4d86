"""NVML and /proc: finding a torch device's NVML handle, and the host-side memory figures.

NVML is optional: without it (CPU machines, laptops) `load_nvml` answers None and the telemetry
samples the process instead.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
ENERGY_SCOPE = ("NVML total energy counter of the device (nvmlDeviceGetTotalEnergyConsumption): what the "
                "driver's counter covers, which on a GB10 is the GPU as the driver meters it, not the whole "
                "system")


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


def nvml_handle(nvml, device: torch.device):
    """The NVML handle of the torch device: by UUID, then by PCI bus id (CUDA_VISIBLE_DEVICES-proof)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        text = str(uuid)
        for candidate in (text, f"GPU-{text}"):
            with contextlib.suppress(Exception):
                return nvml.nvmlDeviceGetHandleByUUID(candidate)
    if hasattr(props, "pci_bus_id"):
        bus = f"{props.pci_domain_id:08X}:{props.pci_bus_id:02X}:{props.pci_device_id:02X}.0"
        with contextlib.suppress(Exception):
            return nvml.nvmlDeviceGetHandleByPciBusId(bus)
    warnings.warn(f"telemetry: could not match {device} to an NVML device by UUID or PCI bus id; using NVML "
                  f"index {index}", TelemetryWarning, stacklevel=2)
    return nvml.nvmlDeviceGetHandleByIndex(index)
