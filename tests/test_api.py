"""The Python API: docs/python-api.md runs as written, in-process, and leaves the caller's process as it was."""

from __future__ import annotations

import importlib
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib
import optuna
import pytest

import harness

DOC = Path(__file__).resolve().parent.parent / "docs" / "python-api.md"


def test_the_documented_example_runs_and_changes_nothing_in_the_caller(tmp_path, monkeypatch, capsys):
    code = "\n".join(re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S))
    assert "run_sweep" in code and "build_report" in code
    monkeypatch.chdir(tmp_path)
    matplotlib.use("svg")  # a caller's choice the report must not undo (a notebook's inline backend)
    matplotlib.rcParams["axes.facecolor"] = "#123456"
    optuna.logging.set_verbosity(optuna.logging.INFO)
    filters = list(warnings.filters)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        exec(compile(code, str(DOC), "exec"), {})
        assert matplotlib.get_backend() == "svg"
        assert matplotlib.rcParams["axes.facecolor"] == "#123456"
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
        added = [f for f in warnings.filters if f not in filters]  # scipy & co. add theirs when first imported
        assert not [f for f in added if f[2] is optuna.exceptions.ExperimentalWarning
                    or (f[1] is not None and "Heartbeat" in f[1].pattern)], added
        assert {s: signal.getsignal(s) for s in handlers} == handlers
    finally:
        matplotlib.rcParams["axes.facecolor"] = "white"
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = capsys.readouterr().out
    assert out.startswith("planned"), out
    assert (tmp_path / "results" / "notebook" / "report" / "report.html").exists()
    assert (tmp_path / "results" / "one" / "best.pt").exists()
    frame = harness.trials_frame(harness.load_results("results/notebook"))
    assert list(frame["state"]) == ["COMPLETE"] * 3 and frame["best_bpc"].notna().all()


def test_importing_every_subpackage_has_no_side_effects():
    probe = (
        "import warnings, matplotlib, optuna, torch, pandas, seaborn, sqlalchemy, sacrebleu\n"
        "backend = matplotlib.get_backend(); filters = list(warnings.filters)\n"
        "level = optuna.logging.get_verbosity()\n"
        "import harness, harness.cli, harness.report, harness.search, harness.training, harness.diagnostics\n"
        "harness.TrainConfig, harness.run_sweep\n"
        "assert matplotlib.get_backend() == backend, (matplotlib.get_backend(), backend)\n"
        "assert warnings.filters == filters\n"
        "assert optuna.logging.get_verbosity() == level\n"
        "import matplotlib.pyplot  # noqa\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={"MPLBACKEND": "svg", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_import_harness_is_lazy():
    proc = subprocess.run([sys.executable, "-c", "import sys, harness; print('torch' in sys.modules, "
                           "'optuna' in sys.modules, len(harness.__all__))"], capture_output=True, text=True)
    assert proc.stdout.split()[:2] == ["False", "False"], proc.stdout + proc.stderr


def test_every_exported_name_resolves():
    assert set(harness.__all__) - {"__version__"} == set(harness._EXPORTS)
    for name in harness._EXPORTS:
        assert getattr(harness, name) is not None


SUBPACKAGES = ("common", "data", "models", "measure", "training", "diagnostics", "search", "report")
# Types a caller meets in an exported function's signature or result, exported though nobody outside names them
SIGNATURE_TYPES = {"Replay", "ReplayPlan", "Param", "Checkpoint", "EvalPoint", "ConfirmPlan", "Phase", "KVCache",
                   "ResidualRNN", "State", "Baseline", "FlowProfile", "Projection"}


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_a_subpackage_exports_what_callers_outside_it_use(package):
    """The public surface is what other parts, the tests, the scripts and the docs use: a helper nobody
    outside calls stays in its private module (import it from there)."""
    root = Path(__file__).resolve().parents[1]
    outside = [p for p in [*root.glob("harness/**/*.py"), *root.glob("tests/*.py"), *root.glob("scripts/*.py"),
                           *root.glob("docs/*.md"), root / "README.md"]
               if not p.is_relative_to(root / "harness" / package)]
    text = "\n".join(p.read_text(encoding="utf-8") for p in outside)
    names = importlib.import_module(f"harness.{package}").__all__
    unused = [n for n in names if n not in SIGNATURE_TYPES and not re.search(rf"\b{re.escape(n)}\b", text)]
    assert not unused, f"harness.{package} exports {unused}, which nothing outside it uses"
