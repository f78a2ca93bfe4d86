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
import gc
import json
import math
import os
import signal
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import Trial, TrialState

from harness.config import TrainConfig
from harness.corpus import Corpus, load_corpus
from harness.device import resolve_device
from harness.errors import HarnessError
from harness.metrics import Reference
from harness.progress import ProgressLine, format_param, format_seconds
from harness.storage import open_storage, trial_slot_lock
from harness.studyfile import StudySpec, grid_values
from harness.telemetry import Telemetry, cost_summary
from harness.train import Trainer

# We drive Optuna's heartbeat ourselves (ask/tell, not Study.optimize) and use its retry callback.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")

FAULTS_ENV = "HARNESS_INJECT_FAULTS"  # e.g. "oom@1,nan@3,error@4": fault injection for tests and drills
SPEC_ATTR = "harness:spec"


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
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=max(3, min(10, trials // 3)))
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


def open_study(spec: StudySpec, options: SweepOptions, seed: int = 0, create: bool = True) -> optuna.Study:
    storage = open_storage(options.results_dir, options.storage_url)
    directions = ["minimize", "minimize"] if spec.multi_objective else ["minimize"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not create:
        try:
            return optuna.load_study(study_name=spec.name, storage=storage)
        except KeyError:
            raise HarnessError(f"no study named {spec.name!r} in {options.storage_url or options.results_dir}; "
                               f"run harness sweep first") from None
    study = optuna.create_study(study_name=spec.name, storage=storage, load_if_exists=True, directions=directions,
                                sampler=make_sampler(spec, seed), pruner=make_pruner(spec))
    stored = study.user_attrs.get(SPEC_ATTR)
    current = spec.to_dict()
    if stored is None:
        study.set_user_attr(SPEC_ATTR, current)
    elif stored.get("space") != current["space"] or stored.get("second_objective") != current["second_objective"]:
        raise HarnessError(
            f"study {spec.name!r} in {options.storage_url or options.results_dir} was started with another search "
            f"space or objective; its trials would not compare. Give the study a new name or use --results DIR"
        )
    return study


def suggest(trial: Trial, spec: StudySpec) -> dict:
    params = {}
    for p in spec.space.values():
        if p.kind == "categorical":
            params[p.name] = trial.suggest_categorical(p.name, p.choices)
        elif p.kind == "int":
            params[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            params[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
    return params


def retried_numbers(trials: list) -> set[int]:
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def planned_count(study: optuna.Study) -> tuple[int, int]:
    """(trials that count toward the plan, trials waiting to run): a failed trial that was re-queued counts once."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    counted = [t for t in trials if not (t.state == TrialState.FAIL and t.number in retried)]
    return len(counted), sum(t.state == TrialState.WAITING for t in trials)


def parse_faults() -> dict[int, str]:
    """Trial number -> fault ("oom", "nan" or "error") from HARNESS_INJECT_FAULTS, for drills and tests."""
    faults = {}
    for item in filter(None, os.environ.get(FAULTS_ENV, "").split(",")):
        kind, _, number = item.partition("@")
        if kind.strip() not in ("oom", "nan", "error") or not number.strip().isdigit():
            raise HarnessError(f"{FAULTS_ENV}={os.environ[FAULTS_ENV]!r}: write e.g. oom@1,nan@3,error@4")
        faults[int(number)] = kind.strip()
    return faults


class TrialRunner:
    """Runs one trial: train, generate, record. Holds what every trial shares (corpus, reference text)."""

    def __init__(self, spec: StudySpec, options: SweepOptions, corpus: Corpus, device: torch.device,
                 line: ProgressLine, faults: dict[int, str]):
        self.spec, self.options, self.corpus, self.device, self.line = spec, options, corpus, device, line
        self.reference = Reference(corpus.train_text) if spec.generate.enabled else None
        self.faults = faults
        self.status_text = ""

    def config_for(self, params: dict) -> TrainConfig:
        return TrainConfig.from_dict({**self.spec.fixed, **params}).validate()

    def run(self, trial: Trial) -> tuple[TrialState, list[float] | None]:
        """Train the trial; returns how to tell Optuna. Raises only KeyboardInterrupt."""
        spec = self.spec
        params = suggest(trial, spec)
        trial_dir = self.options.results_dir / "trials" / f"{trial.number:04d}"
        trial.set_user_attr("reason", None)
        trial.set_user_attr("trial_dir", str(trial_dir))
        mem_before = torch.cuda.memory_allocated(self.device) if self.device.type == "cuda" else None
        try:
            config = self.config_for(params)
            trial.set_user_attr("config", config.to_dict())
            summary = self.train(trial, config, trial_dir)
        except torch.cuda.OutOfMemoryError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else "CUDA out of memory"
            trial.set_user_attr("reason", f"out of memory: {first[:300]}")
            trial.set_constraint("fits_in_memory", 1.0)
            state, values = TrialState.PRUNED, None
        except KeyboardInterrupt:
            raise
        except Exception as e:
            trial.set_user_attr("reason", f"{type(e).__name__}: {str(e)[:300]}")
            trial.set_user_attr("traceback", "".join(traceback.format_exc().splitlines(keepends=True)[-15:]))
            state, values = TrialState.FAIL, None
        else:
            state, values = self.outcome(trial, summary)
        finally:
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
                trial.set_user_attr("mem_after_minus_before_bytes",
                                    torch.cuda.memory_allocated(self.device) - (mem_before or 0))
        return state, values

    def train(self, trial: Trial, config: TrainConfig, trial_dir: Path) -> dict:
        spec = self.spec
        fault = self.faults.get(trial.number)
        single = not spec.multi_objective

        def on_eval(point) -> bool:
            trial.set_user_attr("curve", trial.user_attrs.get("curve", []) + [point.to_dict()])
            if not single:
                return False  # Optuna cannot prune multi-objective studies
            trial.report(point.bpc, step=point.index)
            # never prune at the last evaluation: the trial has already paid for it
            return point.index < spec.evals and trial.should_prune()

        def on_progress(p) -> None:
            self.line.update(p.fraction, f"trial {trial.number} | step {p.step} | loss {p.loss:.3f} | "
                                         f"{format_seconds(p.eta_seconds)} left in trial | {self.status_text}")

        with Telemetry(self.device) as telemetry:
            trainer = Trainer(config, self.corpus, spec.budget, self.device, out_dir=trial_dir, evals=spec.evals,
                              on_eval=on_eval, on_progress=on_progress, telemetry=telemetry)
            if fault == "oom":
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by HARNESS_INJECT_FAULTS)")
            if fault == "error":
                raise RuntimeError("injected failure (HARNESS_INJECT_FAULTS)")
            if fault == "nan":
                with torch.no_grad():
                    next(trainer.model.parameters()).fill_(float("nan"))
            result = trainer.run()
            summary = result.summary()
            del trainer, result
            if summary["checkpoint"] and spec.generate.enabled and summary["status"] != "diverged":
                with telemetry.window("generation"):
                    summary["generation"] = self.generate(summary["checkpoint"])
        summary["telemetry"] = cost_summary(telemetry, summary)
        summary["telemetry"]["samples_csv"] = str(telemetry.save_csv(trial_dir / "telemetry.csv"))
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def generate(self, checkpoint: str) -> dict:
        from harness.checkpoint import load_checkpoint
        from harness.generate import generate_and_score

        g = self.spec.generate
        ckpt = load_checkpoint(checkpoint, self.device)
        prompt = g.prompt.lower() if self.spec.corpus_options.lowercase else g.prompt
        return generate_and_score(ckpt.model, ckpt.vocab, prompt, g.length, g.temperatures, g.samples,
                                  seed=self.spec.seed, reference=self.reference, unknown="drop")

    def outcome(self, trial: Trial, s: dict) -> tuple[TrialState, list[float] | None]:
        for key in ("val_bpc", "val_ppl", "final_val_bpc", "final_val_ppl", "best_step", "train_chars_per_s",
                    "train_seconds", "eval_seconds", "device_seconds", "wall_seconds", "steps", "train_chars",
                    "params", "vocab_size", "flops_per_char", "achieved_tflops", "peak_mem_bytes", "device", "budget",
                    "checkpoint", "fingerprint", "status"):
            trial.set_user_attr(key, s[key])
        if "generation" in s:
            trial.set_user_attr("generation", s["generation"])
        t = s["telemetry"]
        for key in ("energy_j", "energy_j_integrated", "joules_per_char", "util_mean", "util_p95", "util_source",
                    "power_mean_w", "mfu", "matmul_tflops", "telemetry_device", "telemetry_source", "unsupported",
                    "phases", "samples_csv", "energy_scope"):
            trial.set_user_attr(key, t[key])
        if t["peak_mem_bytes"] is not None:
            trial.set_user_attr("peak_mem_bytes", t["peak_mem_bytes"])
            trial.set_user_attr("peak_mem_source", t["peak_mem_source"])
        if s["status"] == "diverged":
            trial.set_user_attr("reason", f"diverged: {s['reason']}")
            trial.set_constraint("finite_loss", 1.0)
            return TrialState.PRUNED, None
        if s["status"] == "pruned":
            trial.set_user_attr("reason", f"pruned by {self.spec.pruner} at evaluation {len(s['curve'])}")
            return TrialState.PRUNED, None
        values = [s["val_bpc"]]
        if self.spec.second_objective == "device_seconds":
            values.append(s["device_seconds"])
        elif self.spec.second_objective == "energy_j":
            values.append(t["energy_j"] if t["energy_j"] is not None else math.inf)
        return TrialState.COMPLETE, values


def run_worker(spec: StudySpec, options: SweepOptions) -> int:
    """One worker process: trials until the plan is met, the time is up, or failures pile up."""
    faults = parse_faults()
    device = resolve_device(options.device if options.device != "auto" else spec.device)
    corpus = load_corpus(spec.corpus, spec.corpus_options)
    corpus.check_fits(largest(spec, "seq_len"), largest(spec, "batch_size"))
    if spec.second_objective == "energy_j" and not Telemetry(device).gpu:
        raise HarnessError(f"second_objective energy_j needs NVML's energy counter, and {device} has none; use "
                           f"second_objective = \"device_seconds\" on this machine")
    index = options.worker_index or 0
    study = open_study(spec, options, seed=spec.seed + 1000 * index)
    planned = options.trials or spec.trials
    timeout = options.timeout or spec.timeout
    deadline = time.monotonic() + timeout if timeout else None
    tag = f"[worker {index}] " if options.worker_index is not None else ""
    line = ProgressLine(plain=options.plain_progress, prefix=tag)
    runner = TrialRunner(spec, options, corpus, device, line, faults)
    retry = RetryHeartbeatStaleTrialCallback(max_retry=1)
    line.message(f"{tag}study {spec.name}: {planned or 'unlimited'} trials, {spec.budget} each, on {device}, "
                 f"results in {options.results_dir}")
    consecutive_failures = 0
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            line.message(f"{tag}study time limit reached; stopping (resume with the same command)")
            break
        with trial_slot_lock(study._storage, options.results_dir, spec.name):
            fail_stale_trials(study)
            counted, waiting = planned_count(study)
            if planned is not None and counted >= planned and waiting == 0:
                break
            trial = study.ask()
        runner.status_text = status_text(study, planned, deadline)
        try:
            with get_heartbeat_thread(trial._trial_id, study._storage):
                state, values = runner.run(trial)
        except KeyboardInterrupt:
            trial.set_user_attr("reason", "interrupted (Ctrl-C); re-queued to run again on resume")
            study.tell(trial, state=TrialState.FAIL)
            retry(study, study._storage.get_trial(trial._trial_id))
            line.close()
            line.message(f"{tag}interrupted: trial {trial.number} marked failed and re-queued; finished trials "
                         f"are kept. Run the same command to resume.")
            return 130
        study.tell(trial, values=values, state=state)
        line.message(f"{tag}{describe_trial(study, trial.number)}")
        consecutive_failures = consecutive_failures + 1 if state == TrialState.FAIL else 0
        if consecutive_failures >= spec.max_consecutive_failures:
            line.close()
            line.message(f"{tag}stopping: {consecutive_failures} trials failed in a row; the last said: "
                         f"{trial.user_attrs.get('reason')}. See harness status for all reasons.")
            return 3
    line.close()
    return 0


def largest(spec: StudySpec, name: str) -> int:
    """The largest value a trial may use, so a too-short corpus is refused before the first trial."""
    p = spec.space.get(name)
    if p is None:
        return int(spec.fixed.get(name, getattr(TrainConfig(), name)))
    return int(max(p.choices) if p.kind == "categorical" else p.high)


def status_text(study: optuna.Study, planned: int | None, deadline: float | None) -> str:
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    done = sum(t.state.is_finished() and not (t.state == TrialState.FAIL and t.number in retried) for t in trials)
    best = best_trial(study)
    text = f"{done}/{planned or '?'} done"
    if best is not None:
        text += f" | best {best.values[0]:.4f} bpc (#{best.number})"
    if deadline is not None:
        text += f" | study {format_seconds(max(0.0, deadline - time.monotonic()))} left"
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
    return f"{head} | {params}"


def run_sweep(spec: StudySpec, options: SweepOptions, argv: list[str]) -> int:
    """One worker in this process, or K worker processes sharing the storage (each pinned to a GPU if several)."""
    if options.workers <= 1:
        return run_worker(spec, options)
    corpus = load_corpus(spec.corpus, spec.corpus_options)  # refuse a bad corpus before any worker starts
    corpus.check_fits(largest(spec, "seq_len"), largest(spec, "batch_size"))
    del corpus
    open_study(spec, options)  # create it once, so workers do not race to create it
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpu_ids = visible.split(",") if visible else [str(i) for i in range(gpus)]
    procs = []
    for i in range(options.workers):
        env = dict(os.environ, HARNESS_WORKER_INDEX=str(i))
        if len(gpu_ids) > 1:
            env["CUDA_VISIBLE_DEVICES"] = gpu_ids[i % len(gpu_ids)]
        cmd = [sys.executable, "-m", "harness.cli", *argv, "--workers", "1", "--worker-index", str(i),
               "--plain-progress"]
        procs.append(subprocess.Popen(cmd, env=env))
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        # Ctrl-C on a terminal reaches the workers too; give them time to mark their trials, and only
        # signal the ones still running (an interrupt sent to this process alone).
        deadline = time.monotonic() + 10
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        return 130
    return max(codes)


def status_summary(study: optuna.Study) -> dict:
    """What `harness status` prints (and `--json` emits): counts per state, the best trial, every trial."""
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    best = best_trial(study)
    return {
        "study": study.study_name,
        "counts": counts,
        "best": None if best is None else {"number": best.number, "params": best.params, "bpc": best.values[0],
                                           "device_seconds": best.user_attrs.get("device_seconds")},
        "trials": [{"number": t.number, "state": t.state.name,
                    "bpc": t.values[0] if t.values else t.user_attrs.get("val_bpc"),
                    "reason": t.user_attrs.get("reason"), "params": dict(t.params),
                    "device_seconds": t.user_attrs.get("device_seconds")} for t in trials],
    }
