"""How many trials share this device right now, and device-seconds as each trial's fair share.

With `--workers K` on one device, a trial's wall-clock time, utilization and energy depend on
what the other workers were doing. So the harness defines a trial's device-seconds as its fair
share of the device: the integral of 1/n(t) over the time it ran, n(t) being the number of trials
running on the same device at t (itself included). Alone, that is its wall time; with two
workers busy the whole time, half of it. Time budgets are spent in that unit, so a study ranks
the same configurations the same way with one worker or several, within noise; the wall time
stays beside it, and `concurrency` = wall / share is the time-weighted mean of n(t).

The registry is a directory per device (`$TMPDIR/harness-occupancy/<device>/`) holding one empty
file per running trial's process; entries of dead processes are pruned when counted. Workers on
other machines use other devices and do not share it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import torch

from harness.common import pid_alive

OCCUPANCY_ENV = "HARNESS_OCCUPANCY_DIR"


def device_key(device: torch.device) -> str:
    """A name for the physical device, the same in every process whatever CUDA_VISIBLE_DEVICES says."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        uuid = getattr(props, "uuid", None)
        return f"cuda-{uuid}" if uuid else f"cuda-pci-{getattr(props, 'pci_bus_id', device.index or 0)}"
    return "cpu"


class Occupancy:
    """Membership of this process in its device's registry, and the count of members."""

    def __init__(self, device: torch.device, root: Path | None = None):
        base = root or Path(os.environ.get(OCCUPANCY_ENV) or tempfile.gettempdir()) / "harness-occupancy"
        self.dir = base / device_key(device)
        self.me = self.dir / str(os.getpid())
        self.inside = False

    def enter(self) -> None:
        with contextlib.suppress(OSError):  # without a registry every trial counts as alone, as before
            self.dir.mkdir(parents=True, exist_ok=True)
            self.me.touch()
            self.inside = True

    def leave(self) -> None:
        with contextlib.suppress(OSError):
            self.me.unlink()
        self.inside = False

    def count(self) -> int:
        """Trials running on this device now, this one included (at least 1)."""
        n = 0
        try:
            entries = list(self.dir.iterdir())
        except OSError:
            return 1
        for entry in entries:
            if not entry.name.isdigit():
                continue
            if pid_alive(int(entry.name)):
                n += 1
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
        return max(1, n)


class ShareClock:
    """Accumulates wall time and fair-share time between reads of a synchronized clock."""

    def __init__(self, occupancy: Occupancy | None):
        self.occupancy = occupancy
        self.wall = 0.0
        self.share = 0.0
        self.last: float | None = None
        self.n = 1  # runs on the device at the last read

    def start(self, now: float) -> None:
        self.last = now

    def tick(self, now: float) -> None:
        if self.last is None:
            self.last = now
            return
        dt = max(0.0, now - self.last)
        n = self.occupancy.count() if self.occupancy is not None else 1
        self.n = n
        self.wall += dt
        self.share += dt / n
        self.last = now

    def estimate(self, now: float) -> float:
        """The share so far without a device sync: host time since the last read, at the last read's n.

        For decisions that need not be exact between syncs (the learning-rate schedule); budgets
        and reported figures use `share`, which only synchronized reads advance.
        """
        return self.share + (max(0.0, now - self.last) / self.n if self.last is not None else 0.0)

    def stop(self, now: float) -> None:
        self.tick(now)
        self.last = None

    @property
    def concurrency(self) -> float:
        return self.wall / self.share if self.share > 0 else 1.0
