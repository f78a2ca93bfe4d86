"""The morning-after report: one DataFrame of the study, tables, seaborn figures, one HTML/Markdown file.

Efficiency is "perplexity per GPU-second" made a single number: the held-out bits per character
a trial saved over a uniform guess (log2 of the vocabulary size minus its best bpc), divided by
the device-seconds it used. Higher is better. The Pareto front (perplexity against
device-seconds, both minimised) is the comparison that needs no such choice.
"""

from __future__ import annotations

import base64
import html
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from harness.errors import HarnessError  # noqa: E402
from harness.study import SPEC_ATTR, retried_numbers  # noqa: E402

FIGSIZE = (6.0, 4.0)
STATE_PALETTE = {"COMPLETE": "#1f77b4", "PRUNED": "#ff7f0e", "FAIL": "#d62728", "RUNNING": "#2ca02c",
                 "WAITING": "#9467bd"}
ATTR_COLUMNS = ["val_bpc", "final_val_bpc", "val_ppl", "final_val_ppl", "device_seconds", "train_seconds",
                "warmup_seconds", "concurrency", "train_wall_seconds",
                "eval_seconds", "wall_seconds", "train_chars_per_s", "energy_j", "joules_per_char", "mfu",
                "peak_mem_bytes", "peak_mem_source", "util_mean", "util_p95", "util_source", "power_mean_w", "params",
                "vocab_size", "telemetry_device", "reason", "checkpoint", "samples_csv"]


@dataclass
class Report:
    frame: pd.DataFrame
    out_dir: Path
    files: list[Path]
    partial: bool
    seconds: float


def study_frame(study: optuna.Study) -> pd.DataFrame:
    """A row per trial: parameters, state, reason, held-out figures, cost, telemetry, text metrics."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    rows = []
    for t in trials:
        a = t.user_attrs
        config = a.get("config") or {}
        row = {"number": t.number, "state": t.state.name, "retried": t.number in retried,
               "retry_of": t.user_attrs.get("retry_of", t.system_attrs.get("failed_trial"))}
        row.update({k: config.get(k) for k in ("model", "embedding_dim", "hidden_dim", "layers", "dropout", "seq_len",
                                               "batch_size", "lr")})
        row.update(t.params)
        for key in ATTR_COLUMNS:
            row[key] = a.get(key)
        row["n_params"] = row.pop("params")
        row["precision"] = (a.get("precision") or {}).get("summary")
        row["best_bpc"] = t.values[0] if t.values else a.get("val_bpc")
        row["start"] = t.datetime_start
        row["complete"] = t.datetime_complete
        gen = a.get("generation") or {}
        for group in gen.get("temperatures", []):
            for name in ("distinctness", "real_word_share", "novelty", "self_bleu"):
                row[f"{name}@T{group['temperature']:g}"] = group["metrics"].get(name)
        rows.append(row)
    frame = numeric_columns(pd.DataFrame(rows), NUMERIC_ATTRS)
    if frame.empty:
        return frame
    frame["best_ppl"] = np.exp2(frame["best_bpc"].astype(float))
    vocab = frame["vocab_size"].astype(float)
    frame["efficiency_bits_per_device_s"] = (np.log2(vocab) - frame["best_bpc"].astype(float)) / frame[
        "device_seconds"].astype(float)
    done = frame["state"] == "COMPLETE"
    frame["pareto"] = False
    frame.loc[done, "pareto"] = pareto_mask(frame.loc[done, "best_ppl"].to_numpy(float),
                                            frame.loc[done, "device_seconds"].to_numpy(float))
    frame["rank_bpc"] = frame["best_bpc"].where(done).rank(method="min")
    frame["rank_efficiency"] = frame["efficiency_bits_per_device_s"].where(done).rank(method="min", ascending=False)
    return frame


TEXT_COLUMNS = {"peak_mem_source", "util_source", "telemetry_device", "reason", "checkpoint", "samples_csv"}
NUMERIC_ATTRS = set(ATTR_COLUMNS) - TEXT_COLUMNS - {"params"} | {"n_params", "best_bpc", "retry_of"}


def numeric_columns(frame: pd.DataFrame, numeric: set[str] = frozenset()) -> pd.DataFrame:
    """Columns whose values are all numbers (or missing) become float, so CSV and Parquet readers see numbers.

    A figure missing on every trial (a CPU has no energy counter) or mixed with other objects
    would otherwise leave the column as Python objects, written to Parquet as text; columns in
    `numeric` are numbers even when all of them are missing.
    """
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        values = [v for v in frame[column] if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if not values and column in numeric:
            frame[column] = frame[column].astype(float)
        elif values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            whole = all(isinstance(v, int) for v in values)
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64" if whole else float)
    return frame


def pareto_mask(cost_a: np.ndarray, cost_b: np.ndarray) -> np.ndarray:
    """True where no other point is at least as good on both costs and better on one (both minimised)."""
    cost_a, cost_b = np.asarray(cost_a, dtype=float), np.asarray(cost_b, dtype=float)
    n = len(cost_a)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        dominated = (cost_a <= cost_a[i]) & (cost_b <= cost_b[i]) & ((cost_a < cost_a[i]) | (cost_b < cost_b[i]))
        mask[i] = not dominated.any()
    return mask


def sampled_params(study: optuna.Study, frame: pd.DataFrame) -> dict[str, dict]:
    """Parameter name -> how it was sampled (log scale, categorical), from the spec or the distributions."""
    spec = study.user_attrs.get(SPEC_ATTR, {}).get("space")
    if spec:
        return spec
    found = {}
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            found[name] = {"kind": "categorical" if isinstance(dist, optuna.distributions.CategoricalDistribution)
                           else "float", "log": getattr(dist, "log", False)}
    return found


# --- tables ------------------------------------------------------------------------------------

TOP_COLUMNS = {
    "number": "trial", "model": "model", "hidden_dim": "hidden", "layers": "layers", "embedding_dim": "embed",
    "seq_len": "seq", "batch_size": "batch", "lr": "lr", "dropout": "dropout", "best_bpc": "bpc (bits/char)",
    "best_ppl": "perplexity", "device_seconds": "device (s)", "train_chars_per_s": "chars/s",
    "efficiency_bits_per_device_s": "efficiency (bits/char/device-s)", "energy_j": "energy (J)",
    "peak_mem_mib": "peak mem (MiB)",
}


def top_table(frame: pd.DataFrame, by: str, k: int) -> pd.DataFrame:
    done = frame[frame["state"] == "COMPLETE"].copy()
    done["peak_mem_mib"] = done["peak_mem_bytes"].astype(float) / 2**20
    ascending = by != "efficiency_bits_per_device_s"
    top = done.sort_values(by, ascending=ascending).head(k)
    columns = [c for c in TOP_COLUMNS if c in top.columns and top[c].notna().any()]
    return top[columns].rename(columns=TOP_COLUMNS)


def param_summary(frame: pd.DataFrame, params: dict[str, dict]) -> pd.DataFrame:
    """Per sampled parameter: its best value, and how bpc moves with it (Spearman rho, or per-choice means)."""
    done = frame[frame["state"] == "COMPLETE"]
    rows = []
    for name, info in params.items():
        if name not in done.columns or done[name].isna().all():
            continue
        best = done.loc[done["best_bpc"].idxmin(), name]
        if info.get("kind") == "categorical":
            means = done.groupby(name)["best_bpc"].mean().sort_values()
            effect = "; ".join(f"{v}: {m:.3f}" for v, m in means.items())
            rows.append({"parameter": name, "best value": best, "trials": int(done[name].notna().sum()),
                         "effect on bpc": f"mean bpc by value: {effect}"})
        else:
            rho = done[[name, "best_bpc"]].astype(float).corr(method="spearman").iloc[0, 1]
            rows.append({"parameter": name, "best value": best, "trials": int(done[name].notna().sum()),
                         "effect on bpc": f"Spearman rho {rho:+.2f} (range {done[name].min():.3g} to "
                                          f"{done[name].max():.3g})"})
    return pd.DataFrame(rows)


def write_tables(frame: pd.DataFrame, params: dict, out: Path, k: int) -> list[Path]:
    files = []
    flat = frame.drop(columns=["start", "complete"]).assign(
        start=frame["start"].astype(str), complete=frame["complete"].astype(str))
    flat.to_csv(out / "trials.csv", index=False)
    for column in flat.columns:  # Parquet needs one type per column; mixed object columns become text
        if flat[column].dtype == object:
            flat[column] = flat[column].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v))
                                            else str(v))
    flat.to_parquet(out / "trials.parquet", index=False)
    files += [out / "trials.csv", out / "trials.parquet"]
    by_bpc, by_eff = top_table(frame, "best_bpc", k), top_table(frame, "efficiency_bits_per_device_s", k)
    md = [f"## Top {k} by held-out bits per character\n", markdown_table(by_bpc), "",
          f"## Top {k} by efficiency (bits per character saved over a uniform guess, per device-second)\n",
          markdown_table(by_eff), ""]
    (out / "top.md").write_text("\n".join(md))
    tex = [latex_table(by_bpc, f"Top {k} configurations by held-out bits per character."),
           latex_table(by_eff, f"Top {k} configurations by efficiency (bits per character saved per device-second).")]
    (out / "top.tex").write_text("\n\n".join(tex) + "\n")
    summary = param_summary(frame, params)
    summary.to_csv(out / "param_summary.csv", index=False)
    (out / "param_summary.md").write_text(markdown_table(summary) + "\n")
    files += [out / "top.md", out / "top.tex", out / "param_summary.csv", out / "param_summary.md"]
    return files


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3e}" if 0 < abs(v) < 1e-3 else f"{v:.4g}"
    return str(v)


def markdown_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_no finished trial_"
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def latex_table(df: pd.DataFrame, caption: str) -> str:
    def esc(text: str) -> str:
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                     ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}")):
            text = text.replace(a, b)
        return text

    lines = [r"\begin{table}[ht]", r"\centering", r"\small", r"\begin{tabular}{" + "r" * len(df.columns) + "}",
             r"\toprule", " & ".join(esc(str(c)) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(_cell(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)}}}", r"\end{table}"]
    return "\n".join(lines)


# --- figures -----------------------------------------------------------------------------------

def _save(fig, out: Path, name: str, formats: list[str]) -> list[Path]:
    paths = []
    fig.tight_layout()
    for fmt in ["png", *[f for f in formats if f != "png"]]:
        path = out / f"{name}.{fmt}"
        fig.savefig(path, dpi=200 if fmt == "png" else None)
        paths.append(path)
    plt.close(fig)
    return paths


def fig_pareto(frame: pd.DataFrame, out: Path, formats: list[str]) -> list[Path]:
    data = frame[frame["best_bpc"].notna() & frame["device_seconds"].notna()]
    fig, ax = plt.subplots(figsize=FIGSIZE)
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
    fig, ax = plt.subplots(figsize=FIGSIZE)
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
    handles = [plt.Line2D([], [], color=STATE_PALETTE["COMPLETE"], label="complete"),
               plt.Line2D([], [], color=STATE_PALETTE["PRUNED"], ls="--", marker="x", label="pruned (x: stopped)"),
               plt.Line2D([], [], color="black", label="best so far at that device time")]
    ax.legend(handles=handles, fontsize=8)
    ax.set(xlabel="device time within the trial (s)", ylabel="held-out bits per character",
           title="Learning curves")
    return _save(fig, out, "learning_curves", formats)


def fig_param_effects(frame: pd.DataFrame, params: dict, out: Path, formats: list[str]) -> list[Path]:
    names = [n for n in params if n in frame.columns and frame[n].notna().any()]
    data = frame[frame["best_bpc"].notna() & frame["state"].isin(["COMPLETE", "PRUNED"])]
    if not names or data.empty:
        return []
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.7 * rows), squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, names, strict=False):
        info = params[name]
        if info.get("kind") == "categorical":
            values = list(data[name].dropna().unique())
            numeric = all(isinstance(v, int | float) for v in values)
            sns.stripplot(data=data, x=name, y="best_bpc", hue="state", palette=STATE_PALETTE, ax=ax, size=4,
                          legend=False, order=sorted(values, key=float if numeric else str))
        else:
            sns.scatterplot(data=data, x=name, y="best_bpc", hue="state", palette=STATE_PALETTE, ax=ax, s=18,
                            legend=False)
            if info.get("log"):
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set(xlabel=name + (" (log)" if info.get("log") else ""), ylabel="held-out bpc (bits/char)")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle("Effect of each sampled parameter (orange: pruned, at its last evaluation)", fontsize=9)
    return _save(fig, out, "param_effects", formats)


def fig_importance(study: optuna.Study, out: Path, formats: list[str]) -> tuple[list[Path], str | None]:
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if len(complete) < 3:
        return [], "parameter importance needs at least 3 complete trials"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes")
            importance = optuna.importance.get_param_importances(
                study, target=lambda t: t.values[0], evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except (RuntimeError, ValueError, ImportError, ZeroDivisionError) as e:
        return [], f"parameter importance not computed: {e}"
    if not importance:
        return [], "parameter importance not computed: no parameter varied"
    fig, ax = plt.subplots(figsize=FIGSIZE)
    series = pd.Series(importance).sort_values()
    ax.barh(series.index, series.values, color="#1f77b4")
    ax.set(xlabel="importance for held-out bpc (PED-ANOVA, sums to 1)", title="Parameter importance")
    return _save(fig, out, "importance", formats), None


def fig_throughput(frame: pd.DataFrame, out: Path, formats: list[str]) -> list[Path]:
    data = frame[frame["train_chars_per_s"].notna()].copy()
    names = [n for n in ("hidden_dim", "layers", "batch_size") if n in data.columns and data[n].nunique() > 0]
    if data.empty or not names:
        return []
    data["peak_mem_mib"] = data["peak_mem_bytes"].astype(float) / 2**20
    fig, axes = plt.subplots(2, len(names), figsize=(3.2 * len(names), 5.2), squeeze=False)
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
    fig, axes = plt.subplots(len(panels), 1, figsize=(6.0, 2.4 * len(panels)), sharex=True, squeeze=False)
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
    fig, ax = plt.subplots(figsize=FIGSIZE)
    sns.lineplot(data=pd.DataFrame(rows), x="temperature", y="value", hue="metric", marker="o", ax=ax)
    ax.set(xlabel="sampling temperature", ylabel="metric value (0 to 1)", ylim=(-0.02, 1.02),
           title=f"Text metrics of trial #{best_number}'s samples")
    ax.legend(fontsize=8)
    return _save(fig, out, "text_metrics", formats)


def fig_progress(frame: pd.DataFrame, out: Path, formats: list[str]) -> list[Path]:
    data = frame[(frame["state"] == "COMPLETE") & frame["complete"].notna()].sort_values("complete")
    if data.empty:
        return []
    start = pd.to_datetime(frame["start"].dropna()).min()
    hours = (pd.to_datetime(data["complete"]) - start).dt.total_seconds() / 60
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.scatter(hours, data["best_bpc"], s=14, color=STATE_PALETTE["COMPLETE"], label="complete trial")
    ax.step(hours, np.minimum.accumulate(data["best_bpc"].to_numpy(float)), where="post", color="black",
            label="best so far")
    ax.set(xlabel="wall-clock time since the study started (min)", ylabel="held-out bits per character",
           title="Study progress")
    ax.legend(fontsize=8)
    return _save(fig, out, "progress", formats)


# --- the report --------------------------------------------------------------------------------

FIGURE_TEXT = {
    "pareto": "Held-out perplexity against device time; the black steps join the Pareto-optimal trials.",
    "learning_curves": "Held-out bpc at each evaluation against the trial's device time; dashed: pruned.",
    "param_effects": "Each sampled parameter against held-out bpc.",
    "importance": "How much each parameter decides whether a trial is among the best (Optuna's PED-ANOVA).",
    "throughput": "Training throughput and peak memory against model size and batch size.",
    "device_timeseries": "Device telemetry over time for the best trials.",
    "text_metrics": "Text metrics of the best trial's samples against temperature.",
    "progress": "Best held-out bpc against wall-clock time.",
}


def build_report(study: optuna.Study, out: Path, formats: list[str] | None = None, top_k: int = 10) -> Report:
    started = time.perf_counter()
    formats = [f for f in (formats or ["png"]) if f]
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad:
        raise HarnessError(f"--format {','.join(bad)} is not supported; choose from png, svg, pdf")
    frame = study_frame(study)
    finished = frame[frame["state"].isin(["COMPLETE"])] if not frame.empty else frame
    if finished.empty:
        states = ", ".join(f"{n} {s.lower()}" for s, n in frame["state"].value_counts().items()) if len(frame) else "none"
        raise HarnessError(f"study {study.study_name!r} has no finished trial yet (trials: {states}); run "
                           f"harness sweep, and report once a trial has completed")
    out.mkdir(parents=True, exist_ok=True)
    partial = bool(frame["state"].isin(["RUNNING", "WAITING"]).any())
    params = sampled_params(study, frame)
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    files = write_tables(frame, params, out, top_k)
    best_number = int(finished.sort_values("best_bpc").iloc[0]["number"])
    figures: dict[str, list[Path]] = {}
    notes = []
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
    for paths in figures.values():
        files += paths
    files += write_documents(study, frame, figures, out, top_k, partial, best_number, notes)
    return Report(frame, out, files, partial, time.perf_counter() - started)


def write_documents(study, frame, figures, out, top_k, partial, best_number, notes) -> list[Path]:
    spec = study.user_attrs.get(SPEC_ATTR, {})
    best = study.get_trials(deepcopy=False)[best_number]
    fp = best.user_attrs.get("fingerprint") or {}
    counts = ", ".join(f"{n} {s.lower()}" for s, n in frame["state"].value_counts().items())
    best_row = frame.set_index("number").loc[best_number]
    config = best.user_attrs.get("config") or dict(best.params)
    facts = [
        ("Question", spec.get("question") or "-"),
        ("Study", f"{study.study_name}: {counts}"),
        ("Corpus", spec.get("corpus", "-")),
        ("Budget per trial", f"{spec.get('budget', '-')} of training, {spec.get('evals', '-')} evaluations"),
        ("Sampler / pruner", f"{spec.get('sampler', '-')} / {spec.get('pruner', '-')}"),
        ("Machine", f"{fp.get('device_name', '-')} on {fp.get('host', '-')} ({fp.get('machine', '-')}), "
                    f"torch {fp.get('torch', '-')}, CUDA {fp.get('cuda') or '-'}, driver {fp.get('driver') or '-'}"),
        ("Best trial", f"#{best_number}: {best_row['best_bpc']:.4f} bits/char, perplexity {best_row['best_ppl']:.3f}, "
                       f"{best_row['device_seconds']:.1f} device-s"),
        ("Best configuration", ", ".join(f"{k}={_cell(v)}" for k, v in config.items())),
    ]
    status = ("PARTIAL REPORT: the study is still running "
              f"({int(frame['state'].isin(['RUNNING', 'WAITING']).sum())} trials running or waiting)") if partial else ""
    samples = (best.user_attrs.get("generation") or {}).get("temperatures", [])
    prompt = (best.user_attrs.get("generation") or {}).get("prompt", "")
    by_bpc, by_eff = top_table(frame, "best_bpc", top_k), top_table(frame, "efficiency_bits_per_device_s", top_k)
    summary = param_summary(frame, sampled_params(study, frame))

    md = [f"# Study report: {study.study_name}", ""]
    if status:
        md += [f"**{status}**", ""]
    md += [f"- **{k}**: {v}" for k, v in facts] + [""]
    for name, paths in figures.items():
        if paths:
            md += [f"![{FIGURE_TEXT[name]}]({paths[0].name})", "", f"*{FIGURE_TEXT[name]}*", ""]
    md += [f"## Top {top_k} by held-out bits per character", "", markdown_table(by_bpc), "",
           f"## Top {top_k} by efficiency (bits/char saved over a uniform guess per device-second)", "",
           markdown_table(by_eff), "", "## Parameters", "", markdown_table(summary), ""]
    if samples:
        md += [f"## Samples of trial #{best_number} (prompt {prompt!r})", ""]
        for group in samples:
            md += [f"### Temperature {group['temperature']:g}", ""]
            md += ["```text", *[prompt + s.replace("```", "` ` `") for s in group["samples"]], "```", ""]
    md += [f"_Note: {n}_" for n in notes]
    (out / "report.md").write_text("\n".join(md) + "\n")

    esc = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
             "style-src 'unsafe-inline'\">",
             f"<title>Study report: {esc(study.study_name)}</title><style>body{{font-family:sans-serif;max-width:60em;"
             "margin:auto;padding:1em}table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:right}img{max-width:100%}pre{white-space:pre-wrap;background:#f6f6f6;"
             "padding:0.5em}.partial{background:#fff3cd;padding:0.5em;border:1px solid #e0c36c}</style></head><body>",
             f"<h1>Study report: {esc(study.study_name)}</h1>"]
    if status:
        parts.append(f"<p class='partial'><b>{esc(status)}</b></p>")
    parts.append("<ul>" + "".join(f"<li><b>{esc(k)}</b>: {esc(str(v))}</li>" for k, v in facts) + "</ul>")
    for name, paths in figures.items():
        if paths:
            data = base64.b64encode(paths[0].read_bytes()).decode()
            parts.append(f"<figure><img alt='{esc(name)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{esc(FIGURE_TEXT[name])}</figcaption></figure>")
    parts += [f"<h2>Top {top_k} by held-out bits per character</h2>", html_table(by_bpc),
              f"<h2>Top {top_k} by efficiency</h2>", html_table(by_eff), "<h2>Parameters</h2>", html_table(summary)]
    if samples:
        parts.append(f"<h2>Samples of trial #{best_number} (prompt {esc(repr(prompt))})</h2>")
        for group in samples:
            parts.append(f"<h3>Temperature {group['temperature']:g}</h3>")
            parts += [f"<pre>{esc(prompt + s)}</pre>" for s in group["samples"]]
    parts += [f"<p><i>Note: {esc(n)}</i></p>" for n in notes]
    parts.append("</body></html>")
    (out / "report.html").write_text("\n".join(parts))
    return [out / "report.md", out / "report.html"]


def html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p>No finished trial.</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>{rows}</table>"
