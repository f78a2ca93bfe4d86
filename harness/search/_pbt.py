"""Population-based training on Optuna's trials: each member's segment is one trial.

Optuna declined PBT (optuna/optuna#287: it has no way to share model snapshots between trials).
The harness has one: every segment writes its end checkpoint, weights and optimizer state. So the
schedule is kept in the study itself. Under the worker's trial-slot lock, when no segment waits,
`plan_generation` enqueues the next generation once the last one has finished (synchronous
generations, like Ray's `synch=True`). The first generation's settings are drawn by the study's
sampler. A later segment's settings are fixed in the enqueued trial (Optuna's `enqueue_trial`):
its member's own, or a better member's perturbed (exploit and explore). Each segment's user
attribute `pbt` (a `Segment`) says which member and generation it is, which trial it continues,
from which checkpoint, over which share of the member's schedule, and what its lineage had
already spent. Workers, journal, PostgreSQL, resume, status, the dashboard and the report see
ordinary trials.

Cost is charged to the model, not the segment. A segment's `device_seconds` and `train_chars`
are its whole lineage's (every segment the weights passed through); `segment_device_seconds` and
`segment_train_chars` are its own, which are what the sweep spent.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness.common import HarnessError
from harness.data import CorpusOptions
from harness.search._spec import StudySpec
from harness.training import Budget, TrainConfig

PBT_ATTR = "pbt"


@dataclass
class Segment:
    """What a segment trial is (its `pbt` user attribute)."""

    member: int
    generation: int
    parent: int | None  # the trial whose end this segment continues (None: the member's first segment)
    checkpoint: str | None  # that trial's end checkpoint: weights and optimizer state
    exploited: bool  # the parent is another, better member (the weights were copied)
    start: float  # the share of the member's budget (and schedule) this segment starts at
    end: float
    lineage_device_seconds: float = 0.0  # spent on these weights before this segment
    lineage_train_chars: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, trial: FrozenTrial) -> Segment | None:
        raw = trial.user_attrs.get(PBT_ATTR)
        return cls(**raw) if isinstance(raw, dict) else None


def segments(study: optuna.Study) -> list[tuple[FrozenTrial, Segment]]:
    """Every segment that counts: a failed one that was retried is replaced by its retry."""
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    found = [(t, Segment.of(t)) for t in trials if not (t.state == TrialState.FAIL and t.number in retried)]
    return [(t, s) for t, s in found if s is not None]


def plan_generation(study: optuna.Study, spec: StudySpec) -> str:
    """Enqueue the next generation if it is due. Returns "enqueued", "wait" (segments of the current
    generation still run, or wait to be retried) or "done" (the last generation has finished)."""
    pbt = spec.pbt
    found = segments(study)
    if not found:
        start, end = pbt.window(0)
        for member in range(pbt.population):  # settings drawn by the study's sampler when asked
            study.enqueue_trial({}, user_attrs={PBT_ATTR: Segment(member, 0, None, None, False, start, end).to_dict()})
        return "enqueued"
    generation = max(s.generation for _, s in found)
    current = latest_per_member(found, generation)
    if len(current) < pbt.population or any(not t.state.is_finished() for t, _ in current.values()):
        return "wait"
    if generation + 1 >= pbt.generations:
        return "done"
    for params, segment in next_generation(study, spec, current, generation + 1).values():
        study.enqueue_trial(params, user_attrs={PBT_ATTR: segment.to_dict()})
    return "enqueued"


def latest_per_member(found: list[tuple[FrozenTrial, Segment]], generation: int) -> dict[int, tuple]:
    current: dict[int, tuple[FrozenTrial, Segment]] = {}
    for t, s in sorted(found, key=lambda pair: pair[0].number):
        if s.generation == generation:
            current[s.member] = (t, s)
    return current


def next_generation(study: optuna.Study, spec: StudySpec, current: dict[int, tuple],
                    generation: int) -> dict[int, tuple[dict, Segment]]:
    """Exploit and explore: the members in the worst quantile continue a member of the best one, with that
    member's rates perturbed; the rest continue themselves unchanged. A segment that failed, diverged or
    ran out of memory ranks last. The draws follow from the study's seed and the generation, so a resumed
    study plans the generation it would have planned."""
    pbt = spec.pbt
    rng = random.Random(spec.seed * 1_000_003 + generation)
    ranked = sorted(current, key=lambda m: (_value(current[m][0]), m))
    cut = min(max(1, math.ceil(pbt.population * pbt.quantile)), pbt.population // 2)
    top = [m for m in ranked[:cut] if math.isfinite(_value(current[m][0]))]
    bottom = set(ranked[-cut:]) if top else set()
    start, end = pbt.window(generation)
    plan = {}
    for member in sorted(current):
        own, _ = current[member]
        donor = rng.choice(top) if member in bottom else member
        parent, _ = current[donor]
        params = dict(parent.params)
        if member in bottom:
            params = explore(params, spec, rng)
        checkpoint = parent.user_attrs.get("checkpoint") if parent.state == TrialState.COMPLETE else None
        lineage = (float(parent.user_attrs.get("device_seconds") or 0.0), int(parent.user_attrs.get("train_chars") or 0))
        if checkpoint is None:  # nothing to continue (the member failed and nobody could be copied): start over
            lineage = (0.0, 0)
        plan[member] = (params, Segment(member, generation, parent.number if checkpoint else None, checkpoint,
                                        donor != member and checkpoint is not None, start, end, *lineage))
    return plan


def explore(params: dict, spec: StudySpec, rng: random.Random) -> dict:
    """Each perturbable rate the member has times one of the factors, or drawn again from the space with
    the resample probability; kept inside the space's bounds. A rate that could not act (dropout at one
    layer) is not in the parameters and stays so."""
    pbt = spec.pbt
    out = dict(params)
    for key in pbt.perturb:
        if key not in out:
            continue
        p = spec.space[key]
        if rng.random() < pbt.resample_probability:
            value = (math.exp(rng.uniform(math.log(p.low), math.log(p.high))) if p.log
                     else rng.uniform(p.low, p.high))
        else:
            value = out[key] * rng.choice(pbt.factors)
        out[key] = min(p.high, max(p.low, value))
    return out


def _value(trial: FrozenTrial) -> float:
    return trial.values[0] if trial.state == TrialState.COMPLETE and trial.values else math.inf


def lineage(study: optuna.Study, number: int) -> list[tuple[FrozenTrial, Segment]]:
    """The segments a trial's weights passed through, first to last (the trial itself last)."""
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    chain = []
    trial = by_number.get(number)
    while trial is not None:
        segment = Segment.of(trial)
        if segment is None:
            break
        chain.append((trial, segment))
        trial = by_number.get(segment.parent) if segment.parent is not None else None
    return chain[::-1]


def schedule_of(study: optuna.Study, number: int, perturb: list[str]) -> list[tuple[float, dict]]:
    """The winning lineage's rates as (share of the member's budget, {rate: value}) phases: what
    `harness train --schedule-from` and `harness confirm` replay from scratch."""
    phases = []
    for trial, segment in lineage(study, number):
        rates = {k: trial.params[k] for k in perturb if k in trial.params}
        if not phases or phases[-1][1] != rates:
            phases.append((segment.start, rates))
    return phases


def pbt_summary(study: optuna.Study) -> dict | None:
    """What `harness status` and the report say of a PBT study: its generations, exploits, and the winner's
    lineage (None for any other study)."""
    found = segments(study)
    if not found:
        return None
    members = {s.member for _, s in found}
    done = [(t, s) for t, s in found if t.state == TrialState.COMPLETE and t.values]
    best = min(done, key=lambda pair: pair[0].values[0]) if done else None
    chain = lineage(study, best[0].number) if best else []
    summary = {
        "population": len(members), "generations": max(s.generation for _, s in found) + 1,
        "segments": len(found), "exploits": sum(s.exploited for _, s in found),
        "best": None if best is None else {"trial": best[0].number, "member": best[1].member, "bpc": best[0].values[0],
                                           "lineage": [t.number for t, _ in chain],
                                           "members": [s.member for _, s in chain],
                                           "device_seconds": best[0].user_attrs.get("device_seconds")},
    }
    text = (f"pbt: {summary['population']} members, {summary['generations']} generation(s), {summary['segments']} "
            f"segments, {summary['exploits']} exploit(s)")
    if best is not None:
        b = summary["best"]
        moved = sum(1 for a, c in zip(b["members"], b["members"][1:], strict=False) if a != c)
        text += (f"; best: member {b['member']} at trial {b['trial']}, {b['bpc']:.3f} bpc, its weights trained through "
                 f"trials {' > '.join(map(str, b['lineage']))} ({moved} copy between members), charged "
                 f"{b['device_seconds']:.3g} device-s in all")
    summary["sentence"] = text
    return summary


@dataclass
class Replay:
    """A PBT trial's schedule as one run from scratch: the lineage's first settings, the member's whole
    budget, and the rates it changed to as it went (Ray's PBT replay)."""

    params: dict
    phases: list[tuple[float, dict]]
    source: int

    @classmethod
    def of(cls, study: optuna.Study, number: int, perturb: list[str]) -> Replay:
        chain = lineage(study, number)
        if not chain:
            raise HarnessError(f"trial {number} of study {study.study_name!r} is not a PBT segment; --schedule-from "
                               f"replays the schedule a PBT study learned (sampler = \"pbt\")")
        return cls(dict(chain[0][0].params), schedule_of(study, number, perturb), number)


@dataclass
class ReplayPlan:
    """Everything a replay of trial `trial`'s schedule trains with: `harness train --schedule-from` and
    `harness.replay` both run it."""

    study: str
    trial: int
    config: TrainConfig
    budget: Budget
    phases: list[tuple[float, dict]]
    corpus: str
    corpus_options: CorpusOptions


def replay_plan(target: str | Path, trial: int, seed: int, results: str | Path | None = None,
                storage: str | None = None) -> ReplayPlan:
    """The lineage's first configuration with a fresh `seed`, the member's whole budget, and the rates it
    changed to: whether the schedule or the inherited weights made the winner becomes a measurement."""
    from harness.search._results import open_results, study_spec_for

    spec, _ = study_spec_for(target, results, storage)
    if spec.pbt is None:
        raise HarnessError(f"study {spec.name!r} is not a PBT study (sampler = {spec.sampler!r}); a replay runs the "
                           f"schedule that sampler = \"pbt\" learned")
    _, study = open_results(target, results, storage)
    if trial not in {t.number for t in study.get_trials(deepcopy=False)}:
        raise HarnessError(f"study {spec.name!r} has no trial {trial} (see harness status)")
    replay = Replay.of(study, trial, spec.pbt.perturb)
    values = spec.values_for(replay.params)
    values["seed"] = seed
    return ReplayPlan(spec.name, trial, TrainConfig.from_dict(values).validate(), spec.budget, replay.phases,
                      spec.corpus, spec.corpus_options)
