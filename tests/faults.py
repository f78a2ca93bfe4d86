"""Fault injection for the tests and scripts/drill.py, installed as the sweep's trial hook.

`fault_env("oom@1,nan@2,error@3")` is an environment for `harness sweep` processes in which trial 1
runs out of memory, trial 2's weights turn NaN before it trains, and trial 3 raises: the harness
loads `inject` through HARNESS_TRIAL_HOOK in every worker, so the production trial path carries no
fault of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

FAULTS_ENV = "HARNESS_FAULTS"  # e.g. "oom@1,nan@3,error@4": which trial numbers get which fault
KINDS = ("oom", "nan", "error")


def parse(text: str) -> dict[int, str]:
    faults = {}
    for item in filter(None, text.split(",")):
        kind, _, number = item.partition("@")
        if kind.strip() not in KINDS or not number.strip().isdigit():
            raise ValueError(f"{FAULTS_ENV}={text!r}: write e.g. oom@1,nan@3,error@4")
        faults[int(number)] = kind.strip()
    return faults


def inject(number: int, trainer) -> None:
    """The trial hook: the fault this trial number was given, if any."""
    kind = parse(os.environ.get(FAULTS_ENV, "")).get(number)
    if kind == "oom":
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by tests/faults.py)")
    if kind == "error":
        raise RuntimeError("injected failure (tests/faults.py)")
    if kind == "nan":
        with torch.no_grad():
            next(trainer.model.parameters()).fill_(float("nan"))


def fault_env(faults: str, base: dict | None = None) -> dict[str, str]:
    """An environment for sweep processes with these faults: the hook named, and this folder importable."""
    parse(faults)  # a typo fails here, in the test, not as a worker's error
    env = dict(os.environ if base is None else base)
    here = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
    env.update(HARNESS_TRIAL_HOOK="faults:inject", HARNESS_FAULTS=faults)
    return env
