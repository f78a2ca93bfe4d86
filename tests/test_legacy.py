"""Results written by the release before the package layout (0.1.0, tests/fixtures/legacy-0.1.0) still
resume, report and load: the journal, its stored spec, the checkpoints and result.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sweep_helpers import harness_cli

import harness
from harness.training import RUN_FIELDS

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "legacy-0.1.0"


@pytest.fixture
def legacy(tmp_path, monkeypatch):
    """A copy of the fixture (its paths are relative to its folder, as a sweep run from there wrote them)."""
    shutil.copytree(FIXTURE, tmp_path / "old")
    monkeypatch.chdir(tmp_path / "old")
    return tmp_path / "old"


def test_an_old_study_reports_and_resumes(legacy):
    status = harness_cli("status", "legacy", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout.splitlines()[-1])["counts"] == {"COMPLETE": 2}
    report = harness_cli("report", "legacy")
    assert report.returncode == 0, report.stderr
    assert (legacy / "legacy" / "report" / "report.html").exists()
    resumed = harness_cli("sweep", "legacy.toml", "--trials", "3", "--results", "legacy")
    assert resumed.returncode == 0, resumed.stderr
    frame = harness.trials_frame("legacy")
    assert list(frame["state"]) == ["COMPLETE"] * 3
    assert frame.loc[:1, "best_bpc"].round(4).tolist() == [4.9421, 5.0919]  # the old trials, untouched


def test_old_checkpoints_and_results_load(legacy):
    for path in ("legacy/trials/0000/best.pt", "train-run/best.pt"):
        checkpoint = harness.load_checkpoint(path)
        assert checkpoint.config.embedding_dim == 8
        evaluated = harness_cli("evaluate", path, "--json")
        assert evaluated.returncode == 0, evaluated.stderr
        assert json.loads(evaluated.stdout.splitlines()[-1])["bpc"] > 0
    generated = harness_cli("generate", "train-run/best.pt", "--length", "10", "--samples", "1", "--json")
    assert generated.returncode == 0, generated.stderr
    old = json.loads((legacy / "train-run" / "result.json").read_text())
    added_since = {"eval_context"}  # 0.2: readers take a missing one as unknown (the report test below reads them)
    assert {f.name for f in RUN_FIELDS} - added_since <= set(old)  # every other field was there already
