"""Ctrl-C, SIGTERM and SIGHUP as one kind of stop, which never lands in the middle of a storage write.

A night ends in many ways: Ctrl-C at the terminal, SIGTERM from systemd or a job scheduler,
SIGHUP when tmux or ssh goes away. All three raise `KeyboardInterrupt` in the main thread, so a
worker has one path that marks its running trial and re-queues it.

A signal that arrives while the worker holds the trial-slot lock, asks, tells, or appends to the
journal would otherwise tear that operation in half (a trial created but never recorded as ours,
or a journal line cut short). Those operations run inside `deferred()`: the signal is remembered
and raised as soon as the outermost deferred block ends, when the storage is consistent again.
Once the worker has started stopping (`stopping()`), further signals are ignored so that a second
Ctrl-C cannot interrupt the clean-up of the first.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)

_depth = 0
_pending: int | None = None
_stopping = False
_installed = False


def _handler(signum: int, frame) -> None:
    global _pending
    if _stopping:
        return
    if _depth > 0:
        _pending = signum
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install() -> None:
    """Route SIGINT, SIGTERM and SIGHUP to KeyboardInterrupt (main thread only; idempotent)."""
    global _installed, _stopping, _pending
    if threading.current_thread() is not threading.main_thread():
        return
    _stopping, _pending = False, None
    for s in SIGNALS:
        signal.signal(s, _handler)
    _installed = True


def stopping() -> None:
    """From now on signals are ignored: the process is already on its way out, cleaning up."""
    global _stopping
    _stopping = True


def restore() -> None:
    """Back to Python's defaults (used by tests that run several sweeps in one process)."""
    global _installed, _stopping, _pending, _depth
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for s in SIGNALS[1:]:
        signal.signal(s, signal.SIG_DFL)
    _installed, _stopping, _pending, _depth = False, False, None, 0


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold back a stop signal until the block is done; then raise it. Nests; a no-op off the main thread."""
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None and not _stopping:
            signum, _pending = _pending, None
            raise KeyboardInterrupt(signal.Signals(signum).name)
