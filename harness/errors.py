"""User-facing errors.

Anything the user can fix (a wrong path, a bad value, a corpus too short) is raised as
`HarnessError`; the CLI prints its message on one line and exits non-zero without a traceback.
Everything else is a bug and keeps its traceback.
"""


class HarnessError(Exception):
    """A mistake in the user's input, with a message that says what to do about it."""

    exit_code = 2
