"""A report built on one machine of a study whose trials ran on several.

Numbers come from the storage and are complete anywhere. Files (checkpoints, telemetry samples)
are found at their recorded path or under this machine's results directory (after an rsync);
what is on another machine is listed with its host and path, and the figures that lack it say so,
instead of silently drawing less.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd

from harness.report._page import Section
from harness.search import Elsewhere, elsewhere, locate, this_host, trial_host


def localize(study: optuna.Study, frame: pd.DataFrame, results_dir: Path | None) -> list[Elsewhere]:
    """Point the frame's file columns at the copies on this machine; the files that are not here."""
    away = []
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for key in ("checkpoint", "samples_csv"):
        if key not in frame:
            continue
        for i, number in frame["number"].items():
            trial = trials[int(number)]
            found = locate(trial.user_attrs.get(key), trial, results_dir)
            if found is not None:
                frame.at[i, key] = str(found)
            elif (missing := elsewhere(trial, key, results_dir)) is not None:
                away.append(missing)
    return away


def remote_section(study: optuna.Study, away: list[Elsewhere], frame: pd.DataFrame, best_number: int,
                   results_dir: Path | None) -> Section | None:
    """"Files on other machines": which hosts ran what, what each missing file would have drawn, and the rsync."""
    hosts = pd.Series([trial_host(t) or "unknown" for t in study.get_trials(deepcopy=False)]).value_counts()
    if not away:
        return None
    best = frame[frame["state"] == "COMPLETE"].sort_values("best_bpc")
    top3 = set(best["number"].head(3).astype(int))
    family_best = ({int(n): m for m, n in best.groupby("model", sort=False)["number"].first().items()}
                   if "model" in best and best["model"].nunique() > 1 else {})
    lacks = []
    for item in away:
        if item.what == "checkpoint" and item.trial == best_number:
            lacks.append(f"the embedding map of the best trial #{item.trial}")
        if item.what == "checkpoint" and item.trial in family_best:
            lacks.append(f"the gradient flow of {family_best[item.trial]}'s best trial #{item.trial}")
        elif item.what != "checkpoint" and item.trial in top3:
            lacks.append(f"the telemetry time series of trial #{item.trial}")
    sentences = [
        f"This report was built on {this_host()}; the study's trials ran on "
        + ", ".join(f"{host} ({n} trials)" for host, n in hosts.items())
        + ". Every figure that is a number comes from the storage and is complete here.",
        f"{len(away)} files that only a file can hold are on other machines"
        + (f"; without them this report lacks {'; '.join(dict.fromkeys(lacks))}" if lacks else "") + ".",
    ]
    commands = sorted({cmd for item in away if (cmd := item.gather(results_dir))})
    if commands:
        sentences.append("Bring them here and rerun harness report: " + " ; ".join(f"`{c}`" for c in commands))
    table = pd.DataFrame([{"trial": a.trial, "file": a.what, "host": a.host, "path": a.path} for a in away])
    return Section("Files on other machines", sentences, [("", table)])
