"""User-facing errors, and the one way an error becomes a line of text.

Anything the user can fix (a wrong path, a bad value, a corpus too short) is raised as
`HarnessError`; the CLI prints its message on one line and exits non-zero without a traceback.
Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os

DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
ERROR_LINE_LIMIT = 300  # characters of an error kept in a trial's reason or a one-line message


class HarnessError(Exception):
    """A mistake in the user's input, with a message that says what to do about it."""

    exit_code = 2


class DiskFullError(HarnessError):
    """A write failed for lack of space; the sweep stops, and resuming later loses nothing finished."""

    exit_code = 4

    def __init__(self, path: str | os.PathLike, error: OSError):
        self.path = str(path)
        super().__init__(f"no space to write {self.path} ({error.strerror or error}); free some space (or raise "
                         f"the quota) and run the same command to resume: finished trials are kept and the running "
                         f"one runs again")


def disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in DISK_FULL


def first_line(error: BaseException | str, limit: int = ERROR_LINE_LIMIT, empty: str | None = None) -> str:
    """The first line of an error's message, cut to `limit` characters: what a table cell or a reason can hold.

    An exception with no message gives `empty`, or its class name: never an empty reason.
    """
    text = str(error).strip()
    if not text:
        return empty if empty is not None else (type(error).__name__ if isinstance(error, BaseException) else "")
    return text.splitlines()[0][:limit]
