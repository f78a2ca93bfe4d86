"""Where a study lives: Optuna's journal file beside the results, or Optuna's RDB storage (PostgreSQL).

Both get Optuna's own heartbeat mechanism, so a worker that died (kill -9, power loss) leaves a
RUNNING trial that the next worker marks FAILED and re-queues once with
`RetryHeartbeatStaleTrialCallback`. RDBStorage has heartbeats built in; for the journal we add
them through Optuna's `BaseHeartbeat` interface: each running trial's worker writes its host,
pid and the time into a trial system attribute every `interval` seconds, and a trial is stale
when its worker's process is gone (same host) or its heartbeat is older than the grace period.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

from harness.errors import HarnessError

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

HEARTBEAT_INTERVAL = 20
GRACE_PERIOD = 120
HEARTBEAT_KEY = "harness:heartbeat"
JOURNAL_NAME = "study.journal"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage plus Optuna's heartbeat interface, for dead-worker detection on one file."""

    def __init__(self, backend, interval: int = HEARTBEAT_INTERVAL, grace: int = GRACE_PERIOD,
                 stale_callback: Callable | None = None):
        super().__init__(backend)
        self.interval, self.grace, self.stale_callback = interval, grace, stale_callback
        self.host = socket.gethostname()

    def record_heartbeat(self, trial_id: int) -> None:
        beat = {"host": self.host, "pid": os.getpid(), "time": time.time()}
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, HEARTBEAT_KEY, beat)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            started = trial.datetime_start.timestamp() if trial.datetime_start else now
            beat = trial.system_attrs.get(HEARTBEAT_KEY)
            if beat is None or beat["time"] < started:
                # No beat of this run yet (a retried trial inherits its predecessor's): judge by start time.
                if now - started > self.grace:
                    stale.append(trial._trial_id)
                continue
            dead = beat["host"] == self.host and beat["pid"] != os.getpid() and not pid_alive(beat["pid"])
            if dead or now - beat["time"] > self.grace:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.stale_callback


def open_storage(results_dir: Path, url: str | None = None, grace: int = GRACE_PERIOD) -> optuna.storages.BaseStorage:
    retry = RetryHeartbeatStaleTrialCallback(max_retry=1)
    if url is None:
        try:
            results_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HarnessError(f"results directory {str(results_dir)!r} cannot be created ({e.strerror}); "
                               f"pass --results with a writable directory") from None
        path = results_dir / JOURNAL_NAME
        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        return HeartbeatJournalStorage(backend, grace=grace, stale_callback=retry)
    if url.startswith(("postgresql", "sqlite", "mysql")):
        try:
            return RDBStorage(url, heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=grace,
                              heartbeat_stale_trial_callback=retry, engine_kwargs=_engine_kwargs(url))
        except ImportError as e:
            raise HarnessError(f"storage {url!r} needs a database driver ({e.name}); for PostgreSQL run "
                               f"pip install 'harness[postgres]' (psycopg2-binary)") from None
        except Exception as e:  # SQLAlchemy raises many kinds for an unreachable or refused database
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise HarnessError(f"cannot open storage {_redact(url)}: {first}") from None
    if url.endswith(".journal") or url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        return HeartbeatJournalStorage(backend, grace=grace, stale_callback=retry)
    raise HarnessError(f"storage {url!r} is not understood; use postgresql://user@host/db, sqlite:///file.db or "
                       f"a path ending in .journal")


def _engine_kwargs(url: str) -> dict:
    return {"pool_pre_ping": True} if url.startswith("postgresql") else {}


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url


@contextlib.contextmanager
def trial_slot_lock(storage, results_dir: Path, study_name: str) -> Iterator[None]:
    """Serialise "count the trials, then ask for one" between workers, so a study never overshoots its plan.

    On PostgreSQL a transaction-scoped advisory lock covers workers on every machine; elsewhere a
    file lock in the results directory covers the workers of this machine.
    """
    if isinstance(storage, RDBStorage) and storage.engine.dialect.name == "postgresql":
        from sqlalchemy import text

        key = int.from_bytes(study_name.encode()[:8].ljust(8, b"\0"), "big") & 0x7FFFFFFFFFFFFFFF
        with storage.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    results_dir.mkdir(parents=True, exist_ok=True)
    with open(results_dir / ".trial-slot.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
