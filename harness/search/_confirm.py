"""`harness confirm`: is the winner's lead real?

A sweep's winner is the minimum of many noisy validation figures, so its figure is biased low and
its lead over the runner-up may be noise. Confirmation retrains the top K configurations (by the
study's objective) with N fresh seeds each, at the study's per-trial budget, and judges each best
checkpoint on the **test split**, which no selection ever looked at.

The runs are trials of a sibling study, `<name>/confirm`, in the same storage: each is enqueued
with its source trial and seed, so a killed or interrupted confirmation resumes like a sweep,
runs with `--workers` and on PostgreSQL the same way, and never redoes a finished run. Per
configuration it reports the test bpc mean, standard deviation and a 95% interval (Student's t),
the validation figure it was chosen on, and whether its rank holds once the intervals are taken
into account.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import optuna
import pandas as pd
from optuna.trial import TrialState

from harness.common import HarnessError, finite
from harness.data import load_corpus
from harness.search._options import SweepOptions, SweepOutcome
from harness.search._optuna import storage_of
from harness.search._pbt import Replay, Segment
from harness.search._resume import SPEC_ATTR
from harness.search._spec import StudySpec
from harness.search._storage import trial_slot_lock
from harness.search._study import open_study
from harness.search._sweep import run_sweep
from harness.training import Budget

PLAN_ATTR = "harness:confirm_plan"
RESULT_ATTR = "harness:confirmed"
SEED_BASE = 1000  # confirmation seeds: 1001, 1002, ... (never a sweep's default seed 0)
# Two-sided 95% quantiles of Student's t by degrees of freedom (n - 1 seeds).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}


def t_quantile_975(df: int) -> float:
    if df <= 0:
        return math.nan
    if df > 30:
        return 1.96
    return T975.get(df) or T975[max(k for k in T975 if k <= df)]  # the next smaller df: a wider, safe interval


def confirm_name(name: str) -> str:
    return f"{name}/confirm"


@dataclass
class ConfirmPlan:
    """What a confirmation runs, from the request to the stored plan: which configurations, how many fresh
    seeds each, at which per-run budget, and the forecast made when it was planned.

    `sources` (trial numbers) are the configurations where the caller chose them (the union of the
    measured and the forecast top K, for a long budget; the top K of every family); None means the
    top `top` by the objective. `multiple` records a budget written as a multiple of the study's.
    """

    top: int = 3
    seeds: int = 3
    budget: Budget | None = None  # None: the study's per-trial budget
    sources: list[int] | None = None
    forecast: dict | None = None  # stored with the plan, so the report can hold it against the runs
    multiple: float | None = None

    @property
    def configurations(self) -> int:
        return len(self.sources) if self.sources else self.top

    @property
    def seed_numbers(self) -> list[int]:
        return [SEED_BASE + i for i in range(1, self.seeds + 1)]


def confirm_spec(spec: StudySpec, plan: ConfirmPlan) -> StudySpec:
    """The sibling study's spec: same corpus, space and fixed settings; no sampling, pruning or generation."""
    c = copy.deepcopy(spec)
    c.name = confirm_name(spec.name)
    c.confirm, c.trials_subdir = True, "confirm"
    c.pbt = None  # a PBT winner is confirmed by replaying its schedule in one run (harness.search._pbt.Replay)
    c.sampler, c.pruner, c.second_objective = "random", "none", None
    c.generate.enabled = False
    c.trials, c.timeout = plan.configurations * plan.seeds, None
    c.notes = []
    if plan.budget is not None:
        c.budget = plan.budget
    return c


def top_trials(source: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    complete = [t for t in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    if not complete:
        raise HarnessError(f"study {source.study_name!r} has no complete trial to confirm; run harness sweep first")
    return sorted(complete, key=lambda t: t.values[0])[:k]


def top_per_family(source: optuna.Study, k: int) -> list[int]:
    """The top `k` trial numbers of each model family, best family first: a comparison of families confirms
    each family's winners, not only the overall top K (which one family may fill)."""
    chosen: dict[str, list[int]] = {}
    for t in top_trials(source, len(source.get_trials(deepcopy=False))):
        family = (t.user_attrs.get("config") or {}).get("model", "?")
        if len(chosen.setdefault(family, [])) < k:
            chosen[family].append(t.number)
    return [n for numbers in chosen.values() for n in numbers]


def enqueue_plan(source: optuna.Study, study: optuna.Study, spec: StudySpec, plan: ConfirmPlan) -> dict:
    """Enqueue configurations x seeds runs once; a later call with the same plan resumes it, another is refused."""
    if plan.sources is None:
        chosen = top_trials(source, plan.top)
    else:
        trials = {t.number: t for t in source.get_trials(deepcopy=False)}
        chosen = [trials[n] for n in plan.sources]
    wanted = {"top": plan.top, "seeds": plan.seed_numbers, "sources": [t.number for t in chosen],
              "budget": str(spec.budget), **(plan.forecast or {})}
    existing = study.user_attrs.get(PLAN_ATTR)
    if existing is not None:
        if {k: existing.get(k) for k in ("top", "seeds", "budget")} != {k: wanted[k] for k in ("top", "seeds", "budget")}:
            raise HarnessError(
                f"a confirmation of {source.study_name!r} with another plan exists (top {existing['top']}, "
                f"{len(existing['seeds'])} seeds, budget {existing['budget']}); confirm with those values to resume "
                f"it, or use another results directory")
        return existing
    pbt = (source.user_attrs.get(SPEC_ATTR) or {}).get("pbt")
    for t in chosen:
        # a PBT winner is its schedule: replayed from scratch, from its lineage's first settings
        replay = Replay.of(source, t.number, pbt["perturb"]) if pbt and Segment.of(t) else None
        for seed in wanted["seeds"]:
            extra = {"schedule": replay.phases} if replay else {}
            study.enqueue_trial(replay.params if replay else t.params,
                                user_attrs={"source_trial": t.number, "seed": seed, **extra,
                                            "source_val_bpc": t.values[0] if t.values else t.user_attrs.get("val_bpc")})
    study.set_user_attr(PLAN_ATTR, wanted)
    return wanted


def summarize(study: optuna.Study) -> pd.DataFrame:
    """Per source configuration: test bpc mean, sd, 95% interval, the validation figure, rank and ties."""
    rows = [{"source_trial": t.user_attrs["source_trial"], "seed": t.user_attrs["seed"], "test_bpc": t.values[0],
             "val_bpc": t.user_attrs.get("source_val_bpc"), "params": t.params,
             "dynamic": t.user_attrs.get("test_dynamic_bpc")}
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values and "source_trial" in t.user_attrs]
    if not rows:
        return pd.DataFrame()
    runs = pd.DataFrame(rows)
    out = []
    for source, group in runs.groupby("source_trial"):
        n = len(group)
        mean = float(group["test_bpc"].mean())
        sd = float(group["test_bpc"].std(ddof=1)) if n > 1 else math.nan
        half = t_quantile_975(n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
        out.append({"trial": int(source), "runs": n, "test_bpc_mean": mean, "test_bpc_sd": sd,
                    "ci95_low": mean - half, "ci95_high": mean + half, "val_bpc": float(group["val_bpc"].iloc[0]),
                    # beside the static figure, never ranked on: the model went on learning on the test text
                    "test_dynamic_bpc_mean": float(pd.to_numeric(group["dynamic"], errors="coerce").mean()),
                    "params": group["params"].iloc[0]})
    frame = pd.DataFrame(out).sort_values("test_bpc_mean").reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame["val_rank"] = frame["val_bpc"].rank(method="min").astype(int)
    frame["tied_with"] = [", ".join(f"#{o.trial}" for o in frame.itertuples() if o.trial != r.trial and
                                    _overlap(r, o)) for r in frame.itertuples()]
    return frame


def _overlap(a, b) -> bool:
    if any(math.isnan(x) for x in (a.ci95_low, a.ci95_high, b.ci95_low, b.ci95_high)):
        return True  # one run each: no interval, nothing can be told apart
    return a.ci95_low <= b.ci95_high and b.ci95_low <= a.ci95_high


def verdict(frame: pd.DataFrame) -> list[str]:
    """Plain sentences: does the confirmed order hold, and which configurations cannot be told apart."""
    if frame.empty:
        return ["no confirmation run has finished yet"]
    lines = []
    first = frame.iloc[0]
    if len(frame) > 1:
        if not first["tied_with"]:
            lines.append(f"#{first['trial']} leads: its 95% interval lies below every other configuration's")
        else:
            lines.append(f"#{first['trial']} and {first['tied_with']} are tied within noise (95% intervals overlap); "
                         f"more seeds would be needed to separate them")
    moved = frame[frame["rank"] != frame["val_rank"]]
    if not moved.empty:
        order = ", ".join(f"#{t}" for t in frame.sort_values("val_rank")["trial"])
        tied = all(r.tied_with for r in moved.itertuples())
        lines.append(f"the validation ranking ({order}) changed on the test split"
                     + (", but only among configurations tied within noise" if tied else ""))
    else:
        lines.append("the test split keeps the validation ranking")
    if frame["runs"].min() < 2:
        lines.append("with one run per configuration there are no intervals; confirm with 3 seeds or more")
    return lines


def run_confirm(spec: StudySpec, options: SweepOptions, plan: ConfirmPlan) -> SweepOutcome:
    """Plan (once) and run the confirmation study; its workers resume it after any interruption."""
    if plan.top < 1 or plan.seeds < 1:
        raise HarnessError(f"top and seeds must be at least 1 (got {plan.top} and {plan.seeds})")
    if spec.corpus_options.split[2] <= 0:
        raise HarnessError(f"study {spec.name!r} has no test split (split {list(spec.corpus_options.split)}), and "
                           f"confirmation is judged on text no selection looked at; give the study a test share "
                           f"(e.g. split = [0.9, 0.09, 0.01]) in a new study, or compare on validation with harness "
                           f"report")
    cspec = confirm_spec(spec, plan)
    source = open_study(spec, SweepOptions(results_dir=options.results_dir, storage_url=options.storage_url),
                        create=False)
    corpus = load_corpus(cspec.corpus, cspec.corpus_options)
    study = open_study(cspec, options, corpus=corpus)
    with trial_slot_lock(storage_of(study), options.results_dir, cspec.name):
        enqueue_plan(source, study, cspec, plan)
    return run_sweep(cspec, options)


def store_ranking(study: optuna.Study) -> tuple[pd.DataFrame, list[str]]:
    """The confirmed ranking and its verdict, stored with the runs (`harness:confirmed`) so a report needs no recompute."""
    frame, lines = confirmed(study)
    ranking = frame.drop(columns=["params"]).to_dict("records") if not frame.empty else []
    study.set_user_attr(RESULT_ATTR, finite({"ranking": ranking, "verdict": lines}))
    return frame, lines


def confirmed(study: optuna.Study) -> tuple[pd.DataFrame, list[str]]:
    frame = summarize(study)
    return frame, verdict(frame)


def load_confirmation(study: optuna.Study) -> optuna.Study | None:
    """The sibling confirmation study of `study` in the same storage, if one was run."""
    try:
        return optuna.load_study(study_name=confirm_name(study.study_name), storage=storage_of(study))
    except KeyError:
        return None
