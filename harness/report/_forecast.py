"""Will the winner still win when trained longer? A forecast of each trial's held-out curve, and its checks.

Each trial's held-out bpc against device-seconds is fitted on its later points (from 20% of its
length on) with a saturating power law `bpc(t) = a + b * t^-c` (b > 0, 0 < c <= 3): for each c on a
log grid, a and b are a linear least-squares fit, and the c with the least squared error wins (no
optimizer to diverge). The interval comes from refitting on bootstrapped residuals. Where the fit
is unstable (too few points, c at the edge of its grid, a curve that does not fall, a negative
asymptote, or bootstrap replicates that disagree wildly) the forecast is the last observed value,
and the table says so (`method`). It is a forecast: `backtest` measures its error on the study's
own curves, and a long-budget `harness confirm` measures it against reality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

C_GRID = np.exp(np.linspace(math.log(0.05), math.log(3.0), 60))
LATER = 0.2  # the fit uses the points from this share of the curve's length on
BOOTSTRAP = 200
MULTIPLES = (2.0, 4.0, 10.0)  # the multiples of a trial's budget the report forecasts at
JUDGED_AT = MULTIPLES[-1]  # where replicates that disagree make a curve fall back to its last value
MIN_POINTS = 4


@dataclass(frozen=True)
class Fit:
    a: float
    b: float
    c: float
    sse: float

    def at(self, t: np.ndarray | float) -> np.ndarray | float:
        return self.a + self.b * np.power(t, -self.c)


def fit_power_laws(t: np.ndarray, ys: np.ndarray) -> list[Fit | None]:
    """Least-squares a + b t^-c with b > 0 over the c grid for each row of `ys` at once.

    For a fixed c the fit is a straight line in x = t^-c, so a, b and the squared error have closed
    forms: b = Sxy / Sxx, a = mean(y) - b mean(x), SSE = Syy - Sxy^2 / Sxx. All c and all rows (the
    bootstrap's replicates) are one matrix product instead of a least-squares solve each: a
    200-trial study's forecast took minutes that way.
    """
    t, ys = np.asarray(t, float), np.atleast_2d(np.asarray(ys, float))
    x = np.power(t[None, :], -C_GRID[:, None])  # (grid, points)
    x_mean = x.mean(axis=1, keepdims=True)
    xc = x - x_mean
    sxx = (xc ** 2).sum(axis=1)  # (grid,)
    y_mean = ys.mean(axis=1, keepdims=True)  # (rows, 1)
    yc = ys - y_mean
    with np.errstate(divide="ignore", invalid="ignore"):
        sxy = xc @ yc.T  # (grid, rows)
        b = sxy / sxx[:, None]
        a = y_mean.T - b * x_mean
        sse = (yc ** 2).sum(axis=1)[None, :] - sxy ** 2 / sxx[:, None]
    sse = np.where((b > 0) & (sxx[:, None] > 0), np.maximum(sse, 0.0), np.inf)
    best = sse.argmin(axis=0)
    return [Fit(float(a[k, r]), float(b[k, r]), float(C_GRID[k]), float(sse[k, r])) if np.isfinite(sse[k, r])
            else None for r, k in enumerate(best)]


def fit_power_law(t: np.ndarray, y: np.ndarray) -> Fit | None:
    """The fit of one curve; None where no c gives a falling curve."""
    return fit_power_laws(t, np.asarray(y, float)[None, :])[0]


@dataclass
class Forecast:
    trial: int
    state: str
    budget_s: float  # device-seconds the trial ran
    last_bpc: float
    method: str  # "power law" | "last value (<why>)"
    fit: Fit | None
    replicates: np.ndarray  # bootstrap fits' predictions, one row per multiple (empty for last value)
    multiples: tuple[float, ...]
    offset: float = 0.0  # subtracted from the fitted curve: the gain of a schedule's final decay

    def predict(self, multiple: float) -> float:
        if self.fit is None:
            return self.last_bpc
        return float(self.fit.at(self.budget_s * multiple)) - self.offset

    def interval(self, multiple: float) -> tuple[float, float]:
        if self.fit is None or not len(self.replicates):
            return (math.nan, math.nan)
        row = self.replicates[self.multiples.index(multiple)]
        return float(np.percentile(row, 2.5)), float(np.percentile(row, 97.5))


def forecast_curve(trial: int, state: str, t: np.ndarray, y: np.ndarray, multiples: tuple[float, ...],
                   seed: int = 0, stable: int | None = None, judged_at: float = JUDGED_AT) -> Forecast:
    """The forecast of one curve at multiples of its length, with bootstrap replicates, or its fallback.

    `stable`: how many leading points precede a schedule's final decay (wsd holds its peak rate,
    then decays over the last share of any budget). The power law is then fitted to those points
    only, and the decay's gain at the observed budget (the fitted curve's value at the end minus
    what the trial reached) is taken off the forecast at every multiple, as the long run's own
    decay would bring it.

    Whether the bootstrap replicates agree enough for a power law is judged at `judged_at` times the
    curve's length, not at the largest multiple asked for: a trial's 2x forecast is then the same
    whether or not 4x was asked beside it.
    """
    t, y = np.asarray(t, float), np.asarray(y, float)
    order = np.argsort(t)
    t, y = t[order], y[order]
    end, last = float(t[-1]), float(y[-1])
    if stable is not None and MIN_POINTS <= stable < len(t):
        scale = end / t[stable - 1]
        f = forecast_curve(trial, state, t[:stable], y[:stable], tuple(m * scale for m in multiples), seed,
                           judged_at=judged_at * scale)
        if f.fit is None:
            return Forecast(trial, state, end, last, f.method, None, np.empty((0, 0)), multiples)
        gain = float(f.fit.at(end)) - last
        return Forecast(trial, state, end, last, f"power law before the decay, minus its gain ({gain:.3f} bpc)",
                        f.fit, f.replicates - gain, multiples, offset=gain)

    def fallback(why: str) -> Forecast:
        return Forecast(trial, state, end, last, f"last value ({why})", None, np.empty((0, 0)), multiples)

    later = t >= LATER * end
    tl, yl = t[later], y[later]
    if len(tl) < MIN_POINTS:
        return fallback(f"{len(tl)} points after {LATER:.0%} of the curve, {MIN_POINTS} needed")
    fit = fit_power_law(tl, yl)
    if fit is None:
        return fallback("the curve does not fall")
    if fit.c in (C_GRID[0], C_GRID[-1]):
        return fallback(f"the exponent is at the edge of its range ({fit.c:.2f})")
    if fit.a < 0:
        return fallback("a negative asymptote")
    rng = np.random.default_rng(seed + trial)
    fitted = fit.at(tl)
    residuals = yl - fitted
    targets = np.array([end * m for m in (*multiples, judged_at)])
    resampled = fitted + rng.choice(residuals, size=(BOOTSTRAP, len(residuals)), replace=True)
    rows = [again.at(targets) if again is not None else np.full(len(targets), last)
            for again in fit_power_laws(tl, resampled)]
    by_target = np.array(rows).T
    replicates, judged = by_target[:-1], by_target[-1]  # one row per multiple asked; the judged one
    spread = np.percentile(judged, 97.5) - np.percentile(judged, 2.5)
    if spread > max(0.5, 0.25 * last):
        return fallback(f"bootstrap replicates disagree by {spread:.2f} bpc at {judged_at:g}x")
    return Forecast(trial, state, end, last, "power law", fit, replicates, multiples)


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-a between two orderings of the same items (ties count as neither)."""
    n = len(x)
    if n < 2:
        return math.nan
    score = 0
    for i in range(n):
        for j in range(i + 1, n):
            score += np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
    return float(score / (n * (n - 1) / 2))
