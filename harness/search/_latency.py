"""How long the storage takes to answer, as the study grows: opt-in timing of ask, tell and the heartbeat.

With `HARNESS_LATENCY_LOG=DIR` every worker appends one JSON line per storage call to
`DIR/<host>-<pid>.jsonl`: {"op": "ask" | "tell" | "heartbeat", "seconds", "trial", "t"}. The trial
number stands for the study's size when the call was made. scripts/load_drill.py reads these to
compare the start of a study with its end; a lab can set it on a live study to see whether its
PostgreSQL server keeps up. Off by default: a night's storage calls are not worth a file otherwise.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.search._artifacts import this_host

LATENCY_ENV = "HARNESS_LATENCY_LOG"


class LatencyLog:
    def __init__(self) -> None:
        folder = os.environ.get(LATENCY_ENV)
        self.path = Path(folder) / f"{this_host()}-{os.getpid()}.jsonl" if folder else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def timed(self, op: str, trial: int | None = None) -> Iterator[None]:
        if self.path is None:
            yield
            return
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"op": op, "seconds": seconds, "trial": trial, "t": time.time()}) + "\n")


def read_latencies(folder: Path) -> list[dict]:
    """Every line every worker wrote (a line cut short by a killed worker is skipped)."""
    rows = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows
