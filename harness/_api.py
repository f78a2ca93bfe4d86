"""The handful of calls a notebook or script needs, with plain arguments; `import harness` re-exports them lazily.

Each is a thin layer over a subpackage (harness.search, harness.report, harness.training); nothing
here changes the caller's process beyond the call: no matplotlib backend, no warning filters, no
Optuna verbosity, and signal handlers only for the duration of a sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import optuna
import pandas as pd

from harness.common import HarnessError
from harness.report import (
    MULTIPLES,
    ConfirmRequest,
    Report,
    calibration_for,
    forecast_study,
    outlook_table,
    run_confirmation,
    study_frame,
)
from harness.report import build_report as _build_report
from harness.search import (
    StudySpec,
    SweepOptions,
    SweepOutcome,
    load_study,
    open_results,
    results_dir_for,
    study_spec_for,
)
from harness.search import run_sweep as _run_sweep


def _spec(study: StudySpec | str | Path) -> StudySpec:
    return study if isinstance(study, StudySpec) else load_study(study)


def run_sweep(study: StudySpec | str | Path, results: str | Path | None = None, *, storage: str | None = None,
              device: str = "auto", trials: int | None = None, timeout: float | None = None,
              workers: int = 1) -> SweepOutcome:
    """Run (or resume) a study from a study file or a `StudySpec`; how it ended.

    `results` defaults to results/<study name>; `timeout` is in seconds. Several `workers` run as
    processes of their own; a family registered in this process is known to them only if its
    module registers it on import and is imported by the study's code (docs/model-families.md).
    """
    spec = _spec(study)
    options = SweepOptions(results_dir=results_dir_for(spec, Path(results) if results else None),
                           storage_url=storage, device=device, trials=trials, timeout=timeout, workers=workers)
    return _run_sweep(spec, options)


def load_results(target: str | Path | SweepOutcome, results: str | Path | None = None, *,
                 storage: str | None = None) -> optuna.Study:
    """The study behind a study file or a results directory (a `SweepOutcome`'s too), read-only."""
    if isinstance(target, SweepOutcome):
        return open_results(target.results_dir, storage=target.storage_url)[1]
    return open_results(target, results, storage)[1]


def trials_frame(study: optuna.Study | str | Path) -> pd.DataFrame:
    """A row per trial: parameters, state, held-out figures, cost, telemetry and text metrics."""
    return study_frame(study if isinstance(study, optuna.Study) else load_results(study))


def forecast(study: optuna.Study | str | Path, at: Sequence[float] = MULTIPLES) -> pd.DataFrame:
    """Each trial's held-out bpc forecast at multiples of its budget: one row per trial and multiple, with the
    95% interval, P(best), both ranks and the method (a power-law fit, or the last value and why)."""
    opened = study if isinstance(study, optuna.Study) else load_results(study)
    multiples = tuple(float(m) for m in at)
    if not multiples or min(multiples) < 1:
        raise HarnessError(f"forecast at {list(at)}: give multiples of the trial budget of 1 or more, e.g. (2, 4, 10)")
    forecasts = forecast_study(opened, multiples)
    calibration = calibration_for(opened)
    tables = [outlook_table(forecasts, m, calibration).assign(multiple=m) for m in multiples]
    return pd.concat(tables, ignore_index=True) if forecasts else pd.DataFrame()


def build_report(study: optuna.Study | str | Path, out: str | Path | None = None, *,
                 formats: Sequence[str] = ("png",), top: int = 10) -> Report:
    """Tables, figures, report.html and report.md of a study (default directory: <results>/report)."""
    if isinstance(study, optuna.Study):
        if out is None:
            raise TypeError("build_report(study) needs out=DIR when given an optuna.Study")
        return _build_report(study, Path(out), list(formats), top)
    results_dir, opened = open_results(study)
    target = Path(out) if out is not None else results_dir / "report"
    return _build_report(opened, target, list(formats), top, results_dir)


def confirm(study: StudySpec | str | Path, results: str | Path | None = None, *, top: int = 3, seeds: int = 3,
            budget: str | None = None, storage: str | None = None, device: str = "auto",
            workers: int = 1, per_family: bool = False) -> pd.DataFrame:
    """Retrain the top configurations with fresh seeds, judge them on the test split; the ranking, best first.

    `budget`: the study's per-trial budget by default, an absolute one ("300s"), or a multiple ("5x"),
    which adds the forecast's top K and stores the forecast for the report to hold against the runs.
    `per_family`: the top K of every model family, for a study that compares families.
    """
    if isinstance(study, StudySpec):
        spec, results_dir = study, results_dir_for(study, Path(results) if results else None)
    else:
        spec, results_dir = study_spec_for(study, results, storage)
    request = ConfirmRequest(top=top, seeds=seeds, budget=budget, per_family=per_family, device=device,
                             workers=workers, storage=storage)
    found = run_confirmation(spec, results_dir, request)
    if not found.outcome.finished:
        raise HarnessError(f"the confirmation of {spec.name!r} stopped before its runs finished "
                           f"({found.outcome.stop}: {found.outcome.message or 'see harness status'}); call confirm "
                           f"again with the same arguments to resume it")
    return found.frame


def replay(study: str | Path, trial: int, *, seed: int, out_dir: str | Path | None = None, device: str = "auto",
           evals: int = 10, results: str | Path | None = None, storage: str | None = None):
    """Train a PBT trial's schedule from scratch with a fresh `seed` (Ray's PBT replay): the lineage's first
    settings, the member's whole budget, the rates changed where the lineage changed them. Returns the
    `TrainResult`; its figures against the PBT winner's say whether the schedule or the inherited
    weights won."""
    from harness.data import load_corpus
    from harness.measure import resolve_device
    from harness.search import replay_plan
    from harness.training import Evaluations, Start, train

    plan = replay_plan(study, trial, seed, results, storage)
    corpus = load_corpus(plan.corpus, plan.corpus_options)
    return train(plan.config, corpus, plan.budget, resolve_device(device), out_dir=out_dir,
                 evaluations=Evaluations(evals), start=Start(phases=list(plan.phases)))
