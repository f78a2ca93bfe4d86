"""Trials that share a device: thread shares, concurrency, and device-seconds as a fair share."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from sweep_helpers import harness_cli, load

from harness.measure import Occupancy, ShareClock
from harness.measure._occupancy import OCCUPANCY_ENV

STUDY = """
[study]
name = "share"
corpus = "{corpus}"
trials = 2
sampler = "random"
pruner = "none"
device = "cpu"

[budget]
per_trial = "3s"
evals = 1

[fixed]
model = "gru"
embedding_dim = 16
hidden_dim = 48
layers = 1
seq_len = 32
batch_size = 16
lr = 0.003

[space.dropout]
type = "categorical"
choices = [0.0]

[generate]
enabled = false
"""


def test_the_registry_counts_live_members_only(tmp_path):
    occupancy = Occupancy(torch.device("cpu"), root=tmp_path)
    assert occupancy.count() == 1  # alone, even before entering
    occupancy.enter()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        (occupancy.dir / str(other.pid)).touch()
        (occupancy.dir / str(gone.pid)).touch()  # a trial whose worker was killed: pruned when counted
        assert occupancy.count() == 2
        assert not (occupancy.dir / str(gone.pid)).exists()
        clock = ShareClock(occupancy)
        clock.start(0.0)
        clock.tick(4.0)
        assert clock.wall == 4.0 and clock.share == 2.0 and clock.concurrency == 2.0
    finally:
        other.kill()
        occupancy.leave()
    assert occupancy.count() == 1


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores for two workers")
def test_one_and_two_workers_spend_the_same_fair_share_of_the_device(tmp_path, small_text_file):
    study = tmp_path / "share.toml"
    study.write_text(STUDY.format(corpus=small_text_file))
    figures = {}
    for workers in (1, 2):
        results = tmp_path / f"r{workers}"
        proc = harness_cli("sweep", study, "--results", results, "--workers", workers, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        figures[workers] = [t.user_attrs for t in load(results, "share").get_trials()]
        if workers == 2:
            assert "2 workers share" in proc.stderr  # said at start-up
    for a in figures[1]:
        assert a["concurrency"] == pytest.approx(1.0, abs=0.05)
        assert a["worker"]["cpu_threads"] == (os.cpu_count() or 1)
    # Both workers train side by side most of the time (n(t) = 2), each on half the cores; the
    # workers start a little apart and one finishes first, so a trial also runs alone for a while
    # (measured here: 1.67 to 1.95).
    assert sum(a["concurrency"] for a in figures[2]) / len(figures[2]) > 1.4  # a broken registry gives 1.0
    for a in figures[2]:
        assert 1.2 < a["concurrency"] <= 2.05
        assert a["worker"]["cpu_threads"] == max(1, (os.cpu_count() or 1) // 2)
        # the budget is spent in fair-share seconds; the wall time stays beside it
        assert a["train_seconds"] == pytest.approx(3.0, abs=0.4)
        assert a["train_wall_seconds"] == pytest.approx(a["concurrency"] * a["train_seconds"], rel=0.01)
    for a in figures[1] + figures[2]:
        assert a["device_seconds"] == pytest.approx(a["train_seconds"] + a["eval_seconds"])


def test_a_cpu_run_beside_others_is_not_credited_with_their_time(tmp_path, small_text_file):
    # Two other live runs in the registry: the run's fair share is a third of its wall time. A CPU
    # does not time-slice like a GPU (each run has threads of its own), so MFU counts the wall time;
    # with the fair share it read three times as high (295% was seen on our 2-core machine).
    registry = Occupancy(torch.device("cpu"), root=tmp_path / "occupancy" / "harness-occupancy")
    registry.dir.mkdir(parents=True)
    others = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]) for _ in range(2)]
    try:
        for other in others:
            (registry.dir / str(other.pid)).touch()
        out = tmp_path / "run"
        proc = harness_cli("train", "--corpus", small_text_file, "--model", "gru", "--hidden-dim", "32",
                           "--embedding-dim", "16", "--layers", "1", "--budget", "20k", "--evals", "1",
                           "--device", "cpu", "--out", out, "--json",
                           env={**os.environ, OCCUPANCY_ENV: str(tmp_path / "occupancy")})
    finally:
        for other in others:
            other.kill()
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads((out / "result.json").read_text())
    t = r["telemetry"]
    assert r["concurrency"] == pytest.approx(3.0, abs=0.1)  # the registry was read
    assert t["matmul_ceiling"]["threads"] == torch.get_num_threads()  # the CLI keeps torch's default
    per_wall = r["flops_per_char"] * r["train_chars"] / r["train_wall_seconds"] / 1e12
    assert t["mfu"] == pytest.approx(per_wall / t["matmul_tflops"], rel=1e-6)
    assert r["achieved_tflops"] / t["matmul_tflops"] > 2.5 * t["mfu"]  # what the fair share would have said
