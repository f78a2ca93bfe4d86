"""Finding a study from what the user has at hand: its study file, or the results directory a sweep wrote."""

from __future__ import annotations

from pathlib import Path

import optuna

from harness.common import HarnessError
from harness.search._journal import JOURNAL_NAME
from harness.search._options import SweepOptions
from harness.search._optuna import quiet
from harness.search._resume import SPEC_ATTR
from harness.search._spec import StudySpec, load_study
from harness.search._storage import open_storage
from harness.search._study import open_study, results_dir_for


def open_results(target: str | Path, results: str | Path | None = None,
                 storage: str | None = None) -> tuple[Path, optuna.Study]:
    """A study file or a results directory -> (its results directory, the Optuna study), read-only."""
    target = Path(target)
    if target.is_dir():
        if storage is None and not (target / JOURNAL_NAME).exists():
            raise HarnessError(f"{target} holds no {JOURNAL_NAME}; give the study's results directory or its TOML file")
        reader = open_storage(target, storage, say=lambda _: None)  # open_study below says what is to say
        with quiet():
            names = [s.study_name for s in optuna.get_all_study_summaries(reader)]
        if not names:
            raise HarnessError(f"no study in {storage or target}")
        sweeps = [n for n in names if not n.endswith("/confirm")] or names
        name = target.name if target.name in sweeps else sweeps[0]
        options = SweepOptions(results_dir=target, storage_url=storage)
        return target, open_study(StudySpec(path=None, name=name), options, create=False)
    spec = load_study(target)
    options = SweepOptions(results_dir=results_dir_for(spec, Path(results) if results else None), storage_url=storage)
    if storage is None and not (options.results_dir / JOURNAL_NAME).exists():
        raise HarnessError(f"study {spec.name!r} has no results in {options.results_dir} yet; run harness sweep "
                           f"{target} first (or pass --results / --storage as the sweep had them)")
    return options.results_dir, open_study(spec, options, create=False)


def study_spec_for(target: str | Path, results: str | Path | None = None,
                   storage: str | None = None) -> tuple[StudySpec, Path]:
    """(spec, results dir) of a study named by its TOML file or by its results directory (spec as stored)."""
    target = Path(target)
    if not target.is_dir():
        spec = load_study(target)
        return spec, results_dir_for(spec, Path(results) if results else None)
    _, study = open_results(target, results, storage)
    record = study.user_attrs.get(SPEC_ATTR)
    if not record:
        raise HarnessError(f"{target}: the study records no settings (run by an older harness); give its TOML file")
    return StudySpec.from_record(record), target
