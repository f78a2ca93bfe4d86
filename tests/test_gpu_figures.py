"""GPU figures right the first time, checked on the CPU: a fake NVML (the hardware boundary) and monkeypatched
torch calls stand in for the device. What only a GPU can check is in tests/test_gpu.py."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest
import torch
from test_telemetry import FakeNVML, fake_telemetry

from harness.common import HarnessError
from harness.measure import _cost as cost
from harness.measure import matmul_ceiling, uuid_candidates
from harness.measure._nvml import PID_NAMESPACE_SOURCE
from harness.measure._power import integrate, value_at
from harness.search._preflight import check_energy
from harness.search._sweep import placements
from harness.training._precision import probe


class RampNVML(FakeNVML):
    """Power that is a 1-s running average (what Ampere and later report) of a true power rising 20 W/s."""

    def true_power(self, t: float) -> float:
        return 100.0 + 20.0 * t

    def nvmlDeviceGetPowerUsage(self, h):  # noqa: N802
        self._call("power")
        t = time.perf_counter() - self.t0
        lo = max(0.0, t - 1.0)  # the mean of the true power over the last second (or since start)
        mean = (self.true_power(lo) + self.true_power(t)) / 2 if t > lo else self.true_power(t)
        return int(mean * 1000)


def test_utilization_and_power_are_the_training_windows_own():
    nvml = FakeNVML(unsupported=("memory",))
    busy = {"value": 10}
    nvml.nvmlDeviceGetUtilizationRates = lambda h: SimpleNamespace(gpu=busy["value"], memory=5)
    with fake_telemetry(nvml, rate_hz=100, slow_interval_s=0.02) as tel:
        time.sleep(0.3)  # model building, probe, warm-up: idle
        with tel.window("training"):
            busy["value"] = 95
            time.sleep(0.4)
        busy["value"] = 10
        with tel.window("evaluation"):
            time.sleep(0.3)
    s = tel.summary(chars=1000)
    assert s["util_window"] == "training"
    assert s["util_mean"] > 90 and s["util_p95"] == pytest.approx(95)
    assert s["util_mean_trial"] < 60  # the whole run, labelled, beside it
    assert s["power_mean_w"] == pytest.approx(100) and s["power_mean_w_trial"] == pytest.approx(100)
    assert s["process_sm_util_mean"] == pytest.approx(35)  # this process's own share, not the other one's 40


def test_energy_without_the_counter_counts_short_windows_and_their_edges():
    nvml = RampNVML(unsupported=("memory", "energy"))
    with fake_telemetry(nvml, rate_hz=4) as tel:  # NVML's sampling rate in a trial: 4 Hz
        time.sleep(0.3)
        spans = []
        for name, seconds in (("training", 0.9), ("evaluation", 0.3), ("training", 0.6)):
            start = time.perf_counter() - nvml.t0
            with tel.window(name):
                time.sleep(seconds)
            spans.append((name, start, time.perf_counter() - nvml.t0))
    phases = tel.summary()["phases"]
    assert phases["evaluation"]["energy_j"] is not None  # a 0.3-s window between two 4-Hz samples
    for name in ("training", "evaluation"):
        # the known energy of the reported (1-s averaged) power over the windows, from its closed form
        known = 0.0
        for n, a, b in spans:
            if n == name:
                steps = 200
                known += sum(_reported(nvml, a + (b - a) * (i + 0.5) / steps) for i in range(steps)) * (b - a) / steps
        assert phases[name]["energy_j"] == pytest.approx(known, rel=0.03), (name, phases[name], known)
    assert tel.summary()["energy_j"] == pytest.approx(sum(p["energy_j"] for p in phases.values()))


def _reported(nvml: RampNVML, t: float) -> float:
    lo = max(0.0, t - 1.0)
    return (nvml.true_power(lo) + nvml.true_power(t)) / 2 if t > lo else nvml.true_power(t)


def test_power_integral_interpolates_at_the_edges():
    points = [(0.0, 100.0), (0.25, 110.0), (0.5, 120.0)]
    assert value_at(points, 0.125) == pytest.approx(105.0)
    assert integrate(points, 0.1, 0.2) == pytest.approx(0.1 * (104 + 108) / 2)  # no sample inside: still counted
    assert integrate(points, 0.0, 0.5) == pytest.approx(55.0)
    assert integrate([], 0.0, 1.0) is None


def test_the_energy_objective_is_refused_where_nothing_can_measure_it():
    with pytest.raises(HarnessError, match="NotSupported for both the energy counter and the power"):
        check_energy(fake_telemetry(FakeNVML(unsupported=("memory", "energy", "power"))), torch.device("cuda"))
    check_energy(fake_telemetry(FakeNVML(unsupported=("memory", "energy"))), torch.device("cuda"))  # power: fine
    with pytest.raises(HarnessError, match="has neither"):
        check_energy(fake_telemetry(FakeNVML()).__class__(torch.device("cpu")), torch.device("cpu"))


def test_process_memory_in_a_container_falls_back_to_torch_and_says_so(monkeypatch):
    nvml = FakeNVML(unsupported=("memory",))
    host_pid = os.getpid() + 100000  # what a container's process looks like in NVML's list
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda h: [SimpleNamespace(pid=host_pid, usedGpuMemory=1 << 30)]
    tel = fake_telemetry(nvml)
    tel.device = torch.device("cuda")  # the allocator figure is torch's: patched below
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 123 << 20)
    assert tel._process_gpu_memory() == 123 << 20
    assert tel.process_mem_source == PID_NAMESPACE_SOURCE


def test_mig_and_gpu_uuid_forms():
    bare = "4a1e2f7c-0b9d-5e3a-9c1d-2b3c4d5e6f70"
    assert uuid_candidates(bare) == [bare, f"MIG-{bare}", f"GPU-{bare}"]
    assert uuid_candidates(f"MIG-{bare}") == [f"MIG-{bare}"]
    assert uuid_candidates(f"GPU-{bare}") == [f"GPU-{bare}"]


def test_an_out_of_memory_in_the_precision_probe_is_an_out_of_memory():
    class Huge(torch.nn.Module):
        def parts(self):
            return {"embedding": None, "core": None, "head": None}

        def forward(self, tokens, state=None):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        probe(Huge(), torch.device("cpu"), "fp32")


@pytest.mark.parametrize("device,workers,gpus,expected", [
    ("cuda:1", 3, ["0", "1"], [("1", "cuda")] * 3),  # every worker on the GPU asked for, named cuda inside
    ("cuda", 3, ["0", "1"], [("0", "cuda"), ("1", "cuda"), ("0", "cuda")]),
    ("auto", 2, ["3"], [(None, "auto")] * 2),
    ("cpu", 2, ["0", "1"], [(None, "cpu")] * 2),
])
def test_worker_placement_on_several_gpus(device, workers, gpus, expected):
    assert placements(device, workers, gpus) == expected


def test_a_gpu_index_past_the_visible_ones_is_refused():
    with pytest.raises(HarnessError, match="only 2 CUDA device"):
        placements("cuda:2", 2, ["0", "1"])


def test_the_matmul_ceiling_is_measured_once_warm_and_long_enough(monkeypatch):
    monkeypatch.setattr(cost, "_CEILINGS", {})
    first = matmul_ceiling(torch.device("cpu"), "bf16")  # the CPU measures fp32 whatever is asked
    assert first["dtype"] == "fp32" and first["seconds"] >= cost.MIN_CEILING_SECONDS and first["reps"] >= 5
    assert "untimed" in first["how"] and first["tflops"] > 0
    assert matmul_ceiling(torch.device("cpu"), "fp32") is first  # reused, not measured again
    cost.seed_ceiling({**first, "tflops": 1.5})
    assert matmul_ceiling(torch.device("cpu"))["tflops"] == 1.5  # a study's stored ceiling wins


def test_the_report_flags_trials_that_ran_at_different_concurrency():
    import pandas as pd

    from harness.report._documents import sharing_fact

    assert sharing_fact(pd.Series([1.0, 1.02])) == "one trial at a time"
    even = sharing_fact(pd.Series([1.9, 2.0, 1.95]))
    assert "fair share" in even and "WARNING" not in even
    mixed = sharing_fact(pd.Series([1.0, 2.0, None]))
    assert "WARNING: trials ran at different concurrency (1.00 to 2.00" in mixed


def test_fp32_turns_tf32_off_for_its_own_run_only():
    from harness.models import build_model
    from harness.training import Precision, resolve_precision

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        resolve_precision("fp32", build_model("lstm", 10, 4, 4, 1, 0.0), torch.device("cpu"))
        assert torch.backends.cuda.matmul.allow_tf32  # deciding changes nothing process-wide
        fp32 = Precision("fp32", "fp32", "fp32", "fp32", "fp32", False, False, "asked for fp32")
        with fp32.scoped(torch.device("cuda")):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32  # restored
        bf16 = Precision("bf16", "bf16", "fp32", "bf16", "bf16", True, False, "auto")
        with bf16.scoped(torch.device("cuda")):
            assert torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_every_trial_of_a_study_shares_one_ceiling_measured_before_the_first(tmp_path, monkeypatch):
    import harness
    from harness.search._preflight import CEILING_ATTR

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cost, "_CEILINGS", {})
    spec = harness.parse_study({
        "study": {"name": "ceiling", "trials": 2, "sampler": "random", "pruner": "none", "device": "cpu"},
        "budget": {"per_trial": "4k", "evals": 1},
        "fixed": {"embedding_dim": 8, "hidden_dim": 16, "layers": 1, "seq_len": 16, "batch_size": 8},
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
        "generate": {"enabled": False},
    })
    assert harness.run_sweep(spec).stop == "planned"
    study = harness.load_results("results/ceiling")
    stored = study.user_attrs[CEILING_ATTR]
    assert len(stored) == 1
    (record,) = stored.values()
    for trial in study.trials:
        assert trial.user_attrs["matmul_ceiling"] == record
        assert trial.user_attrs["matmul_tflops"] == record["tflops"]
    # a resumed study (a new process: no cached ceiling) reuses the stored one instead of measuring again
    monkeypatch.setattr(cost, "_CEILINGS", {})
    monkeypatch.setattr(cost, "synchronize", lambda device: pytest.fail("measured the ceiling again"))
    assert harness.run_sweep(spec, trials=3).stop == "planned"
    assert harness.load_results("results/ceiling").trials[2].user_attrs["matmul_ceiling"] == record


def test_a_run_shorter_than_the_sampling_period_still_has_a_utilization():
    from harness.measure import Telemetry

    with Telemetry(torch.device("cpu"), rate_hz=4) as tel, tel.window("training"):
        sum(range(300_000))  # well under one 0.25-s sampling period
    s = tel.summary()
    assert s["util_mean"] is not None and s["util_mean"] > 0  # the closing sample measured the interval
    assert s["util_window"] in ("training", "whole run (no sample fell in a training window)")
