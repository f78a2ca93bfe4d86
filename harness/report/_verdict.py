"""The morning verdict: frontier, budget and target tables, and the confirmed ranking, as report tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd

from harness.report import _frontier as fr
from harness.search import confirmed as confirmed_ranking
from harness.search import load_confirmation


@dataclass
class Verdict:
    points: pd.DataFrame
    front: pd.DataFrame
    budgets: pd.DataFrame
    targets: pd.DataFrame
    confirmed: pd.DataFrame | None
    confirm_lines: list[str]


def morning_verdict(study: optuna.Study) -> Verdict:
    """Frontier, budget and target tables, and the confirmed ranking where `harness confirm` ran."""
    points = fr.eval_points(study)
    confirmed, lines = None, []
    confirmation = load_confirmation(study)
    if confirmation is not None:
        confirmed, lines = confirmed_ranking(confirmation)
        if confirmed.empty:
            confirmed = None
    return Verdict(points, fr.frontier(points), fr.best_for_budgets(points, fr.default_budgets(points)),
                   fr.time_to_targets(points, fr.default_targets(points)), confirmed, lines)


def write_verdict_tables(v: Verdict, out: Path) -> list[Path]:
    files = []
    for name, table in (("frontier", v.front), ("best_for_budget", v.budgets), ("time_to_target", v.targets),
                        ("confirmed", v.confirmed)):
        if table is not None and not table.empty:
            table.to_csv(out / f"{name}.csv", index=False)
            files.append(out / f"{name}.csv")
    return files


def budget_table(v: Verdict) -> pd.DataFrame:
    t = v.budgets.copy()
    if t.empty:
        return t
    return pd.DataFrame({"budget (device-s)": t["budget_s"], "best trial": t["trial"].map(_trial_label), "bpc (bits/char)": t["bpc"], "reached at (device-s)": t["at_s"]})


def target_table(v: Verdict) -> pd.DataFrame:
    t = v.targets.copy()
    if t.empty:
        return t
    return pd.DataFrame({"target bpc": t["target_bpc"], "first trial to reach it": t["trial"].map(
        lambda x: _trial_label(x, "none")), "after (device-s)": t["device_seconds"]})


def confirmed_table(v: Verdict) -> pd.DataFrame:
    c = v.confirmed
    return pd.DataFrame({"rank": c["rank"], "trial": c["trial"].map(lambda x: f"#{x}"), "runs": c["runs"],
                         "test bpc (mean)": c["test_bpc_mean"], "sd": c["test_bpc_sd"],
                         "95% interval": [f"{lo:.3f}-{hi:.3f}" if lo == lo else "-" for lo, hi in
                                          zip(c["ci95_low"], c["ci95_high"], strict=False)],
                         "chosen on (val bpc)": c["val_bpc"], "val rank": c["val_rank"],
                         "dynamic test bpc (adaptive)": c.get("test_dynamic_bpc_mean"),
                         "tied with": c["tied_with"].replace("", "-")})


def _trial_label(x, missing: str = "-") -> str:
    return missing if x is None or x != x else f"#{int(x)}"
