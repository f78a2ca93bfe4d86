"""Where a study lives: Optuna's journal file beside the results (harness.search._journal), or Optuna's RDB storage.

`open_storage` picks one from a URL (or none: the journal in the results directory) and says in
the user's terms what is wrong with a database it cannot open. `RetryTrial` re-queues a trial
that died without finishing, and `trial_slot_lock` serialises "count the trials, then ask" between
workers so that a study never overshoots its plan.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from harness.common import DiskFullError, HarnessError, disk_full, first_line, interrupts
from harness.search._journal import (
    GRACE_PERIOD,
    HEARTBEAT_INTERVAL,
    JOURNAL_NAME,
    HeartbeatJournalStorage,
    JournalFileOpenLock,
    SafeJournalFileBackend,
    note_torn,
    repair_journal,
)
from harness.search._optuna import quiet

CRASHES_KEY = "harness:crash_retries"
MAX_CRASH_RETRIES = 1
# what a confirmation run or a PBT segment is (harness.search._pbt), not what it did
KEEP_ON_RETRY = ("source_trial", "seed", "source_val_bpc", "schedule", "pbt")


class RetryTrial:
    """Re-queue a trial that died without finishing, starting clean.

    The retry gets the dead trial's parameters, Optuna's own links (`failed_trial`,
    `retry_history`, so Optuna's tools see a retry), a visible `retry_of` user attribute and, for a
    confirmation run, which configuration and seed it is (`KEEP_ON_RETRY`); nothing else of the dead trial's record (its curve, reason, figures or heartbeat). A trial
    whose worker crashed is retried `MAX_CRASH_RETRIES` times (a configuration that kills its
    worker every time must not stop the night); an interrupted one is retried every time, since
    the stop was the user's, not the configuration's.
    """

    def __call__(self, study: optuna.Study, trial: FrozenTrial, interrupted: bool = False) -> int | None:
        crashes = trial.system_attrs.get(CRASHES_KEY, 0) + (0 if interrupted else 1)
        if crashes > MAX_CRASH_RETRIES:
            return None
        system_attrs = {
            "failed_trial": trial.system_attrs.get("failed_trial", trial.number),
            "retry_history": [*trial.system_attrs.get("retry_history", []), trial.number],
            CRASHES_KEY: crashes,
        }
        kept = {k: trial.user_attrs[k] for k in KEEP_ON_RETRY if k in trial.user_attrs}
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
            user_attrs={**kept, "retry_of": trial.number}, system_attrs=system_attrs,
        ))
        return trial.number

HEARTBEAT_ENV = "HARNESS_HEARTBEAT"  # "INTERVAL,GRACE" in seconds, e.g. "2,6" for drills; default 20,120


def heartbeat_settings() -> tuple[int, int]:
    """(interval, grace): how often a worker beats, and how long a silent worker is still trusted."""
    raw = os.environ.get(HEARTBEAT_ENV)
    if not raw:
        return HEARTBEAT_INTERVAL, GRACE_PERIOD
    parts = raw.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise HarnessError(f"{HEARTBEAT_ENV}={raw!r}: write INTERVAL,GRACE in whole seconds, e.g. 20,120")
    interval, grace = (int(p) for p in parts)
    if interval < 1 or grace <= interval:
        raise HarnessError(f"{HEARTBEAT_ENV}={raw!r}: the interval must be at least 1 s and the grace period longer "
                           f"than the interval, or live trials would be failed as stale")
    return interval, grace


def open_storage(results_dir: Path, url: str | None = None, repair: bool = False,
                 say: Callable[[str], None] | None = None) -> optuna.storages.BaseStorage:
    """The study's storage. `repair=True` (sweeps) cuts a torn journal tail; readers only mention it."""
    say = say or _stderr
    interval, grace = heartbeat_settings()
    if url is None:
        try:
            results_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HarnessError(f"results directory {str(results_dir)!r} cannot be created ({e.strerror}); "
                               f"pass --results with a writable directory") from None
        return _journal(results_dir / JOURNAL_NAME, interval, grace, repair, say)
    if url.startswith(("postgresql", "postgres:", "sqlite", "mysql")):
        return _rdb(url, interval, grace)
    if url.endswith(".journal") or url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HarnessError(f"storage {url!r}: cannot create {path.parent} ({e.strerror})") from None
        return _journal(path, interval, grace, repair, say)
    raise HarnessError(f"storage {url!r} is not understood; use postgresql://user@host/db, sqlite:///file.db or "
                       f"a path ending in .journal")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _journal(path: Path, interval: int, grace: int, repair: bool,
             say: Callable[[str], None]) -> HeartbeatJournalStorage:
    if repair:
        repair_journal(path, say)
    else:
        note_torn(path, say)
    try:
        backend = SafeJournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    except OSError as e:
        if disk_full(e):
            raise DiskFullError(path, e) from None
        raise HarnessError(f"journal {str(path)!r} cannot be opened ({e.strerror}); pass --results with a "
                           f"writable directory") from None
    return HeartbeatJournalStorage(backend, path.with_name(path.name + ".heartbeats"), interval=interval,
                                   grace=grace, stale_callback=RetryTrial())


def database_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean the maintained psycopg 3 driver, whatever SQLAlchemy's default."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _rdb(url: str, interval: int, grace: int) -> RDBStorage:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    real = database_url(url)
    try:
        parsed = make_url(real)
    except ArgumentError:
        raise HarnessError(f"storage {redact(url)!r} is not a database URL; write postgresql://user@host/db") from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        with quiet():  # heartbeat_interval is "experimental": said once here, not in every command's output
            return RDBStorage(real, heartbeat_interval=interval, grace_period=grace,
                              heartbeat_stale_trial_callback=RetryTrial(), engine_kwargs=_engine_kwargs(real))
    except ImportError as e:
        driver = "psycopg (3)" if "+psycopg" in real and "+psycopg2" not in real else e.name
        raise HarnessError(f"storage {shown} needs the database driver {driver}, which is not installed; run "
                           f"pip install 'harness[postgres]'") from None
    except Exception as e:  # SQLAlchemy raises many kinds for an unreachable or refused database
        raise HarnessError(_database_problem(parsed, shown, e)) from None


def _database_problem(parsed, shown: str, error: Exception) -> str:
    """What went wrong, in the user's terms: no server, a refused login, no such database."""
    text = " ".join(str(error).split())
    low = text.lower()
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    user = parsed.username or "(default user)"
    if "password authentication failed" in low or "authentication failed" in low or "no password supplied" in low:
        what = f"the server at {where} refused the login of user {user}; check the user and password"
    elif "does not exist" in low and "database" in low:
        what = f"the server at {where} has no database {parsed.database!r}; create it (createdb) or name another"
    elif "role" in low and "does not exist" in low:
        what = f"the server at {where} has no user {user}; create it or name another"
    elif any(s in low for s in ("connection refused", "could not connect", "connection failed", "timeout",
                                "could not translate host name", "name or service not known", "no route")):
        what = f"cannot reach a PostgreSQL server at {where} (as user {user}); check that it runs and accepts " \
               f"connections from this machine"
    else:
        what = first_line(text.split(" (Background on this error")[0])
    password = parsed.password
    if password:
        what = what.replace(str(password), "***")
    return f"cannot open storage {shown}: {what}"


def _engine_kwargs(url: str) -> dict:
    return {"pool_pre_ping": True} if url.startswith("postgresql") else {}


def redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url


@contextlib.contextmanager
def trial_slot_lock(storage, results_dir: Path, study_name: str) -> Iterator[None]:
    """Serialise "count the trials, then ask for one" between workers, so a study never overshoots its plan.

    On PostgreSQL a session advisory lock covers workers on every machine; elsewhere a file lock in
    the results directory covers the workers of this machine. Stop signals wait until it is released.
    """
    with interrupts.deferred():
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
