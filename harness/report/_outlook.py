"""The forecast applied to a study: the predicted ranking at longer budgets, its backtest, the learning-rate drift,
and how earlier forecasts fared against long-budget confirmations."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from harness.common import HarnessError
from harness.report._drift import lr_drift
from harness.report._forecast import BOOTSTRAP, MULTIPLES, Forecast, forecast_curve, kendall_tau
from harness.report._page import Section
from harness.search import (
    PLAN_ATTR,
    SPEC_ATTR,
    load_confirmation,
)


def study_curves(study: optuna.Study) -> dict[int, tuple[str, np.ndarray, np.ndarray, int | None]]:
    """trial -> (state, device-seconds, held-out bpc, points before a wsd decay or None) of every complete or
    pruned trial with a curve."""
    evals = (study.user_attrs.get(SPEC_ATTR) or {}).get("evals")
    found = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        points = [p for p in t.user_attrs.get("curve") or [] if p.get("bpc") is not None and math.isfinite(p["bpc"])]
        if not points:
            continue
        config = t.user_attrs.get("config") or {}
        stable = None
        if config.get("lr_schedule") == "wsd" and evals:
            start = 1.0 - float(config.get("lr_decay", 0.2))
            stable = sum(1 for p in points if p["index"] / evals <= start + 1e-9)
        found[t.number] = (t.state.name, np.array([p["device_seconds"] for p in points]),
                           np.array([p["bpc"] for p in points]), stable)
    return found


def forecast_study(study: optuna.Study, multiples: tuple[float, ...] = MULTIPLES) -> list[Forecast]:
    return [forecast_curve(n, state, t, y, multiples, stable=stable)
            for n, (state, t, y, stable) in sorted(study_curves(study).items())]


CONFORMAL_LEVEL = 0.95


@dataclass(frozen=True)
class Calibration:
    """The forecast's own measured error (the backtest: each curve cut, its end forecast), folded into its
    intervals and chances. Split-conformal: the interval's half-width is the ceil((n+1) level)-th smallest
    |error| of n backtest curves, so the coverage stated is the coverage measured; with too few curves
    for `level`, the largest error, and the level it supports, n / (n + 1)."""

    errors: np.ndarray  # forecast minus actual, one per backtest curve
    halfwidth: float
    level: float

    @classmethod
    def from_errors(cls, errors: np.ndarray, level: float = CONFORMAL_LEVEL) -> Calibration | None:
        errors = np.asarray(errors, float)
        errors = errors[np.isfinite(errors)]
        n = len(errors)
        if n < 2:
            return None
        ranked = np.sort(np.abs(errors))
        k = math.ceil((n + 1) * level)
        if k > n:
            return cls(errors, float(ranked[-1]), n / (n + 1))
        return cls(errors, float(ranked[k - 1]), level)

    def widen(self, centre: float, low: float, high: float) -> tuple[float, float]:
        """An interval never narrower than the error the forecast has been measured to make (none: NaN)."""
        w = self.halfwidth
        return (min(low, centre - w) if low == low else centre - w, max(high, centre + w) if high == high else centre + w)

    def sentence(self) -> str:
        return (f"intervals and chances include the forecast's own error measured by the backtest: {self.level:.0%} "
                f"intervals at least ±{self.halfwidth:.3f} bpc (split-conformal over {len(self.errors)} backtest "
                f"curves; measured where the backtest cut them, so at larger multiples they are a lower bound)")


def calibration_for(study: optuna.Study) -> Calibration | None:
    cut, summary = backtest(study)
    return Calibration.from_errors(cut["error"].to_numpy()) if summary["trials"] else None


def p_best(forecasts: list[Forecast], multiple: float, calibration: Calibration | None = None) -> dict[int, float]:
    """How often each trial is best at `multiple` across the bootstrap replicates (last values stay put), each
    replicate shifted by an error the backtest measured where a calibration is given."""
    if not forecasts:
        return {}
    columns = [f.replicates[f.multiples.index(multiple)] if f.fit is not None and len(f.replicates)
               else np.full(BOOTSTRAP, f.last_bpc) for f in forecasts]
    grid = np.column_stack(columns)
    if calibration is not None:  # actual = forecast - error
        rng = np.random.default_rng(0)
        grid = grid - rng.choice(calibration.errors, size=grid.shape, replace=True)
    winners = np.argmin(grid, axis=1)
    return {f.trial: float(np.mean(winners == i)) for i, f in enumerate(forecasts)}


def outlook_table(forecasts: list[Forecast], multiple: float, calibration: Calibration | None = None) -> pd.DataFrame:
    """One row per trial: measured at its budget, forecast at `multiple` x it, interval, method, P(best), ranks."""
    chances = p_best(forecasts, multiple, calibration)
    rows = []
    for f in forecasts:
        low, high = f.interval(multiple)
        if calibration is not None:
            low, high = calibration.widen(f.predict(multiple), low, high)
        rows.append({"trial": f.trial, "state": f.state, "measured_bpc": f.last_bpc, "budget_s": f.budget_s,
                     "forecast_bpc": f.predict(multiple), "low": low, "high": high, "method": f.method,
                     "p_best": chances.get(f.trial, 0.0)})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["measured_rank"] = table["measured_bpc"].rank(method="min").astype(int)
    table["forecast_rank"] = table["forecast_bpc"].rank(method="min").astype(int)
    return table.sort_values(["forecast_rank", "trial"]).reset_index(drop=True)


def outlook_sentences(tables: dict[float, pd.DataFrame], skill: bool = True) -> list[str]:
    """Where the forecast ranking differs from the measured one, in words; its chances only where the
    backtest showed it has skill."""
    lines = []
    for multiple, table in tables.items():
        if table.empty:
            continue
        measured = int(table.sort_values("measured_rank").iloc[0]["trial"])
        top = table.iloc[0]
        chance = f" (P(best) {top['p_best']:.0%})" if skill else ""
        if int(top["trial"]) == measured:
            lines.append(f"at {multiple:g}x the budget the forecast keeps #{measured} first{chance}")
        else:
            lines.append(f"at {multiple:g}x the budget the forecast puts #{int(top['trial'])} first{chance}, ahead "
                         f"of the measured winner #{measured}")
    fallbacks = sum(t["method"].str.startswith("last value").sum() for t in list(tables.values())[:1])
    if fallbacks:
        lines.append(f"{fallbacks} trial(s) have no stable fit and are forecast at their last observed value")
    return lines


def backtest(study: optuna.Study, fraction: float = 0.5) -> tuple[pd.DataFrame, dict]:
    """Truncate each curve at `fraction` of its evaluations, forecast its end, compare with what it reached.

    Also whether the forecast ranks the trials better than the truncated figure itself (Kendall tau
    of each against the trials' actual final values).
    """
    rows = []
    for n, (state, t, y, _stable) in sorted(study_curves(study).items()):
        keep = max(2, round(fraction * len(t)))  # evaluations are evenly spread over the budget, in its own unit
        if keep >= len(t):
            continue
        cut = np.arange(len(t)) < keep
        multiple = float(t[-1] / t[cut][-1])
        f = forecast_curve(n, state, t[cut], y[cut], (multiple,))
        rows.append({"trial": n, "truncated_bpc": float(y[cut][-1]), "forecast_bpc": f.predict(multiple),
                     "actual_bpc": float(y[-1]), "method": f.method})
    table = pd.DataFrame(rows)
    if table.empty:
        return table, {"trials": 0}
    table["error"] = table["forecast_bpc"] - table["actual_bpc"]
    table["truncated_error"] = table["truncated_bpc"] - table["actual_bpc"]
    summary = {
        "trials": len(table), "fraction": fraction,
        "fitted": int((table["method"] == "power law").sum()),
        "mean_error": float(table["error"].mean()), "median_abs_error": float(table["error"].abs().median()),
        "p90_abs_error": float(table["error"].abs().quantile(0.9)),
        "truncated_median_abs_error": float(table["truncated_error"].abs().median()),
        "tau_forecast": kendall_tau(list(table["forecast_bpc"]), list(table["actual_bpc"])),
        "tau_truncated": kendall_tau(list(table["truncated_bpc"]), list(table["actual_bpc"])),
    }
    return table, summary


def forecast_checks(study: optuna.Study) -> tuple[pd.DataFrame, dict] | None:
    """A long-budget confirmation against the forecast its plan stored: predicted and measured bpc per
    configuration, Kendall tau of the short ranking and of the forecast against the long-budget truth,
    and the calibration (Brier score) of the stated chances of being best.

    The truth is each long run's best held-out bpc (what its kept checkpoint scores, and what the
    sweep ranks by); its last evaluation stands beside it (`long_final_bpc`): where the two part,
    the long run overfitted, which a falling power law cannot foresee.
    """
    confirmation = load_confirmation(study)
    plan = confirmation.user_attrs.get(PLAN_ATTR) if confirmation is not None else None
    if not plan or not plan.get("forecast"):
        return None
    best: dict[int, list[float]] = {}
    final: dict[int, list[float]] = {}
    for t in confirmation.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if "source_trial" in t.user_attrs and t.user_attrs.get("val_bpc") is not None:
            source = int(t.user_attrs["source_trial"])
            best.setdefault(source, []).append(float(t.user_attrs["val_bpc"]))
            final.setdefault(source, []).append(float(t.user_attrs.get("final_val_bpc", t.user_attrs["val_bpc"])))
    rows = []
    for key, f in plan["forecast"].items():
        values = best.get(int(key), [])
        rows.append({"trial": int(key), "short_bpc": f["measured_bpc"], "forecast_bpc": f["bpc"], "low": f["low"],
                     "high": f["high"], "p_best": f["p_best"], "method": f["method"], "runs": len(values),
                     "long_bpc": float(np.mean(values)) if values else math.nan,
                     "long_sd": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                     "long_final_bpc": float(np.mean(final[int(key)])) if values else math.nan})
    table = pd.DataFrame(rows)
    done = table[table["runs"] > 0]
    if done.empty:
        return table, {"multiple": plan.get("multiple"), "finished": 0}
    table["error"] = table["forecast_bpc"] - table["long_bpc"]
    winner = int(done.sort_values("long_bpc").iloc[0]["trial"])
    table["was_best"] = table["trial"] == winner
    summary = {
        "multiple": plan.get("multiple"), "finished": len(done), "winner": winner,
        "forecast_winner": int(table.sort_values("forecast_bpc").iloc[0]["trial"]),
        "short_winner": int(table.sort_values("short_bpc").iloc[0]["trial"]),
        "tau_short": kendall_tau(list(done["short_bpc"]), list(done["long_bpc"])),
        "tau_forecast": kendall_tau(list(done["forecast_bpc"]), list(done["long_bpc"])),
        "median_abs_error": float(table["error"].abs().median()),
        "brier": float(np.mean((done["p_best"] - (done["trial"] == winner)) ** 2)),
    }
    return table, summary


def outlook_section(study: optuna.Study, out: Path) -> Section:
    """The report's "If you train longer": forecast tables, backtest, learning-rate drift, forecast vs outcome."""
    forecasts = forecast_study(study)
    section = Section("If you train longer (a forecast, with its measured error)")
    complete = [f for f in forecasts if f.state == "COMPLETE"]
    if len(complete) < 2:
        return section
    calibration = calibration_for(study)
    tables = {m: outlook_table(forecasts, m, calibration) for m in MULTIPLES}
    for m, table in tables.items():  # every full table stays in its CSV
        path = out / f"forecast_{m:g}x.csv"
        table.to_csv(path, index=False)
        section.files.append(path)
    cut, summary = backtest(study)
    skill = not summary["trials"] or summary["tau_forecast"] > summary["tau_truncated"]
    if not skill:  # said first: the numbers below are then the measured ranking, extrapolated
        section.sentences.append(
            f"the forecast has shown no skill on this study: cut at {summary['fraction']:.0%}, it ranks the trials no "
            f"better than the cut value itself (Kendall tau {summary['tau_forecast']:.2f} against "
            f"{summary['tau_truncated']:.2f}), so no chance of being best is stated; read the table as the measured "
            f"ranking extrapolated")
    section.tables.append(("Forecast at 2x, 4x and 10x the trial budget (top 10; every trial in "
                              "forecast_<m>x.csv)", combined_display(tables, skill, calibration.level if calibration else CONFORMAL_LEVEL).head(10)))
    section.sentences += outlook_sentences(tables, skill)
    if calibration is not None:
        section.sentences.append(calibration.sentence())
    if summary["trials"]:
        cut.to_csv(out / "forecast_backtest.csv", index=False)
        section.files.append(out / "forecast_backtest.csv")
        better = "ranks the trials better than" if skill else "does not rank the trials better than"
        section.sentences.append(
            f"backtest (each curve cut at {summary['fraction']:.0%}, its end forecast): median error "
            f"{summary['median_abs_error']:.3f} bpc (p90 {summary['p90_abs_error']:.3f}; the cut value itself is off by "
            f"{summary['truncated_median_abs_error']:.3f}); the forecast {better} the cut value (Kendall tau "
            f"{summary['tau_forecast']:.2f} against {summary['tau_truncated']:.2f})")
    drift = lr_drift(study, MULTIPLES[1])
    section.sentences.append(f"learning rate: {drift['note']}")
    checked = forecast_checks(study)
    if checked is not None and checked[1].get("finished"):
        table, s = checked
        section.tables.append((f"Forecast against a {s['multiple']:g}x confirmation (held-out bpc, fresh seeds)",
                                  checks_display(table)))
        section.sentences.append(
            f"at {s['multiple']:g}x, measured: #{s['winner']} won; the short-budget ranking picked #{s['short_winner']} "
            f"(Kendall tau {s['tau_short']:.2f} with the truth), the forecast #{s['forecast_winner']} (tau "
            f"{s['tau_forecast']:.2f}); forecast error median {s['median_abs_error']:.3f} bpc; Brier score of the stated "
            f"chances {s['brier']:.3f} over {s['finished']} configurations")
    return section


def checks_display(table: pd.DataFrame) -> pd.DataFrame:
    interval = [f"{lo:.3f}-{hi:.3f}" if lo is not None and lo == lo else "-"
                for lo, hi in zip(table["low"], table["high"], strict=True)]
    return pd.DataFrame({"trial": table["trial"].map(lambda x: f"#{x}"), "at the study's budget": table["short_bpc"],
                         "forecast": table["forecast_bpc"], "95% interval": interval, "P(best)": table["p_best"],
                         "runs": table["runs"], "measured (best)": table["long_bpc"], "sd": table["long_sd"],
                         "measured (last)": table["long_final_bpc"], "forecast error": table.get("error"),
                         "method": table["method"]})


def combined_display(tables: dict[float, pd.DataFrame], skill: bool = True, level: float = CONFORMAL_LEVEL) -> pd.DataFrame:
    """One table for every multiple: the measured figures once, then each multiple's forecast (and its
    chance of being best, where the backtest showed skill), ordered by the largest multiple's forecast."""
    last = max(tables)
    base = tables[last]
    frame = pd.DataFrame({"trial": base["trial"].map(lambda x: f"#{x}"), "state": base["state"].str.lower(),
                          "measured bpc": base["measured_bpc"], "measured rank": base["measured_rank"]})
    for m, table in sorted(tables.items()):
        by_trial = table.set_index("trial")
        frame[f"{m:g}x bpc"] = base["trial"].map(by_trial["forecast_bpc"])
        if skill:
            frame[f"{m:g}x P(best)"] = base["trial"].map(by_trial["p_best"])
    frame[f"{last:g}x {level:.0%} interval"] = [f"{lo:.3f}-{hi:.3f}" if lo == lo else "-"
                                        for lo, hi in zip(base["low"], base["high"], strict=True)]
    frame["method"] = base["method"]
    return frame.reset_index(drop=True)


def long_budget_plan(study: optuna.Study, top: int, multiple: float) -> tuple[list[int], dict]:
    """The union of the measured top K and the forecast's top K at `multiple` x, and the forecast to store."""
    table = outlook_table(forecast_study(study, (multiple,)), multiple, calibration_for(study))
    complete = table[table["state"] == "COMPLETE"]
    if complete.empty:
        raise HarnessError(f"study {study.study_name!r} has no complete trial to forecast; run harness sweep first")
    measured = list(complete.sort_values("measured_bpc")["trial"].head(top))
    forecast = list(complete.sort_values("forecast_bpc")["trial"].head(top))
    sources = [int(n) for n in dict.fromkeys(measured + forecast)]
    keep = complete.set_index("trial").loc[sources]
    stored = {str(n): {"bpc": float(r.forecast_bpc), "low": _num(r.low), "high": _num(r.high),
                       "p_best": float(r.p_best), "measured_bpc": float(r.measured_bpc), "method": r.method}
              for n, r in keep.iterrows()}
    return sources, {"multiple": multiple, "forecast": stored}


def _num(value: float) -> float | None:
    return None if value != value else float(value)
