"""Every use of Optuna's private API, in one module: an Optuna release that moves one breaks here, and
tests/test_optuna_private.py says which.

Why each is needed (Optuna offers no public way):
- `BaseHeartbeat` and `get_heartbeat_thread`: our journal storage implements Optuna's heartbeat
  interface (as RDBStorage does), and the ask/tell loop beats the way `Study.optimize` does.
- `_get_stale_trial_ids` (a method of `BaseHeartbeat`): how `fail_stale_trials` asks a storage
  for its stale trials; our journal storage overrides it.
- `get_lock_file`, `JournalFileBackend._lock` and `._file_path`: the journal's own file lock and
  path, so a repair or an append holds the same lock as Optuna's writers.
- `Study._storage`, `Study._study_id`, `Trial._trial_id` / `FrozenTrial._trial_id`: the storage a
  study was opened on and the storage's ids, which the heartbeat and retry calls take.
- `RandomSampler._rng`, `TPESampler._rng` and `._random_sampler`: reseeded per trial number
  (`reseed`), so that processes started with the same study file (one per machine, or one per
  GPU) do not draw the same random configurations; `reseed_rng()` would draw a random seed.

And one public argument on its way out: TPESampler's `gamma` (deprecated in 4.9.0, to go in 6.0.0),
which `tpe_sampler` passes for `[study] good_fraction` and refuses, naming the key, where it is gone.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.storages._heartbeat import BaseHeartbeat, get_heartbeat_thread
from optuna.storages.journal._file import get_lock_file

from harness.common import HarnessError

STALE_TRIAL_IDS = "_get_stale_trial_ids"  # the BaseHeartbeat method a heartbeat storage implements


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    return study._storage


def study_id(study: optuna.Study) -> int:
    return study._study_id


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    return trial._trial_id


def journal_lock(backend: optuna.storages.journal.JournalFileBackend) -> Any:
    return backend._lock


def journal_path(backend: optuna.storages.journal.JournalFileBackend) -> str:
    return backend._file_path


def reseed(sampler: optuna.samplers.BaseSampler, seed: int) -> bool:
    """Seed a TPE or random sampler's random streams with `seed`; False for a sampler without them."""
    streams = [sampler]
    if isinstance(sampler, optuna.samplers.TPESampler):
        streams.append(sampler._random_sampler)
    elif not isinstance(sampler, optuna.samplers.RandomSampler):
        return False
    for s in streams:
        s._rng.rng.seed(seed % 2**32)
    return True


def tpe_sampler(**options: Any) -> optuna.samplers.TPESampler:
    """Optuna's TPESampler with these options. `gamma` (our `[study] good_fraction`) is one of the
    arguments Optuna deprecated in 4.9.0 for removal in 6.0.0 (optuna/optuna#6635). The harness says
    so itself, once, at the start of a sweep (the study's notes), so Optuna's FutureWarning, with its
    file path, is not printed by every worker; an Optuna without the argument is a HarnessError that
    names the key, not a TypeError from deep in a worker."""
    if "gamma" in options and "gamma" not in inspect.signature(optuna.samplers.TPESampler).parameters:
        raise HarnessError(f"[study] good_fraction sets TPE's gamma, which this Optuna ({optuna.__version__}) no "
                           f"longer takes (deprecated in 4.9.0, removed in 6.0.0); remove the key, and TPE models "
                           f"its default 10% of trials as good, or install 'optuna<6'")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`gamma` has been deprecated", category=FutureWarning)
        return optuna.samplers.TPESampler(**options)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Optuna's INFO logging and the warnings our use of it triggers, off for a block, then as they were.

    We drive the heartbeat from an ask/tell loop (Optuna warns it expects `Study.optimize`) and use
    experimental features (heartbeats, constraints). Scoped, so importing or calling the harness
    leaves the caller's warning filters and Optuna's verbosity as they were.
    """
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            yield
    finally:
        optuna.logging.set_verbosity(previous)


__all__ = [
    "STALE_TRIAL_IDS",
    "BaseHeartbeat",
    "get_heartbeat_thread",
    "get_lock_file",
    "journal_lock",
    "journal_path",
    "quiet",
    "storage_of",
    "study_id",
    "tpe_sampler",
    "trial_id",
]
