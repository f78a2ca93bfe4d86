"""The report's seaborn figures: one function per figure, each saved as PNG plus the chosen formats.

Every figure says what it measures and on which axis; categorical axes keep the study file's order.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib.lines
import matplotlib.ticker
import numpy as np
import optuna
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from optuna.trial import TrialState

from harness.diagnostics import char_label
from harness.report._frame import inactive_params
from harness.report._paper import save_figure as _save

FIGSIZE = (6.0, 4.0)
STATE_PALETTE = {"COMPLETE": "#1f77b4", "PRUNED": "#ff7f0e", "FAIL": "#d62728", "RUNNING": "#2ca02c",
                 "WAITING": "#9467bd"}
def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = FIGSIZE, **kwargs):
    """A figure of its own, outside pyplot: drawing a report never touches the caller's backend or open figures."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def fig_pareto(frame: pd.DataFrame, out: Path, formats: list[str]) -> list[Path]:
    data = frame[frame["best_bpc"].notna() & frame["device_seconds"].notna()]
    fig, ax = subplots(figsize=FIGSIZE)
    sns.scatterplot(data=data, x="device_seconds", y="best_ppl", hue="state", palette=STATE_PALETTE, ax=ax, s=36)
    front = data[data["pareto"]].sort_values("device_seconds")
    if not front.empty:
        ax.step(front["device_seconds"], front["best_ppl"], where="post", color="black", lw=1.2)
        ax.scatter(front["device_seconds"], front["best_ppl"], s=90, facecolors="none", edgecolors="black", lw=1.2,
                   label="Pareto front (complete trials)")
        for r in front.itertuples():
            ax.annotate(f"#{r.number}", (r.device_seconds, r.best_ppl), textcoords="offset points", xytext=(4, 4),
                        fontsize=8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set(xlabel="device time (s)", ylabel="held-out perplexity per character (log)",
           title="Perplexity against device time (pruned: at the point they stopped)")
    ax.legend(fontsize=8)
    return _save(fig, out, "pareto", formats)


def fig_learning_curves(study: optuna.Study, frame: pd.DataFrame, out: Path, formats: list[str]) -> list[Path]:
    fig, ax = subplots(figsize=FIGSIZE)
    points = []
    for t in study.get_trials(deepcopy=False):
        curve = t.user_attrs.get("curve") or []
        if not curve:
            continue
        xs, ys = [p["device_seconds"] for p in curve], [p["bpc"] for p in curve]
        pruned = t.state != TrialState.COMPLETE
        ax.plot(xs, ys, color=STATE_PALETTE.get(t.state.name, "grey"), lw=0.8, alpha=0.5 if pruned else 0.9,
                ls="--" if pruned else "-")
        if pruned:
            ax.plot(xs[-1:], ys[-1:], marker="x", color=STATE_PALETTE.get(t.state.name, "grey"), ms=4)
        points += list(zip(xs, ys, strict=False))
    if points:
        points.sort()
        envelope = np.minimum.accumulate([y for _, y in points])
        ax.step([x for x, _ in points], envelope, where="post", color="black", lw=1.5, label="best so far")
    handles = [matplotlib.lines.Line2D([], [], color=STATE_PALETTE["COMPLETE"], label="complete"),
               matplotlib.lines.Line2D([], [], color=STATE_PALETTE["PRUNED"], ls="--", marker="x", label="pruned (x: stopped)"),
               matplotlib.lines.Line2D([], [], color="black", label="best so far at that device time")]
    ax.legend(handles=handles, fontsize=8)
    ax.set(xlabel="device time within the trial (s)", ylabel="held-out bits per character",
           title="Learning curves")
    return _save(fig, out, "learning_curves", formats)


def readable_axis(axis, values: pd.Series, log: bool, integer: bool) -> None:
    """Ticks a value can be read off: on a log axis 1-2-5 steps where the values span a decade or more
    (one labelled tick per decade is not enough) and a few plain ones where they do not; whole numbers
    only for a whole-number parameter (layers has no 1.5); labels of 3 significant figures at most."""
    ticker = matplotlib.ticker
    values = values.dropna().astype(float)
    wide = len(values) and values.min() > 0 and values.max() / values.min() >= 3
    if log:
        axis.axes.set_xscale("log")
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8) if wide
                               else ticker.MaxNLocator(nbins=4, integer=integer))
        axis.set_minor_locator(ticker.NullLocator())
    elif integer:
        axis.set_major_locator(ticker.MaxNLocator(integer=True, nbins=6))
    if log or integer:
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.0f}" if integer else f"{v:.3g}"))
        axis.set_minor_formatter(ticker.NullFormatter())


def fig_param_effects(frame: pd.DataFrame, params: dict, out: Path, formats: list[str]) -> list[Path]:
    names = [n for n in params if n in frame.columns and frame[n].notna().any()]
    data = frame[frame["best_bpc"].notna() & frame["state"].isin(["COMPLETE", "PRUNED"])]
    if not names or data.empty:
        return []
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = subplots(rows, cols, figsize=(3.2 * cols, 2.7 * rows), squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, names, strict=False):
        info = params[name]
        if info.get("kind") == "categorical":
            # the study file's order of choices (a string sort would put seq_len 128 before 32)
            choices = info.get("choices") or sorted(data[name].dropna().unique(), key=str)
            label = {}
            for v in data[name].dropna().unique():
                label[v] = str(next((c for c in choices if c == v), v))
            shown = data.assign(**{f"{name} ": data[name].map(label)})
            order = [str(c) for c in choices if str(c) in set(label.values())]
            sns.stripplot(data=shown, x=f"{name} ", y="best_bpc", hue="state", palette=STATE_PALETTE, ax=ax, size=4,
                          legend=False, order=order)
        else:
            sns.scatterplot(data=data, x=name, y="best_bpc", hue="state", palette=STATE_PALETTE, ax=ax, s=18,
                            legend=False)
            readable_axis(ax.xaxis, data[name], log=bool(info.get("log")), integer=info.get("kind") == "int")
        ax.set(xlabel=name + (" (log)" if info.get("log") else ""), ylabel="held-out bpc (bits/char)")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle("Effect of each sampled parameter (orange: pruned, at its last evaluation)", fontsize=9)
    return _save(fig, out, "param_effects", formats)


def fig_importance(study: optuna.Study, out: Path, formats: list[str]) -> tuple[list[Path], str | None]:
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if len(complete) < 3:
        return [], "parameter importance needs at least 3 complete trials"
    # A parameter that could not act in some trials (dropout at one layer) is left out rather than credited
    # with what its neighbours did; Optuna's own rule drops a parameter some trials lack altogether.
    idle = set().union(*(inactive_params(t) for t in complete))
    shared = set.intersection(*(set(t.params) for t in complete)) - idle
    left_out = sorted(idle & set().union(*(set(t.params) for t in complete)) | (idle - shared))
    note = (f"left out of the importance: {', '.join(left_out)} (could not act in some trials, e.g. dropout "
            f"at one layer)") if left_out else None
    if not shared:
        return [], note or "parameter importance not computed: no parameter was sampled in every trial"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes")
            importance = optuna.importance.get_param_importances(
                study, target=lambda t: t.values[0], params=sorted(shared),
                evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except (RuntimeError, ValueError, ImportError, ZeroDivisionError) as e:
        return [], f"parameter importance not computed: {e}"
    if not importance:
        return [], "parameter importance not computed: no parameter varied"
    fig, ax = subplots(figsize=FIGSIZE)
    series = pd.Series(importance).sort_values()
    ax.barh(series.index, series.values, color="#1f77b4")
    ax.set(xlabel="importance for held-out bpc (PED-ANOVA, sums to 1)", title="Parameter importance")
    return _save(fig, out, "importance", formats), note


def fig_throughput(frame: pd.DataFrame, out: Path, formats: list[str]) -> list[Path]:
    data = frame[frame["train_chars_per_s"].notna()].copy()
    names = [n for n in ("hidden_dim", "layers", "batch_size") if n in data.columns and data[n].nunique() > 0]
    if data.empty or not names:
        return []
    data["peak_mem_mib"] = data["peak_mem_bytes"].astype(float) / 2**20
    fig, axes = subplots(2, len(names), figsize=(3.2 * len(names), 5.2), squeeze=False)
    for j, name in enumerate(names):
        hue = "model" if data["model"].nunique() > 1 else None
        sns.scatterplot(data=data, x=name, y="train_chars_per_s", hue=hue, ax=axes[0, j], s=20, legend=j == 0)
        sns.scatterplot(data=data, x=name, y="peak_mem_mib", hue=hue, ax=axes[1, j], s=20, legend=False)
        axes[0, j].set(xlabel=name, ylabel="training chars/s")
        for ax in axes[:, j]:
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axes[1, j].set(xlabel=name, ylabel="peak memory (MiB)")
    source = data["peak_mem_source"].dropna().iloc[0] if data["peak_mem_source"].notna().any() else "n/a"
    fig.suptitle(f"Throughput and memory (memory: {source})", fontsize=9)
    return _save(fig, out, "throughput", formats)


def fig_device_timeseries(frame: pd.DataFrame, out: Path, formats: list[str], k: int = 3) -> list[Path]:
    best = frame[frame["state"] == "COMPLETE"].sort_values("best_bpc").head(k)
    series = []
    for r in best.itertuples():
        path = r.samples_csv
        if isinstance(path, str) and Path(path).exists():
            df = pd.read_csv(path)
            df["trial"] = f"#{r.number}"
            series.append(df)
    if not series:
        return []
    data = pd.concat(series, ignore_index=True)
    gpu = "gpu_util" in data.columns and data["gpu_util"].notna().any()
    panels = ([("gpu_util", "GPU util. (%)"), ("power_w", "power (W)")] if gpu
              else [("cpu_util", "CPU use (% of a core)")])
    memory = next((c for c in ("mem_used_bytes", "process_gpu_mem_bytes", "torch_reserved_bytes", "rss_bytes",
                               "system_mem_used_bytes") if c in data.columns and data[c].notna().any()), None)
    if memory:
        data[memory + "_mib"] = data[memory] / 2**20
        short = {"mem_used_bytes": "device memory", "process_gpu_mem_bytes": "process GPU memory",
                 "torch_reserved_bytes": "torch reserved", "rss_bytes": "resident memory",
                 "system_mem_used_bytes": "system memory used"}[memory]
        panels.append((memory + "_mib", f"{short} (MiB)"))
    fig, axes = subplots(len(panels), 1, figsize=(6.0, 2.4 * len(panels)), sharex=True, squeeze=False)
    for ax, (column, label) in zip(axes[:, 0], panels, strict=False):
        sns.lineplot(data=data.dropna(subset=[column]), x="t", y=column, hue="trial", ax=ax, lw=0.8,
                     legend=ax is axes[0, 0])
        ax.set(ylabel=label)
    axes[0, 0].legend(fontsize=7, loc="lower right", title=None)
    axes[-1, 0].set(xlabel="time since the trial started (s)")
    fig.suptitle(f"{'GPU' if gpu else 'CPU'} telemetry of the best {len(series)} trials", fontsize=9)
    return _save(fig, out, "device_timeseries", formats)


def fig_text_metrics(study: optuna.Study, best_number: int | None, out: Path, formats: list[str]) -> list[Path]:
    if best_number is None:
        return []
    gen = study.get_trials(deepcopy=False)[best_number].user_attrs.get("generation")
    if not gen:
        return []
    rows = [{"temperature": g["temperature"], "metric": name, "value": value}
            for g in gen["temperatures"] for name, value in g["metrics"].items()
            if name in ("distinctness", "repetition_ratio", "real_word_share", "novelty", "self_bleu", "sliding_ttr")
            and value is not None]
    if not rows:
        return []
    fig, ax = subplots(figsize=FIGSIZE)
    sns.lineplot(data=pd.DataFrame(rows), x="temperature", y="value", hue="metric", marker="o", ax=ax)
    ax.set(xlabel="sampling temperature", ylabel="metric value (0 to 1)", ylim=(-0.02, 1.02),
           title=f"Text metrics of trial #{best_number}'s samples")
    ax.legend(fontsize=8)
    return _save(fig, out, "text_metrics", formats)


def fig_progress(frame: pd.DataFrame, out: Path, formats: list[str]) -> list[Path]:
    """The night's answer as it grew: against wall-clock time, and against the device-seconds the whole
    sweep had spent (pruned trials included), which does not depend on how many workers shared the device."""
    data = frame[(frame["state"] == "COMPLETE") & frame["complete"].notna()].sort_values("complete")
    if data.empty:
        return []
    start = pd.to_datetime(frame["start"].dropna()).min()
    minutes = (pd.to_datetime(data["complete"]) - start).dt.total_seconds() / 60
    best = np.minimum.accumulate(data["best_bpc"].to_numpy(float))
    fig, (wall, cost) = subplots(1, 2, figsize=(FIGSIZE[0] * 1.6, FIGSIZE[1]), sharey=True)
    wall.scatter(minutes, data["best_bpc"], s=14, color=STATE_PALETTE["COMPLETE"], label="complete trial")
    wall.step(minutes, best, where="post", color="black", label="best so far")
    wall.set(xlabel="wall-clock time since the study started (min)", ylabel="held-out bits per character",
             title="Study progress")
    wall.legend(fontsize=8)
    finished = frame[frame["sweep_device_seconds"].notna()].sort_values("sweep_device_seconds")
    cost.scatter(data["sweep_device_seconds"], data["best_bpc"], s=14, color=STATE_PALETTE["COMPLETE"])
    cost.step(finished["sweep_device_seconds"], finished["sweep_best_bpc"], where="post", color="black")
    total = float(finished["sweep_device_seconds"].max())
    for share in (0.25, 0.5):
        cost.axvline(share * total, color="grey", linestyle=":", linewidth=1)
    cost.set_xlim(left=0)
    cost.set(xlabel="device-seconds the sweep had spent (all trials)", title="The sweep's own frontier")
    return _save(fig, out, "progress", formats)


# --- the report --------------------------------------------------------------------------------

FIGURE_TEXT = {
    "families": "Each model family's frontier: the best held-out bpc its trials reached within x device-seconds.",
    "gradflow": "Gradient flow through time of each family's best checkpoint: mean |dJ/dh_t| against the distance "
                "from the loss on held-out text (dashed: the same architecture at initialization).",
    "embeddings": "The best trial's character embeddings projected on their two principal axes.",
    "frontier": "Every evaluation of every trial (grey) and the frontier: the best held-out bpc reachable within "
                "x device-seconds, each step labelled with its trial.",
    "confirmed": "Confirmed ranking: test-split bpc over fresh seeds (mean, 95% interval) and the validation figure "
                 "each configuration was chosen on.",
    "pareto": "Held-out perplexity against device time; the black steps join the Pareto-optimal trials.",
    "learning_curves": "Held-out bpc at each evaluation against the trial's device time; dashed: pruned.",
    "param_effects": "Each sampled parameter against held-out bpc.",
    "importance": "How much each parameter decides whether a trial is among the best (Optuna's PED-ANOVA).",
    "throughput": "Training throughput and peak memory against model size and batch size.",
    "device_timeseries": "Device telemetry over time for the best trials.",
    "text_metrics": "Text metrics of the best trial's samples against temperature.",
    "pbt": "Population-based training: every segment of every member against the device-seconds its model had "
           "consumed (dashed: a copy of a better member, x where it copied), and the winner's rates over its budget.",
    "progress": "Best held-out bpc against wall-clock time (left) and against the device-seconds the whole sweep had "
                "spent, pruned trials included (right; dotted: 25% and 50% of it).",
}




def fig_frontier(points: pd.DataFrame, front: pd.DataFrame, out: Path, formats: list[str],
                 baseline: dict | None = None) -> list[Path]:
    """The headline: the best held-out bpc reachable within x device-seconds, each step labelled by its trial,
    against the count model's validation figure (the line a model must get under)."""
    if points.empty:
        return []
    fig, ax = subplots(figsize=(7.0, 4.4))
    if baseline:
        ax.axhline(baseline["val_bpc"], color="#d62728", ls="--", lw=1.0, zorder=2,
                   label=f"figure to beat: {baseline['model']} ({baseline['val_bpc']:.3f}, no device-seconds)")
    for _, curve in points.groupby("trial"):
        curve = curve.sort_values("device_seconds")
        ax.plot(curve["device_seconds"], curve["bpc"], color="#b0b0b0", lw=0.8, alpha=0.8, zorder=1)
    if not front.empty:
        end = float(points["device_seconds"].max())
        xs = list(front["device_seconds"]) + [end]
        ys = list(front["bpc"]) + [float(front["bpc"].iloc[-1])]
        ax.step(xs, ys, where="post", color="black", lw=1.6, zorder=3, label="frontier: best bpc within x device-s")
        ax.scatter(front["device_seconds"], front["bpc"], color="black", s=18, zorder=4)
        for r in front.itertuples():
            ax.annotate(f"#{r.trial}", (r.device_seconds, r.bpc), textcoords="offset points", xytext=(3, 4),
                        fontsize=7)
    ax.plot([], [], color="#b0b0b0", lw=0.8, label="every trial's evaluations (pruned ones too)")
    ax.set(xlabel="device-seconds spent by the trial (fair share of the device)",
           ylabel="held-out bits per character", title="Best held-out bpc for the device-seconds you can spend")
    ax.legend(fontsize=8)
    return _save(fig, out, "frontier", formats)


def fig_confirmed(confirmed: pd.DataFrame, out: Path, formats: list[str]) -> list[Path]:
    """Test-split bpc of each confirmed configuration: mean and 95% interval over seeds, validation figure beside."""
    if confirmed.empty:
        return []
    fig, ax = subplots(figsize=(6.0, 1.9 + 0.45 * len(confirmed)))
    ys = list(range(len(confirmed)))[::-1]
    err = (confirmed["ci95_high"] - confirmed["test_bpc_mean"]).fillna(0).to_numpy()
    ax.errorbar(confirmed["test_bpc_mean"], ys, xerr=err, fmt="o", color="black", capsize=4,
                label="test split: mean and 95% interval over seeds")
    ax.scatter(confirmed["val_bpc"], ys, marker="x", color="#ff7f0e", label="validation figure it was chosen on")
    ax.set_yticks(ys, [f"#{t}" for t in confirmed["trial"]])
    ax.set(xlabel="held-out bits per character", title="Confirmed ranking (fresh seeds, test split)",
           ylim=(-0.6, len(confirmed) - 0.4))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2, frameon=False)
    return _save(fig, out, "confirmed", formats)


def fig_gradflow(profiles: list, path: Path) -> Path:
    """log |dJ/dh_t| against the distance from the loss, one line per family (dashed: at initialization)."""
    fig, ax = subplots(figsize=FIGSIZE)
    colours = dict(zip(["rnn", "residual_rnn", "gru", "lstm"], sns.color_palette("colorblind", 4), strict=False))
    for p in profiles:
        distance = np.arange(len(p.norms))[::-1]
        ax.plot(distance, p.norms, color=colours.get(p.family, "grey"), ls="--" if p.label == "init" else "-",
                lw=1.4, label=f"{p.family} ({p.label}): x{p.decay_per_step:.3f}/step")
    ax.set_yscale("log")
    ax.set(xlabel="steps between the hidden state and the loss", ylabel="mean |dJ/dh_t| (log)",
           title="Gradient flow through time (held-out text)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=200)
    return path


def fig_embeddings(proj, path: Path) -> Path:
    """Every character at its 2-D PCA position, labelled; the axes say how much variance they hold."""
    fig, ax = subplots(figsize=(6.5, 6.0))
    xy = proj.xy.numpy()
    ax.scatter(xy[:, 0], xy[:, 1], s=8, color="#1f77b4", alpha=0.5)
    for (x, y), char in zip(xy, proj.chars, strict=True):
        kind = "#d62728" if char in "aeiou" else "#2ca02c" if char.isdigit() else "#222222"
        ax.annotate(char_label(char), (x, y), fontsize=8, ha="center", va="center", color=kind)
    ax.set(xlabel=f"PCA axis 1 ({proj.explained[0]:.1%} of the variance)",
           ylabel=f"PCA axis 2 ({proj.explained[1]:.1%} of the variance)",
           title="Character embeddings (red: vowels, green: digits)")
    fig.tight_layout()
    fig.savefig(path, dpi=200)
    return path


def fig_family_frontiers(fronts: pd.DataFrame, out: Path, formats: list[str]) -> list[Path]:
    """Each family's best held-out bpc within x device-seconds: the architectures compared at equal cost."""
    if fronts.empty:
        return []
    fig, ax = subplots(figsize=FIGSIZE)
    for family, f in fronts.groupby("family", sort=False):
        f = f.sort_values("device_seconds")
        ax.step(f["device_seconds"], f["bpc"], where="post", lw=1.5, label=family)
    ax.set(xlabel="device-seconds spent by the trial", ylabel="best held-out bits per character so far",
           title="Each family's frontier (its best trial at every budget)")
    ax.legend(fontsize=8)
    return _save(fig, out, "families", formats)
