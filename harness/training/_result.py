"""What a run did and who hears of it: its evaluation points, its progress reports, its result (the record
`result.json` holds) and the observers that receive them.

Figures and what they measure:
- `train_seconds`: synchronized time spent in training steps (evaluation excluded), counted as
  this run's fair share of the device: each interval between clock reads counts dt / n, n being
  the runs on the same device at that time (harness.measure's occupancy). Alone, n = 1 and this
  is the synchronized wall time, also kept as `train_wall_seconds`. Time budgets are spent in it.
- `eval_seconds`: the same for evaluating on held-out text (`eval_wall_seconds` beside it).
- `concurrency`: wall / share, the time-weighted mean number of runs on the device.
- `device_seconds` = train + eval: the time the run held the device, start-up and warm-up excluded.
- `train_chars_per_s`: predicted characters per training second.
- held-out loss is the exact mean NLL (nats) over every character of the validation split but
  its first; bpc = loss / ln 2; perplexity = exp(loss).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from harness.common import bits_per_char, perplexity
from harness.measure import Telemetry


@dataclass
class EvalPoint:
    index: int
    step: int
    chars: int
    train_seconds: float
    device_seconds: float
    loss: float

    @property
    def bpc(self) -> float:
        return bits_per_char(self.loss)

    @property
    def ppl(self) -> float:
        return perplexity(self.loss)

    def to_dict(self) -> dict:
        return {**asdict(self), "bpc": self.bpc, "ppl": self.ppl}


@dataclass
class Progress:
    step: int
    chars: int
    loss: float
    chars_per_s: float
    fraction: float
    train_seconds: float
    eta_seconds: float
    last_val_bpc: float | None
    train_wall_seconds: float  # beside the fair share: what a CPU run's MFU counts (harness.measure)


@dataclass
class TrainResult:
    status: str  # completed | stopped_early (patience ran out) | pruned | diverged
    reason: str | None
    config: dict
    budget: str
    device: str
    params: int
    vocab_size: int = 0
    best: EvalPoint | None = None
    steps: int = 0
    train_chars: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    final: EvalPoint | None = None
    wall_seconds: float = 0.0
    train_wall_seconds: float = 0.0
    eval_wall_seconds: float = 0.0
    checkpoint: str | None = None
    warmup_seconds: float = 0.0
    checkpoint_seconds: float = 0.0
    flops_per_char: int = 0
    peak_mem_bytes: int | None = None
    curve: list[EvalPoint] = field(default_factory=list)
    fingerprint: dict = field(default_factory=dict)
    precision: dict = field(default_factory=dict)
    eval_context: str | None = None

    @property
    def device_seconds(self) -> float:
        return self.train_seconds + self.eval_seconds

    @property
    def concurrency(self) -> float:
        """Time-weighted mean number of trials on the device while this one ran (1.0 alone)."""
        share = self.train_seconds + self.eval_seconds
        return (self.train_wall_seconds + self.eval_wall_seconds) / share if share > 0 else 1.0

    @property
    def train_chars_per_s(self) -> float:
        return self.train_chars / self.train_seconds if self.train_seconds > 0 else 0.0

    @property
    def achieved_tflops(self) -> float:
        """Model FLOPs per second while training (MFU's numerator, harness.measure.cost_summary)."""
        return self.flops_per_char * self.train_chars_per_s / 1e12

    def summary(self) -> dict:
        """The flat dictionary `--json` prints and the sweep stores: best point first, final beside it."""
        best, final = self.best, self.final
        return {
            "status": self.status,
            "reason": self.reason,
            "val_loss": best.loss if best else None,
            "val_bpc": best.bpc if best else None,
            "val_ppl": best.ppl if best else None,
            "best_step": best.step if best else None,
            "final_val_loss": final.loss if final else None,
            "final_val_bpc": final.bpc if final else None,
            "final_val_ppl": final.ppl if final else None,
            "train_chars_per_s": self.train_chars_per_s,
            "train_seconds": self.train_seconds,
            "eval_seconds": self.eval_seconds,
            "device_seconds": self.device_seconds,
            "wall_seconds": self.wall_seconds,
            "train_wall_seconds": self.train_wall_seconds,
            "eval_wall_seconds": self.eval_wall_seconds,
            "concurrency": self.concurrency,
            "warmup_seconds": self.warmup_seconds,
            "checkpoint_seconds": self.checkpoint_seconds,
            "steps": self.steps,
            "train_chars": self.train_chars,
            "params": self.params,
            "vocab_size": self.vocab_size,
            "flops_per_char": self.flops_per_char,
            "achieved_tflops": self.achieved_tflops,
            "peak_mem_bytes": self.peak_mem_bytes,
            "device": self.device,
            "budget": self.budget,
            "checkpoint": self.checkpoint,
            "config": self.config,
            "curve": [p.to_dict() for p in self.curve],
            "fingerprint": self.fingerprint,
            "precision": self.precision,
            "eval_context": self.eval_context,
        }


@dataclass
class Observers:
    """Who watches a run, and the one who may stop it: `on_eval` hears each evaluation and returns True
    to stop (a sweep's pruner), `on_progress` hears the figures at each sync, `telemetry` gets the
    training and evaluation windows marked."""

    on_eval: Callable[[EvalPoint], bool | None] | None = None
    on_progress: Callable[[Progress], None] | None = None
    telemetry: Telemetry | None = None
