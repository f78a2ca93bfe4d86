"""How a sweep runs (not what it means): where results go, storage, device, limits, workers; and how it ended.

What a study *means* is its `StudySpec`; these are the settings a resumed study may change, and
the outcome a sweep returns instead of an exit code (the CLI maps one to the other).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Why a worker, and so a sweep, stopped; the CLI's exit code for each.
STOP_REASONS = {
    "planned": 0,  # the planned number of trials ran (or the study has no plan and ... never ends)
    "time_limit": 0,  # the study's timeout came
    "failures": 3,  # max_consecutive_failures trials failed in a row
    "interrupted": 130,  # Ctrl-C, SIGTERM or SIGHUP; the running trial was re-queued
    "disk_full": 4,  # a write failed for lack of space; the running trial runs again on resume
    "error": 2,  # a worker refused to start (a user mistake), or died
}


@dataclass
class SweepOptions:
    results_dir: Path
    storage_url: str | None = None
    device: str = "auto"
    trials: int | None = None
    timeout: float | None = None
    workers: int = 1
    worker_index: int | None = None  # set in the worker processes that `workers > 1` starts
    plain_progress: bool = False

    def device_for(self, study_device: str) -> str:
        """The device this run uses: the one asked for here, or the study file's where that is "auto"."""
        return self.device if self.device != "auto" else study_device

    def to_record(self) -> dict[str, Any]:
        return {**asdict(self), "results_dir": str(self.results_dir)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SweepOptions:
        return cls(**{**record, "results_dir": Path(record["results_dir"])})


@dataclass
class SweepOutcome:
    """How a sweep ended: the study's name and where it lives, why it stopped, and what each worker said."""

    study_name: str
    results_dir: Path
    storage_url: str | None
    stop: str  # a key of STOP_REASONS
    message: str = ""
    workers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return STOP_REASONS[self.stop]

    @property
    def finished(self) -> bool:
        """The sweep ran to its plan, its time limit or its failure limit (the study can be summarised)."""
        return self.stop in ("planned", "time_limit", "failures")


def combine(outcomes: list[SweepOutcome]) -> SweepOutcome:
    """The sweep's outcome from its workers': the most serious stop, every worker's word kept."""
    worst = max(outcomes, key=lambda o: (o.exit_code, o.stop == "time_limit"))
    workers = [{"index": i, "stop": o.stop, "message": o.message} for i, o in enumerate(outcomes)]
    return SweepOutcome(worst.study_name, worst.results_dir, worst.storage_url, worst.stop, worst.message, workers)
