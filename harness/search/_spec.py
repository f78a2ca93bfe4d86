"""Study files (TOML): read with the standard library and validated whole before anything runs.

Every mistake names the file, the key and what is allowed, and nothing starts. See
`studies/demo.toml` for a commented example of every section.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.common import HarnessError
from harness.data import DEFAULT_SPEC, DEFAULT_SPLIT, CorpusOptions, check_split
from harness.training import PRECISION_MODES, Budget, GenerateSpec, TrainConfig, parse_duration

if TYPE_CHECKING:
    from harness.data import Corpus

SAMPLERS = ("tpe", "random", "grid", "gp", "cmaes")
PRUNERS = ("hyperband", "median", "none")
OBJECTIVES = ("bpc",)
SECOND_OBJECTIVES = ("device_seconds", "energy_j")
INT_PARAMS = {"embedding_dim", "hidden_dim", "layers", "seq_len", "batch_size", "seed"}
FLOAT_PARAMS = {"dropout", "lr", "weight_decay", "beta1", "beta2", "grad_clip"}
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


@dataclass
class StudySpec:
    path: Path | None
    name: str
    corpus: str = DEFAULT_SPEC
    corpus_options: CorpusOptions = field(default_factory=CorpusOptions)
    trials: int | None = 20
    timeout: float | None = None
    seed: int = 0
    sampler: str = "tpe"
    pruner: str = "hyperband"
    objective: str = "bpc"
    second_objective: str | None = None
    device: str = "auto"
    max_consecutive_failures: int = 5
    precision: str = "auto"
    budget: Budget = field(default_factory=lambda: Budget("seconds", 60.0))
    evals: int = 8
    fixed: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Param] = field(default_factory=dict)
    generate: GenerateSpec = field(default_factory=GenerateSpec)
    question: str = ""
    notes: list[str] = field(default_factory=list)  # said at the start of a sweep, not errors
    confirm: bool = False  # a `harness confirm` study: seeds from each trial, test-split objective
    trials_subdir: str = "trials"  # where each trial's files go, under the results directory

    @property
    def multi_objective(self) -> bool:
        return self.second_objective is not None

    def to_record(self, corpus: Corpus | None = None) -> dict[str, Any]:
        """Everything that defines the study, JSON-safe: what the study stores (`harness:spec`), what a
        resume compares (harness.search._resume), and what a worker process is started from."""
        o = self.corpus_options
        record = {
            "name": self.name, "corpus": self.corpus, "trials": self.trials, "timeout": self.timeout,
            "seed": self.seed, "sampler": self.sampler, "pruner": self.pruner, "objective": self.objective,
            "second_objective": self.second_objective, "budget": str(self.budget), "evals": self.evals,
            "precision": self.precision, "fixed": dict(self.fixed), "space": {k: vars(p).copy() for k, p in self.space.items()},
            "question": self.question, "lowercase": o.lowercase, "split": list(o.split), "encoding": o.encoding,
            "device": self.device, "max_consecutive_failures": self.max_consecutive_failures,
            "generate": vars(self.generate).copy(), "confirm": self.confirm, "trials_subdir": self.trials_subdir,
        }
        if corpus is not None:
            record["corpus_sha256"] = corpus.sha256
            record["corpus_chars"] = len(corpus.text)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any], path: Path | None = None) -> StudySpec:
        """The spec a record describes, checked as a study file is. Records of older releases lack some
        keys (`generate`, `confirm`, ...): those take their defaults."""
        defaults = cls(path=None, name=record.get("name", "study"))
        study = {k: record[k] for k in ("name", "corpus", "lowercase", "split", "encoding", "seed", "sampler",
                                        "pruner", "objective", "device", "precision", "question",
                                        "max_consecutive_failures", "second_objective", "trials")
                 if record.get(k) is not None}
        if record.get("timeout") is not None:
            study["timeout"] = f"{record['timeout']}s"
        space = {}
        for name, p in (record.get("space") or {}).items():
            table = {"type": p["kind"]}
            if p["kind"] == "categorical":
                table["choices"] = p["choices"]
            else:
                table.update({k: p[k] for k in ("low", "high") if p.get(k) is not None})
                if p.get("log"):
                    table["log"] = True
                if p.get("step") is not None:
                    table["step"] = p["step"]
            space[name] = table
        generate = {k: v for k, v in (record.get("generate") or {"enabled": False}).items()
                    if k in vars(defaults.generate)}
        data = {"study": study, "budget": {"per_trial": record.get("budget", str(defaults.budget)),
                                           "evals": record.get("evals", defaults.evals)},
                "fixed": record.get("fixed") or {}, "space": space, "generate": generate}
        spec = parse_study(data, path)
        spec.confirm = bool(record.get("confirm", defaults.confirm))
        spec.trials_subdir = record.get("trials_subdir", defaults.trials_subdir)
        return spec


class _Checker:
    """Collects the file name into every message so each error says where to look."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, message: str) -> None:
        raise HarnessError(f"{self.where}: {key}: {message}")

    def keys(self, table: dict, section: str, allowed: set[str]) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            self.fail(f"[{section}] {unknown[0]}", f"unknown key; allowed keys are {', '.join(sorted(allowed))}")

    def typed(self, table: dict, section: str, key: str, types: tuple, what: str, default=None):
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, bool) and bool not in types:
            self.fail(f"[{section}] {key}", f"must be {what}, got {value!r}")
        if not isinstance(value, types):
            self.fail(f"[{section}] {key}", f"must be {what}, got {value!r}")
        return value

    def choice(self, table: dict, section: str, key: str, allowed: tuple, default):
        value = self.typed(table, section, key, (str,), "a string", default)
        if value is not None and value not in allowed:
            self.fail(f"[{section}] {key}", f"{value!r} is not one of {', '.join(allowed)}")
        return value


def load_study(path: str | Path) -> StudySpec:
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"study file {str(path)!r} does not exist; see studies/ for examples")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise HarnessError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise HarnessError(f"{path}: not a UTF-8 text file") from None
    return parse_study(data, path)


def parse_study(data: dict, path: Path | None = None) -> StudySpec:
    c = _Checker(str(path) if path else "<study>")
    c.keys(data, "top level", {"study", "budget", "fixed", "space", "generate"})
    study = data.get("study", {})
    if not isinstance(study, dict):
        c.fail("[study]", "must be a table")
    c.keys(study, "study", {
        "name", "question", "corpus", "lowercase", "split", "encoding", "trials", "timeout", "seed", "sampler",
        "pruner", "objective", "second_objective", "device", "max_consecutive_failures", "precision",
    })
    name = c.typed(study, "study", "name", (str,), "a string", path.stem if path else "study")
    if not name or any(ch in name for ch in "/\\") or name.startswith("."):
        c.fail("[study] name", f"{name!r} must be a plain name usable as a directory")
    split = c.typed(study, "study", "split", (list,), "a list of three fractions", list(DEFAULT_SPLIT))
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in split):
        c.fail("[study] split", f"must be three numbers, got {split!r}")
    try:
        check_split(tuple(float(x) for x in split))
    except HarnessError as e:
        c.fail("[study] split", str(e))
    spec = StudySpec(path=path, name=name)  # its field defaults are the only defaults
    options = CorpusOptions()
    _read_study_table(c, study, spec, options, split)
    _read_budget(c, data.get("budget", {}), spec)
    fixed = data.get("fixed", {})
    c.keys(fixed, "fixed", TRAIN_KEYS)
    space = data.get("space", {})
    c.keys(space, "space", TRAIN_KEYS)
    for key in sorted(set(fixed) & set(space)):
        c.fail(f"[space.{key}]", "is also set in [fixed]; a setting is either fixed or searched, not both")
    spec.fixed = dict(fixed)
    for key, table in space.items():
        spec.space[key] = _parse_param(c, key, table)
    if spec.sampler == "grid":
        for p in spec.space.values():
            if p.kind == "float":
                c.fail(f"[space.{p.name}]", "the grid sampler needs a finite grid: use type = \"categorical\" with "
                                            "choices, or an int range")
    if spec.sampler in ("gp", "cmaes"):
        spec.notes.append(
            f"sampler {spec.sampler} learns only from complete trials, so configurations that ran out of memory "
            f"or diverged are not avoided later (Optuna's TPE learns from them as infeasible); use sampler = "
            f"\"tpe\" if the space has such regions")
    if spec.sampler == "cmaes" and spec.multi_objective:
        c.fail("[study] sampler", "cmaes handles one objective; use tpe or random with second_objective")
    if spec.sampler == "grid":  # a grid is done when every point has run once
        spec.trials = grid_size(spec) if "trials" not in study else min(spec.trials, grid_size(spec))
    _check_values(c, spec)

    spec.generate = _read_generate(c, data.get("generate", {}))
    return spec


def _read_study_table(c: _Checker, study: dict, spec: StudySpec, options: CorpusOptions, split: list) -> None:
    """[study]: every key checked against its type and allowed values; the spec's own fields are the defaults."""
    d = spec
    spec.question = c.typed(study, "study", "question", (str,), "a string", d.question)
    spec.corpus = c.typed(study, "study", "corpus", (str,), "a corpus spec string", d.corpus)
    spec.corpus_options = CorpusOptions(
        lowercase=c.typed(study, "study", "lowercase", (bool,), "true or false", options.lowercase),
        split=tuple(float(x) for x in split),
        encoding=c.typed(study, "study", "encoding", (str,), "an encoding name", options.encoding),
    )
    trials = c.typed(study, "study", "trials", (int,), "a whole number", d.trials)
    if trials is not None and trials < 1:
        c.fail("[study] trials", f"must be at least 1, got {trials}")
    spec.trials = trials
    timeout = c.typed(study, "study", "timeout", (str, int, float), "a duration such as 8h or 30m", None)
    if timeout is not None:
        try:
            spec.timeout = parse_duration(str(timeout), "timeout")
        except HarnessError as e:
            c.fail("[study] timeout", str(e))
    spec.seed = c.typed(study, "study", "seed", (int,), "a whole number", d.seed)
    spec.sampler = c.choice(study, "study", "sampler", SAMPLERS, d.sampler)
    spec.pruner = c.choice(study, "study", "pruner", PRUNERS, d.pruner)
    spec.objective = c.choice(study, "study", "objective", OBJECTIVES, d.objective)
    spec.second_objective = c.choice(study, "study", "second_objective", SECOND_OBJECTIVES, d.second_objective)
    spec.device = c.typed(study, "study", "device", (str,), "auto, cpu or cuda", d.device)
    spec.precision = c.choice(study, "study", "precision", PRECISION_MODES, d.precision)
    spec.max_consecutive_failures = c.typed(study, "study", "max_consecutive_failures", (int,), "a whole number",
                                           d.max_consecutive_failures)
    if spec.max_consecutive_failures < 1:
        c.fail("[study] max_consecutive_failures", "must be at least 1")


def _read_budget(c: _Checker, budget: dict, spec: StudySpec) -> None:
    d = spec
    c.keys(budget, "budget", {"per_trial", "evals"})
    per_trial = c.typed(budget, "budget", "per_trial", (str,), "a budget such as 60s, 500k or 2ep", str(d.budget))
    try:
        spec.budget = Budget.parse(per_trial)
    except HarnessError as e:
        c.fail("[budget] per_trial", str(e))
    spec.evals = c.typed(budget, "budget", "evals", (int,), "a whole number", d.evals)
    if spec.evals < 1:
        c.fail("[budget] evals", "must be at least 1")


def _read_generate(c: _Checker, gen: dict) -> GenerateSpec:
    c.keys(gen, "generate", {"prompt", "temperatures", "length", "samples", "enabled"})
    g = GenerateSpec()
    g.prompt = c.typed(gen, "generate", "prompt", (str,), "a string", g.prompt)
    temps = c.typed(gen, "generate", "temperatures", (list,), "a list of numbers", g.temperatures)
    if not temps or not all(isinstance(t, int | float) and not isinstance(t, bool) and t >= 0 for t in temps):
        c.fail("[generate] temperatures", f"must be a non-empty list of numbers >= 0, got {temps!r}")
    g.temperatures = [float(t) for t in temps]
    g.length = c.typed(gen, "generate", "length", (int,), "a whole number", g.length)
    g.samples = c.typed(gen, "generate", "samples", (int,), "a whole number", g.samples)
    g.enabled = c.typed(gen, "generate", "enabled", (bool,), "true or false", g.enabled)
    if g.length < 1 or g.samples < 1:
        c.fail("[generate] length/samples", "must be at least 1")
    if not g.prompt:
        c.fail("[generate] prompt", "must not be empty")
    return g


def _parse_param(c: _Checker, key: str, table: Any) -> Param:
    section = f"space.{key}"
    if not isinstance(table, dict):
        c.fail(f"[{section}]", "must be a table with type = \"int\" | \"float\" | \"categorical\"")
    kind = table.get("type")
    allowed = {"int": {"type", "low", "high", "log", "step"}, "float": {"type", "low", "high", "log", "step"},
               "categorical": {"type", "choices"}}
    if kind not in allowed:
        c.fail(f"[{section}] type", f"must be \"int\", \"float\" or \"categorical\", got {kind!r}")
    c.keys(table, section, allowed[kind])
    if kind == "categorical":
        choices = table.get("choices")
        if not isinstance(choices, list) or not choices:
            c.fail(f"[{section}] choices", "must be a non-empty list")
        if len({repr(x) for x in choices}) != len(choices):
            c.fail(f"[{section}] choices", f"has duplicates: {choices!r}")
        return Param(key, kind, choices=list(choices))
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
    return Param(key, kind, low=low, high=high, log=log, step=step)


def _check_values(c: _Checker, spec: StudySpec) -> None:
    """Every corner of the space must be a valid training config, so no trial fails on a typo'd range."""
    corners: list[dict] = [{}]
    for p in spec.space.values():
        values = p.choices if p.kind == "categorical" else [p.low, p.high]
        corners = [dict(corner, **{p.name: v}) for corner in corners for v in values][:256]
    for corner in corners:
        values = {**spec.fixed, **corner}
        bad_type = next((k for k, v in values.items() if k in INT_PARAMS and
                         (isinstance(v, bool) or not isinstance(v, int))), None)
        if bad_type:
            where = f"[space.{bad_type}]" if bad_type in corner else f"[fixed] {bad_type}"
            c.fail(where, f"must be a whole number, got {values[bad_type]!r}")
        try:
            TrainConfig(**values).validate()
        except (HarnessError, TypeError) as e:
            culprit = next((k for k in values if k in str(e)), None)
            where = f"[space.{culprit}]" if culprit in corner else f"[fixed] {culprit}" if culprit else "[fixed]/[space]"
            c.fail(where, str(e))
    for key, value in spec.fixed.items():
        if isinstance(value, float) and not math.isfinite(value):
            c.fail(f"[fixed] {key}", f"must be finite, got {value}")


def grid_size(spec: StudySpec) -> int:
    size = 1
    for p in spec.space.values():
        size *= len(p.choices) if p.kind == "categorical" else len(grid_values(p))
    return size


def grid_values(p: Param) -> list:
    if p.kind == "categorical":
        return list(p.choices)
    step = int(p.step or 1)
    return list(range(int(p.low), int(p.high) + 1, step))
