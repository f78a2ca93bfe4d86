"""The study file's checker: every refusal names the file and the key, so each error says where to look.

Each reader (harness.search._spec for [study], [budget], [pruner], [generate]; harness.search._space
for [fixed] and [space]) takes one and returns what it read.
"""

from __future__ import annotations

from harness.common import HarnessError


class Checker:
    """Collects the file name into every message so each error says where to look."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, message: str) -> None:
        raise HarnessError(f"{self.where}: {key}: {message}")

    def keys(self, table: dict, section: str, allowed: set[str]) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            self.fail(f"[{section}] {unknown[0]}", f"unknown key; allowed keys are {', '.join(sorted(allowed))}")

    def typed(self, table: dict, section: str, key: str, types: tuple, what: str, default=None):
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, bool) and bool not in types:
            self.fail(f"[{section}] {key}", f"must be {what}, got {value!r}")
        if not isinstance(value, types):
            self.fail(f"[{section}] {key}", f"must be {what}, got {value!r}")
        return value

    def choice(self, table: dict, section: str, key: str, allowed: tuple, default):
        value = self.typed(table, section, key, (str,), "a string", default)
        if value is not None and value not in allowed:
            self.fail(f"[{section}] {key}", f"{value!r} is not one of {', '.join(allowed)}")
        return value
