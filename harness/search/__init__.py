"""How it is searched and stored: study files, storage (journal or PostgreSQL), workers, trials, resume, confirm.

`load_study` reads a study file into a `StudySpec`; `run_sweep(spec, SweepOptions(...))` runs it
and returns a `SweepOutcome`; `open_results` opens a finished or running study read-only;
`run_confirm` retrains the top configurations with fresh seeds and judges them on the test split.
Optuna's private API is used in harness.search._optuna only.
"""

from harness.search._artifacts import (
    HOST_ENV,
    Elsewhere,
    elsewhere,
    locate,
    this_host,
    trial_checkpoint,
    trial_host,
)
from harness.search._confirm import (
    PLAN_ATTR,
    RESULT_ATTR,
    confirm_name,
    confirm_spec,
    confirmed,
    load_confirmation,
    run_confirm,
    store_ranking,
    summarize,
    t975,
    top_per_family,
    verdict,
)
from harness.search._journal import JOURNAL_NAME, HeartbeatJournalStorage, repair_journal, torn_tail
from harness.search._options import STOP_REASONS, SweepOptions, SweepOutcome
from harness.search._optuna import storage_of
from harness.search._pbt import (
    PBT_ATTR,
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
from harness.search._space import Param, grid_size, grid_values
from harness.search._spec import GenerateSpec, StudySpec, load_study, parse_study
from harness.search._status import best_trial, describe_trial, retried_numbers, status_summary
from harness.search._storage import (
    HEARTBEAT_ENV,
    RetryTrial,
    database_url,
    heartbeat_settings,
    open_storage,
    trial_slot_lock,
)
from harness.search._study import make_pruner, make_sampler, open_study, results_dir_for
from harness.search._sweep import run_sweep
from harness.search._trial import TRIAL_HOOK_ENV, TrialRunner
from harness.search._worker import run_worker

__all__ = [
    "PBT_ATTR",
    "Replay",
    "ReplayPlan",
    "Segment",
    "replay_plan",
    "lineage",
    "pbt_summary",
    "schedule_of",
    "HOST_ENV",
    "Elsewhere",
    "Pruning",
    "elsewhere",
    "locate",
    "this_host",
    "trial_checkpoint",
    "trial_host",
    "CHANGES_ATTR",
    "TRIAL_HOOK_ENV",
    "HEARTBEAT_ENV",
    "JOURNAL_NAME",
    "PLAN_ATTR",
    "RESULT_ATTR",
    "SPEC_ATTR",
    "BASELINE_ATTR",
    "STOP_REASONS",
    "GenerateSpec",
    "HeartbeatJournalStorage",
    "Param",
    "RetryTrial",
    "StudySpec",
    "SweepOptions",
    "SweepOutcome",
    "TrialRunner",
    "best_trial",
    "check_resume",
    "confirm_name",
    "confirm_spec",
    "confirmed",
    "database_url",
    "describe_trial",
    "grid_size",
    "grid_values",
    "heartbeat_settings",
    "load_confirmation",
    "load_study",
    "make_pruner",
    "make_sampler",
    "open_results",
    "open_storage",
    "open_study",
    "parse_study",
    "pruning_summary",
    "repair_journal",
    "results_dir_for",
    "retried_numbers",
    "run_confirm",
    "run_sweep",
    "run_worker",
    "status_summary",
    "storage_of",
    "store_ranking",
    "top_per_family",
    "study_spec_for",
    "summarize",
    "t975",
    "torn_tail",
    "trial_slot_lock",
    "verdict",
]
