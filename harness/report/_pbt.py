"""What a PBT study learned: the population's held-out curves with each copy marked, the winning lineage's
rates over its budget, and the lineage as a table (harness.search._pbt says how the study ran)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.ticker
import optuna
import pandas as pd
from optuna.trial import TrialState

from harness.report._figures import subplots
from harness.report._page import Section
from harness.report._paper import save_figure
from harness.search import SPEC_ATTR, Segment, lineage, pbt_summary


def pbt_section(study: optuna.Study, out: Path, formats: list[str]) -> tuple[Section | None, dict[str, list[Path]]]:
    """The report's PBT section (None for any other study) and its figure, "pbt"."""
    summary = pbt_summary(study)
    if summary is None or summary["best"] is None:
        return None, {}
    perturb = ((study.user_attrs.get(SPEC_ATTR) or {}).get("pbt") or {}).get("perturb", [])
    segments = [(t, s) for t in study.get_trials(deepcopy=False) if (s := Segment.of(t)) is not None]
    chain = lineage(study, summary["best"]["trial"])
    rows = [{"trial": t.number, "member": s.member, "generation": s.generation,
             "share of budget": f"{s.start:.2f}-{s.end:.2f}", "copied from": s.parent if s.exploited else "-",
             **{k: t.params.get(k) for k in perturb},
             "bpc": t.values[0] if t.values else None, "device-s (lineage)": t.user_attrs.get("device_seconds")}
            for t, s in chain]
    figures = {"pbt": fig_pbt(segments, chain, perturb, out, formats)}
    sentences = [summary["sentence"] + ".",
                 "Each model is charged every segment its weights passed through, so the frontier and the efficiency "
                 "columns compare it with a trial of another study at the device-seconds it really cost; the sweep's "
                 "own frontier counts each segment once. `harness train --schedule-from RESULTS --trial "
                 f"{summary['best']['trial']} --seed S` replays the winner's schedule from scratch, and `harness "
                 "confirm` does so on the test split: whether the schedule or the inherited weights made the "
                 "winner is then measured."]
    return Section("Population-based training", sentences,
                   [("The winner's lineage: the segments its weights trained through", pd.DataFrame(rows))],
                   ["pbt"]), figures


def fig_pbt(segments: list[tuple], chain: list[tuple], perturb: list[str], out: Path, formats: list[str]) -> list[Path]:
    """Top: every segment from its start (the parent's end) to its end, against the device-seconds its model
    had consumed; a copy from another member dashed, its start marked x. Below: the winner's rates over
    its budget."""
    by_number = {t.number: (t, s) for t, s in segments}
    keys = [k for k in perturb if any(k in t.params for t, _ in chain)]
    fig, axes = subplots(1 + len(keys), 1, figsize=(6.0, 3.4 + 1.5 * len(keys)), squeeze=False,
                         gridspec_kw={"height_ratios": [2.2] + [1] * len(keys)})
    ax = axes[0, 0]
    colours = {m: f"C{m % 10}" for m in sorted({s.member for _, s in segments})}
    winners = {t.number for t, _ in chain}
    for t, s in segments:
        if t.state != TrialState.COMPLETE or not t.values:
            continue
        end = (t.user_attrs.get("device_seconds"), t.values[0])
        parent = by_number.get(s.parent)
        begin = (parent[0].user_attrs.get("device_seconds"), parent[0].values[0]) if parent and parent[0].values \
            else None
        style = {"color": colours[s.member], "lw": 2.2 if t.number in winners else 1.0,
                 "ls": "--" if s.exploited else "-", "alpha": 1.0 if t.number in winners else 0.6}
        if begin is not None:
            ax.plot([begin[0], end[0]], [begin[1], end[1]], **style)
        ax.scatter([end[0]], [end[1]], color=colours[s.member], s=12, zorder=3)
        if s.exploited and begin is not None:
            ax.scatter([begin[0]], [begin[1]], marker="x", color=colours[s.member], s=40, zorder=4)
    ax.plot([], [], color="grey", ls="--", label="continues a better member (x: the copy)")
    ax.plot([], [], color="black", lw=2.2, label="the winner's lineage")
    ax.set(xlabel="device-seconds the model had consumed (its whole lineage)", ylabel="held-out bpc",
           title="The population: each segment from its parent's end to its own")
    ax.legend(fontsize=8)
    shares = [s.start for _, s in chain] + [chain[-1][1].end]
    for ax, key in zip(axes[1:, 0], keys, strict=True):
        values = [t.params.get(key) for t, _ in chain]
        ax.step(shares, values + values[-1:], where="post", color="black")
        ax.set(ylabel=key, xlabel="share of the member's budget" if key == keys[-1] else "")
        if key == "lr":
            ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    return save_figure(fig, out, "pbt", formats)
