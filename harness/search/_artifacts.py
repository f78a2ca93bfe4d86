"""Where a trial's files are: on the machine that ran it, which may not be this one.

Every number a trial produces lives in its attributes, in the study's storage, so `status` and
`report` work from any machine that reaches the storage. Some things only a file can hold (the
checkpoint, the telemetry time series, result.json); those stay under the results directory of the
host that ran the trial. Each trial records that host (`HARNESS_HOST`, else the host name: set it
where host names are not stable, e.g. containers) and that results directory, so a reader
elsewhere can say where a missing file is, and can find it after an `rsync` of that host's
`trials/` into its own results directory (the same relative path is tried there).
"""

from __future__ import annotations

import os
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import FrozenTrial

from harness.common import HarnessError

HOST_ENV = "HARNESS_HOST"
FILES = {"checkpoint": "checkpoint", "samples_csv": "telemetry samples"}


def this_host() -> str:
    return os.environ.get(HOST_ENV) or socket.gethostname()


def trial_host(trial: FrozenTrial) -> str | None:
    return trial.user_attrs.get("host") or (trial.user_attrs.get("worker") or {}).get("host")


def locate(recorded: str | None, trial: FrozenTrial, results_dir: Path | None) -> Path | None:
    """The file here: at its recorded path, or at the same path relative to this machine's results directory."""
    if not recorded:
        return None
    path = Path(recorded)
    if path.exists():
        return path
    origin = trial.user_attrs.get("results_dir")
    if origin and results_dir is not None:
        try:
            moved = Path(results_dir) / path.relative_to(origin)
        except ValueError:
            return None
        if moved.exists():
            return moved
    return None


@dataclass
class Elsewhere:
    """A file a trial wrote that is not on this machine: what, where, and how to bring it here."""

    trial: int
    what: str
    host: str | None
    path: str
    origin: str | None  # the results directory on that host

    def line(self) -> str:
        host = self.host or "another machine"
        return f"trial #{self.trial}'s {self.what} is on {host} at {self.path}, not on this machine ({this_host()})"

    def gather(self, results_dir: Path | None) -> str | None:
        """The rsync that brings that host's trial files into this machine's results directory."""
        if not self.host or not self.origin or results_dir is None:
            return None
        source = f"{self.host}:{self.origin.rstrip('/')}/trials/"
        return f"rsync -a {shlex.quote(source)} {shlex.quote(str(Path(results_dir) / 'trials'))}/"


def elsewhere(trial: FrozenTrial, key: str, results_dir: Path | None) -> Elsewhere | None:
    """None when the trial's file `key` (checkpoint, samples_csv) is here or was never written."""
    recorded = trial.user_attrs.get(key)
    if not recorded or locate(recorded, trial, results_dir) is not None:
        return None
    return Elsewhere(trial.number, FILES.get(key, key), trial_host(trial), recorded, trial.user_attrs.get("results_dir"))


def trial_checkpoint(trial: FrozenTrial, results_dir: Path | None) -> Path:
    """A trial's best checkpoint on this machine, or a HarnessError saying in one line where it is."""
    recorded = trial.user_attrs.get("checkpoint")
    if not recorded:
        raise HarnessError(f"trial #{trial.number} wrote no checkpoint (state {trial.state.name}: "
                           f"{trial.user_attrs.get('reason') or 'no evaluation finished'})")
    found = locate(recorded, trial, results_dir)
    if found is not None:
        return found
    away = elsewhere(trial, "checkpoint", results_dir)
    rsync = away.gather(results_dir)
    hint = f"; bring it here with `{rsync}`" if rsync else ""
    raise HarnessError(f"{away.line()}{hint}, or run this on {away.host or 'that machine'}")
