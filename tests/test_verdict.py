"""The morning verdict: frontier, budget and target tables on known curves; confirmation on a tiny real study."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys

import pandas as pd
import pytest
from optuna.trial import TrialState
from sweep_helpers import load, wait_for, write_study

from harness.cli import main
from harness.report import best_for_budgets, default_budgets, frontier, time_to_targets
from harness.search import summarize, t_quantile_975, verdict

# trial -> [(device-seconds, bpc)] at each evaluation; trial 2 was pruned after two evaluations
CURVES = {0: [(10, 3.0), (20, 2.6), (30, 2.4), (40, 2.3)],
          1: [(10, 3.4), (20, 2.8), (30, 2.2), (40, 2.0)],
          2: [(5, 2.9), (10, 2.7)]}


def points() -> pd.DataFrame:
    return pd.DataFrame([{"trial": t, "state": "PRUNED" if t == 2 else "COMPLETE", "eval": i + 1,
                          "device_seconds": float(x), "bpc": y} for t, c in CURVES.items() for i, (x, y) in enumerate(c)])


def test_the_frontier_of_known_curves():
    front = frontier(points())
    assert list(zip(front["device_seconds"], front["bpc"], front["trial"], strict=True)) == [
        (5, 2.9, 2), (10, 2.7, 2), (20, 2.6, 0), (30, 2.2, 1), (40, 2.0, 1)]


def test_best_configuration_for_a_budget_and_time_to_target():
    p = points()
    assert default_budgets(p) == [4.0, 10.0, 20.0, 40.0]
    budgets = best_for_budgets(p, [4.0, 10.0, 20.0, 40.0])
    assert budgets["trial"].tolist()[1:] == [2, 0, 1] and budgets["bpc"].tolist()[1:] == [2.7, 2.6, 2.0]
    assert pd.isna(budgets["trial"].iloc[0])  # nothing was evaluated within 4 s
    targets = time_to_targets(p, [2.8, 2.5, 2.0, 1.5])
    # 2.5 is reached at 30 s by trials 0 (2.4) and 1 (2.2): a tie in time goes to the lower bpc
    assert targets["trial"].tolist()[:3] == [2, 1, 1] and targets["device_seconds"].tolist()[:3] == [10.0, 30.0, 40.0]
    assert pd.isna(targets["trial"].iloc[3])


def test_student_t_interval_and_verdicts():
    assert t_quantile_975(2) == pytest.approx(4.303) and t_quantile_975(11) == pytest.approx(2.228) and t_quantile_975(100) == 1.96

    class Trial:
        def __init__(self, source, seed, value, val):
            self.user_attrs = {"source_trial": source, "seed": seed, "source_val_bpc": val}
            self.values, self.params, self.state = [value], {"lr": source}, TrialState.COMPLETE

    class Study:
        def __init__(self, trials):
            self.trials = trials

        def get_trials(self, deepcopy=False, states=None):
            return self.trials

    runs = [Trial(7, 1, 2.00, 2.10), Trial(7, 2, 2.02, 2.10), Trial(7, 3, 2.01, 2.10),
            Trial(8, 1, 2.30, 2.05), Trial(8, 2, 2.32, 2.05), Trial(8, 3, 2.31, 2.05),
            Trial(9, 1, 2.25, 2.20), Trial(9, 2, 2.45, 2.20), Trial(9, 3, 2.35, 2.20)]
    frame = summarize(Study(runs))
    assert frame["trial"].tolist() == [7, 8, 9]
    first = frame.iloc[0]
    assert first["test_bpc_mean"] == pytest.approx(2.01) and first["test_bpc_sd"] == pytest.approx(0.01)
    half = 4.303 * 0.01 / math.sqrt(3)
    assert first["ci95_low"] == pytest.approx(2.01 - half) and first["ci95_high"] == pytest.approx(2.01 + half)
    assert first["ci95_low"] < first["test_bpc_mean"] < first["ci95_high"]
    assert first["tied_with"] == "" and frame.iloc[1]["tied_with"] == "#9"  # 8 and 9 overlap
    lines = verdict(frame)
    assert lines[0].startswith("#7 leads") and "changed on the test split" in lines[1]  # 8 was chosen over 7


def test_confirm_runs_k_by_n_resumes_after_an_interrupt_and_reports(tmp_path, small_text_file, capsys):
    study_file = write_study(tmp_path / "tiny.toml", small_text_file, trials=3, budget="10k", evals=2, pruner="none")
    study_file.write_text(study_file.read_text().replace("[generate]", "[generate]\nenabled = false"))
    results = tmp_path / "res"
    assert main(["sweep", str(study_file), "--results", str(results)]) == 0
    capsys.readouterr()

    # interrupt the confirmation once its first run is under way, then resume it
    proc = subprocess.Popen([sys.executable, "-m", "harness", "confirm", str(results), "--top", "2", "--seeds",
                             "2", "--budget", "60k"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def running():
        try:
            trials = load(results, "tiny/confirm").get_trials()
        except Exception:
            return False
        return any(t.state == TrialState.COMPLETE for t in trials) and any(
            t.state == TrialState.RUNNING and t.params for t in trials)

    wait_for(running)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    done_before = {t.number: t.values for t in load(results, "tiny/confirm").get_trials()
                   if t.state == TrialState.COMPLETE}
    # another plan is refused, the same one resumes
    assert main(["confirm", str(results), "--top", "3", "--seeds", "2", "--budget", "60k"]) == 2
    assert "another plan" in capsys.readouterr().err
    assert main(["confirm", str(study_file), "--results", str(results), "--top", "2", "--seeds", "2", "--budget",
                 "60k", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    trials = load(results, "tiny/confirm").get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4  # K x N runs, none redone
    assert {t.number: t.values for t in complete if t.number in done_before} == done_before
    assert sorted((t.user_attrs["source_trial"], t.user_attrs["seed"]) for t in complete) == sorted(
        (s, seed) for s in {t.user_attrs["source_trial"] for t in complete} for seed in (1001, 1002))
    for t in complete:
        assert t.values[0] == pytest.approx(t.user_attrs["test_bpc"])  # judged on the test split
    ranking = result["ranking"]
    assert len(ranking) == 2 and all(r["runs"] == 2 for r in ranking)
    assert all(r["ci95_low"] <= r["test_bpc_mean"] <= r["ci95_high"] for r in ranking)
    assert result["verdict"]
    stored = load(results, "tiny/confirm").user_attrs["harness:confirmed"]  # stored with the runs, too
    assert stored["verdict"] == result["verdict"] and len(stored["ranking"]) == 2

    assert main(["report", str(results), "--format", "png"]) == 0
    page = (results / "report" / "report.html").read_text()
    assert "Confirmed ranking" in page and "on the test split, mean of 2 fresh seeds" in page
    assert (results / "report" / "confirmed.csv").exists() and (results / "report" / "confirmed.png").exists()


def test_the_answer_lists_only_changes_of_leader_that_are_findings():
    """The demo's answer once read '#9 from 3.06 s, #7 from 3.28 s, #9 from 6.13 s, #2 from 6.26 s, ...'."""
    import pandas as pd

    from harness.report._frontier import evaluation_gap, frontier_findings

    points = pd.DataFrame({"trial": [1, 1, 1, 1], "device_seconds": [3.0, 6.0, 9.0, 12.0], "bpc": [3, 2.9, 2.8, 2.7]})
    front = pd.DataFrame({"trial": [9, 7, 9, 2, 6, 7, 6, 7],
                          "device_seconds": [3.06, 3.28, 6.13, 6.26, 6.29, 6.34, 12.4, 12.5],
                          "bpc": [3.0, 2.98, 2.9, 2.89, 2.84, 2.839, 2.7, 2.69]})
    assert evaluation_gap(points) == 3.0
    findings, merged = frontier_findings(front, points, noise_bpc=0.05)
    # #7 leads from 3.28 s on, but for a few tenths of a second three times: those are not findings
    assert [(f["trial"], f["device_seconds"]) for f in findings] == [(7, 3.28)] and merged == 7
    # two leaders that each hold for more than one evaluation, by more than the noise: both are findings
    two = pd.DataFrame({"trial": [9, 7], "device_seconds": [3.0, 9.0], "bpc": [3.0, 2.5]})
    assert [(f["trial"], f["device_seconds"]) for f in frontier_findings(two, points, 0.05)[0]] == [(9, 3.0), (7, 9.0)]
    # the same two within the noise: the standing leader keeps its place
    assert [f["trial"] for f in frontier_findings(two.assign(bpc=[3.0, 2.98]), points, 0.05)[0]] == [9]
    # a new leader by more than the noise but within one evaluation of the last one replaces it
    quick = pd.DataFrame({"trial": [9, 7], "device_seconds": [3.06, 3.28], "bpc": [3.0, 2.5]})
    assert frontier_findings(quick, points, noise_bpc=0.05) == ([{"trial": 7, "device_seconds": 3.28, "bpc": 2.5}], 1)
    # a leader between two stretches of the same trial, for less than one evaluation: the two join
    demo = pd.DataFrame({"trial": [6, 8, 6, 8, 8], "device_seconds": [3.15, 3.38, 6.21, 6.53, 12.9],
                         "bpc": [3.04, 2.91, 2.75, 2.54, 2.34]})
    assert [(f["trial"], f["device_seconds"]) for f in frontier_findings(demo, points, 0.05)[0]] == [(8, 3.38)]
