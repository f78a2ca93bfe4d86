"""The long-budget forecast: the fit recovers known curves, its interval covers at the stated rate, it falls back
where it must and says so, and the checks against a confirmation are kept straight."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sweep_helpers import harness_cli, write_study

from harness.report import fit_power_law, forecast_curve, kendall_tau
from harness.report._outlook import p_best

T = np.linspace(6.0, 60.0, 10)  # ten evaluations of a 60-s trial


def curve(a: float, b: float, c: float, t: np.ndarray = T) -> np.ndarray:
    return a + b * np.power(t, -c)


@pytest.mark.parametrize("a,b,c", [(1.8, 3.0, 0.5), (2.2, 8.0, 1.0), (1.5, 1.2, 0.3)])
def test_the_fit_recovers_known_parameters(a, b, c):
    fit = fit_power_law(T, curve(a, b, c))
    assert fit.c == pytest.approx(c, rel=0.08)
    assert fit.a == pytest.approx(a, abs=0.05)
    assert fit.at(600.0) == pytest.approx(curve(a, b, c, np.array([600.0]))[0], abs=0.01)


def test_the_interval_covers_the_truth_at_about_the_stated_rate():
    rng = np.random.default_rng(7)
    a, b, c, noise = 2.0, 4.0, 0.6, 0.01
    truth = curve(a, b, c, np.array([4 * 60.0]))[0]
    covered, fitted = 0, 0
    for i in range(60):
        y = curve(a, b, c) + rng.normal(0, noise, len(T))
        f = forecast_curve(i, "COMPLETE", T, y, (4.0,), seed=i)
        if f.method != "power law":
            continue
        fitted += 1
        low, high = f.interval(4.0)
        covered += low <= truth <= high
    assert fitted >= 50
    # a residual bootstrap of 8 points under-covers a little; it must not be wildly off the stated 95%
    assert covered / fitted >= 0.75, (covered, fitted)


@pytest.mark.parametrize("y,why", [
    (np.array([3.0, 2.9, 2.95, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6, 3.7]), "does not fall"),
    (np.array([3.0, 2.5]), "points after"),
])
def test_the_fallback_is_the_last_value_and_says_why(y, why):
    t = T[: len(y)]
    f = forecast_curve(0, "COMPLETE", t, y, (2.0,))
    assert f.method.startswith("last value") and why in f.method
    assert f.predict(2.0) == y[-1] and all(math.isnan(v) for v in f.interval(2.0))


def test_a_forecast_at_2x_does_not_depend_on_the_other_multiples_asked():
    """Replicates that agree at 2x and disagree at 10x: the curve falls back (or not) the same way whether
    `harness forecast --at 2x 4x` or `harness.forecast(at=(2,))` asked (CI caught the two disagreeing)."""
    rng = np.random.default_rng(0)
    t = np.linspace(1, 10, 8)
    y = 1.5 + 2.0 * t ** -0.6 + rng.normal(0, rng.uniform(0.02, 0.2), t.size)
    alone = forecast_curve(0, "COMPLETE", t, y, (2.0,))
    beside = forecast_curve(0, "COMPLETE", t, y, (2.0, 4.0))
    assert alone.method == beside.method and alone.predict(2.0) == beside.predict(2.0)
    assert "at 10x" in alone.method  # judged at the report's largest multiple


def test_the_chance_of_being_best_comes_from_the_bootstrap():
    rng = np.random.default_rng(0)
    clear = forecast_curve(0, "COMPLETE", T, curve(1.5, 3.0, 0.5) + rng.normal(0, 0.005, 10), (4.0,))
    behind = forecast_curve(1, "COMPLETE", T, curve(2.5, 3.0, 0.5) + rng.normal(0, 0.005, 10), (4.0,))
    flat = forecast_curve(2, "PRUNED", T[:2], np.array([4.0, 3.9]), (4.0,))
    chances = p_best([clear, behind, flat], 4.0)
    assert chances[0] > 0.95 and chances[1] < 0.05 and chances[2] == 0.0
    assert sum(chances.values()) == pytest.approx(1.0)


def test_kendall_tau():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [40, 30, 20, 10]) == -1.0
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert math.isnan(kendall_tau([1], [1]))


def test_forecast_and_a_long_budget_confirmation_end_to_end(tmp_path, monkeypatch, small_text_file):
    import json

    import harness

    monkeypatch.chdir(tmp_path)
    write_study(tmp_path / "f.toml", small_text_file, name="f", trials=4, budget="16k", evals=6, sampler="random",
                pruner="none")


    def run(*args: str):
        return harness_cli(*args, timeout=600)

    assert run("sweep", "f.toml").returncode == 0
    out = run("forecast", "results/f", "--at", "2x", "4x", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.splitlines()[-1])
    assert set(data["forecast"]) == {"2x", "4x"} and len(data["forecast"]["2x"]) == 4
    assert data["backtest"]["trials"] == 4 and "median_abs_error" in data["backtest"]
    assert run("forecast", "results/f", "--at", "half").returncode == 2  # one line, no traceback
    bad = run("forecast", "results/f", "--backtest", "1.5")
    assert bad.returncode == 2 and "between 0 and 1" in bad.stderr and "Traceback" not in bad.stderr
    frame = harness.forecast("results/f", at=(2,))  # the same forecast without the CLI
    assert list(frame["multiple"].unique()) == [2.0] and len(frame) == 4
    assert frame.set_index("trial")["forecast_bpc"].round(6).to_dict() == {
        r["trial"]: round(r["forecast_bpc"], 6) for r in data["forecast"]["2x"]}
    confirm = run("confirm", "results/f", "--budget", "2x", "--top", "1", "--seeds", "2")
    assert confirm.returncode == 0, confirm.stderr
    study = harness.load_results("results/f")
    plan = harness.load_results("results/f").user_attrs  # the source study is unchanged by the plan
    assert "harness:confirm_plan" not in plan
    from harness.search import PLAN_ATTR, load_confirmation

    stored = load_confirmation(study).user_attrs[PLAN_ATTR]
    assert stored["multiple"] == 2.0 and stored["budget"] == "32000tok"
    assert set(stored["forecast"]) == {str(n) for n in stored["sources"]} and 1 <= len(stored["sources"]) <= 2
    ranking = harness.confirm("results/f", top=1, seeds=2, budget="2x")  # the API resumes the same plan
    assert sorted(ranking["trial"]) == sorted(stored["sources"]) and set(ranking["runs"]) == {2}
    assert len(load_confirmation(study).get_trials()) == 2 * len(stored["sources"])  # nothing ran twice
    report = run("report", "results/f")
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "results" / "f" / "report" / "report.md").read_text()
    assert "If you train longer" in page and "Forecast against a 2x confirmation" in page
    assert "Brier score" in page and (tmp_path / "results" / "f" / "report" / "forecast_2x.csv").exists()


def test_a_wsd_curve_is_fitted_before_its_decay_and_the_decays_gain_kept():
    a, b, c = 1.9, 6.0, 0.7
    y = curve(a, b, c)
    y[8:] -= np.array([0.05, 0.12])  # the last 20%: the rate decays, the loss drops below the power law
    f = forecast_curve(0, "COMPLETE", T, y, (5.0,), stable=8)
    assert f.method.startswith("power law before the decay") and f.offset == pytest.approx(0.12, abs=0.01)
    assert f.predict(5.0) == pytest.approx(curve(a, b, c, np.array([300.0]))[0] - 0.12, abs=0.02)
    plain = forecast_curve(0, "COMPLETE", T, y, (5.0,))
    assert abs(plain.predict(5.0) - f.predict(5.0)) > 0.02  # ignoring the decay gives another answer


def test_the_intervals_are_widened_by_the_error_the_backtest_measured():
    import numpy as np

    from harness.report import Calibration

    errors = np.linspace(-0.2, 0.2, 39)  # 39 curves: the 38th smallest |error| makes a 95% interval
    c = Calibration.from_errors(errors)
    assert c.level == 0.95 and c.halfwidth == pytest.approx(sorted(abs(errors))[37])
    inside = np.mean(np.abs(errors) <= c.halfwidth)
    assert inside >= 0.95  # the coverage stated is the coverage measured on the backtest
    few = Calibration.from_errors(np.array([0.1, -0.3, 0.05]))  # too few curves for 95%: the largest, at 75%
    assert few.halfwidth == pytest.approx(0.3) and few.level == pytest.approx(0.75)
    assert Calibration.from_errors(np.array([0.1])) is None


def _drift_study(lrs: list[float]):
    import optuna

    study = optuna.create_study()
    for i, (seconds, lr) in enumerate(zip([10.0, 25.0, 50.0, 100.0], lrs, strict=True)):
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, values=[3.0 - 0.1 * i], params={"lr": lr},
            distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)},
            user_attrs={"curve": [{"index": 1, "device_seconds": seconds, "bpc": 3.0 - 0.1 * i}]}))
    return study


def test_the_learning_rate_drift_is_fitted_only_with_enough_budgets_and_given_its_interval():
    from harness.report import lr_drift

    falling = lr_drift(_drift_study([0.01, 0.0071, 0.0052, 0.0036]), 2.0)
    assert falling["beta"] < 0 and falling["beta_interval"][1] < 0 and "95% interval" in falling["note"]
    assert falling["suggested_lr"] < 0.0036  # extrapolated past the longest budget's rate
    flat = lr_drift(_drift_study([0.01, 0.002, 0.004, 0.006]), 2.0)  # no trend the four points can carry
    assert "not told apart from no drift" in flat["note"] and flat["suggested_lr"] == 0.006
    two = lr_drift(_drift_study([0.01, 0.01, 0.005, 0.005]), 2.0)
    assert two["beta"] is None and "2 distinct best learning rates" in two["note"]
