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
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from harness.errors import HarnessError  # noqa: E402
from harness.report_course import (  # noqa: E402
    best_per_family,
    embeddings_figure,
    family_frontiers,
    family_sentences,
    gradient_profiles,
)
from harness.report_figures import (  # noqa: E402
    FIGURE_TEXT,
    fig_confirmed,
    fig_device_timeseries,
    fig_family_frontiers,
    fig_frontier,
    fig_gradflow,
    fig_importance,
    fig_learning_curves,
    fig_param_effects,
    fig_pareto,
    fig_progress,
    fig_text_metrics,
    fig_throughput,
)
from harness.study import SPEC_ATTR, retried_numbers  # noqa: E402
from harness.verdict import (  # noqa: E402
    Verdict,
    budget_table,
    confirmed_table,
    morning_verdict,
    target_table,
    write_verdict_tables,
)

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
    verdict = morning_verdict(study)
    files += write_verdict_tables(verdict, out)
    figures: dict[str, list[Path]] = {}
    notes = []
    figures["frontier"] = fig_frontier(verdict.points, verdict.front, out, formats)
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
    course = course_section(study, frame, out, formats, figures)
    best_checkpoint = frame.set_index("number").loc[best_number, "checkpoint"]
    path, note = embeddings_figure(best_checkpoint if isinstance(best_checkpoint, str) else None, out)
    if path is not None:
        figures["embeddings"] = [path]
        notes.append(note)
    for paths in figures.values():
        files += paths
    files += write_documents(study, frame, figures, out, top_k, partial, best_number, notes, verdict, course)
    return Report(frame, out, files, partial, time.perf_counter() - started)


def course_section(study: optuna.Study, frame: pd.DataFrame, out: Path, formats: list[str],
                   figures: dict[str, list[Path]]) -> dict | None:
    """Architectures at equal device-seconds, where the study sampled the model family."""
    done = frame[frame["state"] == "COMPLETE"]
    if "model" not in done or done["model"].nunique() < 2:
        return None
    best = best_per_family(frame)
    profiles = gradient_profiles(best)
    figures["families"] = fig_family_frontiers(family_frontiers(study, frame), out, formats)
    measured = [p for found in profiles.values() if isinstance(found, list) for p in found]
    if measured:
        figures["gradflow"] = [fig_gradflow(measured, out / "gradflow.png")]
    table = best.drop(columns=["checkpoint"])
    return {"table": table, "sentences": family_sentences(best, profiles)}


def pareto_meaningful(spec: dict) -> bool:
    """The trial-level Pareto front says something only when trials differ in cost.

    With an equal time budget per trial every complete trial sits at the budget, and the front
    degenerates to the single best trial; the frontier over evaluation points replaces it.
    """
    if spec.get("second_objective"):
        return True
    budget = str(spec.get("budget", ""))
    return not budget.endswith("s") or not budget[:-1].replace(".", "", 1).isdigit()


def answer(study: optuna.Study, frame: pd.DataFrame, best_number: int, v: Verdict) -> list[str]:
    """The morning's answer in sentences: the winner, how sure we are, and what to do to be surer."""
    row = frame.set_index("number").loc[best_number]
    evaluations = len(v.points)
    if v.confirmed is not None:
        top = v.confirmed.iloc[0]
        interval = ("" if top["ci95_low"] != top["ci95_low"] else
                    f" (95% interval {top['ci95_low']:.4f}-{top['ci95_high']:.4f})")
        lines = [f"Winner: trial #{top['trial']}: {top['test_bpc_mean']:.4f} bits/char on the test split, mean of "
                 f"{top['runs']} fresh seeds{interval}; it was chosen on {top['val_bpc']:.4f} bits/char held-out."]
        lines += [s[0].upper() + s[1:] + "." for s in v.confirm_lines]
    else:
        lines = [f"Best trial: #{best_number}: {row['best_bpc']:.4f} bits/char held-out (perplexity "
                 f"{row['best_ppl']:.3f}) in {row['device_seconds']:.1f} device-seconds.",
                 f"This is the best of {evaluations} validation evaluations over {len(frame)} trials, so it is "
                 f"biased low and its lead may be noise. To confirm it on the test split with fresh seeds: "
                 f"harness confirm <study.toml or results dir> --top 3 --seeds 3, then report again."]
    if not v.front.empty:
        changes, last = [], None
        for r in v.front.itertuples():  # the frontier's steps, one per change of leader
            if r.trial != last:
                changes.append(f"#{r.trial} from {r.device_seconds:.3g} s")
                last = r.trial
        steps = ", ".join(changes)
        lines.append(f"Best configuration as the device-seconds you can spend grow: {steps}.")
    return lines


def describe_budget(text: str | None) -> str:
    """A stored budget ("12s", "20000tok", "2ep") in words."""
    from harness.config import Budget

    try:
        b = Budget.parse(str(text))
    except HarnessError:
        return str(text or "-")
    return {"seconds": f"{b.amount:g} device-seconds of training", "tokens": f"{b.amount:,.0f} training characters",
            "epochs": f"{b.amount:g} epochs of training"}[b.kind]


def write_documents(study, frame, figures, out, top_k, partial, best_number, notes, verdict: Verdict,
                    course: dict | None = None) -> list[Path]:
    spec = study.user_attrs.get(SPEC_ATTR, {})
    best = study.get_trials(deepcopy=False)[best_number]
    fp = best.user_attrs.get("fingerprint") or {}
    counts = ", ".join(f"{n} {s.lower()}" for s, n in frame["state"].value_counts().items())
    config = best.user_attrs.get("config") or dict(best.params)
    precision = (best.user_attrs.get("precision") or {}).get("summary", "-")
    concurrency = frame["concurrency"].dropna() if "concurrency" in frame else pd.Series(dtype=float)
    sharing = (f"trials shared the device with {concurrency.mean():.2f} runs on average; device-seconds are each "
               f"trial's fair share" if len(concurrency) and concurrency.max() > 1.05 else "one trial at a time")
    facts = [
        ("Study", f"{study.study_name}: {counts}"),
        ("Corpus", spec.get("corpus", "-")),
        ("Budget per trial", f"{describe_budget(spec.get('budget'))}, {spec.get('evals', '-')} evaluations"),
        ("Sampler / pruner", f"{spec.get('sampler', '-')} / {spec.get('pruner', '-')}"),
        ("Machine", f"{fp.get('device_name', '-')} on {fp.get('host', '-')} ({fp.get('machine', '-')}), "
                    f"torch {fp.get('torch', '-')}, CUDA {fp.get('cuda') or '-'}, driver {fp.get('driver') or '-'}"),
        ("Precision (best trial)", precision),
        ("Device sharing", sharing),
        ("Best configuration", ", ".join(f"{k}={_cell(v)}" for k, v in config.items())),
    ]
    status = ("PARTIAL REPORT: the study is still running "
              f"({int(frame['state'].isin(['RUNNING', 'WAITING']).sum())} trials running or waiting)") if partial else ""
    samples = (best.user_attrs.get("generation") or {}).get("temperatures", [])
    prompt = (best.user_attrs.get("generation") or {}).get("prompt", "")
    by_bpc, by_eff = top_table(frame, "best_bpc", top_k), top_table(frame, "efficiency_bits_per_device_s", top_k)
    summary = param_summary(frame, sampled_params(study, frame))
    said = answer(study, frame, best_number, verdict)
    question = spec.get("question") or "Which configuration gives the best perplexity for the device-seconds I can spend?"
    lead = ["frontier", "confirmed"]
    tables = [("Best configuration for a budget of device-seconds", budget_table(verdict)),
              ("Time to a target", target_table(verdict))]
    if verdict.confirmed is not None:
        tables.append(("Confirmed ranking (test split, fresh seeds)", confirmed_table(verdict)))
    tables.append((f"Top {top_k} by held-out bits per character", by_bpc))

    md = [f"# Study report: {study.study_name}", ""]
    if status:
        md += [f"**{status}**", ""]
    md += [f"**Question**: {question}", ""] + [f"- {line}" for line in said] + [""]
    for name in lead:
        if figures.get(name):
            md += [f"![{FIGURE_TEXT[name]}]({figures[name][0].name})", "", f"*{FIGURE_TEXT[name]}*", ""]
    for title, table in tables:
        md += [f"## {title}", "", markdown_table(table), ""]
    course_figures = ["families", "gradflow"]
    if course:
        md += ["## Architectures at equal device-seconds", ""] + [f"- {s}" for s in course["sentences"]] + [""]
        md += [markdown_table(course["table"]), ""]
        for name in course_figures:
            if figures.get(name):
                md += [f"![{FIGURE_TEXT[name]}]({figures[name][0].name})", "", f"*{FIGURE_TEXT[name]}*", ""]
    md += ["## Details", ""] + [f"- **{k}**: {v}" for k, v in facts] + [""]
    for name, paths in figures.items():
        if paths and name not in lead and name not in course_figures:
            md += [f"![{FIGURE_TEXT[name]}]({paths[0].name})", "", f"*{FIGURE_TEXT[name]}*", ""]
    md += [f"## Top {top_k} by efficiency (bits/char saved over a uniform guess per device-second)", "",
           markdown_table(by_eff), "", "## Parameters", "", markdown_table(summary), ""]
    if samples:
        md += [f"## Samples of trial #{best_number} (prompt {prompt!r})", ""]
        for group in samples:
            md += [f"### Temperature {group['temperature']:g}", ""]
            md += ["```text", *[prompt + s.replace("```", "` ` `") for s in group["samples"]], "```", ""]
    md += [f"_Note: {n}_" for n in notes]
    (out / "report.md").write_text("\n".join(md) + "\n")

    esc = html.escape

    def figure(name: str) -> str:
        data = base64.b64encode(figures[name][0].read_bytes()).decode()
        return (f"<figure><img alt='{esc(FIGURE_TEXT[name])}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{esc(FIGURE_TEXT[name])}</figcaption></figure>")

    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
             "style-src 'unsafe-inline'\">",
             f"<title>Study report: {esc(study.study_name)}</title><style>body{{font-family:system-ui,sans-serif;"
             "max-width:64em;margin:auto;padding:1em 1.5em;line-height:1.4;color:#222}h1{font-size:1.6em}"
             "h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}"
             ".answer{background:#eef5ff;border-left:4px solid #1f77b4;padding:0.6em 1em}"
             ".answer p{margin:0.35em 0}.wrap{overflow-x:auto}"
             "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}th{background:#f4f4f4}"
             "figure{margin:1em 0}figcaption{font-size:0.85em;color:#555}img{max-width:100%;height:auto}"
             "pre{white-space:pre-wrap;background:#f6f6f6;padding:0.5em}"
             ".partial{background:#fff3cd;padding:0.5em;border:1px solid #e0c36c}</style></head><body>",
             f"<h1>Study report: {esc(study.study_name)}</h1>"]
    if status:
        parts.append(f"<p class='partial'><b>{esc(status)}</b></p>")
    parts.append(f"<div class='answer'><p><b>Question</b>: {esc(question)}</p>"
                 + "".join(f"<p>{esc(line)}</p>" for line in said) + "</div>")
    parts += [figure(name) for name in lead if figures.get(name)]
    for title, table in tables:
        parts += [f"<h2>{esc(title)}</h2>", f"<div class='wrap'>{html_table(table)}</div>"]
    if course:
        parts.append("<h2>Architectures at equal device-seconds</h2><ul>"
                     + "".join(f"<li>{esc(s)}</li>" for s in course["sentences"]) + "</ul>")
        parts.append(f"<div class='wrap'>{html_table(course['table'])}</div>")
        parts += [figure(name) for name in course_figures if figures.get(name)]
    parts.append("<h2>Details</h2><ul>" + "".join(f"<li><b>{esc(k)}</b>: {esc(str(v))}</li>" for k, v in facts)
                 + "</ul>")
    parts += [figure(name) for name, paths in figures.items() if paths and name not in lead + course_figures]
    parts += [f"<h2>Top {top_k} by efficiency</h2>", f"<div class='wrap'>{html_table(by_eff)}</div>",
              "<h2>Parameters</h2>", f"<div class='wrap'>{html_table(summary)}</div>"]
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
