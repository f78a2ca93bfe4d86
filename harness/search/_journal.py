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
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

from harness.common import DiskFullError, HarnessError, disk_full, interrupts, pid_alive, write_atomic
from harness.search._optuna import BaseHeartbeat, get_lock_file, journal_lock, journal_path, trial_id

HEARTBEAT_INTERVAL = 20
GRACE_PERIOD = 120
HEARTBEAT_KEY = "harness:heartbeat"  # journals written before heartbeats moved beside the journal
JOURNAL_NAME = "study.journal"


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
        with interrupts.deferred(), get_lock_file(journal_lock(self)):
            size = os.path.getsize(journal_path(self))
            try:
                with open(journal_path(self), "ab") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.truncate(journal_path(self), size)  # never leave a torn line behind
                if disk_full(e):
                    raise DiskFullError(journal_path(self), e) from None
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
        # A missed beat is harmless (the next one comes in `interval` s); a full disk is caught
        # where the trial's results are written.
        with contextlib.suppress(OSError):
            write_atomic(self._beat_path(trial_id), lambda tmp: tmp.write_text(json.dumps(beat)))

    def heartbeat(self, trial: FrozenTrial) -> dict | None:
        try:
            return json.loads(self._beat_path(trial_id(trial)).read_text())
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
                    stale.append(trial_id(trial))
                    claims.remove(match)
                    with contextlib.suppress(OSError):
                        match[0].unlink()
                continue
            mine = beat["host"] == self.host and beat["pid"] == os.getpid()
            dead = beat["host"] == self.host and not mine and not pid_alive(beat["pid"])
            if dead or (not mine and now - beat["time"] > self.grace):
                stale.append(trial_id(trial))
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.stale_callback

