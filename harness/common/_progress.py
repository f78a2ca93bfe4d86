"""Progress display: a one-line bar on a terminal, plain periodic lines in a log file or pipe."""

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


class ProgressLine:
    """Redraws one line in place on a TTY; elsewhere prints a line every `interval` seconds."""

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0, width: int = 20, plain: bool = False,
                 prefix: str = ""):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() and not plain
        self.prefix = prefix
        self.interval, self.width = interval, width
        self.last_print = 0.0
        self.drawn = False

    def update(self, fraction: float, text: str) -> None:
        now = time.monotonic()
        if self.tty:
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
