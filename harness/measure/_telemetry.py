"""What a run cost the device: NVML sampling beside the run, and synchronized phase windows.

A background thread samples the run's own GPU (found by UUID, else PCI bus id, never by
assuming index 0) at a few Hz: utilization, memory-controller utilization, power, SM clock,
temperature, memory used and the energy counter; the process list and system memory at 1 Hz.
Each NVML field is probed once: a field the device cannot report (DGX Spark answers NotSupported
for memory) is recorded as null, never 0, with one warning. A reading NVML has no answer for this
once (NotFound from the per-process samples when no kernel ran since the last read) is a missing
reading, counted in `missing_readings`, and the next sample asks again. Unified-memory devices get their
memory figures from torch's allocator, NVML's process list and /proc/meminfo instead.

Without a GPU or without NVML the same interface samples the process's CPU utilization and
resident memory, and the device-seconds are synchronized wall time on the CPU.

Windows (`with telemetry.window("training"):`) synchronize the device at both edges and add
their time and energy to a per-phase total, as Zeus's measurement windows do.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.measure._device import synchronize
from harness.measure._nvml import (
    ENERGY_SCOPE,
    PID_NAMESPACE_SOURCE,
    TelemetryWarning,
    device_fields,
    in_pid_namespace,
    load_nvml,
    never_readable,
    nvml_handle,
    process_rss,
    system_memory_used,
)
from harness.measure._power import integrate


@dataclass
class Phase:
    seconds: float = 0.0
    energy_j: float | None = None
    count: int = 0


@dataclass
class Telemetry:
    """Samples one device beside a run; use as a context manager so the thread always stops."""

    device: torch.device
    rate_hz: float = 4.0
    slow_interval_s: float = 1.0
    nvml: Any = None
    handle: Any = None
    sync: Callable[[], None] | None = None
    samples: list[dict] = field(default_factory=list)
    phases: dict[str, Phase] = field(default_factory=dict)
    # What the device answers, set in __post_init__ (not constructor arguments):
    gpu: bool = field(init=False, default=False)  # NVML has a handle for this device
    util_key: str = field(init=False, default="cpu_util")
    process_mem_source: str | None = field(init=False, default=None)
    source: str = field(init=False, default="cpu")  # nvml or cpu
    unsupported: set[str] = field(init=False, default_factory=set)  # fields NVML answers NotSupported
    missing: dict[str, int] = field(init=False, default_factory=dict)  # readings NVML had no answer for, by field
    # The sampler's own state:
    _warned: set[str] = field(init=False, default_factory=set, repr=False)
    _stop: threading.Event = field(init=False, default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(init=False, default=None, repr=False)
    _phase: str | None = field(init=False, default=None, repr=False)
    _open: dict[str, tuple[float, float | None]] = field(init=False, default_factory=dict, repr=False)
    _edges: list[tuple[float, float]] = field(init=False, default_factory=list, repr=False)  # power at window edges
    _t0: float = field(init=False, default_factory=time.perf_counter, repr=False)
    _cpu_last: tuple[float, float] | None = field(init=False, default=None, repr=False)
    _proc_util_ts: int = field(init=False, default=0, repr=False)  # NVML's timestamp (us) of the last process sample
    _fields: dict[str, Callable[[], Any]] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.sync is None:
            self.sync = lambda: synchronize(self.device)
        if self.nvml is None and self.device.type == "cuda":
            self.nvml = load_nvml()
        if self.nvml is not None and self.handle is None and self.device.type == "cuda":
            self.handle = nvml_handle(self.nvml, self.device)
        self.gpu = self.nvml is not None and self.handle is not None
        self.util_key = "gpu_util" if self.gpu else "cpu_util"
        self.process_mem_source = "nvml process list" if self.gpu else None
        self.source = "nvml" if self.gpu else "cpu"
        self._fields = device_fields(self.nvml, self.handle) if self.gpu else {}
        if self.gpu:
            self._probe()

    # --- NVML fields -------------------------------------------------------------------------
    def _slow_fields(self) -> dict[str, Callable[[], Any]]:
        fields = {"system_mem_used_bytes": system_memory_used}
        if self.gpu:
            fields["process_gpu_mem_bytes"] = self._process_gpu_memory
            fields["process_sm_util"] = self._process_sm_util
            if self.device.type == "cuda":
                fields["torch_reserved_bytes"] = lambda: torch.cuda.memory_reserved(self.device)
        return fields

    def _process_gpu_memory(self) -> int | None:
        """This process's GPU memory from NVML's process list, or torch's allocator where that list cannot
        name this process: in a container the list holds host PIDs, which never equal os.getpid()."""
        pid = os.getpid()
        processes = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        for proc in processes:
            if proc.pid == pid:
                used = getattr(proc, "usedGpuMemory", None)
                return int(used) if used is not None else None
        if processes and self.device.type == "cuda" and torch.cuda.memory_reserved(self.device) > 0:
            self.process_mem_source = PID_NAMESPACE_SOURCE
            return torch.cuda.memory_reserved(self.device)
        if processes:  # others on the device, none of them us as far as NVML can tell
            self.process_mem_source = PID_NAMESPACE_SOURCE if in_pid_namespace() else "nvml process list"
        return None

    def _process_sm_util(self) -> float | None:
        """This process's own SM utilization (%) since the last read, from NVML's per-process samples.

        Device utilization is every process's; this is the figure that says how much of the GPU a
        trial had when several workers shared it. None when NVML holds no sample of this PID (in a
        container it lists host PIDs).
        """
        samples = self.nvml.nvmlDeviceGetProcessUtilization(self.handle, self._proc_util_ts)
        mine = [x for x in samples if x.pid == os.getpid()]
        if samples:
            self._proc_util_ts = max(x.timeStamp for x in samples)
        return sum(x.smUtil for x in mine) / len(mine) if mine else None

    def _probe(self) -> None:
        for name, read in {**self._fields, "process_gpu_mem_bytes": self._process_gpu_memory}.items():
            self._read(name, read)
        self.missing.clear()  # a probe before the run has no sample to miss

    def _mark_unsupported(self, name: str, error: Exception) -> None:
        self.unsupported.add(name)
        if name not in self._warned:
            self._warned.add(name)
            warnings.warn(f"telemetry: {name} is not available on this device ({type(error).__name__}: {error}); "
                          f"recorded as null", TelemetryWarning, stacklevel=3)

    def _read(self, name: str, read: Callable[[], Any]) -> Any:
        if name in self.unsupported:
            return None
        try:
            return read()
        except Exception as e:
            if never_readable(e):
                self._mark_unsupported(name, e)
            else:
                self.missing[name] = self.missing.get(name, 0) + 1
            return None

    @property
    def energy_readable(self) -> bool:
        """Whether a run's energy can be measured here: NVML's energy counter, or at least its power reading."""
        return self.gpu and not {"energy_j", "power_w"} <= self.unsupported

    # --- sampling ----------------------------------------------------------------------------
    def sample(self, slow: bool) -> dict:
        now = time.perf_counter()
        row: dict[str, Any] = {"t": now - self._t0, "phase": self._phase}
        if self.gpu:
            for name, read in self._fields.items():
                row[name] = self._read(name, read)
        else:
            cpu = time.process_time()
            if self._cpu_last is not None and now > self._cpu_last[0]:
                row["cpu_util"] = 100.0 * (cpu - self._cpu_last[1]) / (now - self._cpu_last[0])
            else:
                row["cpu_util"] = None
            self._cpu_last = (now, cpu)
            row["rss_bytes"] = process_rss()
        if slow:
            for name, read in self._slow_fields().items():
                row[name] = self._read(name, read)
        self.samples.append(row)
        return row

    def _loop(self) -> None:
        period = 1.0 / self.rate_hz
        next_slow = 0.0
        while not self._stop.is_set():
            started = time.perf_counter()
            slow = started >= next_slow
            if slow:
                next_slow = started + self.slow_interval_s
            self.sample(slow)
            self._stop.wait(max(0.0, period - (time.perf_counter() - started)))

    def start(self) -> Telemetry:
        if self._thread is None:
            self._cpu_last = None  # the first sample has no interval to measure CPU use over
            self._thread = threading.Thread(target=self._loop, name="harness-telemetry", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the sampler and take a last sample, so a run shorter than the sampling period still has
        an interval to measure (the first sample of a CPU run has none)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample(slow=True)

    def __enter__(self) -> Telemetry:
        return self.start()

    def __exit__(self, *exc) -> None:
        for name in list(self._open):
            self.end(name)
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def latest(self) -> dict:
        return self.samples[-1] if self.samples else {}

    # --- windows -----------------------------------------------------------------------------
    def _energy_now(self) -> float | None:
        return self._read("energy_j", self._fields["energy_j"]) if self.gpu else None

    def _power_edge(self, t: float) -> None:
        """A power reading at a window's edge, so the integral over the window starts and ends on it."""
        power = self._read("power_w", self._fields["power_w"]) if self.gpu else None
        if power is not None:
            self._edges.append((t - self._t0, power))

    def begin(self, name: str) -> None:
        """Open a window: synchronize first, so work queued before it is not charged to it."""
        self.sync()
        now = time.perf_counter()
        self._open[name] = (now, self._energy_now())
        if self.gpu:
            self._power_edge(now)
        self._phase = name

    def end(self, name: str) -> Phase:
        self.sync()
        end_t, end_e = time.perf_counter(), self._energy_now()
        if self.gpu:
            self._power_edge(end_t)
        start_t, start_e = self._open.pop(name)
        phase = self.phases.setdefault(name, Phase())
        phase.seconds += end_t - start_t
        phase.count += 1
        if start_e is not None and end_e is not None:
            phase.energy_j = (phase.energy_j or 0.0) + (end_e - start_e)
        elif self.gpu:
            integrated = self.integrate_power(start_t - self._t0, end_t - self._t0)
            if integrated is not None:
                phase.energy_j = (phase.energy_j or 0.0) + integrated
        self._phase = next(reversed(self._open), None) if self._open else None
        return phase

    @contextlib.contextmanager
    def window(self, name: str) -> Iterator[None]:
        self.begin(name)
        try:
            yield
        finally:
            self.end(name)

    # --- summaries ---------------------------------------------------------------------------
    def integrate_power(self, t_from: float | None = None, t_to: float | None = None) -> float | None:
        """Energy (J) from the power readings between two times since start (default: the whole run),
        edges interpolated (harness.measure._power); None where power was never read."""
        points = [(s["t"], s["power_w"]) for s in self.samples if s.get("power_w") is not None] + self._edges
        if not points:
            return None
        times = [t for t, _ in points]
        return integrate(points, min(times) if t_from is None else t_from, max(times) if t_to is None else t_to)

    def _stats(self, rows: list[dict]) -> dict:
        """Mean and p95 utilization and mean power over some samples (None where there are none)."""
        utils = sorted(s[self.util_key] for s in rows if s.get(self.util_key) is not None)
        powers = [s["power_w"] for s in rows if s.get("power_w") is not None]
        return {"util_mean": sum(utils) / len(utils) if utils else None, "util_p95": percentile(utils, 95),
                "power_mean_w": sum(powers) / len(powers) if powers else None}

    def _headline_window(self) -> str:
        """Which samples the headline figures average: the training windows', or, where no utilization
        sample fell inside one (a run shorter than the sampling period), the whole run's, labelled so."""
        if "training" not in self.phases:
            return "whole run (no training window)"
        if not any(s.get("phase") == "training" and s.get(self.util_key) is not None for s in self.samples):
            return "whole run (no sample fell in a training window)"
        return "training"

    def _mean(self, key: str, phase: str | None) -> float | None:
        values = [s[key] for s in self.samples if s.get(key) is not None and (phase is None or s.get("phase") == phase)]
        return sum(values) / len(values) if values else None

    def summary(self, chars: int | None = None) -> dict:
        """The run's figures. Utilization and power are the training windows' own (what the model's
        steps made of the device); the whole run's, model building, evaluations, checkpoints and
        generation included, stand beside them as `*_trial`."""
        energy_counter = None
        counters = [s["energy_j"] for s in self.samples if s.get("energy_j") is not None]
        if len(counters) >= 2:
            energy_counter = counters[-1] - counters[0]
        phase_energy = [p.energy_j for p in self.phases.values()]
        energy = sum(phase_energy) if phase_energy and all(e is not None for e in phase_energy) else None
        peak, peak_source = self.peak_memory()
        training = self.phases.get("training")
        whole = self._stats(self.samples)
        window = self._headline_window()
        in_training = self._stats([s for s in self.samples if s.get("phase") == "training"]) \
            if window == "training" else whole
        return {
            "telemetry_source": self.source,
            "telemetry_device": self.describe_device(),
            "samples": len(self.samples),
            "sample_rate_hz": self.achieved_rate(),
            "device_seconds": sum(p.seconds for p in self.phases.values()),
            "phases": {k: {"seconds": p.seconds, "energy_j": p.energy_j, "windows": p.count}
                       for k, p in self.phases.items()},
            "energy_j": energy,
            "energy_j_counter_span": energy_counter,
            "energy_j_integrated": self.integrate_power(),
            "energy_scope": ENERGY_SCOPE if self.gpu else None,
            "joules_per_char": (training.energy_j / chars if training and training.energy_j is not None and chars
                                else None),
            "util_source": self.util_key,
            **in_training,
            "util_window": window,
            "process_sm_util_mean": self._mean("process_sm_util", "training" if window == "training" else None),
            **{f"{k}_trial": v for k, v in whole.items()},
            "peak_mem_bytes": peak,
            "peak_mem_source": peak_source,
            "process_mem_source": self.process_mem_source,
            "unsupported": sorted(self.unsupported),
            "missing_readings": dict(sorted(self.missing.items())),
        }

    def achieved_rate(self) -> float | None:
        if len(self.samples) < 2:
            return None
        span = self.samples[-1]["t"] - self.samples[0]["t"]
        return (len(self.samples) - 1) / span if span > 0 else None

    def peak_memory(self) -> tuple[int | None, str | None]:
        """This process's own peak: torch's allocator on CUDA, resident memory on the CPU.

        NVML's memory figure is the whole device's (every process, and on GB10 it is NotSupported),
        so it is never a trial's peak; it stays in the samples as `mem_used_bytes`.
        """
        if self.device.type == "cuda":
            return torch.cuda.max_memory_reserved(self.device), "torch.cuda.max_memory_reserved (this process)"
        if self.gpu:
            return None, None
        rss = [s["rss_bytes"] for s in self.samples if s.get("rss_bytes") is not None]
        return (max(rss), "process resident memory (sampled)") if rss else (None, None)

    def describe_device(self) -> str:
        if self.gpu:
            try:
                name = self.nvml.nvmlDeviceGetName(self.handle)
                return f"{self.device} {name.decode() if isinstance(name, bytes) else name}"
            except Exception:
                return str(self.device)
        return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"

    def save_csv(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = list(dict.fromkeys(k for s in self.samples for k in s))
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.samples)
        return path


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(rank), math.ceil(rank)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (rank - lo)
