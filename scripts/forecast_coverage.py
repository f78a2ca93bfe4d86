"""How often the forecast's intervals held what the curves really reached: the backtest's coverage, with
and without the calibration the report applies (harness.report._outlook.Calibration).

Each curve is cut at half its evaluations and its end forecast; the line says how often the actual
end fell inside the bootstrap's own 95% interval, and inside the calibrated one (in-sample: the
calibration is measured on these same curves, so this checks the arithmetic, not new data).

    python scripts/forecast_coverage.py RESULTS_DIR [RESULTS_DIR ...]
"""

from __future__ import annotations

import sys

import harness
from harness.report import Calibration, backtest, forecast_curve
from harness.report._outlook import study_curves


def coverage(target: str) -> str:
    study = harness.load_results(target)
    cut, s = backtest(study)
    c = Calibration.from_errors(cut["error"].to_numpy())
    if c is None:
        return f"{target}: {s['trials']} backtest curves, too few to calibrate"
    plain = calibrated = n = 0
    for number, (state, t, y, _stable) in sorted(study_curves(study).items()):
        keep = max(2, round(0.5 * len(t)))
        if keep >= len(t):
            continue
        multiple = float(t[-1] / t[:keep][-1])
        f = forecast_curve(number, state, t[:keep], y[:keep], (multiple,))
        low, high = f.interval(multiple)
        centre = f.predict(multiple)
        n += 1
        plain += bool(low == low and low <= y[-1] <= high)
        wide_low, wide_high = c.widen(centre, low, high)
        calibrated += bool(wide_low <= y[-1] <= wide_high)
    return (f"{target}: {s['trials']} backtest curves (median |error| {s['median_abs_error']:.3f} bpc, p90 "
            f"{s['p90_abs_error']:.3f}; Kendall tau forecast {s['tau_forecast']:.2f}, cut value {s['tau_truncated']:.2f}); "
            f"calibrated half-width ±{c.halfwidth:.3f} at {c.level:.0%}; the actual end inside the bootstrap's own "
            f"95% interval {plain}/{n}, inside the calibrated one {calibrated}/{n}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for target in sys.argv[1:]:
        print(coverage(target), flush=True)
