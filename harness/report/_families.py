"""Report sections for the course's questions: architectures at equal device-seconds, and the embeddings.

A study whose space samples the model family gets a section comparing the families: each
family's frontier (best held-out bpc within x device-seconds, over that family's trials), the
gradient flow through time of each family's best checkpoint, and one sentence per family made
from those numbers. Every study's report shows the character embeddings of its best trial.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pandas as pd

from harness.common import HarnessError, first_line
from harness.diagnostics import checkpoint_profiles, embedding_matrix, project
from harness.models import carries_state, is_recurrent
from harness.report._figures import fig_embeddings, fig_family_frontiers, fig_gradflow
from harness.report._frontier import best_for_budgets, default_budgets, eval_points, frontier
from harness.report._page import Section
from harness.training import load_checkpoint

GRADFLOW_STEPS = 100
GRADFLOW_SEQUENCES = 32


def course_section(study: optuna.Study, frame: pd.DataFrame, out: Path,
                   formats: list[str]) -> tuple[Section | None, dict[str, list[Path]]]:
    """Architectures at equal device-seconds, where the study sampled the model family; and its figures."""
    done = frame[frame["state"] == "COMPLETE"]
    if "model" not in done or done["model"].nunique() < 2:
        return None, {}
    best = best_per_family(frame)
    profiles = gradient_profiles(best)
    figures = {"families": fig_family_frontiers(family_frontiers(study, frame), out, formats)}
    measured = [p for found in profiles.values() if isinstance(found, list) for p in found]
    if measured:
        figures["gradflow"] = [fig_gradflow(measured, out / "gradflow.png")]
    table = best.drop(columns=["checkpoint"])
    by_budget = family_by_budget(family_points(study, frame))
    answer = budget_sentence(by_budget, done.groupby("model").size().astype(int).to_dict())
    return Section("Architectures at equal device-seconds",
                   ([answer] if answer else []) + family_sentences(best, profiles),
                   [("", table), ("Best held-out bpc within each budget, per family (the frontier read at "
                                  "10/25/50/100% of a trial's device-seconds)", by_budget)],
                   ["families", "gradflow"]), figures


def family_frontiers(study: optuna.Study, frame: pd.DataFrame) -> pd.DataFrame:
    """One frontier per model family: (family, device_seconds, bpc, trial)."""
    points = eval_points(study)
    if points.empty or "model" not in frame:
        return pd.DataFrame(columns=["family", "device_seconds", "bpc", "trial"])
    points = family_points(study, frame)
    parts = []
    for family, group in points.groupby("family"):
        f = frontier(group)
        f["family"] = family
        parts.append(f)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def family_points(study: optuna.Study, frame: pd.DataFrame) -> pd.DataFrame:
    """Every evaluation point of every trial, with its trial's family."""
    points = eval_points(study)
    family_of = frame.set_index("number")["model"].to_dict() if "model" in frame else {}
    points["family"] = points["trial"].map(family_of)
    return points


def family_by_budget(points: pd.DataFrame, budgets: list[float] | None = None) -> pd.DataFrame:
    """Which family, for the device-seconds one can spend: per budget, each family's best bpc within it and the winner.

    A point at x device-seconds is what that trial had after x seconds of its own schedule, so a
    small budget's figure is a long-budget run stopped early (not annealed): the frontier's honest
    reading, the same for every family.
    """
    budgets = budgets or default_budgets(points)
    rows = []
    for budget in budgets:
        row: dict = {"device-s": budget}
        for family, group in points.groupby("family"):
            found = best_for_budgets(group, [budget]).iloc[0]
            row[f"{family} bpc"] = found["bpc"]
            row[f"{family} trial"] = found["trial"]
        scores = {k[:-4]: v for k, v in row.items() if k.endswith(" bpc") and v is not None and not pd.isna(v)}
        ranked = sorted(scores.items(), key=lambda kv: kv[1])
        row["winner"] = ranked[0][0] if ranked else None
        row["margin bpc"] = ranked[1][1] - ranked[0][1] if len(ranked) > 1 else None
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in [c for c in table if c.endswith(" trial")]:
        table[column] = table[column].astype("Int64")
    return table


# A verdict needs evidence on both sides. Seed-to-seed spread of one configuration measured on The
# Prince (harness confirm, docs/measurements.md "Confirmation on The Prince"): differences under
# ~0.05 bpc between single trials are noise. A family with fewer trials than this has not been searched.
NOISE_BPC = 0.05
MIN_FAMILY_TRIALS = 3


def budget_sentence(table: pd.DataFrame, counts: dict[str, int] | None = None) -> str | None:
    """The answer in one sentence: who wins within each budget that any family reached, and by how much.

    With `counts` (complete trials per family) it says how many trials each side had, and names no
    winner where a family had fewer than MIN_FAMILY_TRIALS or every margin is within NOISE_BPC.
    """
    reached = table[table["winner"].notna()] if not table.empty else table
    if reached.empty:
        return None
    parts = []
    for _, row in reached.iterrows():
        if pd.isna(row["margin bpc"]):
            margin = ""
        elif counts is not None and row["margin bpc"] < NOISE_BPC:
            margin = f" by {row['margin bpc']:.3f} bpc, within noise"
        else:
            margin = f" by {row['margin bpc']:.3f} bpc"
        parts.append(f"{row['device-s']:g} s: {row['winner']}{margin}")
    winners = set(reached["winner"])
    verdict = (f"{next(iter(winners))} wins at every budget" if len(winners) == 1
               else "the winner depends on the budget")
    head = "Which family, for the device-seconds you can spend"
    if counts is None:
        return f"{head}: {verdict} ({'; '.join(parts)})."
    evidence = ", ".join(f"{family} {n} complete trial{'s' if n != 1 else ''}" for family, n in sorted(counts.items()))
    thin = sorted(f for f, n in counts.items() if n < MIN_FAMILY_TRIALS)
    if thin:
        verdict = (f"too few trials to name a winner ({', '.join(thin)} had fewer than {MIN_FAMILY_TRIALS}; "
                   f"{evidence}); the frontier so far")
    elif all(pd.isna(m) or m < NOISE_BPC for m in reached["margin bpc"]):
        verdict = f"no family leads by more than the seed noise ({NOISE_BPC} bpc; {evidence})"
    else:
        verdict += f" ({evidence})"
    return f"{head}: {verdict} ({'; '.join(parts)})."


def best_per_family(frame: pd.DataFrame) -> pd.DataFrame:
    done = frame[(frame["state"] == "COMPLETE") & frame["model"].notna()]
    if done.empty:
        return pd.DataFrame()
    best = done.sort_values("best_bpc").groupby("model", sort=False).head(1)
    trials = done.groupby("model").size()
    context = best.get("eval_context", None)
    return pd.DataFrame({"family": best["model"], "best trial": best["number"].astype(int),
                         "trials": best["model"].map(trials), "best bpc": best["best_bpc"],
                         "device-s": best["device_seconds"], "held-out context": context,
                         "checkpoint": best["checkpoint"]}).reset_index(drop=True)


def gradient_profiles(best: pd.DataFrame) -> dict[str, list]:
    """family -> [init profile, trained profile] of its best checkpoint (mlp: none, it has no time axis)."""
    found = {}
    for row in best.itertuples():
        if not is_recurrent(row.family) or not isinstance(row.checkpoint, str) or not Path(row.checkpoint).exists():
            continue
        try:
            found[row.family] = checkpoint_profiles(Path(row.checkpoint), GRADFLOW_STEPS, GRADFLOW_SEQUENCES, 0)
        except Exception as e:  # the section says what it could not measure instead of failing the report
            found[row.family] = first_line(e)
    return found


def family_sentences(best: pd.DataFrame, profiles: dict) -> list[str]:
    """What the numbers say, family by family: rank, figure, and how far back the gradient still reaches."""
    lines = []
    ranked = best.sort_values("best bpc").reset_index(drop=True)
    leader = ranked.iloc[0]["best bpc"] if len(ranked) else math.nan
    for i, row in ranked.iterrows():
        gap = "" if i == 0 else f", {row['best bpc'] - leader:+.3f} bpc behind the leader"
        text = (f"{row['family']}: #{i + 1} of {len(ranked)} at {row['best bpc']:.3f} bpc (trial #{row['best trial']}, "
                f"best of {row['trials']} trials){gap}")
        found = profiles.get(row["family"])
        if not carries_state(row["family"]):
            text += "; it reads a window with no carried state, so gradient flow through time does not apply"
        elif not is_recurrent(row["family"]):
            text += "; it sees one character, so its bpc is the bigram model's floor and no gradient flows in time"
        elif isinstance(found, list):
            init, trained = found
            reach = trained.ratio
            text += (f"; trained, the gradient from {len(trained.norms) - 1} steps back is {reach:.1e} of the last "
                     f"step's (x{trained.decay_per_step:.3f} a step; x{init.decay_per_step:.3f} at initialization)")
            if trained.decay_per_step < 0.7:
                text += ": it learns from the last few characters only"
            elif trained.decay_per_step > 0.95:
                text += ": its gradient survives across long spans"
        elif isinstance(found, str):
            text += f"; gradient flow not measured ({found})"
        lines.append(text + ".")
    return lines


def embeddings_figure(checkpoint: str | None, out: Path, name: str = "embeddings") -> tuple[Path | None, str | None]:
    """The best trial's character map, and a line on what the two axes hold."""
    if not checkpoint or not Path(checkpoint).exists():
        return None, None
    try:
        ckpt = load_checkpoint(checkpoint, "cpu")
    except HarnessError as e:  # the report says what it could not draw instead of failing
        return None, f"The embedding map is missing: {e}"
    proj = project(embedding_matrix(ckpt.model), list(ckpt.vocab.chars))
    path = fig_embeddings(proj, out / f"{name}.png")
    return path, (f"The two PCA axes hold {proj.explained[0]:.0%} and {proj.explained[1]:.0%} of the variance of the "
                  f"{len(proj.chars)} character vectors.")
