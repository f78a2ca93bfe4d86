"""The search space of a study file: [fixed] and [space], their per-family tables, and the checks that every
configuration the space can produce is one the trainer accepts (so no trial fails on a typo'd range).

`read_settings` returns the `Settings` it read; the checks take the settings, not the whole study, and
harness.search._spec reads the rest of the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from harness.common import HarnessError
from harness.models import family_names, get_family
from harness.search._checker import Checker
from harness.training import TrainConfig

INT_PARAMS = {"embedding_dim", "hidden_dim", "layers", "seq_len", "batch_size", "seed", "heads"}
FLOAT_PARAMS = {"dropout", "embedding_drop", "dropout_input", "dropout_output", "weight_drop", "lr", "weight_decay", "beta1", "beta2", "grad_clip", "lr_warmup", "lr_decay", "lr_min_ratio"}
TRAIN_KEYS = {f.name for f in fields(TrainConfig)}


@dataclass
class Param:
    name: str
    kind: str  # int | float | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list | None = None
    balanced: bool = False  # [space.model] only: every family gets the same number of trials
    family: str | None = None  # sampled only in trials of this model family ([space.<family>.<key>])

    @property
    def optuna_name(self) -> str:
        """Family-scoped keys get their own Optuna name, so gpt's lr and lstm's lr are learned apart."""
        return f"{self.family}.{self.name}" if self.family else self.name


@dataclass
class Settings:
    """[fixed], its per-family tables and [space]: what every trial's training settings are made of."""

    fixed: dict[str, Any] = field(default_factory=dict)
    family_fixed: dict[str, dict[str, Any]] = field(default_factory=dict)  # [fixed.<family>]
    space: dict[str, Param] = field(default_factory=dict)  # keyed by Param.optuna_name

    def families(self) -> list[str]:
        """The model families the study's trials can train."""
        p = self.space.get("model")
        return list(p.choices) if p is not None else [self.fixed.get("model", TrainConfig().model)]

    def values_for(self, params: dict[str, Any]) -> dict[str, Any]:
        """The training settings of a trial: [fixed], then its family's [fixed.<family>], then what was sampled."""
        family = params.get("model", self.fixed.get("model", TrainConfig().model))
        return {**self.fixed, **self.family_fixed.get(family, {}), **params}

    def largest(self, name: str) -> int:
        """The largest value any trial may use for a whole-number setting (a too-short corpus is refused early)."""
        values = [v[name] for v in (self.fixed, *self.family_fixed.values()) if name in v]
        for p in self.space.values():
            if p.name == name:
                values.append(max(p.choices) if p.kind == "categorical" else p.high)
        return int(max(values) if values else getattr(TrainConfig(), name))


class HasSpace(Protocol):
    space: dict[str, Param]


def read_settings(c: Checker, fixed: dict, space: dict) -> Settings:
    """[fixed] and [space], each with optional per-family tables ([fixed.gpt], [space.gpt.heads]) that apply
    only to that family's trials: two families compared in one study each get their own sensible space."""
    read = Settings()
    families = set(family_names())
    c.keys(fixed, "fixed", TRAIN_KEYS | families)
    c.keys(space, "space", TRAIN_KEYS | families)
    scoped = {("fixed", f): fixed[f] for f in families & set(fixed)} | {("space", f): space[f] for f in families & set(space)}
    for (section, family), table in scoped.items():
        if not isinstance(table, dict):
            c.fail(f"[{section}.{family}]", "must be a table of settings for that family's trials")
        c.keys(table, f"{section}.{family}", TRAIN_KEYS - {"model"})
    settings = {"": ({k: v for k, v in fixed.items() if k not in families},
                     {k: v for k, v in space.items() if k not in families})}
    for family in sorted(families & (set(fixed) | set(space))):
        settings[family] = (fixed.get(family, {}), space.get(family, {}))
    seen = {k: "" for k in (*settings[""][0], *settings[""][1])}
    for family, (fixed_part, space_part) in settings.items():
        where = f".{family}" if family else ""
        for key in sorted(set(fixed_part) & set(space_part)):
            c.fail(f"[space{where}.{key}]", f"is also set in [fixed{where}]; a setting is either fixed or searched")
        if family:
            if family not in spec_families(fixed, space):
                c.fail(f"[fixed/space.{family}]", f"no trial trains {family}: put it in [space.model] choices or set "
                                                  f"model = \"{family}\" in [fixed]")
            for key in sorted(set(seen) & (set(fixed_part) | set(space_part))):
                c.fail(f"[fixed/space.{family}] {key}", f"{key} is already set for every family; set it either for "
                                                        f"all or per family, not both")
            read.family_fixed[family] = dict(fixed_part)
        else:
            read.fixed = dict(fixed_part)
        for key, table in space_part.items():
            param = parse_param(c, key, table, family or None)
            read.space[param.optuna_name] = param
    return read


def spec_families(fixed: dict, space: dict) -> list:
    """The families a study file's trials can train, before it is parsed."""
    model = space.get("model")
    if isinstance(model, dict) and isinstance(model.get("choices"), list):
        return model["choices"]
    return [fixed.get("model", TrainConfig().model)]


def parse_param(c: Checker, key: str, table: Any, family: str | None = None) -> Param:
    section = f"space.{family}.{key}" if family else f"space.{key}"
    if not isinstance(table, dict):
        c.fail(f"[{section}]", "must be a table with type = \"int\" | \"float\" | \"categorical\"")
    kind = table.get("type")
    allowed = {"int": {"type", "low", "high", "log", "step"}, "float": {"type", "low", "high", "log", "step"},
               "categorical": {"type", "choices"} | ({"balanced"} if key == "model" and not family else set())}
    if kind not in allowed:
        c.fail(f"[{section}] type", f"must be \"int\", \"float\" or \"categorical\", got {kind!r}")
    c.keys(table, section, allowed[kind])
    if kind == "categorical":
        choices = table.get("choices")
        if not isinstance(choices, list) or not choices:
            c.fail(f"[{section}] choices", "must be a non-empty list")
        if len({repr(x) for x in choices}) != len(choices):
            c.fail(f"[{section}] choices", f"has duplicates: {choices!r}")
        balanced = table.get("balanced", False)
        if not isinstance(balanced, bool):
            c.fail(f"[{section}] balanced", f"must be true or false, got {balanced!r}")
        return Param(key, kind, choices=list(choices), family=family, balanced=balanced)
    if key in INT_PARAMS and kind != "int":
        c.fail(f"[{section}] type", f"{key} is a whole number: use type = \"int\" or \"categorical\"")
    if key not in INT_PARAMS | FLOAT_PARAMS:
        c.fail(f"[{section}] type", f"{key} takes named values: use type = \"categorical\" with choices")
    number = (int,) if kind == "int" else (int, float)
    for bound in ("low", "high"):
        if bound not in table:
            c.fail(f"[{section}] {bound}", "is required")
        if isinstance(table[bound], bool) or not isinstance(table[bound], number):
            c.fail(f"[{section}] {bound}", f"must be {'a whole number' if kind == 'int' else 'a number'}, "
                                           f"got {table[bound]!r}")
    low, high = table["low"], table["high"]
    if not low < high:
        c.fail(f"[{section}]", f"low must be below high (got low = {low}, high = {high}); to fix a value, put it "
                               f"in [fixed]")
    log = table.get("log", False)
    if not isinstance(log, bool):
        c.fail(f"[{section}] log", f"must be true or false, got {log!r}")
    if log and low <= 0:
        c.fail(f"[{section}] low", f"a log-scale range must start above 0, got {low}")
    step = table.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, number) or step <= 0):
        c.fail(f"[{section}] step", f"must be a positive number, got {step!r}")
    if step is not None and log:
        c.fail(f"[{section}] step", "cannot be combined with log = true")
    return Param(key, kind, low=low, high=high, log=log, step=step, family=family)


def check_values(c: Checker, spec: Settings) -> None:
    """Every corner of each family's space must be a valid training config, so no trial fails on a typo'd range."""
    for family in spec.families():
        params = [p for p in spec.space.values() if p.name != "model" and p.family in (None, family)]
        where = {p.name: f"[space.{p.family}.{p.name}]" if p.family else f"[space.{p.name}]" for p in params}
        where.update({k: f"[fixed.{family}] {k}" for k in spec.family_fixed.get(family, {})})
        if "model" in spec.space:
            where["model"] = "[space.model]"
        corners: list[dict] = [{}]
        for p in params:
            values = p.choices if p.kind == "categorical" else [p.low, p.high]
            corners = [dict(corner, **{p.name: v}) for corner in corners for v in values][:256]
        for corner in corners:
            values = spec.values_for({"model": family, **corner})
            bad_type = next((k for k, v in values.items() if k in INT_PARAMS and
                             (isinstance(v, bool) or not isinstance(v, int))), None)
            if bad_type:
                c.fail(where.get(bad_type, f"[fixed] {bad_type}"), f"must be a whole number, got {values[bad_type]!r}")
            try:
                TrainConfig(**values).validate()
            except (HarnessError, TypeError) as e:
                culprit = next((k for k in values if k in str(e)), None)
                c.fail(where.get(culprit, f"[fixed] {culprit}" if culprit else "[fixed]/[space]"), str(e))
        _check_heads(c, spec, family, params, where)
    for key, value in [*spec.fixed.items(), *(kv for t in spec.family_fixed.values() for kv in t.items())]:
        if isinstance(value, float) and not math.isfinite(value):
            c.fail(f"[fixed] {key}", f"must be finite, got {value}")


def _check_heads(c: Checker, spec: Settings, family: str, params: list[Param], where: dict[str, str]) -> None:
    """Every width the space can sample must divide by every head count it can sample (not only the corners)."""
    if "heads" not in get_family(family).options:
        return
    fixed = spec.values_for({"model": family})
    sampled = {p.name: p for p in params}

    def candidates(name: str) -> list[int]:
        p = sampled.get(name)
        if p is None:
            return [int(fixed.get(name, getattr(TrainConfig(), name)))]
        return [int(v) for v in p.choices] if p.kind == "categorical" else grid_values(p)

    for width in candidates("embedding_dim"):
        for heads in candidates("heads"):
            if width % heads:
                c.fail(f"{where.get('embedding_dim', '[fixed] embedding_dim')} / {where.get('heads', '[fixed] heads')}",
                       f"embedding_dim {width} is not divisible by heads {heads}, and the space can sample both for "
                       f"{family}; give embedding_dim as categorical choices or a step that every heads value divides")


def grid_size(spec: HasSpace) -> int:
    """The points of the grid a study's space makes (a study or its Settings)."""
    size = 1
    for p in spec.space.values():
        size *= len(p.choices) if p.kind == "categorical" else len(grid_values(p))
    return size


def grid_values(p: Param) -> list:
    if p.kind == "categorical":
        return list(p.choices)
    step = int(p.step or 1)
    return list(range(int(p.low), int(p.high) + 1, step))
