"""The sweep: an Optuna study whose objective trains one configuration per trial, and survives the night.

Shape of a worker: open the storage, then repeat {fail stale trials; under a lock, check the plan
and ask for a trial; train it under Optuna's heartbeat; tell the result}. Anything a trial does
wrong stays on that trial:

- out of memory -> PRUNED with the constraint `fits_in_memory` violated, so TPE learns to avoid
  that region instead of learning nothing from a FAIL;
- NaN or infinite loss -> PRUNED with `finite_loss` violated;
- any other exception -> FAIL with the reason and a short traceback in the trial's attributes;
- Ctrl-C -> the trial is marked FAIL ("interrupted") and re-queued once, the sweep stops, and
  the same command resumes it.

Each trial's record lives in its user attributes (readable by `optuna-dashboard` and the `optuna`
CLI) and its files in `<results>/trials/<number>/`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.storages import fail_stale_trials
from optuna.storages._heartbeat import BaseHeartbeat, get_heartbeat_thread
from optuna.trial import Trial, TrialState

from harness import interrupts
from harness.config import TrainConfig
from harness.corpus import Corpus, load_corpus
from harness.device import resolve_device
from harness.errors import HarnessError
from harness.progress import ProgressLine, format_param
from harness.resume import CHANGES_ATTR, SPEC_ATTR, changes_entry, check_resume, spec_record
from harness.storage import (
    DiskFullError,
    HeartbeatJournalStorage,
    RetryTrial,
    open_storage,
    trial_slot_lock,
)
from harness.studyfile import StudySpec, grid_values
from harness.telemetry import Telemetry
from harness.trial import TrialRunner, parse_faults

# We drive Optuna's heartbeat ourselves (ask/tell, not Study.optimize) and use its retry callback.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")



@dataclass
class SweepOptions:
    results_dir: Path
    storage_url: str | None = None
    device: str = "auto"
    trials: int | None = None
    timeout: float | None = None
    workers: int = 1
    worker_index: int | None = None  # set in the worker processes that `--workers K` starts
    plain_progress: bool = False


def results_dir_for(spec: StudySpec, override: Path | None = None) -> Path:
    return Path(override) if override else Path("results") / spec.name


class AskTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, minus its `study.stop()` when the grid is used up.

    That call is only allowed inside `Study.optimize`; our workers ask and tell, and stop on their
    own when the planned count (the grid's size) is reached.
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None


def make_sampler(spec: StudySpec, seed: int) -> optuna.samplers.BaseSampler:
    trials = spec.trials or 50
    if spec.sampler == "tpe":
        # constant_liar set explicitly (its default changed between Optuna versions): with several
        # workers, running trials count as bad guesses, so two workers do not sample the same point.
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                          n_startup_trials=max(3, min(10, trials // 3)))
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        return AskTellGridSampler({p.name: grid_values(p) for p in spec.space.values()}, seed=seed)
    if spec.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise HarnessError("sampler cmaes needs the cmaes package: pip install cmaes") from None
    return optuna.samplers.CmaEsSampler(seed=seed)


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    if spec.multi_objective or spec.pruner == "none":
        return optuna.pruners.NopPruner()  # Optuna cannot prune multi-objective studies
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=spec.evals, reduction_factor=3)


def open_study(spec: StudySpec, options: SweepOptions, seed: int = 0, create: bool = True,
               corpus: Corpus | None = None) -> optuna.Study:
    """Load (readers) or create-or-resume (sweeps) the study; a resumed study must mean what it meant."""
    storage = open_storage(options.results_dir, options.storage_url, repair=create)
    directions = ["minimize", "minimize"] if spec.multi_objective else ["minimize"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    where = options.storage_url or options.results_dir
    if not create:
        try:
            return optuna.load_study(study_name=spec.name, storage=storage)
        except KeyError:
            raise HarnessError(f"no study named {spec.name!r} in {where}; run harness sweep first") from None
    with interrupts.deferred():
        try:  # load first: a create that finds the study exists still appends a record to the journal
            study = optuna.load_study(study_name=spec.name, storage=storage, sampler=make_sampler(spec, seed),
                                      pruner=make_pruner(spec))
        except KeyError:
            study = optuna.create_study(study_name=spec.name, storage=storage, load_if_exists=True,
                                        directions=directions, sampler=make_sampler(spec, seed),
                                        pruner=make_pruner(spec))
        # A resumed study gets a sampler seeded past what already ran: a seeded sampler started anew
        # would re-propose the very configurations of the first night (its random start-up phase).
        done = len(study.get_trials(deepcopy=False))
        if done:
            study.sampler = make_sampler(spec, seed + done)
        stored = study.user_attrs.get(SPEC_ATTR)
        current = spec_record(spec, corpus)
        if stored is None:
            study.set_user_attr(SPEC_ATTR, current)
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
    return study


def retried_numbers(trials: list) -> set[int]:
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def planned_count(study: optuna.Study) -> tuple[int, int]:
    """(trials that count toward the plan, trials waiting to run): a failed trial that was re-queued counts once."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    counted = [t for t in trials if not (t.state == TrialState.FAIL and t.number in retried)]
    return len(counted), sum(t.state == TrialState.WAITING for t in trials)


def run_worker(spec: StudySpec, options: SweepOptions) -> int:
    """One worker process: trials until the plan is met, the time is up, or failures pile up."""
    faults = parse_faults()
    if os.environ.get("HARNESS_CPU_THREADS", "").isdigit():  # this worker's share, set by run_sweep
        torch.set_num_threads(max(1, int(os.environ["HARNESS_CPU_THREADS"])))
    device = resolve_device(options.device if options.device != "auto" else spec.device)
    corpus = load_corpus(spec.corpus, spec.corpus_options)
    corpus.check_fits(largest(spec, "seq_len"), largest(spec, "batch_size"))
    if spec.second_objective == "energy_j" and not Telemetry(device).gpu:
        raise HarnessError(f"second_objective energy_j needs NVML's energy counter, and {device} has none; use "
                           f"second_objective = \"device_seconds\" on this machine")
    index = options.worker_index or 0
    check_precision(spec, device, len(corpus.vocab))
    study = open_study(spec, options, seed=spec.seed + 1000 * index, corpus=corpus)
    planned = options.trials or spec.trials
    timeout = options.timeout or spec.timeout
    deadline = time.monotonic() + timeout if timeout else None
    tag = f"[worker {index}] " if options.worker_index is not None else ""
    line = ProgressLine(plain=options.plain_progress, prefix=tag)
    runner = TrialRunner(spec, options, corpus, device, line, faults)
    runner.deadline = deadline
    line.message(f"{tag}study {spec.name}: {planned or 'unlimited'} trials, {spec.budget} each, on {device}, "
                 f"results in {options.results_dir}")
    for note in spec.notes:
        line.message(f"{tag}note: {note}")
    consecutive_failures = 0
    trial: Trial | None = None  # asked and not yet told: the one to mark if the night ends now
    try:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                line.message(f"{tag}study time limit reached; stopping (resume with the same command)")
                break
            with trial_slot_lock(study._storage, options.results_dir, spec.name):
                fail_stale_trials(study)
                requeue_lost_retries(study)
                counted, waiting = planned_count(study)
                if planned is not None and counted >= planned and waiting == 0:
                    break
                claim(study, True)
                trial = study.ask()
                beat(study, trial)  # from the first moment, so a crash right now is seen as one
                claim(study, False)
            runner.study_text = status_text(study, planned)
            with get_heartbeat_thread(trial._trial_id, study._storage):
                state, values = runner.run(trial)
            with interrupts.deferred():
                study.tell(trial, values=values, state=state)
                finished, trial = trial, None
            line.message(f"{tag}{describe_trial(study, finished.number)}")
            consecutive_failures = consecutive_failures + 1 if state == TrialState.FAIL else 0
            if consecutive_failures >= spec.max_consecutive_failures:
                line.close()
                line.message(f"{tag}stopping: {consecutive_failures} trials failed in a row; the last said: "
                             f"{finished.user_attrs.get('reason')}. See harness status for all reasons.")
                return 3
    except KeyboardInterrupt as e:
        interrupts.stopping()  # a second Ctrl-C must not cut the clean-up short
        line.close()
        how = "SIGTERM" if "SIGTERM" in str(e) else "SIGHUP" if "SIGHUP" in str(e) else "Ctrl-C"
        if trial is None:
            line.message(f"{tag}interrupted ({how}) between trials; nothing was running. Run the same command "
                         f"to resume.")
            return 130
        requeued = mark_interrupted(study, trial, how)
        line.message(f"{tag}interrupted ({how}): trial {trial.number} marked failed and re-queued as trial "
                     f"{requeued}; finished trials are kept. Run the same command to resume.")
        return 130
    except DiskFullError:
        interrupts.stopping()
        line.close()
        if trial is not None:
            with contextlib.suppress(Exception):  # the disk may be too full even for this; then resume finds it stale
                mark_interrupted(study, trial, "disk full")
        raise
    line.close()
    return 0


def check_precision(spec: StudySpec, device: torch.device, vocab_size: int) -> None:
    """Refuse a precision the device cannot honour before the first trial, not as a failure of every trial."""
    from harness.models import build_model
    from harness.precision import resolve

    p = spec.space.get("model")
    families = p.choices if p is not None and p.kind == "categorical" else [spec.fixed.get("model", TrainConfig().model)]
    for family in families:
        resolve(spec.precision, build_model(family, vocab_size, 8, 8, 1, 0.0).to(device), device)


def beat(study: optuna.Study, trial: Trial) -> None:
    storage = study._storage
    if isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval():
        storage.record_heartbeat(trial._trial_id)


def claim(study: optuna.Study, claiming: bool) -> None:
    storage = study._storage
    if isinstance(storage, HeartbeatJournalStorage):
        storage.claim() if claiming else storage.unclaim()


def requeue_lost_retries(study: optuna.Study) -> None:
    """Re-queue failed trials whose retry was never recorded (the record torn off, or the worker killed first).

    Our own failures always carry a reason; a FAIL without one is a worker that died. Both it and
    an interrupted trial are owed a retry; `RetryTrial` decides whether a crash has had its share.
    """
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    for t in trials:
        if t.state != TrialState.FAIL or t.number in retried:
            continue
        reason = t.user_attrs.get("reason")
        if reason is None or reason.startswith("interrupted"):
            RetryTrial()(study, t, interrupted=reason is not None)


def mark_interrupted(study: optuna.Study, trial: Trial, how: str) -> int | None:
    """FAIL the running trial with the reason, and queue a clean retry of its configuration; the retry's number."""
    with interrupts.deferred():
        trial.set_user_attr("reason", f"interrupted ({how}); re-queued to run again on resume")
        study.tell(trial, state=TrialState.FAIL)
        before = len(study.get_trials(deepcopy=False))
        RetryTrial()(study, study._storage.get_trial(trial._trial_id), interrupted=True)
        return before


def largest(spec: StudySpec, name: str) -> int:
    """The largest value a trial may use, so a too-short corpus is refused before the first trial."""
    p = spec.space.get(name)
    if p is None:
        return int(spec.fixed.get(name, getattr(TrainConfig(), name)))
    return int(max(p.choices) if p.kind == "categorical" else p.high)


def status_text(study: optuna.Study, planned: int | None) -> str:
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    done = sum(t.state.is_finished() and not (t.state == TrialState.FAIL and t.number in retried) for t in trials)
    best = best_trial(study)
    text = f"{done}/{planned or '?'} done"
    if best is not None:
        text += f" | best {best.values[0]:.4f} bpc (#{best.number})"
    return text


def best_trial(study: optuna.Study):
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    return min(complete, key=lambda t: t.values[0]) if complete else None


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


def run_sweep(spec: StudySpec, options: SweepOptions, argv: list[str]) -> int:
    """One worker in this process, or K worker processes sharing the storage (each pinned to a GPU if several)."""
    if options.workers <= 1:
        return run_worker(spec, options)
    corpus = load_corpus(spec.corpus, spec.corpus_options)  # refuse a bad corpus before any worker starts
    corpus.check_fits(largest(spec, "seq_len"), largest(spec, "batch_size"))
    open_study(spec, options, corpus=corpus)  # create (or check) it once, so workers do not race to
    del corpus
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpu_ids = visible.split(",") if visible else [str(i) for i in range(gpus)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # Each worker gets its share of the CPU threads: K processes each keeping all of torch's threads
    # oversubscribe the cores (measured: 2 workers on 2 cores ran at half the throughput of one).
    threads = max(1, cores // options.workers)
    on_cpu = (options.device if options.device != "auto" else spec.device) == "cpu" or not gpu_ids
    sharing = "CPU" if on_cpu else "GPU" if len(gpu_ids) < options.workers else None
    if sharing is not None:
        what = (f"{options.workers} workers share {cores} CPU cores ({threads} torch threads each); on a CPU "
                f"several workers are not faster than one, and each trial trains fewer characters per second"
                if sharing == "CPU" else
                f"{options.workers} workers share {len(gpu_ids)} GPU(s); without CUDA MPS their kernels take "
                f"turns, so expect little gain over one worker for large models")
        print(f"harness: note: {what} (README: Workers)", file=sys.stderr)
    procs = []
    for i in range(options.workers):
        env = dict(os.environ, HARNESS_WORKER_INDEX=str(i), HARNESS_CPU_THREADS=str(threads))
        if len(gpu_ids) > 1:
            env["CUDA_VISIBLE_DEVICES"] = gpu_ids[i % len(gpu_ids)]
        cmd = [sys.executable, "-m", "harness.cli", *argv, "--workers", "1", "--worker-index", str(i),
               "--plain-progress"]
        procs.append(subprocess.Popen(cmd, env=env))
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        # Ctrl-C on a terminal reaches the workers too; SIGTERM or SIGHUP may reach this process
        # alone. Pass the stop on to every worker still running (a worker already stopping ignores
        # it) and wait for each to mark its trial.
        interrupts.stopping()
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        return 130
    return max(codes)


def trial_reason(t, retried_as: dict[int, int]) -> str | None:
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
    return {
        "study": study.study_name,
        "counts": counts,
        "best": None if best is None else {"number": best.number, "params": best.params, "bpc": best.values[0],
                                           "device_seconds": best.user_attrs.get("device_seconds")},
        "trials": [{"number": t.number, "state": t.state.name,
                    "bpc": t.values[0] if t.values else t.user_attrs.get("val_bpc"),
                    "reason": trial_reason(t, retried_as), "params": dict(t.params),
                    "retry_of": t.user_attrs.get("retry_of"), "retried_as": retried_as.get(t.number),
                    "device_seconds": t.user_attrs.get("device_seconds")} for t in trials],
    }
