"""Opening a study: its storage, its sampler and pruner by name, and the check that a resumed study means what it meant."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import optuna
from optuna.trial import TrialState

from harness.common import HarnessError, interrupts
from harness.data import Corpus
from harness.search._options import SweepOptions
from harness.search._optuna import quiet, tpe_sampler
from harness.search._pruning import RUNG_KEY
from harness.search._resume import BASELINE_ATTR, CHANGES_ATTR, SPEC_ATTR, changes_entry, check_resume
from harness.search._space import grid_values
from harness.search._spec import StudySpec
from harness.search._storage import open_storage


def results_dir_for(spec: StudySpec, override: Path | None = None) -> Path:
    return Path(override) if override else Path("results") / spec.name


class AskTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, minus its `study.stop()` when the grid is used up.

    That call is only allowed inside `Study.optimize`; our workers ask and tell, and stop on their
    own when the planned count (the grid's size) is reached.
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None


class FirstRungBootstrapPruner(optuna.pruners.BasePruner):
    """ASHA whose bootstrap holds at its first rung only.

    Optuna's `bootstrap_count` stops the first trials to reach *every* rung. At the first rung that is
    what it is for: a random start-up draw cannot train on before anything was compared with it. At a
    later rung it stops, whatever its figure, a trial that has already been compared and kept (the
    first to get that far is usually the best so far), after it spent the rung's whole resource. Here
    the bootstrap applies where a trial is judged for the first time, and later rungs judge as
    Optuna's rule does without one (the first trial at a rung goes on; the next must be the best).
    """

    FIRST_RUNG = f"{RUNG_KEY}0"  # where Optuna's SuccessiveHalvingPruner records a trial's first-rung figure

    def __init__(self, min_resource: int, reduction_factor: int, bootstrap_count: int) -> None:
        self._rungs = optuna.pruners.SuccessiveHalvingPruner(min_resource=min_resource,
                                                             reduction_factor=reduction_factor,
                                                             min_early_stopping_rate=0, bootstrap_count=0)
        self._first, self._bootstrap = min_resource, bootstrap_count

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        judged_now = (self.FIRST_RUNG not in trial.system_attrs and trial.last_step is not None
                      and trial.last_step >= self._first)
        if self._rungs.prune(study, trial):
            return True
        if not (judged_now and self._bootstrap):
            return False
        # the rung has just recorded this trial's figure; it counts itself, as Optuna's bootstrap does
        seen = sum(self.FIRST_RUNG in t.system_attrs for t in study.get_trials(deepcopy=False))
        return seen <= self._bootstrap


class StartupToFirstRungPruner(optuna.pruners.BasePruner):
    """Another pruner, plus: a trial TPE drew at random (its start-up phase) stops at the first rung.

    TPE learns from a start-up draw's first evaluation as well as from its last (pruned trials are
    ranked by how far they got, then by their figure there), and random draws rarely win. So the
    night spends one rung on each, not the budget the rungs would give the best of them. A trial is a
    start-up draw when fewer than `startup` trials had finished as it started, TPE's own test at the
    time it sampled (with several workers, near enough: a trial that raced it counts as unfinished).
    """

    def __init__(self, inner: optuna.pruners.BasePruner, startup: int, first_step: int) -> None:
        self._inner, self._startup, self._first = inner, startup, first_step

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if self._inner.prune(study, trial):  # first, so its rungs record this trial's figure
            return True
        if trial.last_step is None or trial.last_step < self._first or trial.datetime_start is None:
            return False
        finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.datetime_complete is not None
                       and t.datetime_complete <= trial.datetime_start for t in study.get_trials(deepcopy=False))
        return finished < self._startup


def startup_trials(spec: StudySpec) -> int:
    """TPE's random start-up: the study's `startup_trials`, else a third of the planned trials, 3 to 10."""
    return spec.startup_trials or max(3, min(10, (spec.trials or 50) // 3))


def good_trials(fraction: float, n: int) -> int:
    """How many of `n` trials TPE models as good: Optuna's rule (`default_gamma`) with our fraction for its 10%."""
    return min(math.ceil(fraction * n), 25)


def make_sampler(spec: StudySpec, seed: int) -> optuna.samplers.BaseSampler:
    if spec.sampler == "tpe":
        # constant_liar set explicitly (its default changed between Optuna versions): with several
        # workers, running trials count as bad guesses, so two workers do not sample the same point.
        gamma = {} if spec.good_fraction is None else {"gamma": functools.partial(good_trials, spec.good_fraction)}
        return tpe_sampler(seed=seed, multivariate=True, constant_liar=True, n_startup_trials=startup_trials(spec),
                           **gamma)
    if spec.sampler in ("random", "pbt"):  # pbt: its first generation is drawn at random (TPE's start-up does the same)
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        return AskTellGridSampler({p.optuna_name: grid_values(p) for p in spec.space.values()}, seed=seed)
    if spec.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise HarnessError("sampler cmaes needs the cmaes package: pip install cmaes") from None
    return optuna.samplers.CmaEsSampler(seed=seed)


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    pruner = _rung_pruner(spec)
    if spec.pruner_startup_to_first_rung and not isinstance(pruner, optuna.pruners.NopPruner):
        return StartupToFirstRungPruner(pruner, startup_trials(spec), spec.pruner_step(spec.pruner_min_resource))
    return pruner


def _rung_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    if spec.multi_objective or spec.pruner == "none":
        return optuna.pruners.NopPruner()  # Optuna cannot prune multi-objective studies
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=spec.pruner_step(1))
    first = spec.pruner_step(spec.pruner_min_resource)
    if spec.pruner == "asha" and spec.pruner_bootstrap_at == "first_rung":
        return FirstRungBootstrapPruner(first, spec.pruner_reduction_factor, spec.pruner_bootstrap_count)
    if spec.pruner == "asha":  # one bracket: every trial is judged at every rung
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=spec.pruner_reduction_factor,
                                                      min_early_stopping_rate=0,
                                                      bootstrap_count=spec.pruner_bootstrap_count)
    if spec.pruner_bootstrap_at != "every_rung":
        raise HarnessError(f"[pruner] bootstrap_at = {spec.pruner_bootstrap_at!r} is for pruner = \"asha\", not "
                           f"{spec.pruner!r}")
    return optuna.pruners.HyperbandPruner(min_resource=first, max_resource=spec.pruner_step(spec.evals),
                                          reduction_factor=spec.pruner_reduction_factor,
                                          bootstrap_count=spec.pruner_bootstrap_count)


def open_study(spec: StudySpec, options: SweepOptions, seed: int = 0, create: bool = True,
               corpus: Corpus | None = None) -> optuna.Study:
    """Load (readers) or create-or-resume (sweeps) the study; a resumed study must mean what it meant."""
    storage = open_storage(options.results_dir, options.storage_url, repair=create)
    where = options.storage_url or options.results_dir
    with quiet():
        if not create:
            try:
                return optuna.load_study(study_name=spec.name, storage=storage)
            except KeyError:
                raise HarnessError(f"no study named {spec.name!r} in {where}; run harness sweep first") from None
        with interrupts.deferred():
            return _create_or_resume(spec, storage, seed, corpus, where)


def _create_or_resume(spec: StudySpec, storage, seed: int, corpus: Corpus | None, where) -> optuna.Study:
    try:  # load first: a create that finds the study exists still appends a record to the journal
        study = optuna.load_study(study_name=spec.name, storage=storage, sampler=make_sampler(spec, seed),
                                  pruner=make_pruner(spec))
    except KeyError:
        directions = ["minimize", "minimize"] if spec.multi_objective else ["minimize"]
        study = optuna.create_study(study_name=spec.name, storage=storage, load_if_exists=True,
                                    directions=directions, sampler=make_sampler(spec, seed), pruner=make_pruner(spec))
    # A resumed study gets a sampler seeded past what already ran: a seeded sampler started anew
    # would re-propose the very configurations of the first night (its random start-up phase).
    done = len(study.get_trials(deepcopy=False))
    if done:
        study.sampler = make_sampler(spec, seed + done)
    stored = study.user_attrs.get(SPEC_ATTR)
    current = spec.to_record(corpus)
    if stored is None:
        study.set_user_attr(SPEC_ATTR, current)
        _store_baseline(study, corpus)
        return study
    refusals, allowed = check_resume(stored, current)
    if refusals:
        raise HarnessError(
            f"study {spec.name!r} in {where} was run with other settings, and its trials would not compare "
            f"with new ones:\n  " + "\n  ".join(refusals) + "\nPut the old values back to resume it, or start "
            f"a new study: change [study] name in {spec.path or 'the study file'}, or pass --results DIR"
        )
    if allowed:
        study.set_user_attr(CHANGES_ATTR, study.user_attrs.get(CHANGES_ATTR, []) + [changes_entry(allowed)])
        study.set_user_attr(SPEC_ATTR, {**stored, **current})
    _store_baseline(study, corpus)
    return study


def _store_baseline(study: optuna.Study, corpus: Corpus | None) -> None:
    """The count model's figures for the study's text and split, once per study (a study begun before they
    existed gets them at its next resume), so status and the report read them from the storage alone."""
    if corpus is not None and BASELINE_ATTR not in study.user_attrs:
        study.set_user_attr(BASELINE_ATTR, corpus.count_baseline().to_dict())
