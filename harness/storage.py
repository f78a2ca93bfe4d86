"""Where a study lives: Optuna's journal file beside the results, or Optuna's RDB storage (PostgreSQL).

The journal is made to survive a night:

- a torn last line (power loss, full disk) is cut off when a sweep opens the journal, after a
  copy of the whole file is kept beside it; `status` and `report` only say so, and never write;
- every append holds back Ctrl-C/SIGTERM until the line is whole (`interrupts.deferred`), and a
  failed append (disk full) is cut back to the last whole line before the error is raised;
- heartbeats live beside the journal (`study.journal.heartbeats/`), not in the trials, as
  Optuna's RDB storage keeps them in a table of their own: a trial's visible record (and
  `study.trials_dataframe()`) holds only what the trial did.

A trial is stale when the worker that beat for it is gone (same host, process dead) or its last
beat is older than the grace period. A RUNNING trial that never beat is not failed as stale, as
in Optuna's RDB storage: it belongs to another tool sharing the journal. The one exception is a
trial asked for by one of our workers that died before its first beat, which its claim (written
before every ask, see `claim`) identifies.

Stale and interrupted trials are re-queued by `RetryTrial`, which starts the retry clean (params
and a link to the dead trial only) instead of copying the dead trial's record as Optuna's
`RetryHeartbeatStaleTrialCallback` does.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.storages.journal._file import get_lock_file
from optuna.trial import FrozenTrial, TrialState

from harness import interrupts
from harness.errors import HarnessError

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

HEARTBEAT_INTERVAL = 20
GRACE_PERIOD = 120
HEARTBEAT_KEY = "harness:heartbeat"  # journals written before heartbeats moved beside the journal
CRASHES_KEY = "harness:crash_retries"
MAX_CRASH_RETRIES = 1
KEEP_ON_RETRY = ("source_trial", "seed", "source_val_bpc")  # what a confirmation run is, not what it did
JOURNAL_NAME = "study.journal"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFullError(HarnessError):
    """A write failed for lack of space; the sweep stops, and resuming later loses nothing finished."""

    exit_code = 4

    def __init__(self, path: str | os.PathLike, error: OSError):
        self.path = str(path)
        super().__init__(f"no space to write {self.path} ({error.strerror or error}); free some space (or raise "
                         f"the quota) and run the same command to resume: finished trials are kept and the running "
                         f"one runs again")


def disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in DISK_FULL


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------------------- the journal file


def torn_tail(path: Path) -> tuple[int, int] | None:
    """(size to keep, bytes to cut) when the journal ends in an incomplete or unreadable line, else None.

    Only the end is read. A line is torn when it lacks its newline, or is not JSON (a crash can
    leave zeros where the last write should be). More than two bad lines at the end is not a torn
    write but a file that is not (or no longer) a journal: that is refused rather than cut.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        keep, bad = size, 0
        while keep > 0:
            start = _line_start(f, keep)
            f.seek(start)
            line = f.read(keep - start)
            if line.endswith(b"\n") and _is_json(line):
                break
            keep, bad = start, bad + 1
            if bad > 2:
                raise HarnessError(f"{path} does not end in journal records (its last lines are not JSON); it is "
                                   f"not an Optuna journal, or it is damaged beyond a torn write. Keep a copy and "
                                   f"start the study in another --results directory")
    return None if keep == size else (keep, size - keep)


def _line_start(f, end: int) -> int:
    """Offset of the first byte of the line that ends at `end` (just past the newline before it)."""
    pos = end - 1  # the line's own newline, if it has one, is not the boundary we look for
    while pos > 0:
        step = min(65536, pos)
        f.seek(pos - step)
        i = f.read(step).rfind(b"\n")
        if i >= 0:
            return pos - step + i + 1
        pos -= step
    return 0


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def repair_journal(path: Path, say: Callable[[str], None]) -> Path | None:
    """Cut a torn last line off the journal (keeping a copy of the whole file beside it); returns the copy.

    Held under Optuna's own journal lock, so a line another worker is still writing is never
    mistaken for a torn one.
    """
    if not path.exists():
        return None
    lock = JournalFileOpenLock(str(path))
    with interrupts.deferred(), get_lock_file(lock):
        torn = torn_tail(path)
        if torn is None:
            return None
        keep, cut = torn
        copy = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            shutil.copy2(path, copy)
            os.truncate(path, keep)
        except OSError as e:
            if disk_full(e):
                raise DiskFullError(copy, e) from None
            raise HarnessError(f"{path} ends in a torn line and cannot be repaired ({e.strerror}); "
                               f"copy it somewhere writable and use --results") from None
    say(f"harness: {path} ended in a torn line ({cut} bytes, a write cut short by a crash or a full disk); "
        f"cut back to the last whole record, the original kept as {copy.name}")
    return copy


def note_torn(path: Path, say: Callable[[str], None]) -> None:
    """For readers that must not write (status, report): say a torn tail is there and is being skipped."""
    if not path.exists() or torn_tail(path) is None:
        return
    time.sleep(0.3)  # a worker may be writing that line right now
    torn = torn_tail(path)
    if torn is not None:
        say(f"harness: note: {path} ends in a torn line ({torn[1]} bytes, a write cut short); reading without it. "
            f"The next harness sweep repairs it.")


class SafeJournalFileBackend(JournalFileBackend):
    """Optuna's journal file, with appends that signals cannot tear and a full disk cannot leave torn."""

    def append_logs(self, logs: list[dict]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        with interrupts.deferred(), get_lock_file(self._lock):
            size = os.path.getsize(self._file_path)
            try:
                with open(self._file_path, "ab") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.truncate(self._file_path, size)  # never leave a torn line behind
                if disk_full(e):
                    raise DiskFullError(self._file_path, e) from None
                raise


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage plus Optuna's heartbeat interface, with heartbeats kept beside the journal."""

    def __init__(self, backend: JournalFileBackend, beats_dir: Path, interval: int = HEARTBEAT_INTERVAL,
                 grace: int = GRACE_PERIOD, stale_callback: Callable | None = None):
        # The same checks as RDBStorage's heartbeat_interval and grace_period.
        for name, value in (("heartbeat interval", interval), ("grace period", grace)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"the {name} must be a positive whole number of seconds, got {value!r}")
        super().__init__(backend)
        self.interval, self.grace, self.stale_callback = interval, grace, stale_callback
        self.beats_dir = beats_dir
        self.host = socket.gethostname()

    def _beat_path(self, trial_id: int) -> Path:
        return self.beats_dir / f"{trial_id}.json"

    def record_heartbeat(self, trial_id: int) -> None:
        beat = {"host": self.host, "pid": os.getpid(), "time": time.time()}
        path = self._beat_path(trial_id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            self.beats_dir.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(beat))
            tmp.replace(path)
        except OSError:
            # A missed beat is harmless (the next one comes in `interval` s); a full disk is caught
            # where the trial's results are written.
            with contextlib.suppress(OSError):
                tmp.unlink()

    def heartbeat(self, trial: FrozenTrial) -> dict | None:
        try:
            return json.loads(self._beat_path(trial._trial_id).read_text())
        except (OSError, ValueError):
            return trial.system_attrs.get(HEARTBEAT_KEY)

    def claim(self) -> None:
        """Say "this worker is about to ask for a trial" (the ask and the first beat are two writes).

        A worker killed between its ask and its first beat leaves a RUNNING trial that never beat;
        its claim, left behind with a dead pid, says whose that trial was. Asks are serialised by
        the trial-slot lock, so a claim matches the one trial created right after it.
        """
        self.beats_dir.mkdir(parents=True, exist_ok=True)
        for path, _ in self._dead_claims(time.time()):  # stale trials were just failed: what is left asked nothing
            with contextlib.suppress(OSError):
                path.unlink()
        (self.beats_dir / f"claim-{self.host}-{os.getpid()}.json").write_text(
            json.dumps({"host": self.host, "pid": os.getpid(), "time": time.time()}))

    def unclaim(self) -> None:
        with contextlib.suppress(OSError):
            (self.beats_dir / f"claim-{self.host}-{os.getpid()}.json").unlink()

    def _dead_claims(self, now: float) -> list[tuple[Path, float]]:
        claims = []
        for path in self.beats_dir.glob("claim-*.json") if self.beats_dir.exists() else []:
            try:
                c = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            here = c["host"] == self.host
            if (here and c["pid"] != os.getpid() and not pid_alive(c["pid"])) or \
                    (not here and now - c["time"] > self.grace):
                claims.append((path, c["time"]))
        return claims

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale, claims = [], None
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = self.heartbeat(trial)
            if beat is None:
                # Never beat: another tool's trial (not ours to fail, as in Optuna), unless one of our
                # workers died between asking for it and beating for it.
                claims = self._dead_claims(now) if claims is None else claims
                started = trial.datetime_start.timestamp() if trial.datetime_start else now
                match = next((c for c in claims if c[1] <= started + 1.0), None)
                if match is not None:
                    stale.append(trial._trial_id)
                    claims.remove(match)
                    with contextlib.suppress(OSError):
                        match[0].unlink()
                continue
            mine = beat["host"] == self.host and beat["pid"] == os.getpid()
            dead = beat["host"] == self.host and not mine and not pid_alive(beat["pid"])
            if dead or (not mine and now - beat["time"] > self.grace):
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.stale_callback


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


# ---------------------------------------------------------------------------------------------- opening


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
    import sys

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
        what = text.split(" (Background on this error")[0][:300]
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
