"""Helpers for the sweep tests: tiny study files and a look into their storage."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from harness.search import open_storage
from harness.search._optuna import trial_id


def harness_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300,
                preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    """`python -m harness ARGS` as a user runs it: a process of its own, its output captured.

    `preexec_fn` runs in the child before harness starts, which is how a test imposes a resource limit
    (a full disk) on the harness alone and not on pytest.
    """
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout, preexec_fn=preexec_fn)


def write_study(path: Path, corpus: Path, *, name: str = "tiny", trials: int = 4, budget: str = "20k",
                evals: int = 3, extra: str = "", sampler: str = "tpe", pruner: str = "hyperband") -> Path:
    path.write_text(f"""
[study]
name = "{name}"
corpus = "{corpus}"
trials = {trials}
sampler = "{sampler}"
pruner = "{pruner}"
seed = 3
device = "cpu"
{extra}

[budget]
per_trial = "{budget}"
evals = {evals}

[fixed]
model = "gru"
layers = 1
seq_len = 32
batch_size = 16
dropout = 0.0

[space.hidden_dim]
type = "int"
low = 16
high = 48
log = true

[space.lr]
type = "float"
low = 2e-3
high = 1e-2
log = true

[generate]
temperatures = [0.0, 1.0]
length = 40
samples = 2
""")
    return path


def has_heartbeat(results: Path, trial) -> bool:
    """A worker beats for this trial (the beats live beside the journal, not in the trial)."""
    return (results / "study.journal.heartbeats" / f"{trial_id(trial)}.json").exists()


def load(results: Path, name: str = "tiny", url: str | None = None) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(results, url))


def sweep_proc(study: Path, results: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "sweep", str(study), "--results", str(results),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def wait_for(predicate, timeout: float = 120.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not reached")
