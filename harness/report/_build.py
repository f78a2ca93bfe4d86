"""`build_report`: the morning-after report of a study, from its trials to tables, figures and one HTML/Markdown file."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import optuna
import pandas as pd
import seaborn as sns

from harness.common import HarnessError
from harness.report._documents import page_for, write_documents
from harness.report._families import course_section, embeddings_figure
from harness.report._figures import (
    fig_confirmed,
    fig_device_timeseries,
    fig_frontier,
    fig_importance,
    fig_learning_curves,
    fig_param_effects,
    fig_pareto,
    fig_progress,
    fig_text_metrics,
    fig_throughput,
)
from harness.report._frame import sampled_params, study_frame
from harness.report._outlook import outlook_section
from harness.report._paper import PaperLayoutWarning
from harness.report._pbt import pbt_section
from harness.report._remote import localize, remote_section
from harness.report._tables import write_tables
from harness.report._verdict import morning_verdict, write_verdict_tables
from harness.search import BASELINE_ATTR, SPEC_ATTR
from harness.training import Budget


@dataclass
class Report:
    frame: pd.DataFrame
    out_dir: Path
    files: list[Path]
    partial: bool
    seconds: float


FIGURE_FORMATS = ("png", "svg", "pdf")


def build_report(study: optuna.Study, out: Path, formats: list[str] | None = None, top_k: int = 10,
                 results_dir: Path | None = None) -> Report:
    """Everything from the storage; files (checkpoints, telemetry samples) from their recorded paths or from
    `results_dir` (this machine's), and a section naming those that are on other machines."""
    started = time.perf_counter()
    formats = [f for f in (formats or ["png"]) if f]
    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad:
        raise HarnessError(f"figure format {','.join(bad)} is not supported; choose from {', '.join(FIGURE_FORMATS)}")
    frame = study_frame(study)
    finished = frame[frame["state"].isin(["COMPLETE"])] if not frame.empty else frame
    if finished.empty:
        states = ", ".join(f"{n} {s.lower()}" for s, n in frame["state"].value_counts().items()) if len(frame) else "none"
        raise HarnessError(f"study {study.study_name!r} has no finished trial yet (trials: {states}); run "
                           f"harness sweep, and report once a trial has completed")
    out.mkdir(parents=True, exist_ok=True)
    away = localize(study, frame, results_dir)
    partial = bool(frame["state"].isin(["RUNNING", "WAITING"]).any())
    params = sampled_params(study, frame)
    files = write_tables(frame, params, out, top_k, study.user_attrs.get(BASELINE_ATTR))
    best_number = int(finished.sort_values("best_bpc").iloc[0]["number"])
    verdict = morning_verdict(study)
    files += write_verdict_tables(verdict, out)
    # The theme holds for these figures only: the caller's matplotlib settings are restored after.
    with matplotlib.rc_context(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PaperLayoutWarning)
        sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
        figures, notes = draw_figures(study, frame, verdict, params, best_number, out, formats)
        course, drawn = course_section(study, frame, out, formats)
        population, more = pbt_section(study, out, formats)
        figures |= drawn | more
        best_checkpoint = frame.set_index("number").loc[best_number, "checkpoint"]
        path, note = embeddings_figure(best_checkpoint if isinstance(best_checkpoint, str) else None, out)
    for w in caught:  # a PDF that would not read in a paper is said in the report; other warnings go on
        if issubclass(w.category, PaperLayoutWarning):
            notes.append(f"the PDF {w.message} (the PNG is unaffected)")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if path is not None:
        figures["embeddings"] = [path]
        notes.append(note)
    for paths in figures.values():
        files += paths
    outlook = outlook_section(study, out)
    files += outlook.files
    remote = remote_section(study, away, frame, best_number, results_dir)
    sections = [s for s in (outlook if outlook.tables else None, population, course, remote) if s]
    page = page_for(study, frame, figures, verdict, sections, notes, top_k=top_k, partial=partial,
                    best_number=best_number)
    files += write_documents(page, out)
    return Report(frame, out, files, partial, time.perf_counter() - started)


def draw_figures(study: optuna.Study, frame: pd.DataFrame, verdict, params: dict, best_number: int, out: Path,
                 formats: list[str]) -> tuple[dict[str, list[Path]], list[str]]:
    """Every figure of the report, the frontier first; and notes on the figures that could not be drawn."""
    figures: dict[str, list[Path]] = {}
    notes = []
    figures["frontier"] = fig_frontier(verdict.points, verdict.front, out, formats,
                                       study.user_attrs.get(BASELINE_ATTR))
    if verdict.confirmed is not None:
        figures["confirmed"] = fig_confirmed(verdict.confirmed, out, formats)
    if pareto_meaningful(study.user_attrs.get(SPEC_ATTR, {})):
        figures["pareto"] = fig_pareto(frame, out, formats)
    figures["learning_curves"] = fig_learning_curves(study, frame, out, formats)
    figures["param_effects"] = fig_param_effects(frame, params, out, formats)
    figures["importance"], note = fig_importance(study, out, formats)
    if note:
        notes.append(note)
    figures["throughput"] = fig_throughput(frame, out, formats)
    figures["device_timeseries"] = fig_device_timeseries(frame, out, formats)
    figures["text_metrics"] = fig_text_metrics(study, best_number, out, formats)
    figures["progress"] = fig_progress(frame, out, formats)
    return figures, notes


def pareto_meaningful(spec: dict) -> bool:
    """The trial-level Pareto front says something only when trials differ in cost.

    With an equal time budget per trial every complete trial sits at the budget, and the front
    degenerates to the single best trial; the frontier over evaluation points replaces it.
    """
    if spec.get("second_objective"):
        return True
    try:
        return Budget.parse(str(spec.get("budget", ""))).kind != "seconds"
    except HarnessError:  # no budget recorded: nothing says the trials cost the same
        return True


