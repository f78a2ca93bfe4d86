"""The answer to "which configuration gives the best perplexity for the GPU-seconds I can spend?".

Every evaluation of every trial is a point (device-seconds the trial had spent, held-out bpc): what
the user would have had by stopping that configuration there. Pruned trials count for the points
they reached. The frontier is the lower envelope of those points (the best bpc reachable within
x device-seconds); from it come the "best configuration for a budget" and "time to a target"
tables. These are pure functions of a points table, so known curves give known answers.
"""

from __future__ import annotations

import math

import optuna
import pandas as pd

POINT_COLUMNS = ["trial", "state", "eval", "device_seconds", "bpc"]


def eval_points(study: optuna.Study) -> pd.DataFrame:
    """One row per evaluation of every trial that evaluated at least once."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        for p in t.user_attrs.get("curve") or []:
            if p.get("bpc") is not None and math.isfinite(p["bpc"]):
                rows.append({"trial": t.number, "state": t.state.name, "eval": p["index"],
                             "device_seconds": float(p["device_seconds"]), "bpc": float(p["bpc"])})
    return pd.DataFrame(rows, columns=POINT_COLUMNS)


def frontier(points: pd.DataFrame) -> pd.DataFrame:
    """The points that improve on everything reachable sooner: (device_seconds, bpc, trial), ascending."""
    if points.empty:
        return points.iloc[0:0][["device_seconds", "bpc", "trial"]]
    ordered = points.sort_values(["device_seconds", "bpc"])
    steps, best = [], math.inf
    for r in ordered.itertuples():
        if r.bpc < best:
            best = r.bpc
            steps.append({"device_seconds": r.device_seconds, "bpc": r.bpc, "trial": r.trial})
    return pd.DataFrame(steps)


def evaluation_gap(points: pd.DataFrame) -> float:
    """The median device-seconds between two evaluations of one trial: how finely any step is resolved."""
    gaps = [g for _, one in points.groupby("trial") for g in one["device_seconds"].sort_values().diff().dropna()]
    return float(pd.Series(gaps).median()) if gaps else 0.0


def frontier_findings(front: pd.DataFrame, points: pd.DataFrame, noise_bpc: float) -> tuple[list[dict], int]:
    """The frontier's changes of leader that are findings, and how many others were merged away.

    The frontier is cut into segments, one per stretch a trial leads. A leader that holds for less
    than one evaluation gap (the curves cannot tell it apart from its neighbours) is removed, shortest
    first, and the leaders either side of it join where they are the same trial. A change of leader
    that improves on the standing one by less than the seed noise is then no finding either: the
    standing leader keeps its place. Each finding is (trial, device_seconds it leads from, bpc).
    """
    gap = evaluation_gap(points)
    segments: list[dict] = []
    for r in front.sort_values("device_seconds").itertuples():
        if segments and segments[-1]["trial"] == int(r.trial):
            segments[-1]["last_bpc"] = float(r.bpc)
            continue
        if segments:
            segments[-1]["end"] = float(r.device_seconds)
        segments.append({"trial": int(r.trial), "start": float(r.device_seconds), "end": math.inf,
                         "first_bpc": float(r.bpc), "last_bpc": float(r.bpc)})
    changes = max(0, len(segments) - 1)
    while len(segments) > 1:
        i = min(range(len(segments) - 1), key=lambda k: segments[k]["end"] - segments[k]["start"])
        if segments[i]["end"] - segments[i]["start"] >= gap:
            break
        del segments[i]
        if 0 < i < len(segments) and segments[i - 1]["trial"] == segments[i]["trial"]:
            later = segments.pop(i)
            segments[i - 1].update(end=later["end"], last_bpc=later["last_bpc"])
        elif i > 0:  # the standing leader holds until the next one takes over
            segments[i - 1]["end"] = segments[i]["start"]
    kept: list[dict] = []
    for seg in segments:
        if kept and kept[-1]["last_bpc"] - seg["first_bpc"] < noise_bpc:
            kept[-1].update(end=seg["end"], last_bpc=seg["last_bpc"])  # within noise: the standing leader stays
        else:
            kept.append(dict(seg))
    findings = [{"trial": k["trial"], "device_seconds": k["start"], "bpc": k["last_bpc"]} for k in kept]
    return findings, changes - (len(findings) - 1)


def _first(points: pd.DataFrame, reached: pd.Series, order: list[str]) -> pd.Series | None:
    """The first point by `order` among those `reached` selects, or None."""
    found = points[reached]
    return None if found.empty else found.sort_values(order).iloc[0]


def best_for_budgets(points: pd.DataFrame, budgets: list[float]) -> pd.DataFrame:
    """For each budget B: the trial whose evaluation within B device-seconds had the lowest bpc."""
    rows = []
    for budget in budgets:
        r = _first(points, points["device_seconds"] <= budget + 1e-9, ["bpc", "device_seconds"])
        rows.append({"budget_s": budget, "trial": None, "bpc": None, "at_s": None} if r is None else
                    {"budget_s": budget, "trial": int(r["trial"]), "bpc": float(r["bpc"]),
                     "at_s": float(r["device_seconds"])})
    return pd.DataFrame(rows)


def time_to_targets(points: pd.DataFrame, targets: list[float]) -> pd.DataFrame:
    """For each target bpc: the trial that reached it first (fewest device-seconds), or None if none did."""
    rows = []
    for target in targets:
        r = _first(points, points["bpc"] <= target + 1e-12, ["device_seconds", "bpc"])
        rows.append({"target_bpc": target, "trial": None if r is None else int(r["trial"]),
                     "device_seconds": None if r is None else float(r["device_seconds"])})
    return pd.DataFrame(rows)


def default_budgets(points: pd.DataFrame) -> list[float]:
    """10%, 25%, 50% and 100% of the longest a trial ran (the per-trial budget, in device-seconds)."""
    if points.empty:
        return []
    longest = float(points["device_seconds"].max())
    return [round(longest * f, 2) for f in (0.1, 0.25, 0.5, 1.0)]


def default_targets(points: pd.DataFrame) -> list[float]:
    """Round bpc targets between the best result and the typical first evaluation: a spread worth racing for."""
    if points.empty:
        return []
    best = float(points["bpc"].min())
    first = float(points.sort_values("eval").groupby("trial")["bpc"].first().median())
    if not first > best:
        return [round(best, 2)]
    span = first - best
    targets = sorted({round(best + span * f, 2) for f in (0.5, 0.25, 0.1)} | {math.ceil(best * 100) / 100}, reverse=True)
    return targets
