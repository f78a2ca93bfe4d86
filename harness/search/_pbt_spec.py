"""[pbt]: population-based training's settings, read and checked like every study table.

A PBT study trains `population` members side by side, each for the study's per-trial budget, in
segments of `interval` (a share of that budget, or seconds where the budget is seconds). Each
segment is one Optuna trial. After every generation of segments the members whose held-out bpc is
in the worst `quantile` copy the weights and optimizer state of a member in the best `quantile`
(exploit) and change that member's rates (explore): each key of `perturb` is multiplied by one of
`factors`, or, with `resample_probability`, drawn again from the study's space. Shape keys
(widths, layers, batch, sequence length) are drawn once per member and never change: a copied
weight matrix has the shape it has. The defaults are Ray Tune's PopulationBasedTraining's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness.search._checker import Checker
from harness.search._space import Param

# What a member may change during its run: rates that act on the same weights (not shapes).
PERTURBABLE = ("lr", "weight_decay", "dropout", "dropout_input", "dropout_output", "embedding_drop", "weight_drop")
PBT_KEYS = ("population", "interval", "quantile", "perturb", "factors", "resample_probability")


@dataclass
class PbtSettings:
    population: int = 8
    interval: float | str = 0.25  # a share of the per-trial budget, or "90s" where the budget is seconds
    quantile: float = 0.25  # Ray's truncation: the worst quarter copies the best quarter
    perturb: list[str] = field(default_factory=list)  # default: every perturbable key of the space
    factors: list[float] = field(default_factory=lambda: [1.2, 0.8])
    resample_probability: float = 0.25
    share: float = 0.25  # the interval as a share of the per-trial budget (derived)

    @property
    def generations(self) -> int:
        """Segments per member: enough to spend the whole per-trial budget."""
        return max(1, math.ceil(1.0 / self.share - 1e-9))

    @property
    def segments(self) -> int:
        return self.population * self.generations

    def window(self, generation: int) -> tuple[float, float]:
        """The share of the member's budget (and of its schedule) a generation's segment covers."""
        return generation * self.share, min(1.0, (generation + 1) * self.share)

    def to_record(self) -> dict[str, Any]:
        return {"population": self.population, "interval": self.interval, "quantile": self.quantile,
                "perturb": list(self.perturb), "factors": list(self.factors),
                "resample_probability": self.resample_probability}


def read_pbt(c: Checker, table: Any, sampler: str, budget_kind: str, budget_amount: float,
             space: dict[str, Param]) -> PbtSettings | None:
    """The [pbt] table for sampler = "pbt" (None for any other sampler, which may not have one)."""
    if not isinstance(table, dict):
        c.fail("[pbt]", "must be a table")
    if sampler != "pbt":
        if table:
            c.fail(f"[pbt] {next(iter(table))}", f"sampler = \"{sampler}\" does not read [pbt]; set sampler = \"pbt\" "
                                                 f"or remove the table")
        return None
    c.keys(table, "pbt", set(PBT_KEYS))
    d = PbtSettings()
    s = PbtSettings()
    s.population = c.typed(table, "pbt", "population", (int,), "a whole number of members", d.population)
    if s.population < 2:
        c.fail("[pbt] population", f"must be at least 2 members (one has nobody to copy), got {s.population}")
    s.interval = c.typed(table, "pbt", "interval", (float, int, str), "a share of per_trial such as 0.25, or "
                         "seconds such as \"60s\"", d.interval)
    if isinstance(s.interval, str):
        if not s.interval.endswith("s") or not _number(s.interval[:-1]):
            c.fail("[pbt] interval", f"{s.interval!r} is not understood; write a share of per_trial (0.25) or "
                                     f"seconds (\"60s\")")
        if budget_kind != "seconds":
            c.fail("[pbt] interval", f"{s.interval!r} is seconds but per_trial is not; write the interval as a share "
                                     f"of per_trial, such as 0.25")
        s.share = float(s.interval[:-1]) / budget_amount
    else:
        s.share = float(s.interval)
    if not 0 < s.share <= 1:
        c.fail("[pbt] interval", f"must be above 0 and at most the whole per_trial budget, got {s.interval!r}")
    s.quantile = float(c.typed(table, "pbt", "quantile", (float, int), "a share such as 0.25", d.quantile))
    if not 0 < s.quantile <= 0.5:
        c.fail("[pbt] quantile", f"must be above 0 and at most 0.5 (the worst share copies the best), got {s.quantile}")
    allowed = [p.name for p in space.values() if p.family is None and p.kind == "float" and p.name in PERTURBABLE]
    s.perturb = c.typed(table, "pbt", "perturb", (list,), "a list of keys", allowed)
    for key in s.perturb:
        if key not in PERTURBABLE:
            c.fail("[pbt] perturb", f"{key!r} cannot change during a run (shape keys are fixed per member); "
                                    f"perturb takes {', '.join(PERTURBABLE)}")
        if key not in allowed:
            c.fail("[pbt] perturb", f"{key!r} is not a float in [space] (a perturbed key is sampled there first); add "
                                    f"[space.{key}] or remove it from perturb")
    if not s.perturb:
        c.fail("[pbt] perturb", f"nothing to perturb: [space] has none of {', '.join(PERTURBABLE)} as a float")
    s.factors = c.typed(table, "pbt", "factors", (list,), "a list of multipliers such as [1.2, 0.8]", d.factors)
    if not s.factors or not all(isinstance(f, int | float) and not isinstance(f, bool) and f > 0 for f in s.factors):
        c.fail("[pbt] factors", f"must be positive multipliers such as [1.2, 0.8], got {s.factors!r}")
    s.factors = [float(f) for f in s.factors]
    s.resample_probability = float(c.typed(table, "pbt", "resample_probability", (float, int), "a probability",
                                           d.resample_probability))
    if not 0 <= s.resample_probability <= 1:
        c.fail("[pbt] resample_probability", f"must be from 0 to 1, got {s.resample_probability}")
    return s


def _number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False
