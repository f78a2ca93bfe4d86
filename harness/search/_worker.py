"""One worker: trials until the plan is met, the time is up, or failures pile up; and how a worker process starts.

Shape of the loop: repeat {under the trial-slot lock, fail stale trials, check the plan and ask
for a trial; train it under Optuna's heartbeat (harness.search._trial); tell the result}. A stop
signal marks the running trial FAIL ("interrupted") and re-queues it; a full disk does the same
if it still can. A worker process (`worker_main`) is started from the spec record the study
stores, never from command-line flags. What it checks and measures before the first trial is in
harness.search._preflight.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import optuna
import torch
from optuna.storages import fail_stale_trials
from optuna.trial import Trial, TrialState

from harness.common import DiskFullError, HarnessError, ProgressLine, interrupts
from harness.data import load_corpus
from harness.measure import Telemetry, resolve_device
from harness.search._journal import HeartbeatJournalStorage
from harness.search._latency import LatencyLog
from harness.search._options import SweepOptions, SweepOutcome
from harness.search._optuna import BaseHeartbeat, get_heartbeat_thread, quiet, reseed, storage_of, trial_id
from harness.search._pbt import plan_generation
from harness.search._preflight import check_energy, check_precision, measure_ceilings
from harness.search._spec import StudySpec
from harness.search._status import describe_trial, planned_count, retried_numbers, status_text
from harness.search._storage import RetryTrial, heartbeat_settings, trial_slot_lock
from harness.search._study import open_study
from harness.search._trial import CheckpointNotShared, TrialRunner, load_trial_hook


def run_worker(spec: StudySpec, options: SweepOptions) -> SweepOutcome:
    """Prepare (device, corpus, study) and run the trial loop; how it stopped, never an exception for a stop."""
    hook = load_trial_hook()
    device = resolve_device(options.device_for(spec.device))
    corpus = load_corpus(spec.corpus, spec.corpus_options)
    corpus.check_fits(spec.largest("seq_len"), spec.largest("batch_size"))
    if spec.second_objective == "energy_j":
        check_energy(Telemetry(device), device)
    index = options.worker_index or 0
    modes = check_precision(spec, device, len(corpus.vocab))
    study = open_study(spec, options, seed=spec.seed + 1000 * index, corpus=corpus)
    measure_ceilings(study, spec, options, device, modes)
    tag = f"[worker {index}] " if options.worker_index is not None else ""
    line = ProgressLine(plain=options.plain_progress, prefix=tag)
    runner = TrialRunner(spec, options.results_dir, corpus, device, line, hook)
    planned = options.trials or spec.trials
    timeout = options.timeout or spec.timeout
    runner.deadline = time.monotonic() + timeout if timeout else None
    line.message(f"{tag}study {spec.name}: {planned or 'unlimited'} trials, {spec.budget.words} each, on {device}, "
                 f"results in {options.results_dir}")
    for note in spec.notes:
        line.message(f"{tag}note: {note}")
    with quiet():
        stop, message = _loop(study, spec, options, runner, planned, line, tag)
    return SweepOutcome(spec.name, options.results_dir, options.storage_url, stop, message)


def _loop(study: optuna.Study, spec: StudySpec, options: SweepOptions, runner: TrialRunner, planned: int | None,
          line: ProgressLine, tag: str) -> tuple[str, str]:
    """The trial loop; (stop reason, what was said). Reads top to bottom: lock, ask, beat, run, tell."""
    consecutive_failures = 0
    latency = LatencyLog()  # off unless HARNESS_LATENCY_LOG names a folder
    ending = Ending()  # asked and not yet told (ending.asked): the trial to mark if the night ends now
    trial: Trial | None = None
    try:
        while True:
            if runner.deadline is not None and time.monotonic() >= runner.deadline:
                return "time_limit", _say(line, f"{tag}study time limit reached; stopping (resume with the same "
                                                f"command)")
            trial, done = _next_trial(study, spec, options, planned, latency, ending)
            if done:
                line.close()
                return "planned", ""
            if trial is None:  # the plan is reached, and other workers' trials are still running
                if not ending.said:
                    ending.said = _say(line, f"{tag}{ending.describe()}")
                time.sleep(ending.poll)
                continue
            runner.study_text = status_text(study, planned)
            with get_heartbeat_thread(trial_id(trial), storage_of(study)):
                state, values = runner.run(trial)
            with interrupts.deferred(), latency.timed("tell", trial.number):
                study.tell(trial, values=values, state=state)
                finished, trial, ending.asked = trial, None, None
            line.message(f"{tag}{describe_trial(study, finished.number)}")
            consecutive_failures = consecutive_failures + 1 if state == TrialState.FAIL else 0
            if consecutive_failures >= spec.max_consecutive_failures:
                line.close()
                return "failures", _say(line, f"{tag}stopping: {consecutive_failures} trials failed in a row; the "
                                              f"last said: {finished.user_attrs.get('reason')}. See harness status "
                                              f"for all reasons.")
    except KeyboardInterrupt as e:
        interrupts.stopping()  # a second Ctrl-C must not cut the clean-up short
        line.close()
        trial = ending.asked
        how = "SIGTERM" if "SIGTERM" in str(e) else "SIGHUP" if "SIGHUP" in str(e) else "Ctrl-C"
        if trial is None:
            return "interrupted", _say(line, f"{tag}interrupted ({how}) between trials; nothing was running. Run "
                                             f"the same command to resume.")
        requeued = mark_interrupted(study, trial, how)
        return "interrupted", _say(line, f"{tag}interrupted ({how}): trial {trial.number} marked failed and "
                                         f"re-queued as trial {requeued}; finished trials are kept. Run the same "
                                         f"command to resume.")
    except CheckpointNotShared:
        line.close()
        if ending.asked is not None:
            mark_interrupted(study, ending.asked, "its parent's checkpoint is not on this machine")
        raise
    except DiskFullError:
        interrupts.stopping()
        line.close()
        trial = ending.asked
        if trial is not None:
            with contextlib.suppress(Exception):  # the disk may be too full even for this; then resume finds it stale
                mark_interrupted(study, trial, "disk full")
        raise


class Ending:
    """How a worker's loop ends: the trial it has asked and not yet told (`asked`: the one an interrupt marks),
    and, when the plan is reached while other workers' trials still run, a wait (up to the heartbeat's grace and
    two beats) before leaving, so that a trial whose worker died is seen stale, failed and retried here instead
    of staying RUNNING until someone resumes the study."""

    def __init__(self) -> None:
        interval, grace = heartbeat_settings()
        self.patience, self.poll = grace + 2 * interval, min(2.0, float(interval))
        self.until: float | None = None
        self.running = 0
        self.said = ""
        self.asked: Trial | None = None  # the loop's trial from the moment it is asked until it is told
        self.note = ""  # why the worker waits, where that is not the plan being reached (pbt's generations)

    def wait(self, running: int) -> bool:
        """Whether to wait for `running` trials of other workers (False: leave now)."""
        self.running = running
        if running == 0:
            return False
        if self.until is None:
            self.until = time.monotonic() + self.patience
        return time.monotonic() < self.until

    def describe(self) -> str:
        if self.note:
            return self.note
        return (f"the plan is reached; waiting for {self.running} trial(s) still running in other workers (up to "
                f"{self.patience:g} s: a trial whose worker died goes stale by then and is retried here)")


def _next_trial(study: optuna.Study, spec: StudySpec, options: SweepOptions, planned: int | None,
                latency: LatencyLog, ending: Ending) -> tuple[Trial | None, bool]:
    """Under the trial-slot lock: (the next trial, False), or (None, True) when the plan is complete, or
    (None, False) to wait for other workers' running trials (`Ending`)."""
    with trial_slot_lock(storage_of(study), options.results_dir, spec.name):
        fail_stale_trials(study)
        requeue_lost_retries(study)
        counted, waiting = planned_count(study)
        if planned is not None and counted >= planned and waiting == 0:
            running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
            return None, not ending.wait(running)
        if waiting == 0 and spec.sampler == "pbt":
            # the next generation starts when the last has finished everywhere: until then, wait
            if plan_generation(study, spec) != "enqueued":
                ending.note = "pbt: the next generation starts when every segment of this one has finished"
                return None, False
        elif waiting == 0:
            enqueue_balanced(study, spec)
        claim(study, True)
        with latency.timed("ask"):
            trial = ending.asked = study.ask()
        # The random draws of this trial follow from its number, unique across every process on the
        # study: workers started alike (the same study file on each machine) cannot draw alike.
        reseed(study.sampler, spec.seed * 1_000_003 + trial.number)
        with latency.timed("heartbeat", trial.number):
            beat(study, trial)  # from the first moment, so a crash right now is seen as one
        claim(study, False)
    return trial, False


def _say(line: ProgressLine, text: str) -> str:
    line.message(text)
    return text


def worker_main(record: dict, options: dict, threads: int, gpu: str | None, results) -> None:
    """Entry point of a worker process: the spec from its stored record, this worker's share of the machine.

    Runs in a fresh interpreter (multiprocessing's spawn): the GPU is pinned before CUDA starts,
    and the outcome goes back to the parent on `results`; the exit code says the same.
    """
    from harness.search._options import STOP_REASONS

    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    torch.set_num_threads(max(1, threads))
    worker = SweepOptions.from_record(options)
    interrupts.install()
    try:
        outcome = run_worker(StudySpec.from_record(record), worker)
        stop, message = outcome.stop, outcome.message
    except HarnessError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        stop, message = ("disk_full" if isinstance(e, DiskFullError) else "error"), str(e)
    except KeyboardInterrupt:
        stop, message = "interrupted", "interrupted before the first trial"
    results.put((worker.worker_index, stop, message))
    sys.exit(STOP_REASONS[stop])


def enqueue_balanced(study: optuna.Study, spec: StudySpec) -> None:
    """With [space.model] balanced = true, the next trial trains the family with the fewest trials so far (its
    other settings still sampled): a comparison of families gives each the same tuning effort, where a sampler
    left alone would spend the night on whichever family looked better first."""
    p = spec.space.get("model")
    if p is None or not p.balanced or spec.confirm:
        return
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    counts = dict.fromkeys(p.choices, 0)
    for t in trials:
        family = t.params.get("model", (t.user_attrs.get("config") or {}).get("model"))
        if family in counts and not (t.state == TrialState.FAIL and t.number in retried):
            counts[family] += 1
    study.enqueue_trial({"model": min(p.choices, key=lambda f: counts[f])})


def beat(study: optuna.Study, trial: Trial) -> None:
    storage = storage_of(study)
    if isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval():
        storage.record_heartbeat(trial_id(trial))


def claim(study: optuna.Study, claiming: bool) -> None:
    storage = storage_of(study)
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
        RetryTrial()(study, storage_of(study).get_trial(trial_id(trial)), interrupted=True)
        return before


