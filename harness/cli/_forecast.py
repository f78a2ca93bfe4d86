"""`harness forecast`: the predicted ranking when every configuration trains longer, and how far to trust it."""

from __future__ import annotations

import argparse
import math

from harness.cli._study import add_study_target
from harness.common import HarnessError, dumps


def add_forecast_parser(sub) -> None:
    f = sub.add_parser("forecast", help="will the winner still win when trained longer? forecast and backtest",
                       description="Fit each trial's held-out curve with a saturating power law and forecast its bpc "
                                   "at multiples of the trial budget; the backtest measures the forecast's error on "
                                   "the study's own curves.")
    f.add_argument("--at", nargs="+", default=["2x", "4x", "10x"], help="multiples of the budget (default 2x 4x 10x)")
    f.add_argument("--top", type=int, default=10, help="rows per table (default 10)")
    f.add_argument("--backtest", type=float, default=0.5,
                   help="cut each curve at this share of its length for the backtest (default 0.5)")
    add_study_target(f)
    f.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    f.set_defaults(handler=cmd_forecast)


def multiples(values: list[str]) -> tuple[float, ...]:
    out = []
    for v in values:
        text = v.strip().lower().removesuffix("x")
        try:
            m = float(text)
        except ValueError:
            raise HarnessError(f"--at {v!r}: write multiples of the trial budget such as 2x 4x 10x") from None
        if not m >= 1:
            raise HarnessError(f"--at {v!r}: a forecast is for a longer budget; give 1x or more")
        out.append(m)
    return tuple(out)


def cmd_forecast(args: argparse.Namespace) -> int:
    from harness.report import (
        Calibration,
        backtest,
        forecast_study,
        lr_drift,
        outlook_sentences,
        outlook_table,
    )
    from harness.search import open_results

    at = multiples(args.at)
    if not 0 < args.backtest < 1:
        raise HarnessError(f"--backtest {args.backtest:g}: the share of each curve to keep, between 0 and 1 (e.g. 0.5)")
    if args.top < 1:
        raise HarnessError(f"--top must be at least 1, got {args.top}")
    _, study = open_results(args.target, args.results, args.storage)
    forecasts = forecast_study(study, at)
    if not [f for f in forecasts if f.state == "COMPLETE"]:
        raise HarnessError(f"study {study.study_name!r} has no complete trial with a curve to forecast yet")
    cut, summary = backtest(study, args.backtest)
    calibration = Calibration.from_errors(cut["error"].to_numpy()) if summary["trials"] else None
    tables = {m: outlook_table(forecasts, m, calibration) for m in at}
    drift = lr_drift(study, at[-1])
    if args.json:
        print(dumps({"study": study.study_name, "forecast": {f"{m:g}x": t.to_dict("records") for m, t in tables.items()},
                     "backtest": summary, "lr_drift": drift, "notes": outlook_sentences(tables)}))
        return 0
    for m, table in tables.items():
        print(f"at {m:g}x the trial budget:")
        print(f"{'rank':>4} {'trial':>6} {'state':>9} {'measured':>9} {'(rank)':>6} {'forecast':>9} {'95% interval':>15} "
              f"{'P(best)':>8}  method")
        for r in table.head(args.top).itertuples():
            interval = "-" if math.isnan(r.low) else f"{r.low:.3f}-{r.high:.3f}"
            print(f"{r.forecast_rank:>4} {'#' + str(r.trial):>6} {r.state.lower():>9} {r.measured_bpc:>9.4f} "
                  f"{r.measured_rank:>6} {r.forecast_bpc:>9.4f} {interval:>15} {r.p_best:>8.0%}  {r.method}")
        print()
    for line in outlook_sentences(tables):
        print(f"note: {line}")
    if summary["trials"]:
        print(f"backtest: {summary['trials']} curves cut at {summary['fraction']:.0%} ({summary['fitted']} fitted): "
              f"forecast error mean {summary['mean_error']:+.3f}, median |error| {summary['median_abs_error']:.3f}, "
              f"p90 {summary['p90_abs_error']:.3f} bpc (the cut value itself: median |error| "
              f"{summary['truncated_median_abs_error']:.3f}); Kendall tau with the actual ends: forecast "
              f"{summary['tau_forecast']:.2f}, cut value {summary['tau_truncated']:.2f}")
    print(f"learning rate: {drift['note']}")
    return 0
