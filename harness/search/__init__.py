"""How it is searched and stored: study files, storage (journal or PostgreSQL), workers, trials, resume, confirm.

`load_study` reads a study file into a `StudySpec`; `run_sweep(spec, SweepOptions(...))` runs it
and returns a `SweepOutcome`; `open_results` opens a finished or running study read-only;
`run_confirm` retrains the top configurations with fresh seeds and judges them on the test split.
Optuna's private API is used in harness.search._optuna only.
"""

from harness.search._artifacts import (
    Elsewhere,
    elsewhere,
    locate,
    this_host,
    trial_checkpoint,
    trial_host,
)
from harness.search._confirm import (
    PLAN_ATTR,
    ConfirmPlan,
    confirm_name,
    confirm_spec,
    confirmed,
    load_confirmation,
    run_confirm,
    store_ranking,
    summarize,
    t_quantile_975,
    top_per_family,
    verdict,
)
from harness.search._journal import JOURNAL_NAME, HeartbeatJournalStorage
from harness.search._options import SweepOptions, SweepOutcome
from harness.search._optuna import storage_of
from harness.search._pbt import (
    Replay,
    ReplayPlan,
    Segment,
    lineage,
    pbt_summary,
    replay_plan,
    schedule_of,
)
from harness.search._pruning import Pruning, pruning_summary
from harness.search._results import open_results, study_spec_for
from harness.search._resume import BASELINE_ATTR, CHANGES_ATTR, SPEC_ATTR, check_resume
from harness.search._space import Param, grid_size
from harness.search._spec import BOOTSTRAP_AT, GenerateSpec, StudySpec, load_study, parse_study
from harness.search._status import retried_numbers, status_summary
from harness.search._storage import (
    HEARTBEAT_ENV,
    RetryTrial,
    database_url,
    heartbeat_settings,
    open_storage,
)
from harness.search._study import make_pruner, make_sampler, open_study, results_dir_for, startup_trials
from harness.search._sweep import run_sweep
from harness.search._trial import TrialRunner
from harness.search._worker import run_worker

__all__ = [
    "BASELINE_ATTR",
    "BOOTSTRAP_AT",
    "CHANGES_ATTR",
    "HEARTBEAT_ENV",
    "JOURNAL_NAME",
    "PLAN_ATTR",
    "SPEC_ATTR",
    "ConfirmPlan",
    "Elsewhere",
    "GenerateSpec",
    "HeartbeatJournalStorage",
    "Param",
    "Pruning",
    "Replay",
    "ReplayPlan",
    "RetryTrial",
    "Segment",
    "StudySpec",
    "SweepOptions",
    "SweepOutcome",
    "TrialRunner",
    "check_resume",
    "confirm_name",
    "confirm_spec",
    "confirmed",
    "database_url",
    "elsewhere",
    "grid_size",
    "heartbeat_settings",
    "lineage",
    "load_confirmation",
    "load_study",
    "locate",
    "make_pruner",
    "make_sampler",
    "open_results",
    "open_storage",
    "open_study",
    "parse_study",
    "pbt_summary",
    "pruning_summary",
    "replay_plan",
    "results_dir_for",
    "retried_numbers",
    "run_confirm",
    "run_sweep",
    "run_worker",
    "schedule_of",
    "startup_trials",
    "status_summary",
    "storage_of",
    "store_ranking",
    "study_spec_for",
    "summarize",
    "t_quantile_975",
    "this_host",
    "top_per_family",
    "trial_checkpoint",
    "trial_host",
    "verdict",
]
