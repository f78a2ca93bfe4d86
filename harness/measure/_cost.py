"""What a run cost, joined with what it did: MFU against a measured matmul rate, energy per character.

MFU = model FLOPs per character (harness.models.flops_per_char) x training chars/s / the device's
measured matmul rate (`matmul_tflops`), never a datasheet peak.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import torch

from harness.measure._device import synchronize
from harness.measure._telemetry import Telemetry

SHARED_THRESHOLD = 1.05  # mean runs on the device above which a run counts as having shared it


MIN_CEILING_SECONDS = 0.2  # of timed matmuls: enough for clocks to ramp and launch overhead to vanish
WARMUP_MATMULS = 3
_CEILINGS: dict[tuple[str, str], dict] = {}


def ceiling_key(device: torch.device, dtype: str) -> str:
    """Names a ceiling by the physical device and dtype, so a study stores one per kind of device it ran on."""
    from harness.measure._device import device_name

    return f"{device_name(device)}|{dtype if device.type == 'cuda' else 'fp32'}"


def matmul_ceiling(device: torch.device, dtype: str = "bf16", min_seconds: float = MIN_CEILING_SECONDS) -> dict:
    """The device's measured dense matmul rate (TFLOP/s) in a dtype, and how it was measured; once per process.

    4096^2 on CUDA (TF32 off for fp32, so fp32 means fp32), 1024^2 fp32 on the CPU; `WARMUP_MATMULS`
    untimed first, then as many as fill `min_seconds`. Model FLOPs utilization is reported against
    this rate, not a datasheet peak: "share of what this machine's matmul actually reaches".
    """
    dtype = dtype if device.type == "cuda" else "fp32"
    key = (ceiling_key(device, dtype), dtype)
    if key in _CEILINGS:
        return _CEILINGS[key]
    n = 4096 if device.type == "cuda" else 1024
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a = torch.randn(n, n, device=device, dtype=torch_dtype)
        b = torch.randn(n, n, device=device, dtype=torch_dtype)
        for _ in range(WARMUP_MATMULS):
            a @ b
        synchronize(device)
        reps, start = 0, time.perf_counter()
        while True:
            for _ in range(5):
                a @ b
            reps += 5
            synchronize(device)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    threads = torch.get_num_threads() if device.type == "cpu" else None
    record = {"tflops": 2 * n**3 * reps / elapsed / 1e12, "dtype": dtype, "n": n, "reps": reps,
              "seconds": elapsed, "key": key[0], "threads": threads,
              "how": f"{reps} {n}x{n} {dtype} matmuls timed over {elapsed:.2f} s after {WARMUP_MATMULS} untimed"
                     f"{'' if threads is None else f' on {threads} CPU threads'}, measured before the first trial"}
    _CEILINGS[key] = record
    return record


def seed_ceiling(record: dict) -> None:
    """Reuse a ceiling measured earlier (stored in the study), so every trial of a study shares one."""
    _CEILINGS[(record["key"], record["dtype"])] = record


def matmul_tflops(device: torch.device, dtype: str = "bf16") -> float:
    return matmul_ceiling(device, dtype)["tflops"]


def model_flops_utilization(flops: float, share_seconds: float, wall_seconds: float, ceiling: dict) -> float | None:
    """MFU of `flops` a run did, against `ceiling` (matmul_ceiling's record); None where it cannot be said.

    On a GPU the time is the run's fair share of the device: the GPU time-slices the runs it holds,
    so a shared run is credited with the share it had. On a CPU, runs side by side each have threads
    of their own, so the time is the wall time and the ceiling is scaled from the threads it was
    measured on to this process's (the matmul rate grows about linearly with threads up to the core
    count). With the fair share there, a run beside two others was credited with three times what
    its threads did: MFU 295% on our 2-core machine. Sweep workers, which split the cores between
    them, come out the same either way.
    """
    if ceiling["tflops"] <= 0:
        return None
    threads = ceiling.get("threads")  # None on a GPU, and in ceilings stored before it was recorded
    if threads:
        rate = ceiling["tflops"] * torch.get_num_threads() / threads
        return flops / wall_seconds / 1e12 / rate if wall_seconds > 0 else None
    return flops / share_seconds / 1e12 / ceiling["tflops"] if share_seconds > 0 else None


class RunFigures(Protocol):
    """What the cost needs from a run's own record (harness.training's `TrainResult` has these)."""

    train_chars: int
    flops_per_char: int
    train_seconds: float
    train_wall_seconds: float
    precision: dict
    peak_mem_bytes: int | None

    @property
    def concurrency(self) -> float: ...


@dataclass(frozen=True)
class RunCost:
    """What a run cost, typed until it is stored: the telemetry's readings joined with the run's figures.

    The readings stay the telemetry summary's dict (its keys are the record's schema, harness.training's
    TELEMETRY_FIELDS); what is derived from them, the share of a shared device, the ceiling and MFU, is
    a field, so the trial runner reads `cost.energy_j` rather than a key. `summary()` is the stored form.
    """

    readings: dict  # Telemetry.summary(chars=...): device-wide where NVML's figures are
    gpu: bool  # NVML read the device: its energy is device-wide and is divided when the device was shared
    concurrency: float
    ceiling: dict  # matmul_ceiling's record, in the run's precision
    mfu: float | None
    peak_mem_bytes: int | None
    peak_mem_source: str | None
    samples_csv: str | None = None  # where Telemetry.save_csv wrote the samples, once it has

    @property
    def shared(self) -> bool:
        return self.concurrency > SHARED_THRESHOLD

    def _attributed(self, key: str) -> float | None:
        value = self.readings[key]
        return value / self.concurrency if value is not None and self.shared and self.gpu else value

    @property
    def energy_j(self) -> float | None:
        """This run's share of NVML's energy (device-wide when the device was shared); None where unsupported."""
        return self._attributed("energy_j")

    def summary(self) -> dict:
        """The stored form (result.json's `telemetry`, the trial's user attributes): the readings, with
        energy attributed by this run's share and the device-wide figures kept beside it (`*_device`)."""
        cost = dict(self.readings)
        cost["concurrency"], cost["shared"] = self.concurrency, self.shared
        if self.shared and self.gpu:
            for key in ("energy_j", "energy_j_integrated", "joules_per_char"):
                cost[f"{key}_device"], cost[key] = cost[key], self._attributed(key)
            cost["energy_scope"] = (f"{cost['energy_scope']}; the device was shared by {self.concurrency:.2f} runs "
                                    f"on average, so energy is attributed by this run's share")
            cost["util_source"] = f"{cost['util_source']} (device-wide, shared)"
        cost["matmul_tflops"], cost["matmul_ceiling"], cost["mfu"] = self.ceiling["tflops"], self.ceiling, self.mfu
        cost["peak_mem_bytes"], cost["peak_mem_source"] = self.peak_mem_bytes, self.peak_mem_source
        if self.samples_csv is not None:
            cost["samples_csv"] = self.samples_csv
        return cost


def cost_summary(telemetry: Telemetry, run: RunFigures) -> RunCost:
    """The telemetry joined with the trainer's figures: energy per character and MFU.

    MFU = model FLOPs per character (harness.models.flops_per_char) x training chars/s / the
    device's measured matmul rate in the run's precision (`matmul_ceiling`), the seconds as
    `model_flops_utilization` counts them.

    When the run shared its device (`concurrency` > 1, see harness.measure._occupancy), NVML's
    device-wide energy is attributed to it by its share (divided by the concurrency), the
    device-wide figures are kept beside it (`*_device`), and `shared` says so; utilization and
    power stay device-wide and are marked as such.
    """
    readings = telemetry.summary(chars=run.train_chars)
    ceiling = matmul_ceiling(telemetry.device, run.precision.get("mode", "fp32"))
    peak, source = readings["peak_mem_bytes"], readings["peak_mem_source"]
    if peak is None and run.peak_mem_bytes is not None:
        peak, source = run.peak_mem_bytes, "torch.cuda.max_memory_allocated"
    return RunCost(readings=readings, gpu=bool(telemetry.gpu), concurrency=float(run.concurrency or 1.0),
                   ceiling=ceiling, mfu=model_flops_utilization(run.flops_per_char * run.train_chars, run.train_seconds,
                                                                run.train_wall_seconds, ceiling),
                   peak_mem_bytes=peak, peak_mem_source=source)
