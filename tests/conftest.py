"""Shared fixtures: small real texts, built from what CPython ships, so no test needs the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data import CorpusOptions, builtin_text, load_corpus


@pytest.fixture(scope="session")
def small_text_file(tmp_path_factory) -> Path:
    """60k characters of English prose-and-code: enough for a model to learn something in seconds."""
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    path.write_text(builtin_text("pydoc")[:60_000], encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_corpus(small_text_file):
    return load_corpus(str(small_text_file), CorpusOptions())


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own download cache, so a cached book never hides a download bug."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    # and its own device-occupancy registry, so a sweep running on this machine never counts as a neighbour
    monkeypatch.setenv("HARNESS_OCCUPANCY_DIR", str(tmp_path / "occupancy"))
