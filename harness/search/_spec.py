"""Study files (TOML): read with the standard library and validated whole before anything runs.

Every mistake names the file, the key and what is allowed, and nothing starts. See
`studies/demo.toml` for a commented example of every section.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.common import HarnessError
from harness.data import DEFAULT_SPEC, DEFAULT_SPLIT, CorpusOptions, check_split
from harness.search._checker import Checker
from harness.search._pbt_spec import PbtSettings, read_pbt
from harness.search._space import Param, Settings, check_values, grid_size, read_settings
from harness.training import (
    EVAL_SPACINGS,
    PRECISION_MODES,
    Budget,
    GenerateSpec,
    eval_fractions,
    parse_duration,
)

if TYPE_CHECKING:
    from harness.data import Corpus

SAMPLERS = ("tpe", "random", "grid", "gp", "cmaes", "pbt")
PRUNERS = ("hyperband", "asha", "median", "none")
RUNG_PRUNERS = ("hyperband", "asha")  # the two that read [pruner]
OBJECTIVES = ("bpc",)
SECOND_OBJECTIVES = ("device_seconds", "energy_j")


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
    startup_trials: int | None = None  # TPE's random start-up; None: a third of the trials, 3 to 10
    good_fraction: float | None = None  # the share of trials TPE models as good; None: Optuna's 10%
    pruner: str = "hyperband"
    objective: str = "bpc"
    second_objective: str | None = None
    device: str = "auto"
    max_consecutive_failures: int = 5
    precision: str = "auto"
    budget: Budget = field(default_factory=lambda: Budget("seconds", 60.0))
    evals: int = 8
    eval_spacing: str = "even"  # [budget] eval_spacing: "even" or "geometric" (harness.training.eval_fractions)
    patience: int = 0  # [budget] patience: evaluations without improvement before a trial stops; 0 is off
    # [pruner]: where the rungs of hyperband and asha are (harness.search._pruning says what each stopped)
    pruner_min_resource: int = 1  # the evaluation of the first rung: no trial is stopped before it
    pruner_reduction_factor: int = 3  # each rung keeps the best 1 in this many of the trials that reach it
    pruner_bootstrap_count: int = 0  # Optuna's: a rung stops the first this many trials that reach it
    pruner_bootstrap_at: str = "every_rung"  # or "first_rung": later rungs judge a trial already compared
    pruner_startup_to_first_rung: bool = False  # TPE's random start-up draws stop at the first rung
    pbt: PbtSettings | None = None  # [pbt], for sampler = "pbt" (harness.search._pbt)
    fixed: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Param] = field(default_factory=dict)  # keyed by Param.optuna_name
    family_fixed: dict[str, dict[str, Any]] = field(default_factory=dict)  # [fixed.<family>]
    generate: GenerateSpec = field(default_factory=GenerateSpec)
    question: str = ""
    notes: list[str] = field(default_factory=list)  # said at the start of a sweep, not errors
    confirm: bool = False  # a `harness confirm` study: seeds from each trial, test-split objective
    trials_subdir: str = "trials"  # where each trial's files go, under the results directory

    @property
    def multi_objective(self) -> bool:
        return self.second_objective is not None

    def pruner_step(self, index: int) -> int:
        """The step evaluation `index` is reported to the pruner at: its resource, the same unit for every
        trial. Even spacing keeps the evaluation's number (what studies have always reported); geometric
        spacing reports the budget's share in thousandths, so Hyperband's rungs are shares of the budget
        and not evaluation counts that stand for ever-larger shares."""
        if self.eval_spacing == "even":
            return index
        return round(1000 * eval_fractions(self.evals, self.eval_spacing)[index - 1])

    def settings(self) -> Settings:
        """[fixed], [fixed.<family>] and [space], as the space's readers and checks take them."""
        return Settings(self.fixed, self.family_fixed, self.space)

    def families(self) -> list[str]:
        return self.settings().families()

    def values_for(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.settings().values_for(params)

    def largest(self, name: str) -> int:
        return self.settings().largest(name)

    def to_record(self, corpus: Corpus | None = None) -> dict[str, Any]:
        """Everything that defines the study, JSON-safe: what the study stores (`harness:spec`), what a
        resume compares (harness.search._resume), and what a worker process is started from."""
        o = self.corpus_options
        record = {
            "name": self.name, "corpus": self.corpus, "trials": self.trials, "timeout": self.timeout,
            "seed": self.seed, "sampler": self.sampler, "startup_trials": self.startup_trials,
            "good_fraction": self.good_fraction, "pruner": self.pruner,
            "objective": self.objective,
            "second_objective": self.second_objective, "budget": str(self.budget), "evals": self.evals,
            "eval_spacing": self.eval_spacing, "patience": self.patience,
            "pruner_min_resource": self.pruner_min_resource, "pruner_reduction_factor": self.pruner_reduction_factor,
            "pruner_bootstrap_count": self.pruner_bootstrap_count, "pruner_bootstrap_at": self.pruner_bootstrap_at,
            "pruner_startup_to_first_rung": self.pruner_startup_to_first_rung,
            "precision": self.precision, "fixed": dict(self.fixed), "space": {k: vars(p).copy() for k, p in self.space.items()},
            "family_fixed": {k: dict(v) for k, v in self.family_fixed.items()},
            "question": self.question, "lowercase": o.lowercase, "split": list(o.split), "encoding": o.encoding,
            "max_chars": o.max_chars,
            "device": self.device, "max_consecutive_failures": self.max_consecutive_failures,
            "generate": vars(self.generate).copy(), "confirm": self.confirm, "trials_subdir": self.trials_subdir,
            "pbt": self.pbt.to_record() if self.pbt else None,
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
        study = {k: record[k] for k in ("name", "corpus", "lowercase", "split", "encoding", "max_chars", "seed", "sampler",
                                        "pruner", "objective", "device", "precision", "question",
                                        "max_consecutive_failures", "second_objective", "trials", "startup_trials",
                                        "good_fraction")
                 if record.get(k) is not None}
        if record.get("timeout") is not None:
            study["timeout"] = f"{record['timeout']}s"
        space: dict[str, Any] = {}
        for p in (record.get("space") or {}).values():
            table = {"type": p["kind"]}
            if p["kind"] == "categorical":
                table["choices"] = p["choices"]
                if p.get("balanced"):
                    table["balanced"] = True
            else:
                table.update({k: p[k] for k in ("low", "high") if p.get(k) is not None})
                if p.get("log"):
                    table["log"] = True
                if p.get("step") is not None:
                    table["step"] = p["step"]
            (space.setdefault(p["family"], {}) if p.get("family") else space)[p["name"]] = table
        generate = {k: v for k, v in (record.get("generate") or {"enabled": False}).items()
                    if k in vars(defaults.generate)}
        data = {"study": study, "budget": {"per_trial": record.get("budget", str(defaults.budget)),
                                           "evals": record.get("evals", defaults.evals),
                                           "eval_spacing": record.get("eval_spacing", defaults.eval_spacing),
                                           "patience": record.get("patience", defaults.patience)},
                "fixed": {**(record.get("fixed") or {}), **(record.get("family_fixed") or {})}, "space": space,
                "generate": generate}
        if record.get("pbt"):
            data["pbt"] = dict(record["pbt"])
            data["budget"].pop("evals")  # a segment evaluates once; the record's 1 is not the user's
        if record.get("pruner", defaults.pruner) in RUNG_PRUNERS:
            data["pruner"] = {key: record.get(f"pruner_{key}", getattr(defaults, f"pruner_{key}")) for key in PRUNER_KEYS}
        spec = parse_study(data, path)
        spec.confirm = bool(record.get("confirm", defaults.confirm))
        spec.trials_subdir = record.get("trials_subdir", defaults.trials_subdir)
        return spec


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
    c = Checker(str(path) if path else "<study>")
    c.keys(data, "top level", {"study", "budget", "pruner", "pbt", "fixed", "space", "generate"})
    study = data.get("study", {})
    if not isinstance(study, dict):
        c.fail("[study]", "must be a table")
    c.keys(study, "study", {
        "name", "question", "corpus", "lowercase", "split", "encoding", "max_chars", "trials", "timeout", "seed", "sampler",
        "pruner", "objective", "second_objective", "device", "max_consecutive_failures", "precision", "startup_trials",
        "good_fraction",
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
    _read_pruner(c, data.get("pruner", {}), spec)
    settings = read_settings(c, data.get("fixed", {}), data.get("space", {}))
    spec.fixed, spec.family_fixed, spec.space = settings.fixed, settings.family_fixed, settings.space
    if spec.sampler == "grid":
        for p in spec.space.values():
            if p.family is not None:
                c.fail(f"[space.{p.family}.{p.name}]", "the grid sampler needs one grid for every trial; per-family "
                                                        "spaces need sampler = \"tpe\" or \"random\"")
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
    check_values(c, settings)
    spec.pbt = read_pbt(c, data.get("pbt", {}), spec.sampler, spec.budget.kind, spec.budget.amount, spec.space)
    if spec.pbt is not None:
        _pbt_study(c, spec, study, data.get("budget", {}))

    spec.generate = _read_generate(c, data.get("generate", {}))
    return spec


def _pbt_study(c: Checker, spec: StudySpec, study: dict, budget: dict) -> None:
    """What sampler = "pbt" decides for the study: the segment count, no pruner (exploitation replaces
    it), one evaluation per segment; a file that sets these otherwise is refused, not overridden."""
    pbt = spec.pbt
    if "trials" in study and study["trials"] != pbt.segments:
        c.fail("[study] trials", f"a pbt study runs population x generations = {pbt.population} x {pbt.generations} = "
                                 f"{pbt.segments} segments; remove trials (or set it to {pbt.segments})")
    if "pruner" in study and spec.pruner != "none":
        c.fail("[study] pruner", "a pbt study has no pruner: its worst members copy its best after every generation; "
                                 "remove pruner (or write \"none\")")
    if "evals" in budget and budget["evals"] != 1:
        c.fail("[budget] evals", "a pbt segment evaluates once, at its end; [pbt] interval sets how often: remove evals")
    if budget.get("patience"):
        c.fail("[budget] patience", "a pbt segment evaluates once, so patience cannot act; remove it")
    if spec.multi_objective:
        c.fail("[study] second_objective", "pbt ranks members by one figure, held-out bpc; remove second_objective")
    if any(p.family is not None for p in spec.space.values()):
        c.fail("[space]", "pbt copies weights between members of one shape family; per-family spaces need "
                          "sampler = \"tpe\" or \"random\"")
    spec.trials, spec.pruner, spec.evals, spec.patience = pbt.segments, "none", 1, 0


def _read_study_table(c: Checker, study: dict, spec: StudySpec, options: CorpusOptions, split: list) -> None:
    """[study]: every key checked against its type and allowed values; the spec's own fields are the defaults."""
    d = spec
    spec.question = c.typed(study, "study", "question", (str,), "a string", d.question)
    spec.corpus = c.typed(study, "study", "corpus", (str,), "a corpus spec string", d.corpus)
    spec.corpus_options = CorpusOptions(
        lowercase=c.typed(study, "study", "lowercase", (bool,), "true or false", options.lowercase),
        split=tuple(float(x) for x in split),
        encoding=c.typed(study, "study", "encoding", (str,), "an encoding name", options.encoding),
        max_chars=c.typed(study, "study", "max_chars", (int,), "a whole number of characters", options.max_chars),
    )
    if spec.corpus_options.max_chars is not None and spec.corpus_options.max_chars < 1000:
        c.fail("[study] max_chars", f"must be at least 1000 characters, got {spec.corpus_options.max_chars}")
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
    spec.startup_trials = c.typed(study, "study", "startup_trials", (int,), "a whole number of trials", d.startup_trials)
    if spec.startup_trials is not None and (spec.startup_trials < 1 or spec.sampler != "tpe"):
        c.fail("[study] startup_trials", "is TPE's random start-up, at least 1 trial, for sampler = \"tpe\"; got "
                                         f"{spec.startup_trials} with sampler = {spec.sampler!r}")
    spec.good_fraction = c.typed(study, "study", "good_fraction", (int, float), "a fraction such as 0.25",
                                 d.good_fraction)
    if spec.good_fraction is not None and (not 0 < spec.good_fraction < 1 or spec.sampler != "tpe"):
        c.fail("[study] good_fraction", "is the share of trials TPE models as good, between 0 and 1, for "
                                        f"sampler = \"tpe\"; got {spec.good_fraction} with sampler = {spec.sampler!r}")
    if spec.good_fraction is not None:
        spec.notes.append("[study] good_fraction sets TPE's gamma, which Optuna deprecated in 4.9.0 and will remove in "
                          "6.0.0; without the key TPE models its default 10% of trials as good")
    spec.pruner = c.choice(study, "study", "pruner", PRUNERS, d.pruner)
    spec.objective = c.choice(study, "study", "objective", OBJECTIVES, d.objective)
    spec.second_objective = c.choice(study, "study", "second_objective", SECOND_OBJECTIVES, d.second_objective)
    spec.device = c.typed(study, "study", "device", (str,), "auto, cpu or cuda", d.device)
    spec.precision = c.choice(study, "study", "precision", PRECISION_MODES, d.precision)
    spec.max_consecutive_failures = c.typed(study, "study", "max_consecutive_failures", (int,), "a whole number",
                                           d.max_consecutive_failures)
    if spec.max_consecutive_failures < 1:
        c.fail("[study] max_consecutive_failures", "must be at least 1")


def _read_budget(c: Checker, budget: dict, spec: StudySpec) -> None:
    d = spec
    c.keys(budget, "budget", {"per_trial", "evals", "eval_spacing", "patience"})
    per_trial = c.typed(budget, "budget", "per_trial", (str,), "a budget such as 60s, 500k or 2ep", str(d.budget))
    try:
        spec.budget = Budget.parse(per_trial)
    except HarnessError as e:
        c.fail("[budget] per_trial", str(e))
    spec.evals = c.typed(budget, "budget", "evals", (int,), "a whole number", d.evals)
    if spec.evals < 1:
        c.fail("[budget] evals", "must be at least 1")
    spec.eval_spacing = c.choice(budget, "budget", "eval_spacing", EVAL_SPACINGS, d.eval_spacing)
    spec.patience = c.typed(budget, "budget", "patience", (int,), "a whole number of evaluations", d.patience)
    if not spec.patience >= 0:
        c.fail("[budget] patience", f"must be 0 (off) or a number of evaluations, got {spec.patience}")
    if spec.patience >= spec.evals > 1:
        c.fail("[budget] patience", f"{spec.patience} can never run out with evals = {spec.evals}; use fewer "
                                    f"than evals, or 0 to turn it off")


PRUNER_KEYS = ("min_resource", "reduction_factor", "bootstrap_count", "bootstrap_at", "startup_to_first_rung")
BOOTSTRAP_AT = ("every_rung", "first_rung")


def _read_pruner(c: Checker, table: dict, spec: StudySpec) -> None:
    """[pruner]: the rungs of hyperband and asha. A key the chosen pruner would not read is refused, so a
    file never looks as if it tuned a pruner it does not use."""
    if not isinstance(table, dict):
        c.fail("[pruner]", "must be a table")
    c.keys(table, "pruner", set(PRUNER_KEYS))
    if table and spec.pruner not in RUNG_PRUNERS:
        c.fail(f"[pruner] {next(iter(table))}", f"pruner = \"{spec.pruner}\" has no rungs to set; these keys are for "
                                                f"pruner = \"asha\" or \"hyperband\"")
    d = spec
    spec.pruner_min_resource = c.typed(table, "pruner", "min_resource", (int,), "an evaluation number",
                                       d.pruner_min_resource)
    if not 1 <= spec.pruner_min_resource <= spec.evals:
        c.fail("[pruner] min_resource", f"is the evaluation of the first rung, 1 to evals ({spec.evals}); got "
                                        f"{spec.pruner_min_resource}")
    spec.pruner_reduction_factor = c.typed(table, "pruner", "reduction_factor", (int,), "a whole number",
                                           d.pruner_reduction_factor)
    if spec.pruner_reduction_factor < 2:
        c.fail("[pruner] reduction_factor", f"must be at least 2 (a rung keeps 1 in this many), got "
                                            f"{spec.pruner_reduction_factor}")
    spec.pruner_bootstrap_count = c.typed(table, "pruner", "bootstrap_count", (int,), "a whole number of trials",
                                          d.pruner_bootstrap_count)
    if spec.pruner_bootstrap_count < 0:
        c.fail("[pruner] bootstrap_count", f"must be 0 or more trials, got {spec.pruner_bootstrap_count}")
    spec.pruner_bootstrap_at = c.choice(table, "pruner", "bootstrap_at", BOOTSTRAP_AT, d.pruner_bootstrap_at)
    if spec.pruner_bootstrap_at == "first_rung" and spec.pruner != "asha":
        c.fail("[pruner] bootstrap_at", "\"first_rung\" is for pruner = \"asha\" (Hyperband's brackets each have "
                                        "their own first rung); remove the key or set pruner = \"asha\"")
    spec.pruner_startup_to_first_rung = c.typed(table, "pruner", "startup_to_first_rung", (bool,), "true or false",
                                                d.pruner_startup_to_first_rung)
    if spec.pruner_startup_to_first_rung and spec.sampler != "tpe":
        c.fail("[pruner] startup_to_first_rung", f"stops TPE's random start-up draws; sampler = \"{spec.sampler}\" "
                                                 f"has no start-up phase. Remove the key or set sampler = \"tpe\"")


def _read_generate(c: Checker, gen: dict) -> GenerateSpec:
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
