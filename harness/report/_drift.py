"""How the best learning rate moves with the budget inside one study: a hint for a longer run's rate.

The best trial within 10/25/50/100% of the trial budget gives a (budget, lr) pair each. A drift is
fitted only where the study has enough distinct best rates to give it an interval, and is
extrapolated only where that interval excludes no drift at all.
"""

from __future__ import annotations

import math

import numpy as np
import optuna

from harness.report._frontier import best_for_budgets, default_budgets, eval_points
from harness.search import t_quantile_975

MIN_DRIFT_RATES = 3  # distinct best learning rates over the budgets before a drift is fitted


def lr_drift(study: optuna.Study, multiple: float) -> dict:
    """How the best learning rate moves with the budget inside this study, and what it suggests at `multiple` x.

    The best trial within 10/25/50/100% of the trial budget (the frontier's budget table) gives a
    (budget, lr) pair each; a power law lr ~ budget^beta through them is extrapolated. With one
    distinct best configuration there is no drift to fit, and the suggestion is its own rate.
    """
    points = eval_points(study)
    table = best_for_budgets(points, default_budgets(points)).dropna(subset=["trial"])
    lrs = {t.number: (t.params.get("lr") or (t.user_attrs.get("config") or {}).get("lr"))
           for t in study.get_trials(deepcopy=False)}
    pairs = [(float(r.budget_s), float(lrs[int(r.trial)])) for r in table.itertuples() if lrs.get(int(r.trial))]
    if not pairs:
        return {"pairs": [], "beta": None, "suggested_lr": None, "note": "no learning rate recorded"}
    budgets, rates = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    longest = max(p[0] for p in pairs)
    if len(set(rates.round(12))) < 2:
        return {"pairs": pairs, "beta": None, "suggested_lr": pairs[-1][1],
                "note": "one configuration is best at every budget: no drift to fit; its own rate"}
    distinct = len(set(rates.round(12)))
    if distinct < MIN_DRIFT_RATES:  # a line through two points has no interval: nothing to extrapolate
        return {"pairs": pairs, "beta": None, "suggested_lr": pairs[-1][1],
                "note": f"{distinct} distinct best learning rates across the study's budgets, {MIN_DRIFT_RATES} needed "
                        f"to fit a drift with its interval; the longest budget's own rate"}
    (beta, alpha), cov = np.polyfit(budgets, rates, 1, cov="unscaled")
    residual = rates - (alpha + beta * budgets)
    dof = len(pairs) - 2
    se = math.sqrt(max(float(residual @ residual) / dof * cov[0, 0], 0.0)) if dof > 0 else math.inf
    t = t_quantile_975(dof) if dof > 0 else math.inf
    low, high = beta - t * se, beta + t * se
    interval = f"95% interval {low:+.2f} to {high:+.2f}" if math.isfinite(se) else "no interval"
    if not low < 0 < high and math.isfinite(se):
        suggested = float(np.exp(alpha + beta * math.log(longest * multiple)))
        note = f"best lr ~ budget^{beta:+.2f} ({interval}) across the study's budgets; at {multiple:g}x: {suggested:.3g}"
    else:
        suggested = pairs[-1][1]
        note = (f"best lr ~ budget^{beta:+.2f} ({interval}): not told apart from no drift; the longest budget's own "
                f"rate")
    return {"pairs": pairs, "beta": float(beta), "beta_interval": [float(low), float(high)],
            "suggested_lr": suggested, "note": note}
