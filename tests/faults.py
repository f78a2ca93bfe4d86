"""Fault injection for the tests and scripts/drill.py, installed as the sweep's trial hook.

`fault_env("oom@1,nan@2,error@3")` is an environment for `harness sweep` processes in which trial 1
runs out of memory, trial 2's weights turn NaN before it trains, and trial 3 raises: the harness
loads `inject` through HARNESS_TRIAL_HOOK in every worker, so the production trial path carries no
fault of its own.

`fault_env(..., hold=(4, path))` also makes every trial numbered 4 or more wait after its first
evaluation for as long as `path` exists (at most HOLD_LIMIT seconds a trial). The drill kills
workers in that wait, so "both workers are mid-trial" is a state it creates, not a moment it must
catch: the quick drill's trials last a second or two, and two workers' middles can miss every poll.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import torch

FAULTS_ENV = "HARNESS_FAULTS"  # e.g. "oom@1,nan@3,error@4": which trial numbers get which fault
KINDS = ("oom", "nan", "error")
HOLD_ENV = "HARNESS_HOLD"  # "4:/path/to/file": trials numbered 4 or more wait while the file exists
HOLD_LIMIT = 300.0  # seconds: a drill that died without removing the file does not hang its workers


def parse(text: str) -> dict[int, str]:
    faults = {}
    for item in filter(None, text.split(",")):
        kind, _, number = item.partition("@")
        if kind.strip() not in KINDS or not number.strip().isdigit():
            raise ValueError(f"{FAULTS_ENV}={text!r}: write e.g. oom@1,nan@3,error@4")
        faults[int(number)] = kind.strip()
    return faults


def install_hold(number: int, trainer) -> None:
    """Wrap the trainer's evaluation observer so that, from the first evaluation on, the trial waits
    while the hold file exists. A signal lands in `time.sleep` as it would in a training step: the
    harness turns SIGTERM into KeyboardInterrupt, raised from inside `trainer.run()`."""
    first, _, path = os.environ.get(HOLD_ENV, "").partition(":")
    if not path or number < int(first):
        return
    observed = trainer.observers.on_eval
    deadline: float | None = None  # set at the first evaluation: HOLD_LIMIT is the whole trial's

    def on_eval(point):
        nonlocal deadline
        stop = observed(point) if observed is not None else None
        deadline = deadline or time.monotonic() + HOLD_LIMIT
        while Path(path).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return stop

    trainer.observers = replace(trainer.observers, on_eval=on_eval)


def inject(number: int, trainer) -> None:
    """The trial hook: the fault this trial number was given, if any, and the hold, if one is set."""
    install_hold(number, trainer)
    kind = parse(os.environ.get(FAULTS_ENV, "")).get(number)
    if kind == "oom":
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by tests/faults.py)")
    if kind == "error":
        raise RuntimeError("injected failure (tests/faults.py)")
    if kind == "nan":
        with torch.no_grad():
            next(trainer.model.parameters()).fill_(float("nan"))


def fault_env(faults: str, base: dict | None = None, hold: tuple[int, Path] | None = None) -> dict[str, str]:
    """An environment for sweep processes with these faults (and the hold, if given): the hook named,
    and this folder importable."""
    parse(faults)  # a typo fails here, in the test, not as a worker's error
    env = dict(os.environ if base is None else base)
    here = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
    env.update(HARNESS_TRIAL_HOOK="faults:inject", HARNESS_FAULTS=faults)
    if hold is not None:
        env[HOLD_ENV] = f"{hold[0]}:{hold[1]}"
    return env
