"""The trainer: one config, one budget, one corpus -> a best checkpoint and honest figures.

Read top to bottom: the corpus goes to the device once as one tensor; each epoch cuts it into
`batch_size` contiguous streams (from a random offset, so chunk boundaries move between epochs)
and walks them in `seq_len` chunks with the recurrent state carried across chunks, as pytorch's
word_language_model does. A family that carries no state (gpt) instead gets `batch_size` windows
of `seq_len` characters at random offsets each step, drawn on the device, and AdamW whose weight
decay touches matrices only (nanoGPT's recipe); an epoch is then as many characters as the
streams would have walked. The host reads the device only at sync points (a few times a second,
at evaluations and at the end), where it checks the budget, the loss and NaNs.

What each figure measures is in harness.training._result. Warm-up is not charged: on CUDA,
before the clock starts, the run's own model and optimizer take `WARMUP_STEPS` training steps and
one evaluation pass and are then put back as they were (`warmup_seconds`, see `Trainer.warm_up`),
so cuDNN/cuBLAS handles, lazy kernel loading and allocator growth are not charged to the first
trial of each worker (the CPU has no such penalty, so it skips the warm-up unless asked).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.data import Corpus
from harness.measure import Occupancy, ShareClock, fingerprint, synced_clock, synchronize
from harness.models import CharModel, carries_state, count_params, detach_state
from harness.training._batches import chars_per_epoch, epoch_chunks, make_optimizer, random_windows
from harness.training._checkpoint import save_checkpoint
from harness.training._config import Budget, Evaluations, TrainConfig
from harness.training._continuation import Start, apply_rates, continue_run
from harness.training._evaluation import EVAL_CHUNK, EVAL_STREAMS, context_note, evaluate
from harness.training._precision import resolve_precision
from harness.training._result import EvalPoint, Observers, Progress, TrainResult
from harness.training._warmup import warm_up

SYNC_INTERVAL_S = 0.25
WARMUP_STEPS = 3  # untimed steps before the clock starts, undone afterwards


class Trainer:
    """Holds a run's state so that the loop below stays a loop; `run()` is the whole algorithm."""

    def __init__(self, config: TrainConfig, corpus: Corpus, budget: Budget, device: torch.device, *,
                 out_dir: Path | None = None, evaluations: Evaluations | None = None, precision: str = "auto",
                 observers: Observers | None = None, warmup: bool | None = None, share_device: bool = True,
                 start: Start | None = None):
        self.config = config.validate()
        # Warm-up pays off where first calls are slow (CUDA: handles, lazy kernel loading, allocator
        # growth). On the CPU there is no first-trial penalty to remove (measured: docs/measurements.md),
        # so there it would only cost ~5% of a 12-s trial (scripts/bench.py, "overhead").
        self.warmup = device.type == "cuda" if warmup is None else warmup
        self.occupancy = Occupancy(device) if share_device else None
        self.train_clock, self.eval_clock = ShareClock(self.occupancy), ShareClock(self.occupancy)
        corpus.check_fits(config.seq_len, config.batch_size)
        self.budget, self.device = budget, device
        self.evaluations = evaluations or Evaluations()
        self.eval_at = self.evaluations.at
        self.observers = observers or Observers()
        self.out_dir = Path(out_dir) if out_dir else None
        self.vocab = corpus.vocab
        self.corpus_info = corpus.describe()

        torch.manual_seed(config.seed)
        self.offsets = torch.Generator().manual_seed(config.seed)
        self.carries_state = carries_state(config.model)
        self.windows = torch.Generator(device=device).manual_seed(config.seed)
        self.train_data = corpus.train.to(device)
        self.val_data = corpus.val.to(device)
        self.model = config.build(len(corpus.vocab)).to(device)
        self.optimizer = make_optimizer(self.model, config, self.carries_state, device)
        self.start = start or Start()
        self.phases = sorted(self.start.phases, key=lambda phase: phase[0])  # consumed as the run passes them
        self.peak_lr = config.lr
        if self.start.checkpoint is not None:
            self.continue_from(self.start.checkpoint)
        self.current_lr = config.lr
        self.precision = resolve_precision(precision, self.model, device)
        self.scaler = self.precision.scaler(device)
        self.epoch_chars = chars_per_epoch(len(self.train_data), config.batch_size)
        self.result = TrainResult(
            status="completed", reason=None, config=config.to_dict(), budget=str(budget), device=str(device),
            params=count_params(self.model), vocab_size=len(corpus.vocab), fingerprint=fingerprint(device),
            flops_per_char=config.flops_per_char(len(corpus.vocab)),
            precision=self.precision.to_dict(), eval_context=context_note(self.model),
        )

    def continue_from(self, path: str) -> None:
        continue_run(self.model, self.optimizer, path, self.device)

    def schedule_fraction(self, fraction: float) -> float:
        """Where in its schedule the run is: a segment covering [a, b) of a member's budget is at a + f (b - a)."""
        a, b = self.start.window
        return a + fraction * (b - a)

    def apply_phases(self, fraction: float) -> None:
        """A replayed PBT schedule: the rates the winning lineage had from each point of its budget on."""
        while self.phases and self.phases[0][0] <= fraction + 1e-12:
            _, values = self.phases.pop(0)
            self.peak_lr = apply_rates(self.model, self.optimizer, values, self.peak_lr)
            self.current_lr = None  # set_lr writes the new peak's rate

    def fraction_done(self) -> float:
        r = self.result
        if self.budget.kind == "seconds":
            return r.train_seconds / self.budget.amount
        if self.budget.kind == "tokens":
            return r.train_chars / self.budget.amount
        return r.train_chars / (self.budget.amount * self.epoch_chars)

    def window(self, name: str):
        return self.observers.telemetry.window(name) if self.observers.telemetry is not None else nullcontext()

    def begin_training(self) -> float:
        """Start a training segment: telemetry's window and the trainer's clock open at the same sync."""
        if self.observers.telemetry is not None:
            self.observers.telemetry.begin("training")
        now = synced_clock(self.device)
        self.train_clock.start(now)
        return now

    def tick(self, now: float) -> None:
        """Training time so far, as a fair share of the device (see harness.measure._occupancy) and as wall time."""
        self.train_clock.tick(now)
        self.result.train_seconds = self.train_clock.share
        self.result.train_wall_seconds = self.train_clock.wall

    def end_training(self) -> None:
        if self.observers.telemetry is not None:
            self.observers.telemetry.end("training")

    def batches(self):
        """One epoch of (inputs, targets): contiguous streams for a stateful family, random windows otherwise."""
        c = self.config
        if not self.carries_state:
            steps = max(1, self.epoch_chars // (c.batch_size * c.seq_len))
            return random_windows(self.train_data, c.batch_size, c.seq_len, steps, self.windows)
        offset = int(torch.randint(0, c.seq_len, (1,), generator=self.offsets))
        return epoch_chunks(self.train_data, c.batch_size, c.seq_len, offset)

    def set_lr(self) -> None:
        """The schedule's rate for the budget spent so far; between syncs a seconds budget is estimated
        from the host clock, so a 12-s trial's decay moves every step, not every SYNC_INTERVAL_S."""
        if self.config.lr_schedule == "constant" and not self.phases and self.current_lr is not None:
            return
        if self.budget.kind == "seconds":
            fraction = self.train_clock.estimate(time.perf_counter()) / self.budget.amount
        else:
            fraction = self.fraction_done()
        fraction = self.schedule_fraction(fraction)
        if self.phases:
            self.apply_phases(fraction)
        lr = self.peak_lr * self.config.lr_factor(fraction)
        if lr != self.current_lr:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.current_lr = lr

    def step(self, model: CharModel, optimizer, scaler, inputs: torch.Tensor, targets: torch.Tensor, state):
        """One optimizer step on one chunk; returns the (undetached) loss and the detached state."""
        with self.precision.autocast(self.device):
            logits, state = model(inputs, state)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        clip = self.config.grad_clip
        # fp16 scales the loss so small gradients do not underflow; elsewhere the scaler is disabled and
        # each call below is a pass-through (scale returns the loss, step is optimizer.step())
        scaler.scale(loss).backward()
        if clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(optimizer)
        scaler.update()
        return loss, detach_state(state)

    def warm_up(self) -> float:
        """Untimed steps on the run's own model and optimizer, then both put back (harness.training._warmup)."""
        b, t = self.config.batch_size, self.config.seq_len
        inputs, targets = self.train_data[: b * t].view(b, t), self.train_data[1: b * t + 1].view(b, t)
        seconds = warm_up(self.model, self.optimizer, self.device, WARMUP_STEPS,
                          lambda state: self.step(self.model, self.optimizer, self.scaler, inputs, targets, state)[1],
                          lambda: evaluate(self.model, self.val_data[: EVAL_STREAMS * EVAL_CHUNK + 1],
                                           precision=self.precision))
        self.scaler = self.precision.scaler(self.device)  # the scaler starts fresh too
        return seconds

    def run(self) -> TrainResult:
        """Warm up (untimed), then train under the budget while registered as a user of the device."""
        r = self.result
        wall_start = time.perf_counter()
        with self.precision.scoped(self.device):
            r.warmup_seconds = self.warm_up() if self.warmup else 0.0
            if self.occupancy is not None:
                self.occupancy.enter()
            try:
                return self.loop(wall_start)
            finally:
                if self.occupancy is not None:
                    self.occupancy.leave()

    def loop(self, wall_start: float) -> TrainResult:
        r, model = self.result, self.model
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        model.train()
        loss_sum = torch.zeros((), device=self.device)
        loss_steps, next_eval, stop = 0, 1, False
        last_sync = self.begin_training()

        while not stop:
            state = None
            for inputs, targets in self.batches():
                self.set_lr()
                loss, state = self.step(model, self.optimizer, self.scaler, inputs, targets, state)
                loss_sum += loss.detach()
                loss_steps += 1
                r.steps += 1
                r.train_chars += targets.numel()

                # Host-side clock and counters decide when to sync; the device is read only then.
                now = time.perf_counter()
                due = self.eval_at[next_eval - 1]
                boundary = self.budget.kind != "seconds" and self.fraction_done() >= due
                if not boundary and now - last_sync < SYNC_INTERVAL_S:
                    continue
                last_sync = synced_clock(self.device)
                self.tick(last_sync)
                mean_loss = float(loss_sum) / loss_steps
                if not math.isfinite(mean_loss):
                    r.status, r.reason = "diverged", f"training loss became {mean_loss} at step {r.steps}"
                    self.end_training()
                    stop = True
                    break
                self.report_progress(mean_loss)
                loss_sum.zero_()
                loss_steps = 0
                if self.fraction_done() >= due:
                    self.end_training()
                    stop = self.evaluate(next_eval) or self.fraction_done() >= 1.0
                    next_eval += 1
                    if stop:
                        break
                    last_sync = self.begin_training()

        if self.device.type == "cuda":
            r.peak_mem_bytes = torch.cuda.max_memory_allocated(self.device)
        r.final = r.curve[-1] if r.curve else None
        r.wall_seconds = time.perf_counter() - wall_start
        return r

    def evaluate(self, index: int) -> bool:
        """Evaluate on the validation split, keep the best checkpoint; True when the run should stop."""
        r = self.result
        self.eval_clock.start(synced_clock(self.device))
        with self.window("evaluation"):
            loss = evaluate(self.model, self.val_data, precision=self.precision)
        self.eval_clock.stop(synced_clock(self.device))
        r.eval_seconds, r.eval_wall_seconds = self.eval_clock.share, self.eval_clock.wall
        point = EvalPoint(index, r.steps, r.train_chars, r.train_seconds, r.device_seconds, loss)
        r.curve.append(point)
        if math.isfinite(loss) and (r.best is None or loss < r.best.loss):
            self.keep_best(point)
        return self.stop_after(point)

    def keep_best(self, point: EvalPoint) -> None:
        """The new best point, and its checkpoint (with the optimizer's state where a later run continues it)."""
        r = self.result
        r.best = point
        if self.out_dir is None:
            return
        saving = time.perf_counter()
        path = self.out_dir / "best.pt"
        save_checkpoint(path, self.model, self.config, self.vocab,
                        {"corpus": self.corpus_info, "best": point.to_dict(), "budget": str(self.budget)},
                        self.optimizer.state_dict() if self.start.keep_optimizer else None)
        r.checkpoint = str(path)
        r.checkpoint_seconds += time.perf_counter() - saving

    def stop_after(self, point: EvalPoint) -> bool:
        """Whether this evaluation ends the run: a non-finite loss, the caller's pruner, or patience spent."""
        r, index = self.result, point.index
        if not math.isfinite(point.loss):
            r.status, r.reason = "diverged", f"validation loss became {point.loss} at step {r.steps}"
            return True
        if self.observers.on_eval is not None and self.observers.on_eval(point):
            r.status, r.reason = "pruned", f"stopped by the evaluation callback at evaluation {index} (step {r.steps})"
            return True
        plan = self.evaluations
        if plan.patience_spent(index, r.best.index):
            r.status = "stopped_early"
            r.reason = (f"held-out bpc did not improve in {plan.patience} evaluation(s) after evaluation "
                        f"{r.best.index} ({r.best.bpc:.4f}); stopped at evaluation {index} of {plan.count}")
            return True
        return False

    def report_progress(self, loss: float) -> None:
        if self.observers.on_progress is None:
            return
        r = self.result
        fraction = min(1.0, self.fraction_done())
        rate = r.train_chars_per_s
        eta = r.train_seconds * (1 - fraction) / fraction if fraction > 0 else float("inf")
        last = r.curve[-1].bpc if r.curve else None
        self.observers.on_progress(Progress(r.steps, r.train_chars, loss, rate, fraction, r.train_seconds, eta, last,
                                              r.train_wall_seconds))


def train(config: TrainConfig, corpus: Corpus, budget: Budget, device: torch.device | str = "cpu", *,
          out_dir: Path | None = None, evaluations: Evaluations | None = None, precision: str = "auto",
          observers: Observers | None = None, warmup: bool | None = None, share_device: bool = True,
          start: Start | None = None) -> TrainResult:
    """Train one configuration under one budget: `Trainer(...).run()` with the device read to the end."""
    device = torch.device(device)
    trainer = Trainer(config, corpus, budget, device, out_dir=out_dir, evaluations=evaluations, precision=precision,
                      observers=observers, warmup=warmup, share_device=share_device, start=start)
    result = trainer.run()
    synchronize(device)
    return result
