"""What `harness confirm` and `harness.confirm` run, in one place: the plan (which configurations, at which
budget, with which forecast) and the run that judges them on the test split.

The command line only parses its flags into a `ConfirmRequest` and prints the `Confirmation`; the
Python API builds the same request from its arguments. Neither re-implements the steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.common import HarnessError
from harness.measure import resolve_device
from harness.report._outlook import long_budget_plan
from harness.search import (
    ConfirmPlan,
    StudySpec,
    SweepOptions,
    SweepOutcome,
    confirm_name,
    confirm_spec,
    open_results,
    open_study,
    run_confirm,
    store_ranking,
    top_per_family,
)
from harness.training import Budget


@dataclass
class ConfirmRequest:
    """A confirmation as the user asked for it: the top `top` (of every family with `per_family`), `seeds`
    fresh seeds each, at `budget` (None: the study's; "300s"; or a multiple such as "4x")."""

    top: int = 3
    seeds: int = 3
    budget: str | None = None
    per_family: bool = False
    device: str = "auto"
    workers: int = 1
    storage: str | None = None
    corpus: str | None = None  # a local copy of the study's corpus


@dataclass
class Confirmation:
    """How the confirmation ended and, when it finished, its ranking and verdict."""

    name: str
    outcome: SweepOutcome
    plan: ConfirmPlan
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    lines: list[str] = field(default_factory=list)


def run_confirmation(spec: StudySpec, results_dir: Path, request: ConfirmRequest,
                     say: Callable[[str], None] | None = None) -> Confirmation:
    """Plan, run (resuming one already planned) and rank; `say` hears which configurations a per-family or
    long-budget plan chose before the runs start."""
    if request.corpus:
        spec.corpus = request.corpus
    if request.workers < 1:
        raise HarnessError(f"workers must be at least 1, got {request.workers}")
    options = SweepOptions(results_dir=results_dir, storage_url=request.storage, device=request.device,
                           workers=request.workers)
    resolve_device(options.device_for(spec.device))
    plan = confirmation_plan(spec, results_dir, request)
    if say is not None and request.per_family:
        say(f"confirming the top {request.top} of every family: trials {', '.join(f'#{n}' for n in plan.sources)}")
    elif say is not None and plan.sources is not None:
        say(f"confirming at {plan.multiple:g}x the trial budget ({plan.budget}): the measured top {request.top} and "
            f"the forecast's top {request.top}, trials {', '.join(f'#{n}' for n in plan.sources)}")
    outcome = run_confirm(spec, options, plan)
    found = Confirmation(confirm_name(spec.name), outcome, plan)
    if outcome.finished:
        study = open_study(confirm_spec(spec, plan), options, create=False)
        found.frame, found.lines = store_ranking(study)
    return found


def confirmation_plan(spec: StudySpec, results_dir: Path, request: ConfirmRequest) -> ConfirmPlan:
    """The request's budget as written by the user (None: the study's; an absolute budget; a multiple such as
    4x, which above 1 adds the forecast's top K and the forecast itself); `per_family` adds the top K of
    every model family to the configurations."""
    top, storage = request.top, request.storage
    plan = ConfirmPlan(top=top, seeds=request.seeds)
    multiple = parse_multiple(request.budget)
    if multiple is None:
        plan.budget = Budget.parse(request.budget) if request.budget else None
    else:
        plan.budget, plan.multiple = Budget(spec.budget.kind, spec.budget.amount * multiple), multiple
        if multiple > 1:
            plan.sources, plan.forecast = long_budget_plan(open_results(results_dir, storage=storage)[1], top, multiple)
    if request.per_family:
        family_top = top_per_family(open_results(results_dir, storage=storage)[1], top)
        plan.sources = list(dict.fromkeys([*(plan.sources or []), *family_top]))
    return plan


def parse_multiple(text: str | None) -> float | None:
    """`4x` (a multiple of the study's per-trial budget) as 4.0; None for an absolute budget or none."""
    if not text or not text.strip().lower().endswith("x"):
        return None
    try:
        value = float(text.strip()[:-1])
    except ValueError:
        raise HarnessError(f"budget {text!r}: write a multiple of the study's budget such as 4x, or a budget "
                           f"such as 300s, 2M or 3ep") from None
    if not value > 0:
        raise HarnessError(f"budget {text!r}: the multiple must be above 0")
    return value
