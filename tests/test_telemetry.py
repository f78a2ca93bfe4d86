"""Telemetry against a fake NVML (the hardware boundary) and, for the CPU path, the real machine."""

from __future__ import annotations

import os
import threading
import time
import warnings
from types import SimpleNamespace

import pynvml
import pytest
import torch

from harness.measure import Telemetry, TelemetryWarning, percentile
from harness.training import Budget, Evaluations, Observers, TrainConfig, train


def not_supported():
    return pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)


class FakeNVML:
    """Answers fixed values like a GB10: memory queries raise NotSupported, power and energy work."""

    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU

    def __init__(self, power_w: float = 100.0, unsupported: tuple[str, ...] = ("memory",), fail_after: dict | None = None):
        self.power_w, self.unsupported = power_w, set(unsupported)
        self.t0 = time.perf_counter()
        self.calls: dict[str, int] = {}
        self.fail_after = fail_after or {}

    def _call(self, name: str):
        self.calls[name] = self.calls.get(name, 0) + 1
        if name in self.unsupported or self.calls[name] > self.fail_after.get(name, float("inf")):
            raise not_supported()

    def nvmlDeviceGetUtilizationRates(self, h):  # noqa: N802
        self._call("util")
        return SimpleNamespace(gpu=80, memory=30)

    def nvmlDeviceGetPowerUsage(self, h):  # noqa: N802
        self._call("power")
        return int(self.power_w * 1000)

    def nvmlDeviceGetClockInfo(self, h, kind):  # noqa: N802
        self._call("clock")
        return 1800

    def nvmlDeviceGetTemperature(self, h, kind):  # noqa: N802
        self._call("temperature")
        return 55

    def nvmlDeviceGetMemoryInfo(self, h):  # noqa: N802
        self._call("memory")
        return SimpleNamespace(used=1 << 30)

    def nvmlDeviceGetTotalEnergyConsumption(self, h):  # noqa: N802
        self._call("energy")
        return int(1e6 + (time.perf_counter() - self.t0) * self.power_w * 1000)  # mJ

    def nvmlDeviceGetComputeRunningProcesses(self, h):  # noqa: N802
        self._call("processes")
        return [SimpleNamespace(pid=os.getpid(), usedGpuMemory=None)]

    def nvmlDeviceGetProcessUtilization(self, h, last_seen):  # noqa: N802
        self._call("process_util")
        stamp = int((time.perf_counter() - self.t0) * 1e6) + 1
        return [SimpleNamespace(pid=os.getpid(), timeStamp=stamp, smUtil=35, memUtil=10),
                SimpleNamespace(pid=os.getpid() + 100000, timeStamp=stamp, smUtil=40, memUtil=10)]

    def nvmlDeviceGetName(self, h):  # noqa: N802
        return "NVIDIA GB10 (fake)"


def fake_telemetry(nvml: FakeNVML, **kw) -> Telemetry:
    return Telemetry(torch.device("cpu"), nvml=nvml, handle=object(), **kw)


def test_gb10_like_device_records_nulls_not_zeros_with_one_warning_per_field():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fake_telemetry(FakeNVML(), rate_hz=50) as tel:
            time.sleep(0.4)
    summary = tel.summary()
    assert len(tel.samples) >= 10
    assert all(s["mem_used_bytes"] is None for s in tel.samples)
    assert {s["gpu_util"] for s in tel.samples} == {80}
    assert "mem_used_bytes" in summary["unsupported"]
    assert summary["peak_mem_bytes"] is None  # never a made-up 0 (on a real GB10, torch's allocator answers)
    memory_warnings = [w for w in caught if issubclass(w.category, TelemetryWarning) and "mem_used_bytes" in str(w.message)]
    assert len(memory_warnings) == 1
    assert summary["util_mean"] == 80 and summary["util_p95"] == 80 and summary["power_mean_w"] == 100
    assert summary["telemetry_device"].endswith("GB10 (fake)")


def test_sampling_rate_follows_the_setting():
    with fake_telemetry(FakeNVML(), rate_hz=20) as tel:
        time.sleep(1.0)
    assert 15 <= len(tel.samples) <= 23
    assert tel.summary()["sample_rate_hz"] == pytest.approx(20, rel=0.2)
    slow = [s for s in tel.samples if "system_mem_used_bytes" in s]
    assert 1 <= len(slow) <= 2  # process list and /proc/meminfo at 1 Hz, not 20
    assert slow[0]["system_mem_used_bytes"] > 0


def test_energy_by_counter_and_by_integrated_power_agree():
    with fake_telemetry(FakeNVML(power_w=200.0), rate_hz=50) as tel, tel.window("training"):
        time.sleep(0.5)
    summary = tel.summary(chars=1000)
    training = summary["phases"]["training"]
    assert training["energy_j"] == pytest.approx(200 * training["seconds"], rel=0.02)  # counter
    assert summary["energy_j_integrated"] == pytest.approx(summary["energy_j_counter_span"], rel=0.1)
    assert summary["joules_per_char"] == pytest.approx(training["energy_j"] / 1000)
    assert summary["energy_j"] == pytest.approx(training["energy_j"])


def test_without_energy_counter_windows_integrate_power():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TelemetryWarning)
        with fake_telemetry(FakeNVML(power_w=50.0, unsupported=("memory", "energy")), rate_hz=50) as tel, \
                tel.window("evaluation"):
            time.sleep(0.4)
    phase = tel.summary()["phases"]["evaluation"]
    assert "energy_j" in tel.unsupported
    assert phase["energy_j"] == pytest.approx(50 * phase["seconds"], rel=0.15)


def test_field_that_breaks_mid_run_becomes_null_with_one_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fake_telemetry(FakeNVML(fail_after={"temperature": 3}), rate_hz=50) as tel:
            time.sleep(0.3)
    temps = [s["temperature_c"] for s in tel.samples]
    assert temps[:2] == [55, 55] and temps[-1] is None
    assert sum("temperature_c" in str(w.message) for w in caught) == 1


def test_sampler_thread_stops_when_the_trial_raises():
    with pytest.raises(ValueError), fake_telemetry(FakeNVML(), rate_hz=50) as tel:
        assert tel.running
        tel.begin("training")
        raise ValueError("trial blew up")
    assert not tel.running
    assert not any(t.name == "harness-telemetry" for t in threading.enumerate())
    assert "training" in tel.phases  # the open window was closed, not lost


def test_cpu_path_on_this_machine_agrees_with_the_trainer(small_corpus):
    config = TrainConfig(model="lstm", embedding_dim=32, hidden_dim=96, layers=1, dropout=0.0, seq_len=32, batch_size=16)
    with Telemetry(torch.device("cpu"), rate_hz=10) as tel:
        result = train(config, small_corpus, Budget.parse("1.5s"), evaluations=Evaluations(2), observers=Observers(telemetry=tel))
    summary = tel.summary(chars=result.train_chars)
    assert summary["telemetry_source"] == "cpu" and summary["energy_j"] is None
    assert summary["device_seconds"] == pytest.approx(result.device_seconds, rel=0.05)
    assert summary["phases"]["training"]["seconds"] == pytest.approx(result.train_seconds, rel=0.05)
    # one window per evaluation the trainer made: 2, or 1 where a loaded machine stalled the run past both
    # evaluation points between two syncs (the budget is then spent at the first, which ends the run)
    assert summary["phases"]["evaluation"]["windows"] == len(result.curve) >= 1
    assert summary["util_mean"] > 20  # training keeps at least a fifth of a core busy
    assert summary["peak_mem_bytes"] > 50 * 2**20
    assert {s["phase"] for s in tel.samples} >= {"training"}


def test_percentile():
    values = sorted(range(1, 101))
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([], 95) is None
    assert percentile([3.0], 95) == 3.0


class NoProcessSampleYet(FakeNVML):
    """NVML's per-process utilization answers NotFound until a kernel has run since the timestamp given:
    at a run's start, and in any quiet second. Here the first two reads find nothing."""

    def nvmlDeviceGetProcessUtilization(self, h, last_seen):  # noqa: N802
        if self.calls.get("process_util", 0) < 2:
            self.calls["process_util"] = self.calls.get("process_util", 0) + 1
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return super().nvmlDeviceGetProcessUtilization(h, last_seen)


def test_no_process_sample_yet_is_a_missing_reading_not_an_unsupported_field():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fake_telemetry(NoProcessSampleYet(), rate_hz=50, slow_interval_s=0.05) as tel, tel.window("training"):
            time.sleep(0.5)
    summary = tel.summary()
    readings = [s["process_sm_util"] for s in tel.samples if "process_sm_util" in s]
    assert readings[:2] == [None, None] and 35 in readings[2:], readings
    assert "process_sm_util" not in summary["unsupported"]
    assert summary["missing_readings"] == {"process_sm_util": 2}
    assert summary["process_sm_util_mean"] == pytest.approx(35)
    assert not any("process_sm_util" in str(w.message) for w in caught)


def test_a_field_the_driver_does_not_support_is_still_unsupported_for_the_whole_run():
    class NoProcessUtil(FakeNVML):
        def nvmlDeviceGetProcessUtilization(self, h, last_seen):  # noqa: N802
            self._call("process_util")
            raise not_supported()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TelemetryWarning)
        with fake_telemetry(NoProcessUtil(), rate_hz=50, slow_interval_s=0.05) as tel:
            time.sleep(0.3)
    assert "process_sm_util" in tel.summary()["unsupported"]
    assert tel.nvml.calls["process_util"] == 1  # asked once, never again
