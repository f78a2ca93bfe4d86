"""What the pruner did: how many trials it stopped, and where.

Hyperband and ASHA both judge a trial at rungs: a rung keeps the best 1 in `reduction_factor` of
the trials that reached it. ASHA (Optuna's SuccessiveHalvingPruner) has one bracket, so every
trial is judged at every rung, from `min_resource` on. Hyperband runs several such brackets side
by side, each starting its rungs later (a trial is assigned to one by its number), and the last
bracket never stops anything: it hedges against early evaluations that rank configurations badly,
and pays for that hedge with whole budgets. Optuna records each rung a trial passed as a system
attribute (`completed_rung_<k>`); the trial runner records the evaluation a trial was stopped at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness.search._resume import ADDED, SPEC_ATTR
from harness.search._spec import PRUNER_KEYS, RUNG_PRUNERS, StudySpec

RUNG_KEY = "completed_rung_"
PRUNER_DEFAULTS = {key: ADDED[f"pruner_{key}"] for key in PRUNER_KEYS}


def pruned_by_pruner(t: FrozenTrial) -> bool:
    """Stopped by the pruner (not out of memory, diverged or failed)."""
    return t.state == TrialState.PRUNED and str(t.user_attrs.get("reason") or "").startswith("pruned by")


def stopped_at(t: FrozenTrial) -> int:
    """The evaluation (1-based) a pruned trial was stopped at."""
    return len(t.user_attrs.get("curve") or []) or (len(t.intermediate_values) or 1)


@dataclass
class Rung:
    index: int
    evaluation: int  # the first evaluation at or past the rung's resource: where a trial is judged
    share: float  # of the per-trial budget
    judged: int  # trials that reached it
    stopped: int  # trials it stopped


@dataclass
class Pruning:
    pruner: str
    stopped: int = 0
    at_evaluation: dict[int, int] = field(default_factory=dict)  # evaluation -> trials stopped there
    rungs: list[Rung] = field(default_factory=list)  # asha only: one bracket, so rungs are the study's
    settings: str = ""

    def to_dict(self) -> dict:
        return {"pruner": self.pruner, "settings": self.settings, "stopped": self.stopped,
                "stopped_at_evaluation": {str(k): v for k, v in sorted(self.at_evaluation.items())},
                "rungs": [vars(r).copy() for r in self.rungs]}

    def sentence(self) -> str:
        """One line for `harness status` and the report."""
        if self.pruner == "none":
            return "pruner: none (every trial runs until its budget or its patience ends)"
        head = f"pruner: {self.pruner}{f' ({self.settings})' if self.settings else ''} stopped {self.stopped} trials"
        if self.rungs:
            parts = [f"rung {r.index} (evaluation {r.evaluation}, {r.share:.0%} of the budget) stopped {r.stopped} of "
                     f"{r.judged}" for r in self.rungs if r.judged]
            return head + (": " + "; ".join(parts) if parts else "")
        if self.at_evaluation:
            where = ", ".join(f"{n} at evaluation {k}" for k, n in sorted(self.at_evaluation.items()))
            return head + f": {where}"
        return head


def rung_evaluations(spec: StudySpec) -> list[tuple[int, float]]:
    """ASHA's rungs as (evaluation, budget share): rung k's resource is min_resource x factor^k, in the
    pruner's steps (spec.pruner_step), and a trial is judged at the first evaluation that reaches it."""
    steps = [spec.pruner_step(i) for i in range(1, spec.evals + 1)]
    first = spec.pruner_step(spec.pruner_min_resource)
    rungs, k = [], 0
    while True:
        resource = first * spec.pruner_reduction_factor ** k
        reached = [i for i, s in enumerate(steps, start=1) if s >= resource]
        if not reached:
            return rungs
        evaluation = reached[0]
        rungs.append((evaluation, evaluation / spec.evals if spec.eval_spacing == "even" else steps[evaluation - 1] / 1000))
        k += 1


def pruning_summary(study: optuna.Study) -> Pruning | None:
    """What the study's pruner stopped; None for a study with no stored spec."""
    record = study.user_attrs.get(SPEC_ATTR)
    if not record:
        return None
    # the few keys this reads, with the defaults a record of an older release stands for
    spec = StudySpec(path=None, name=study.study_name, pruner=record.get("pruner", "hyperband"),
                     evals=record.get("evals", 8), eval_spacing=record.get("eval_spacing", "even"),
                     **{f"pruner_{key}": record.get(f"pruner_{key}", default) for key, default in PRUNER_DEFAULTS.items()})
    trials = study.get_trials(deepcopy=False)
    stopped = [t for t in trials if pruned_by_pruner(t)]
    result = Pruning(pruner=spec.pruner, stopped=len(stopped))
    for t in stopped:
        result.at_evaluation[stopped_at(t)] = result.at_evaluation.get(stopped_at(t), 0) + 1
    if spec.pruner in RUNG_PRUNERS:
        bootstrap = spec.pruner_bootstrap_count
        where = "its first rung" if spec.pruner_bootstrap_at == "first_rung" else "each rung"
        result.settings = (f"first rung at evaluation {spec.pruner_min_resource}, keeps 1 in "
                           f"{spec.pruner_reduction_factor}"
                           + (f", {where} stops the first {bootstrap} to reach it" if bootstrap else "")
                           + (", TPE's start-up draws stop at the first rung" if spec.pruner_startup_to_first_rung else ""))
    if spec.pruner == "asha":
        for k, (evaluation, share) in enumerate(rung_evaluations(spec)):
            judged = [t for t in trials if f"{RUNG_KEY}{k}" in t.system_attrs]
            last = [t for t in stopped if f"{RUNG_KEY}{k}" in t.system_attrs and f"{RUNG_KEY}{k + 1}" not in t.system_attrs]
            result.rungs.append(Rung(k, evaluation, share, len(judged), len(last)))
    return result
