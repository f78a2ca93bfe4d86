"""Training configuration and budgets: plain values, with every default in this one place.

The defaults are the course material's LSTM generator (E=128, H=256, 2 layers, dropout 0.3,
seq 50, batch 32, Adam at 1e-3, clipping at 1.0), so `harness train` with no flags reproduces it.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields

from harness.common import HarnessError
from harness.models import (
    REGULARIZERS,
    CharModel,
    build_model,
    family_names,
    family_options,
    flops_per_char,
    get_family,
)

LR_SCHEDULES = ("constant", "wsd", "cosine", "linear")


@dataclass
class TrainConfig:
    # the model
    model: str = "lstm"
    embedding_dim: int = 128
    hidden_dim: int = 256
    layers: int = 2
    dropout: float = 0.3
    heads: int = 4  # gpt only: attention heads (embedding_dim must divide by it)
    tie_embeddings: bool = True  # gpt only: the output layer is the token embedding
    # regularizers that act at every depth (lstm, gru, rnn; AWD-LSTM's, harness.models._recurrent); 0 is off
    embedding_drop: float = 0.0  # whole characters' embedding rows dropped per chunk
    dropout_input: float = 0.0  # locked dropout on the embedding's output
    dropout_output: float = 0.0  # locked dropout on the last layer's output
    weight_drop: float = 0.0  # DropConnect on the hidden-to-hidden matrices
    # the data it sees per step
    seq_len: int = 50
    batch_size: int = 32
    # the optimizer and its schedule
    lr: float = 1e-3
    weight_decay: float = 0.0
    decoupled_decay: bool = False  # state-carrying families: AdamW (decay off the gradient) instead of Adam's L2
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0
    lr_schedule: str = "constant"
    lr_warmup: float = 0.0
    lr_decay: float = 0.2
    lr_min_ratio: float = 0.0
    seed: int = 1337

    def validate(self) -> TrainConfig:
        """Reject impossible values with the name of the setting, before any work starts."""
        family = get_family(self.model)  # an unknown family names the registered ones
        for name in ("embedding_dim", "hidden_dim", "layers", "seq_len", "batch_size", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise HarnessError(f"{name} must be a whole number of at least 1, got {value!r}")
        if "heads" in family.options and self.embedding_dim % self.heads:
            raise HarnessError(f"embedding_dim {self.embedding_dim} is not divisible by heads {self.heads}: {self.model}'s "
                               f"width is split evenly over its attention heads; pick heads that divide it")
        for name in ("dropout", *REGULARIZERS):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise HarnessError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise HarnessError(f"lr must be a positive number, got {self.lr!r}")
        if self.weight_decay < 0:
            raise HarnessError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise HarnessError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise HarnessError(f"lr_schedule {self.lr_schedule!r} is not a schedule; choose one of "
                               f"{', '.join(LR_SCHEDULES)}")
        if not 0.0 <= self.lr_warmup < 1.0:
            raise HarnessError(f"lr_warmup is a share of the budget in [0, 1), got {self.lr_warmup!r}")
        if not 0.0 < self.lr_decay <= 1.0 or self.lr_warmup + self.lr_decay > 1.0:
            raise HarnessError(f"lr_decay is the share of the budget the wsd schedule decays over, in (0, 1] and at "
                               f"most 1 - lr_warmup; got {self.lr_decay!r} (lr_warmup {self.lr_warmup!r})")
        if not 0.0 <= self.lr_min_ratio <= 1.0:
            raise HarnessError(f"lr_min_ratio (the final rate / lr) must be in [0, 1], got {self.lr_min_ratio!r}")
        if self.grad_clip < 0:
            raise HarnessError(f"grad_clip must be >= 0 (0 turns clipping off), got {self.grad_clip!r}")
        return self

    def inactive(self) -> tuple[str, ...]:
        """The settings that cannot act on this configuration, so that nobody credits them with an effect.

        `dropout` at one layer of a family that drops only between layers; a family's own settings
        (gpt's heads, the recurrent regularizers) in another family; what a family never reads (the
        bigram MLP's hidden_dim and layers); `decoupled_decay` where AdamW is the only optimizer.
        """
        family = get_family(self.model)
        own = {name for f in (get_family(n) for n in family_names()) for name in f.options} - {"seq_len"}
        off = set(family.ignores) | (own - set(family.options))
        if family.dropout_between_layers and self.layers == 1:
            off.add("dropout")
        if not family.carries_state:
            off.add("decoupled_decay")
        return tuple(sorted(off))

    def lr_factor(self, fraction: float) -> float:
        """The learning rate's multiplier when `fraction` of the budget is spent.

        "constant": 1 throughout (the course recipe). The others ramp up linearly over the first
        `lr_warmup` of the budget (default none: measured, a 2% warm-up cost the course LSTM ~0.1
        bpc that it never won back, docs/measurements.md) and end at `lr_min_ratio` exactly when
        the budget ends, whatever its unit, so a 12-s trial and an 8-h run both end annealed. "wsd" (warm-up, stable, decay)
        holds the peak until the last `lr_decay` of the budget and then decays linearly: without a
        warm-up, every evaluation before the decay is exactly the constant rate's, so a pruner's
        early decisions are unchanged. "cosine" and "linear" (nanoGPT's shapes) decay from the end of the warm-up.
        """
        if self.lr_schedule == "constant":
            return 1.0
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction < self.lr_warmup:
            return max(fraction / self.lr_warmup, 0.01)
        if self.lr_schedule == "wsd":
            start = 1.0 - self.lr_decay
            progress = max(0.0, (fraction - start) / self.lr_decay)
        else:
            progress = (fraction - self.lr_warmup) / (1.0 - self.lr_warmup)
        shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if self.lr_schedule == "cosine" else 1.0 - progress
        return self.lr_min_ratio + (1.0 - self.lr_min_ratio) * shape

    def build(self, vocab_size: int, dropout: float | None = None) -> CharModel:
        """A fresh model of this configuration (the family's own settings, e.g. gpt's heads, included)."""
        return build_model(self.model, vocab_size, self.embedding_dim, self.hidden_dim, self.layers,
                           self.dropout if dropout is None else dropout, **family_options(self.model, self))

    def flops_per_char(self, vocab_size: int) -> int:
        return flops_per_char(self.model, vocab_size, self.embedding_dim, self.hidden_dim, self.layers, self.seq_len)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise HarnessError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)


EVAL_SPACINGS = ("even", "geometric")


def eval_fractions(evals: int, spacing: str = "even") -> list[float]:
    """The shares of the budget at which a run evaluates, ending at 1.

    "even": k/n, the harness's first schedule. "geometric": from 1/n^2 to 1 with a constant ratio
    (10 evaluations: 0.010, 0.017, 0.028, ... 0.60, 1), for runs that pass a small text many times:
    there the held-out minimum falls early, often before 10% of the run, where even spacing has at
    most one point (docs/measurements.md, "Many passes"). Every point is found to within the same
    relative error of its position instead of the same absolute one.
    """
    if spacing not in EVAL_SPACINGS:
        raise HarnessError(f"eval spacing {spacing!r} is not one of {', '.join(EVAL_SPACINGS)}")
    if spacing == "even" or evals == 1:
        return [k / evals for k in range(1, evals + 1)]
    first = 1.0 / evals**2
    return [first ** ((evals - k) / (evals - 1)) for k in range(1, evals + 1)]


@dataclass(frozen=True)
class Evaluations:
    """When a run looks at held-out text and when it gives up: `count` evaluations at `spacing`
    (eval_fractions), and `patience` evaluations without a better figure before it stops (0: never)."""

    count: int = 10
    spacing: str = "even"
    patience: int = 0

    def __post_init__(self) -> None:
        if self.count < 1:
            raise HarnessError(f"evals is a number of evaluations, at least 1, got {self.count}")
        if self.patience < 0:
            raise HarnessError(f"patience is a number of evaluations without improvement (0: off), "
                               f"got {self.patience}")
        eval_fractions(self.count, self.spacing)  # refuses an unknown spacing by name

    @property
    def at(self) -> list[float]:
        return eval_fractions(self.count, self.spacing)

    def patience_spent(self, index: int, best_index: int) -> bool:
        """Whether evaluation `index` ends the run for want of progress (never at the last: it is already paid)."""
        return bool(self.patience) and index < self.count and index - best_index >= self.patience


_UNITS = {
    "s": ("seconds", 1.0), "sec": ("seconds", 1.0), "m": ("seconds", 60.0), "min": ("seconds", 60.0),
    "h": ("seconds", 3600.0), "tok": ("tokens", 1.0), "tokens": ("tokens", 1.0), "chars": ("tokens", 1.0),
    "k": ("tokens", 1e3), "M": ("tokens", 1e6), "ep": ("epochs", 1.0), "epoch": ("epochs", 1.0),
    "epochs": ("epochs", 1.0),
}
_BUDGET = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True)
class Budget:
    """How long a run trains: synchronized training seconds on the device, predicted characters, or epochs.

    Evaluation time is not charged to a seconds budget, so every trial of a sweep gets the same
    training time on the device whatever its evaluation costs.
    """

    kind: str
    amount: float

    @classmethod
    def parse(cls, text: str) -> Budget:
        match = _BUDGET.match(str(text))
        unit = match.group(2) if match else ""
        if not match or (unit not in _UNITS and unit.lower() not in _UNITS):
            raise HarnessError(
                f"budget {text!r} is not understood; write seconds (90s, 5m, 8h), predicted characters "
                f"(200000tok, 500k, 2M) or epochs (3ep)"
            )
        kind, scale = _UNITS.get(unit) or _UNITS[unit.lower()]
        amount = float(match.group(1)) * scale
        if amount <= 0:
            raise HarnessError(f"budget {text!r} must be above zero")
        return cls(kind, amount)

    def __str__(self) -> str:
        return {"seconds": f"{self.amount:g}s", "tokens": f"{self.amount:g}tok", "epochs": f"{self.amount:g}ep"}[self.kind]

    @property
    def words(self) -> str:
        """The budget as a person reads it; `str()` is the stored form ("20000tok"), which reads as jargon."""
        return {"seconds": f"{self.amount:g} device-seconds of training",
                "tokens": f"{self.amount:,.0f} training characters",
                "epochs": f"{self.amount:g} epochs of training"}[self.kind]


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds from '90s', '30m', '8h' (a bare number is seconds)."""
    budget = Budget.parse(text if re.search(r"[A-Za-z]", str(text)) else f"{text}s")
    if budget.kind != "seconds":
        raise HarnessError(f"{what} {text!r} must be a time such as 90s, 30m or 8h")
    return budget.amount
