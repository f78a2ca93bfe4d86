"""What a run cost, joined with what it did: MFU against a measured matmul rate, energy per character.

MFU = model FLOPs per character (harness.models.flops_per_char) x training chars/s / the device's
measured matmul rate (`matmul_tflops`), never a datasheet peak.
"""

from __future__ import annotations

import time

import torch

from harness.measure._device import synchronize
from harness.measure._telemetry import Telemetry

SHARED_THRESHOLD = 1.05  # mean runs on the device above which a run counts as having shared it


_MATMUL_CACHE: dict[str, float] = {}


def matmul_tflops(device: torch.device) -> float:
    """The device's measured dense matmul rate (TFLOP/s): bf16 4096^2 on CUDA, fp32 1024^2 on the CPU.

    Model FLOPs utilization is reported against this measured rate, not a datasheet peak, so the
    figure means "share of what this machine's matmul actually reaches".
    """
    key = str(device)
    if key in _MATMUL_CACHE:
        return _MATMUL_CACHE[key]
    n, dtype, reps = (4096, torch.bfloat16, 20) if device.type == "cuda" else (1024, torch.float32, 5)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    synchronize(device)
    rate = 2 * n**3 * reps / (time.perf_counter() - start) / 1e12
    _MATMUL_CACHE[key] = rate
    return rate


def cost_summary(telemetry: Telemetry, train_summary: dict) -> dict:
    """The telemetry summary joined with the trainer's figures: energy per character and MFU.

    MFU = model FLOPs per character (harness.models.flops_per_char) x training chars/s / the
    device's measured matmul rate (`matmul_tflops`).

    When the run shared its device (`concurrency` > 1, see harness.occupancy), NVML's
    device-wide energy is attributed to it by its share (divided by the concurrency), the
    device-wide figures are kept beside it (`*_device`), and `shared` says so; utilization and
    power stay device-wide and are marked as such.
    """
    cost = telemetry.summary(chars=train_summary.get("train_chars"))
    concurrency = float(train_summary.get("concurrency") or 1.0)
    cost["concurrency"] = concurrency
    cost["shared"] = concurrency > SHARED_THRESHOLD
    if cost["shared"] and telemetry.gpu:
        for key in ("energy_j", "energy_j_integrated", "joules_per_char"):
            cost[f"{key}_device"] = cost[key]
            cost[key] = cost[key] / concurrency if cost[key] is not None else None
        cost["energy_scope"] = (f"{cost['energy_scope']}; the device was shared by {concurrency:.2f} runs on "
                                f"average, so energy is attributed by this run's share")
        cost["util_source"] = f"{cost['util_source']} (device-wide, shared)"
    peak_rate = matmul_tflops(telemetry.device)
    cost["matmul_tflops"] = peak_rate
    cost["mfu"] = train_summary["achieved_tflops"] / peak_rate if peak_rate > 0 else None
    if cost["peak_mem_bytes"] is None and train_summary.get("peak_mem_bytes") is not None:
        cost["peak_mem_bytes"], cost["peak_mem_source"] = train_summary["peak_mem_bytes"], "torch.cuda.max_memory_allocated"
    return cost
