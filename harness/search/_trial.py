"""One trial: train the configuration Optuna asked for, generate, record, and say how to tell Optuna.

Anything a trial does wrong stays on that trial: out of memory -> PRUNED with the constraint
`fits_in_memory` violated; NaN -> PRUNED with `finite_loss` violated; any other exception -> FAIL
with its reason and a short traceback. A full disk and a stop signal are the night's, not the
trial's: they propagate to the worker loop (harness.search._worker).
"""

from __future__ import annotations

import gc
import importlib
import math
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from optuna.trial import Trial, TrialState

from harness.common import (
    DiskFullError,
    HarnessError,
    ProgressLine,
    disk_full,
    first_line,
    format_seconds,
    write_json_atomic,
)
from harness.data import Corpus
from harness.measure import Reference, RunCost, Telemetry, cost_summary
from harness.models import carries_state
from harness.search._artifacts import this_host
from harness.search._pbt import Segment
from harness.search._spec import StudySpec
from harness.training import (
    Budget,
    Evaluations,
    Observers,
    Start,
    TrainConfig,
    Trainer,
    TrainResult,
    evaluate_checkpoint,
    generate_and_score,
    load_checkpoint,
    run_attrs,
    telemetry_attrs,
)

# "module:function", called as function(trial number, trainer) after a trial's model is built and before it
# trains, in every worker process: how the tests and scripts/drill.py inject an out-of-memory, a NaN or an
# error into a real sweep (tests/faults.py). Nothing in the harness sets it.
TRIAL_HOOK_ENV = "HARNESS_TRIAL_HOOK"
TrialHook = Callable[[int, Trainer], None]


def suggest(trial: Trial, spec: StudySpec) -> dict:
    """The trial's sampled settings by their config names: the family first, then the shared space, then the
    family's own ([space.<family>.<key>], sampled under the Optuna name "<family>.<key>").

    A setting that cannot act on the configuration drawn so far (dropout at one layer, a recurrent
    regularizer in a gpt trial: `TrainConfig.inactive`) is not sampled: Optuna's define-by-run space
    makes it conditional, TPE learns it only from trials where it acted, and the trial records it in
    its "inactive" attribute for the report. A setting whose activity hangs on one not drawn yet
    (`layers` listed after `dropout`) waits until the end of the draw; in the file order the
    shipped studies use (layers first), the order of draws is what it always was.
    """
    params: dict = {}
    inactive: list[str] = []
    order = sorted(spec.space.values(), key=lambda p: (p.name != "model", p.family is not None))
    deciding = {"model", "layers"}
    waiting = list(order)
    while waiting:
        p = waiting.pop(0)
        if p.family is not None and p.family != params.get("model", spec.fixed.get("model")):
            continue
        undecided = [q for q in waiting if q.name in deciding and q.family in (None, params.get("model"))]
        if p.name not in deciding and undecided:
            waiting.insert(waiting.index(undecided[-1]) + 1, p)
            continue
        if p.name not in deciding and p.name in _inactive_so_far(spec, params):
            inactive.append(p.optuna_name)
            continue
        name = p.optuna_name
        if p.kind == "categorical":
            params[p.name] = trial.suggest_categorical(name, p.choices)
        elif p.kind == "int":
            params[p.name] = trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            params[p.name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
    if inactive:
        trial.set_user_attr("inactive", sorted(inactive))
    return params


def _inactive_so_far(spec: StudySpec, params: dict) -> tuple[str, ...]:
    values = spec.values_for(params)
    try:
        return TrainConfig.from_dict(values).inactive()
    except HarnessError:  # an unknown family: the sweep's own check reports it
        return ()


class CheckpointNotShared(HarnessError):
    """A PBT segment's parent checkpoint is not on this machine: the worker stops (the segment is re-queued),
    since every segment it would take could fail the same way."""


def load_trial_hook() -> TrialHook | None:
    """The hook HARNESS_TRIAL_HOOK names, imported once per worker; None where it is unset."""
    target = os.environ.get(TRIAL_HOOK_ENV, "")
    if not target:
        return None
    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise HarnessError(f"{TRIAL_HOOK_ENV}={target!r}: cannot load it ({type(e).__name__}: {e}); write "
                           f"module:function for a module on the Python path") from None


@dataclass
class TrialRun:
    """What a trial's training produced, typed until it is stored (`outcome` writes the user attributes)."""

    result: TrainResult
    cost: RunCost  # the telemetry joined with the run's figures (harness.measure.cost_summary)
    generation: dict | None  # samples and text metrics per temperature, where generation ran


class TrialRunner:
    """Runs one trial: train, generate, record. Holds what every trial shares (corpus, reference text)."""

    def __init__(self, spec: StudySpec, results_dir: Path, corpus: Corpus, device: torch.device,
                 line: ProgressLine, hook: TrialHook | None = None):
        self.spec, self.results_dir, self.corpus, self.device, self.line = spec, results_dir, corpus, device, line
        self.reference = Reference(corpus.train_text) if spec.generate.enabled else None
        self.hook = hook
        self.study_text = ""  # done/best, computed once per trial
        self.deadline: float | None = None  # the study's, so its "left" figure stays live
        self.timings: dict[str, float] = {}  # where the current trial's wall time went (user attr "timings")

    def config_for(self, params: dict, trial: Trial | None = None) -> TrainConfig:
        values = self.spec.values_for(params)
        if trial is not None and "seed" in trial.user_attrs:  # a confirmation run: a fresh seed per run
            values["seed"] = trial.user_attrs["seed"]
        return TrainConfig.from_dict(values).validate()

    def run(self, trial: Trial) -> tuple[TrialState, list[float] | None]:
        """Train the trial; returns how to tell Optuna. Raises only KeyboardInterrupt and DiskFullError."""
        spec = self.spec
        started = time.perf_counter()
        self.timings = {}
        params = suggest(trial, spec)
        results_dir = self.results_dir.resolve()  # absolute: read from other machines, other working directories
        trial_dir = results_dir / spec.trials_subdir / f"{trial.number:04d}"
        trial.set_user_attr("reason", None)
        trial.set_user_attr("host", this_host())
        trial.set_user_attr("results_dir", str(results_dir))
        trial.set_user_attr("worker", {"host": this_host(), "pid": os.getpid(),
                                       "cpu_threads": torch.get_num_threads()})
        trial.set_user_attr("trial_dir", str(trial_dir))
        mem_before = torch.cuda.memory_allocated(self.device) if self.device.type == "cuda" else None
        try:
            config = self.config_for(params, trial)
            trial.set_user_attr("config", config.to_dict())
            run = self.train(trial, config, trial_dir)
        except torch.cuda.OutOfMemoryError as e:
            trial.set_user_attr("reason", f"out of memory: {first_line(e, empty='CUDA out of memory')}")
            trial.set_constraint("fits_in_memory", 1.0)
            state, values = TrialState.PRUNED, None
        except (KeyboardInterrupt, DiskFullError, CheckpointNotShared):
            raise
        except Exception as e:
            if disk_full(e):  # a full disk is the night's problem, not this configuration's
                raise DiskFullError(getattr(e, "filename", None) or trial_dir, e) from None
            trial.set_user_attr("reason", f"{type(e).__name__}: {first_line(e, empty='')}")
            trial.set_user_attr("traceback", "".join(traceback.format_exc().splitlines(keepends=True)[-15:]))
            state, values = TrialState.FAIL, None
        else:
            recording = time.perf_counter()
            state, values = self.outcome(trial, run)
            self.timings["record"] += time.perf_counter() - recording
            self.timings["total"] = time.perf_counter() - started
            trial.set_user_attr("timings", self.timings)
        finally:
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
                trial.set_user_attr("mem_after_minus_before_bytes",
                                    torch.cuda.memory_allocated(self.device) - (mem_before or 0))
        return state, values

    def train(self, trial: Trial, config: TrainConfig, trial_dir: Path) -> TrialRun:
        spec = self.spec
        single = not spec.multi_objective

        def on_progress(p) -> None:
            self.line.update(p.fraction, f"trial {trial.number} | step {p.step} | loss {p.loss:.3f} | "
                                         f"{format_seconds(p.eta_seconds)} left in trial | {self.status()}")

        segment = Segment.of(trial)
        budget, start = self.start_of(trial, segment)
        lineage = (segment.lineage_device_seconds, segment.lineage_train_chars) if segment else (0.0, 0)

        def on_eval(point) -> bool:
            shown = point.to_dict()
            shown["device_seconds"] += lineage[0]  # a model's curve is charged its whole lineage
            shown["chars"] += lineage[1]
            trial.set_user_attr("curve", trial.user_attrs.get("curve", []) + [shown])
            if not single:
                return False  # Optuna cannot prune multi-objective studies
            trial.report(point.bpc, step=spec.pruner_step(point.index))
            # never prune at the last evaluation: the trial has already paid for it
            return point.index < spec.evals and trial.should_prune()

        clock = time.perf_counter()
        with Telemetry(self.device) as telemetry:
            trainer = Trainer(config, self.corpus, budget, self.device, out_dir=trial_dir, precision=spec.precision,
                              evaluations=Evaluations(spec.evals, spec.eval_spacing, spec.patience),
                              observers=Observers(on_eval=on_eval, on_progress=on_progress, telemetry=telemetry),
                              start=start)
            if self.hook is not None:
                self.hook(trial.number, trainer)
            setup = time.perf_counter() - clock
            result = trainer.run()
            del trainer
            clock = time.perf_counter()
            generated = None
            if result.checkpoint and spec.generate.enabled and result.status != "diverged":
                with telemetry.window("generation"):
                    generated = self.generate(result.checkpoint)
            generation = time.perf_counter() - clock
        clock = time.perf_counter()
        cost = replace(cost_summary(telemetry, result), samples_csv=str(telemetry.save_csv(trial_dir / "telemetry.csv")))
        # Where a trial's wall time goes (scripts/bench.py, "overhead"): training steps are the product,
        # everything else is what the harness costs. "loop" is the host's share between device syncs.
        r = result
        self.timings.update(
            setup=setup, warmup=r.warmup_seconds, train=r.train_wall_seconds, eval=r.eval_wall_seconds,
            checkpoint=r.checkpoint_seconds, generation=generation,
            loop=max(0.0, r.wall_seconds - r.warmup_seconds - r.train_wall_seconds - r.eval_wall_seconds
                     - r.checkpoint_seconds),
        )
        write_json_atomic(trial_dir / "result.json",
                          {**result.summary(), **({"generation": generated} if generated else {}),
                           "telemetry": cost.summary()})
        self.timings["record"] = time.perf_counter() - clock
        return TrialRun(result, cost, generated)

    def start_of(self, trial: Trial, segment: Segment | None) -> tuple[Budget, Start | None]:
        """A PBT segment trains its share of the member's budget from its parent's end; a confirmation of a
        PBT winner replays the winner's schedule from scratch; any other trial starts fresh."""
        spec = self.spec
        if segment is not None:
            if segment.checkpoint is not None and not Path(segment.checkpoint).is_file():
                raise CheckpointNotShared(
                    f"PBT segment {trial.number} continues trial {segment.parent}, whose checkpoint "
                    f"{segment.checkpoint} this machine cannot read; a PBT study on several machines needs its "
                    f"results directory on a filesystem every worker reads (give each worker that --results)")
            return (Budget(spec.budget.kind, spec.budget.amount * (segment.end - segment.start)),
                    Start(checkpoint=segment.checkpoint, window=(segment.start, segment.end), keep_optimizer=True))
        if trial.user_attrs.get("schedule"):
            return spec.budget, Start(phases=[(float(a), dict(r)) for a, r in trial.user_attrs["schedule"]])
        return spec.budget, None

    def test_bpc(self, trial: Trial, checkpoint: str) -> float:
        """The confirmation figure on the test split; the dynamic one beside it where the family carries state
        (recorded, never the objective)."""
        ckpt = load_checkpoint(checkpoint, self.device)
        result = evaluate_checkpoint(ckpt, self.corpus, "test", dynamic={} if carries_state(ckpt.model.family) else None)
        for key in ("bpc", "ppl", "loss", "chars"):
            trial.set_user_attr(f"test_{key}", result[key])
        trial.set_user_attr("test_dynamic_bpc", result.get("dynamic_bpc"))
        return result["bpc"]

    def status(self) -> str:
        if self.deadline is None:
            return self.study_text
        return f"{self.study_text} | study {format_seconds(max(0.0, self.deadline - time.monotonic()))} left"

    def generate(self, checkpoint: str) -> dict:
        g = self.spec.generate
        ckpt = load_checkpoint(checkpoint, self.device)
        prompt = g.prompt.lower() if self.spec.corpus_options.lowercase else g.prompt
        return generate_and_score(ckpt.model, ckpt.vocab, prompt, g.length, g.temperatures, g.samples,
                                  seed=self.spec.seed, reference=self.reference, unknown="drop")

    def outcome(self, trial: Trial, run: TrialRun) -> tuple[TrialState, list[float] | None]:
        r, t = run.result, run.cost
        for key, value in run_attrs(r.summary()).items():
            trial.set_user_attr(key, value)
        if run.generation is not None:
            trial.set_user_attr("generation", run.generation)
        for key, value in telemetry_attrs(t.summary()).items():
            trial.set_user_attr(key, value)
        segment = Segment.of(trial)
        if segment is not None:  # the model is charged its lineage; the sweep, this segment
            trial.set_user_attr("segment_device_seconds", r.device_seconds)
            trial.set_user_attr("segment_train_chars", r.train_chars)
            trial.set_user_attr("device_seconds", segment.lineage_device_seconds + r.device_seconds)
            trial.set_user_attr("train_chars", segment.lineage_train_chars + r.train_chars)
        if r.status == "diverged":
            trial.set_user_attr("reason", f"diverged: {r.reason}")
            trial.set_constraint("finite_loss", 1.0)
            return TrialState.PRUNED, None
        if r.status == "pruned":
            trial.set_user_attr("reason", f"pruned by {self.spec.pruner} at evaluation {len(r.curve)}")
            return TrialState.PRUNED, None
        values = [r.best.bpc]
        if self.spec.confirm:  # judged on the test split, which no selection ever looked at
            values = [self.test_bpc(trial, r.checkpoint)]
        if self.spec.second_objective == "device_seconds":
            values.append(r.device_seconds)
        elif self.spec.second_objective == "energy_j":
            values.append(t.energy_j if t.energy_j is not None else math.inf)
        return TrialState.COMPLETE, values
