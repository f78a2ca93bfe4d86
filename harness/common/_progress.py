"""Progress display: a one-line bar on a terminal, one line updated in place in a Jupyter notebook, plain
periodic lines in a log file or pipe."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_seconds(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def format_param(value) -> str:
    """A sampled parameter as a short cell: floats to 3 significant digits, None as '-'."""
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def format_rate(value: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


NOTEBOOK_INTERVAL = 0.5  # seconds between redraws of a notebook's line: each one is a message to the browser


def notebook_display():
    """IPython's `display` where this process is a Jupyter kernel, else None.

    A kernel's stderr is no TTY, so the bar would fall back to a new line per redraw, dozens per
    study in the cell's output. IPython is only looked at if the session already loaded it.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        shell = ipython.get_ipython()
        if shell is None or "IPKernelApp" not in getattr(shell, "config", {}):
            return None
    except Exception:
        return None
    # a kernel has loaded IPython.display already; nothing is imported here
    return getattr(sys.modules.get("IPython.display") or getattr(ipython, "display", None), "display", None)


class ProgressLine:
    """Redraws one line in place on a TTY or in a notebook; elsewhere prints a line every `interval` seconds."""

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0, width: int = 20, plain: bool = False,
                 prefix: str = ""):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() and not plain
        self.prefix = prefix
        self.interval, self.width = interval, width
        self.last_print = 0.0
        self.drawn = False
        display = None if plain or self.tty or stream is not None else notebook_display()
        self.handle = display({"text/plain": prefix}, raw=True, display_id=True) if display else None

    def update(self, fraction: float, text: str) -> None:
        now = time.monotonic()
        if self.handle is not None:
            if now - self.last_print >= NOTEBOOK_INTERVAL or fraction >= 1.0:
                filled = int(self.width * min(1.0, fraction))
                bar = "#" * filled + "-" * (self.width - filled)
                self.handle.update({"text/plain": f"{self.prefix}[{bar}] {fraction * 100:3.0f}% {text}"}, raw=True)
                self.last_print = now
        elif self.tty:
            filled = int(self.width * min(1.0, fraction))
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r[{bar}] {fraction * 100:3.0f}% {text}\033[K")
            self.stream.flush()
            self.drawn = True
        elif now - self.last_print >= self.interval:
            self.stream.write(f"{self.prefix}{fraction * 100:3.0f}% {text}\n")
            self.stream.flush()
            self.last_print = now

    def message(self, text: str) -> None:
        """A line that stays (an evaluation result), printed above the bar."""
        if self.drawn:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False
