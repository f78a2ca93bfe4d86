"""Sweep-and-benchmark harness for character-level language models.

The package reads as the pipeline (README, "Layout"): harness.data -> harness.models ->
harness.training (measured by harness.measure) -> harness.search -> harness.report, with
harness.diagnostics beside them and harness.cli on top. The names below are what a notebook
needs; they load on first use, so `import harness` (and `harness --help`) stays fast.

    import harness
    spec = harness.load_study("studies/demo.toml")
    outcome = harness.run_sweep(spec, "results/demo", trials=4)
    frame = harness.trials_frame(harness.load_results(outcome))
    harness.build_report("results/demo")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # a study: read, run, open, judge
    "StudySpec": "harness.search", "load_study": "harness.search", "parse_study": "harness.search",
    "SweepOutcome": "harness.search",
    "run_sweep": "harness._api", "load_results": "harness._api", "trials_frame": "harness._api",
    "build_report": "harness._api", "confirm": "harness._api", "forecast": "harness._api", "replay": "harness._api",
    # one configuration: train, evaluate, generate
    "TrainConfig": "harness.training", "Budget": "harness.training", "train": "harness.training",
    "Evaluations": "harness.training", "Observers": "harness.training",
    "load_checkpoint": "harness.training", "evaluate_checkpoint": "harness.training",
    "generate_and_score": "harness.training", "load_corpus": "harness.data", "CorpusOptions": "harness.data",
    # model families
    "Family": "harness.models", "CharModel": "harness.models", "register_family": "harness.models",
    "family_names": "harness.models",
    # errors
    "HarnessError": "harness.common",
}

__all__ = [  # the same names as _EXPORTS (tests/test_api.py checks)
    "Budget",
    "CharModel",
    "CorpusOptions",
    "Evaluations",
    "Family",
    "HarnessError",
    "Observers",
    "StudySpec",
    "SweepOutcome",
    "TrainConfig",
    "__version__",
    "build_report",
    "confirm",
    "evaluate_checkpoint",
    "family_names",
    "forecast",
    "generate_and_score",
    "load_checkpoint",
    "load_corpus",
    "load_results",
    "load_study",
    "parse_study",
    "register_family",
    "replay",
    "run_sweep",
    "train",
    "trials_frame",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from harness._api import build_report, confirm, forecast, load_results, replay, run_sweep, trials_frame
    from harness.common import HarnessError
    from harness.data import CorpusOptions, load_corpus
    from harness.models import CharModel, Family, family_names, register_family
    from harness.search import StudySpec, SweepOutcome, load_study, parse_study
    from harness.training import (
        Budget,
        Evaluations,
        Observers,
        TrainConfig,
        evaluate_checkpoint,
        generate_and_score,
        load_checkpoint,
        train,
    )
