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
_previous: dict[int, object] = {}  # the handlers install() replaced, put back by restore()


def _handler(signum: int, frame) -> None:
    global _pending
    if _stopping:
        return
    if _depth > 0:
        _pending = signum
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install() -> None:
    """Route SIGINT, SIGTERM and SIGHUP to KeyboardInterrupt (main thread only; idempotent).

    The caller's handlers are kept and `restore()` puts them back, so a sweep run from a notebook
    or another program leaves that program's signal handling as it found it.
    """
    global _stopping, _pending
    if threading.current_thread() is not threading.main_thread():
        return
    _stopping, _pending = False, None
    for s in SIGNALS:
        previous = signal.signal(s, _handler)
        if previous is not _handler:
            _previous[s] = previous


def stopping() -> None:
    """From now on signals are ignored: the process is already on its way out, cleaning up."""
    global _stopping
    _stopping = True


def restore() -> None:
    """Put back the handlers `install()` replaced (Python's defaults where it replaced none)."""
    global _stopping, _pending, _depth
    if threading.current_thread() is not threading.main_thread():
        return
    for s in SIGNALS:
        default = signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL
        signal.signal(s, _previous.pop(s, default))
    _stopping, _pending, _depth = False, None, 0


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """`install()` for the duration of a block (the Python API's sweeps), then `restore()`.

    Inside a process that installed them already (the CLI), it changes nothing.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is _handler:
        yield
        return
    install()
    try:
        yield
    finally:
        restore()


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
