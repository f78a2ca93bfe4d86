"""The package's shape holds: Optuna's private API in one module, every private name it uses still there,
modules and functions of a size one can read in a sitting."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import optuna
import pytest
from optuna.storages import fail_stale_trials
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import TrialState

from harness.search import _optuna as private
from harness.search import open_storage

ROOT = Path(__file__).resolve().parent.parent / "harness"
PRIVATE_ATTRS = {"_storage", "_study_id", "_trial_id", "_lock", "_file_path", "_rng", "_random_sampler"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def sources() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text())) for p in sorted(ROOT.rglob("*.py"))]


def test_optuna_private_api_is_used_in_one_module_only():
    offenders = []
    for path, tree in sources():
        if path.name == "_optuna.py":
            continue
        for node in ast.walk(tree):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module and module.startswith("optuna") and any(p.startswith("_") for p in module.split(".")):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}")
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRS:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} reads .{node.attr}")
    assert not offenders, "Optuna's private API outside harness/search/_optuna.py:\n" + "\n".join(offenders)


# One test per private name harness.search._optuna relies on: an Optuna upgrade that moves one fails here.

def test_private_sampler_streams_reseed_the_draws():
    """Two samplers seeded alike draw alike; reseeded with different trial numbers they draw apart, and a reseed
    with the same number draws the same again (TPE's startup draws come from its random sampler)."""
    import optuna

    from harness.search._optuna import reseed

    def draw(sampler, number):
        study = optuna.create_study(sampler=sampler)
        trial = study.ask()
        assert reseed(study.sampler, number)
        return trial.suggest_float("x", 0.0, 1.0)

    for make in (lambda: optuna.samplers.TPESampler(seed=0), lambda: optuna.samplers.RandomSampler(seed=0)):
        assert draw(make(), 1) == draw(make(), 1) != draw(make(), 2)
    assert not reseed(optuna.samplers.GridSampler({"x": [0.0]}), 1)

def test_private_base_heartbeat_is_the_interface_our_storage_implements(tmp_path):
    storage = open_storage(tmp_path)
    assert isinstance(storage, private.BaseHeartbeat)
    abstract = getattr(private.BaseHeartbeat, "__abstractmethods__", set())
    assert private.STALE_TRIAL_IDS in abstract and "record_heartbeat" in abstract


def test_private_stale_trial_ids_is_what_fail_stale_trials_asks(tmp_path, monkeypatch):
    storage = open_storage(tmp_path)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    monkeypatch.setattr(storage, private.STALE_TRIAL_IDS, lambda _study_id: [private.trial_id(trial)])
    fail_stale_trials(study)
    assert study.get_trials()[0].state == TrialState.FAIL


def test_private_heartbeat_thread_beats_for_a_trial(tmp_path):
    storage = open_storage(tmp_path)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    with private.get_heartbeat_thread(private.trial_id(trial), storage):
        pass
    beat = json.loads((storage.beats_dir / f"{private.trial_id(trial)}.json").read_text())
    assert beat["pid"] > 0


def test_private_journal_lock_and_path(tmp_path):
    path = tmp_path / "x.journal"
    backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    assert private.journal_path(backend) == str(path)
    lock = private.journal_lock(backend)
    with private.get_lock_file(lock):
        assert any(p.name.startswith("x.journal") and p != path for p in tmp_path.iterdir())  # the lock file


def test_private_study_and_trial_ids(tmp_path):
    storage = open_storage(tmp_path)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    assert private.storage_of(study) is storage
    assert isinstance(private.study_id(study), int)
    assert storage.get_trial(private.trial_id(trial)).number == trial.number
    frozen = study.get_trials()[0]
    assert private.trial_id(frozen) == private.trial_id(trial)


@pytest.mark.parametrize("path,tree", sources(), ids=lambda x: str(x.relative_to(ROOT)) if isinstance(x, Path) else "")
def test_modules_and_functions_fit_one_sitting(path, tree):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path} has {lines} lines; split it along a seam you can name"
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            doc = ast.get_docstring(node) or ""
            assert length <= MAX_FUNCTION_LINES or "Long because" in doc, (
                f"{path}:{node.lineno} {node.name} has {length} lines; split it, or say why in its docstring "
                f"(\"Long because ...\")")
