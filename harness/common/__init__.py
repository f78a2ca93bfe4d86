"""What every layer shares: user-facing errors, atomic files and strict JSON, units, progress lines, signals.

Nothing here imports torch, Optuna or any other part of the harness.
"""

from harness.common import _interrupts as interrupts
from harness.common._errors import DiskFullError, HarnessError, disk_full, first_line
from harness.common._jsonio import dumps, finite, write_atomic, write_json_atomic
from harness.common._process import pid_alive
from harness.common._progress import ProgressLine, format_param, format_rate, format_seconds
from harness.common._units import bits_per_char, perplexity

__all__ = [
    "DiskFullError",
    "HarnessError",
    "ProgressLine",
    "bits_per_char",
    "disk_full",
    "dumps",
    "finite",
    "first_line",
    "format_param",
    "format_rate",
    "format_seconds",
    "interrupts",
    "perplexity",
    "pid_alive",
    "write_atomic",
    "write_json_atomic",
]
