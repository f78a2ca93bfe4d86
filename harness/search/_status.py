"""Reading a study's trials: what counts toward the plan, the best trial, and the status table's rows."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness.common import format_param
from harness.search._artifacts import trial_host
from harness.search._pbt import pbt_summary
from harness.search._pruning import pruning_summary
from harness.search._resume import BASELINE_ATTR


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def planned_count(study: optuna.Study) -> tuple[int, int]:
    """(trials that count toward the plan, trials waiting to run): a failed trial that was re-queued counts once."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    counted = [t for t in trials if not (t.state == TrialState.FAIL and t.number in retried)]
    return len(counted), sum(t.state == TrialState.WAITING for t in trials)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    return min(complete, key=lambda t: t.values[0]) if complete else None


def status_text(study: optuna.Study, planned: int | None) -> str:
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    done = sum(t.state.is_finished() and not (t.state == TrialState.FAIL and t.number in retried) for t in trials)
    best = best_trial(study)
    text = f"{done}/{planned or '?'} done"
    if best is not None:
        text += f" | best {best.values[0]:.4f} bpc (#{best.number})"
    return text


def describe_trial(study: optuna.Study, number: int) -> str:
    t = study.get_trials(deepcopy=False)[number]
    params = " ".join(f"{k}={format_param(v)}" for k, v in t.params.items())
    if t.state == TrialState.COMPLETE:
        head = f"trial {number} COMPLETE {t.values[0]:.4f} bpc in {t.user_attrs.get('device_seconds', 0):.1f} device-s"
    else:
        head = f"trial {number} {t.state.name}: {t.user_attrs.get('reason')}"
    if "source_trial" in t.user_attrs:  # a confirmation run
        head += f" (test split; confirming #{t.user_attrs['source_trial']}, seed {t.user_attrs['seed']})"
    return f"{head} | {params}"


def trial_reason(t: FrozenTrial, retried_as: dict[int, int]) -> str | None:
    """The trial's own reason, or, for a trial whose worker vanished, what happened to it."""
    reason = t.user_attrs.get("reason")
    if reason is None and t.state == TrialState.FAIL:
        reason = "worker stopped without a word (killed, crashed or lost power)"
    if t.number in retried_as and reason is not None:
        reason += f"; retried as #{retried_as[t.number]}"
    elif t.state == TrialState.FAIL and reason is not None and t.user_attrs.get("reason") is None:
        reason += "; not retried again (it had already been retried after a crash)"
    return reason


def status_summary(study: optuna.Study) -> dict:
    """What `harness status` prints (and `--json` emits): counts per state, the best trial, every trial."""
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    retried_as = {t.user_attrs["retry_of"]: t.number for t in trials if "retry_of" in t.user_attrs}
    best = best_trial(study)
    pruning = pruning_summary(study)
    hosts: dict[str, int] = {}
    for t in trials:
        if trial_host(t):
            hosts[trial_host(t)] = hosts.get(trial_host(t), 0) + 1
    return {
        "study": study.study_name,
        "counts": counts,
        "best": None if best is None else {"number": best.number, "params": best.params, "bpc": best.values[0],
                                           "device_seconds": best.user_attrs.get("device_seconds")},
        "trials": [{"number": t.number, "state": t.state.name,
                    "bpc": t.values[0] if t.values else t.user_attrs.get("val_bpc"),
                    "reason": trial_reason(t, retried_as), "params": dict(t.params),
                    "retry_of": t.user_attrs.get("retry_of"), "retried_as": retried_as.get(t.number),
                    "device_seconds": t.user_attrs.get("device_seconds"), "host": trial_host(t)} for t in trials],
        "hosts": hosts,
        "baseline": study.user_attrs.get(BASELINE_ATTR),
        "pruning": pruning.to_dict() | {"sentence": pruning.sentence()} if pruning is not None else None,
        "pbt": pbt_summary(study),
    }
