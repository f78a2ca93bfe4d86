"""report.md and report.html: the question and its answer first, then the verdict tables, figures and details."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd

from harness.common import HarnessError
from harness.measure import SHARED_THRESHOLD
from harness.report._families import NOISE_BPC
from harness.report._figures import FIGURE_TEXT
from harness.report._frame import sampled_params, sweep_best_at
from harness.report._frontier import frontier_findings
from harness.report._tables import _cell, html_table, markdown_table, param_summary, top_table
from harness.report._verdict import Verdict, budget_table, confirmed_table, target_table
from harness.search import BASELINE_ATTR, SPEC_ATTR, pruning_summary
from harness.training import Budget


def baseline_sentence(study: optuna.Study, frame: pd.DataFrame, best_number: int, v: Verdict) -> str:
    """Where the best model stands against the count model that read the same training text (the figure to
    beat: harness.data._ngram), like against like: validation against validation, or the confirmed test
    figure against the count model's test figure."""
    b = study.user_attrs.get(BASELINE_ATTR)
    if not b:
        return ("No count-model baseline is stored for this study (begun before there was one); resuming it "
                "with harness sweep stores it.")
    if v.confirmed is not None and b.get("test_bpc") is not None:
        ours, theirs, split = float(v.confirmed.iloc[0]["test_bpc_mean"]), float(b["test_bpc"]), "test"
        adaptive = b.get("test_bpc_adaptive")
    else:
        ours = float(frame.set_index("number").loc[best_number, "best_bpc"])
        theirs, split, adaptive = float(b["val_bpc"]), "validation", b.get("val_bpc_adaptive")
    gap = theirs - ours
    verb = f"beats a count-based {b['order']}-gram by {gap:.3f} bits/char" if gap > 0 else \
        f"does not beat a count-based {b['order']}-gram: it is {-gap:.3f} bits/char worse"
    text = (f"Against the figure to beat: the best model {verb} on the {split} split ({ours:.3f} "
            f"against {theirs:.3f} for {b['model']} counted on the training split; a unigram model scores "
            f"{b['unigram_val_bpc']:.3f} on validation).")
    if adaptive is not None:
        text += (f" A count model that keeps counting the {split} text as it reads it (PPM-style, an adaptive "
                 f"figure to compare with dynamic evaluation, not with this one) reaches {adaptive:.3f}.")
    return text


def answer(study: optuna.Study, frame: pd.DataFrame, best_number: int, v: Verdict) -> list[str]:
    """The morning's answer in sentences: where the best model stands against the count model, the winner,
    how sure we are, and what to do to be surer."""
    row = frame.set_index("number").loc[best_number]
    evaluations = len(v.points)
    lines = [baseline_sentence(study, frame, best_number, v)]
    if v.confirmed is not None:
        top = v.confirmed.iloc[0]
        interval = ("" if top["ci95_low"] != top["ci95_low"] else
                    f" (95% interval {top['ci95_low']:.3f}-{top['ci95_high']:.3f})")
        lines += [f"Winner: trial #{top['trial']}: {top['test_bpc_mean']:.3f} bits/char on the test split, mean of "
                 f"{top['runs']} fresh seeds{interval}; it was chosen on {top['val_bpc']:.3f} bits/char held-out."]
        lines += [s[0].upper() + s[1:] + "." for s in v.confirm_lines]
    else:
        lines += [f"Best trial: #{best_number}: {row['best_bpc']:.3f} bits/char held-out (perplexity "
                 f"{row['best_ppl']:.3f}) in {row['device_seconds']:.1f} device-seconds.",
                 f"This is the best of {evaluations} validation evaluations over {len(frame)} trials, so it is "
                 f"biased low and its lead may be noise. To confirm it on the test split with fresh seeds: "
                 f"harness confirm <study.toml or results dir> --top 3 --seeds 3, then report again."]
    if not v.front.empty:
        findings, merged = frontier_findings(v.front, v.points, NOISE_BPC)
        steps = ", ".join(f"#{f['trial']} from {f['device_seconds']:.3g} s" for f in findings)
        line = f"Best configuration as the device-seconds you can spend grow: {steps}"
        if merged:
            line += (f" ({merged} other change{'s' if merged != 1 else ''} of leader within the seed noise of "
                     f"{NOISE_BPC} bpc, or less than one evaluation apart, not listed)")
        lines.append(line + ".")
    return lines


def describe_budget(text: str | None) -> str:
    """A stored budget ("12s", "20000tok", "2ep") in words."""
    try:
        b = Budget.parse(str(text))
    except HarnessError:
        return str(text or "-")
    return {"seconds": f"{b.amount:g} device-seconds of training", "tokens": f"{b.amount:,.0f} training characters",
            "epochs": f"{b.amount:g} epochs of training"}[b.kind]


@dataclass
class Page:
    """What both documents show, in the order they show it."""

    title: str
    status: str
    question: str
    said: list[str]
    figures: dict[str, list[Path]]
    tables: list[tuple[str, pd.DataFrame]]
    sections: list[dict]  # each: title, sentences, tables [(caption, frame)], figures [names]
    facts: list[tuple[str, str]]
    by_eff: pd.DataFrame
    summary: pd.DataFrame
    samples: list[dict]
    prompt: str
    best_number: int
    notes: list[str]
    top_k: int


LEAD = ["frontier", "confirmed"]  # figures shown right after the answer


def write_documents(study, frame, figures, out, top_k, partial, best_number, notes, verdict: Verdict,
                    sections: list[dict] | None = None) -> list[Path]:
    spec = study.user_attrs.get(SPEC_ATTR, {})
    best = study.get_trials(deepcopy=False)[best_number]
    status = ("PARTIAL REPORT: the study is still running "
              f"({int(frame['state'].isin(['RUNNING', 'WAITING']).sum())} trials running or waiting)") if partial else ""
    samples = (best.user_attrs.get("generation") or {}).get("temperatures", [])
    prompt = (best.user_attrs.get("generation") or {}).get("prompt", "")
    by_bpc, by_eff = top_table(frame, "best_bpc", top_k), top_table(frame, "efficiency_bits_per_device_s", top_k)
    summary = param_summary(frame, sampled_params(study, frame))
    said = answer(study, frame, best_number, verdict)
    question = spec.get("question") or "Which configuration gives the best perplexity for the device-seconds I can spend?"
    tables = [("Best configuration for a budget of device-seconds", budget_table(verdict)),
              ("Time to a target", target_table(verdict))]
    if verdict.confirmed is not None:
        tables.append(("Confirmed ranking (test split, fresh seeds)", confirmed_table(verdict)))
    tables.append((f"Top {top_k} by held-out bits per character", by_bpc))
    page = Page(study.study_name, status, question, said, figures, tables, sections or [], facts(study, frame, best, spec),
                by_eff, summary, samples, prompt, best_number, notes, top_k)
    (out / "report.md").write_text(markdown(page))
    (out / "report.html").write_text(html_page(page))
    return [out / "report.md", out / "report.html"]


def facts(study, frame: pd.DataFrame, best, spec: dict) -> list[tuple[str, str]]:
    """The details list: what ran, on what, and the best configuration."""
    fp = best.user_attrs.get("fingerprint") or {}
    counts = ", ".join(f"{n} {s.lower()}" for s, n in frame["state"].value_counts().items())
    config = best.user_attrs.get("config") or dict(best.params)
    precision = (best.user_attrs.get("precision") or {}).get("summary", "-")
    sharing = sharing_fact(frame["concurrency"] if "concurrency" in frame else pd.Series(dtype=float))
    return [
        ("Study", f"{study.study_name}: {counts}"),
        ("Corpus", spec.get("corpus", "-")),
        ("Budget per trial", budget_fact(frame, spec)),
        ("Sampler / pruner", f"{spec.get('sampler', '-')} / {spec.get('pruner', '-')}"),
        ("Pruning", pruning.sentence().removeprefix("pruner: ") if (pruning := pruning_summary(study)) else "-"),
        ("The sweep's own efficiency", sweep_fact(frame)),
        ("Machine", f"{fp.get('device_name', '-')} on {fp.get('host', '-')} ({fp.get('machine', '-')}), "
                    f"torch {fp.get('torch', '-')}, CUDA {fp.get('cuda') or '-'}, driver {fp.get('driver') or '-'}"),
        ("Precision (best trial)", precision),
        ("Device sharing", sharing),
        ("Best configuration", ", ".join(f"{k}={_cell(v)}" for k, v in config.items())),
    ]


def budget_fact(frame: pd.DataFrame, spec: dict) -> str:
    """The per-trial budget, its evaluations and, where patience ended trials, how many it ended."""
    text = f"{describe_budget(spec.get('budget'))}, {spec.get('evals', '-')} evaluations"
    if spec.get("eval_spacing", "even") != "even":
        text += f" ({spec['eval_spacing']} spacing)"
    if spec.get("patience"):
        stopped = int((frame["status"] == "stopped_early").sum()) if "status" in frame else 0
        text += f"; patience {spec['patience']} evaluations ({stopped} trials stopped early, charged what they ran)"
    return text


def sweep_fact(frame: pd.DataFrame) -> str:
    """The best figure a user would have had, had the night stopped at a quarter, half or all of what it spent."""
    rows = sweep_best_at(frame)
    if not rows:
        return "-"
    said = [f"{bpc:.3f} bpc" if bpc == bpc else "no trial complete" for _, _, bpc in rows]
    total = rows[-1][1]
    return (f"best at 25%, 50% and 100% of the {total:,.0f} device-seconds the sweep spent (all trials, pruned "
            f"included): {', '.join(said)}")


MIXED_CONCURRENCY = 0.25  # runs on the device: a spread above this is flagged


def sharing_fact(concurrency: pd.Series) -> str:
    """How the trials shared the device, and a warning where they shared it differently.

    A device-second charges dt/n(t), as if each of n runs had 1/n of the device. Where time-slicing
    gives each more than that (small models on a GPU), a trial that ran beside others trained more
    characters in its "300 s" than one that ran alone, so trials at different concurrency compare
    only approximately.
    """
    c = concurrency.dropna().astype(float)
    if not len(c) or c.max() <= SHARED_THRESHOLD:
        return "one trial at a time"
    text = f"trials shared the device with {c.mean():.2f} runs on average; device-seconds are each trial's fair share"
    if c.max() - c.min() > MIXED_CONCURRENCY:
        text += (f". WARNING: trials ran at different concurrency ({c.min():.2f} to {c.max():.2f} runs on the device); "
                 f"a shared device can give each run more than its fair share, so these trials compare only "
                 f"approximately (README: Workers; scripts/bench_workers.py measures the sharing gain)")
    return text


def markdown(p: Page) -> str:
    figures, lead, top_k = p.figures, LEAD, p.top_k
    placed = lead + [name for section in p.sections for name in section.get("figures", [])]
    status, question, said, tables, facts, by_eff, summary = p.status, p.question, p.said, p.tables, p.facts, p.by_eff, p.summary
    samples, prompt, best_number, notes = p.samples, p.prompt, p.best_number, p.notes
    md = [f"# Study report: {p.title}", ""]
    if status:
        md += [f"**{status}**", ""]
    md += [f"**Question**: {question}", ""] + [f"- {line}" for line in said] + [""]
    for name in lead:
        if figures.get(name):
            md += [f"![{FIGURE_TEXT[name]}]({figures[name][0].name})", "", f"*{FIGURE_TEXT[name]}*", ""]
    for title, table in tables:
        md += [f"## {title}", "", markdown_table(table), ""]
    for section in p.sections:
        md += [f"## {section['title']}", ""] + [f"- {s}" for s in section["sentences"]] + [""]
        for caption, table in section.get("tables", []):
            md += ([f"### {caption}", ""] if caption else []) + [markdown_table(table), ""]
        for name in section.get("figures", []):
            if figures.get(name):
                md += [f"![{FIGURE_TEXT[name]}]({figures[name][0].name})", "", f"*{FIGURE_TEXT[name]}*", ""]
    md += ["## Details", ""] + [f"- **{k}**: {v}" for k, v in facts] + [""]
    for name, paths in figures.items():
        if paths and name not in placed:
            md += [f"![{FIGURE_TEXT[name]}]({paths[0].name})", "", f"*{FIGURE_TEXT[name]}*", ""]
    md += [f"## Top {top_k} by efficiency (bits/char saved over a uniform guess per device-second)", "",
           markdown_table(by_eff), "", "## Parameters", "", markdown_table(summary), ""]
    if samples:
        md += [f"## Samples of trial #{best_number} (prompt {prompt!r})", ""]
        for group in samples:
            md += [f"### Temperature {group['temperature']:g}", ""]
            md += ["```text", *[prompt + s.replace("```", "` ` `") for s in group["samples"]], "```", ""]
    md += [f"_Note: {n}_" for n in notes]
    return "\n".join(md) + "\n"


# Numbers stay on one line and right-aligned; text columns wrap, so a table fits the page at 1280 px
# (a box that scrolls is the fallback, with its header row inside it). Print: the page's full width,
# figures at column width, nothing cut at a box's edge.
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:80em;margin:auto;padding:1em 1.5em;line-height:1.4;"
    "color:#222}h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}"
    ".answer{background:#eef5ff;border-left:4px solid #1f77b4;padding:0.6em 1em}.answer p{margin:0.35em 0}"
    ".wrap{overflow-x:auto;max-width:100%}"
    "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}th{background:#f4f4f4;text-align:center;"
    "font-weight:600}td.n{text-align:right;white-space:nowrap}td.t{text-align:left;min-width:6em;max-width:32em}"
    "figure{margin:1em 0}figcaption{font-size:0.85em;color:#555}img{max-width:100%;height:auto}"
    "pre{white-space:pre-wrap;background:#f6f6f6;padding:0.5em}"
    ".partial{background:#fff3cd;padding:0.5em;border:1px solid #e0c36c}"
    "@media print{body{max-width:none;padding:0;font-size:10pt}.wrap{overflow:visible}table{font-size:7.5pt}"
    "td.n,td.t{white-space:normal;max-width:none}figure,table,pre{break-inside:avoid}h2,h3{break-after:avoid}"
    "img{max-width:100%}.answer{border-left-width:2px}}"
)


def html_page(p: Page) -> str:
    figures, lead, top_k = p.figures, LEAD, p.top_k
    placed = lead + [name for section in p.sections for name in section.get("figures", [])]
    status, question, said, tables, facts, by_eff, summary = p.status, p.question, p.said, p.tables, p.facts, p.by_eff, p.summary
    samples, prompt, best_number, notes = p.samples, p.prompt, p.best_number, p.notes
    esc = html.escape

    def figure(name: str) -> str:
        data = base64.b64encode(figures[name][0].read_bytes()).decode()
        return (f"<figure><img alt='{esc(FIGURE_TEXT[name])}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{esc(FIGURE_TEXT[name])}</figcaption></figure>")

    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
             "style-src 'unsafe-inline'\">",
             f"<title>Study report: {esc(p.title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>Study report: {esc(p.title)}</h1>"]
    if status:
        parts.append(f"<p class='partial'><b>{esc(status)}</b></p>")
    parts.append(f"<div class='answer'><p><b>Question</b>: {esc(question)}</p>"
                 + "".join(f"<p>{esc(line)}</p>" for line in said) + "</div>")
    parts += [figure(name) for name in lead if figures.get(name)]
    for title, table in tables:
        parts += [f"<h2>{esc(title)}</h2>", f"<div class='wrap'>{html_table(table)}</div>"]
    for section in p.sections:
        parts.append(f"<h2>{esc(section['title'])}</h2><ul>"
                     + "".join(f"<li>{esc(s)}</li>" for s in section["sentences"]) + "</ul>")
        for caption, table in section.get("tables", []):
            parts += ([f"<h3>{esc(caption)}</h3>"] if caption else []) + [f"<div class='wrap'>{html_table(table)}</div>"]
        parts += [figure(name) for name in section.get("figures", []) if figures.get(name)]
    parts.append("<h2>Details</h2><ul>" + "".join(f"<li><b>{esc(k)}</b>: {esc(str(v))}</li>" for k, v in facts)
                 + "</ul>")
    parts += [figure(name) for name, paths in figures.items() if paths and name not in placed]
    parts += [f"<h2>Top {top_k} by efficiency</h2>", f"<div class='wrap'>{html_table(by_eff)}</div>",
              "<h2>Parameters</h2>", f"<div class='wrap'>{html_table(summary)}</div>"]
    if samples:
        parts.append(f"<h2>Samples of trial #{best_number} (prompt {esc(repr(prompt))})</h2>")
        for group in samples:
            parts.append(f"<h3>Temperature {group['temperature']:g}</h3>")
            parts += [f"<pre>{esc(prompt + s)}</pre>" for s in group["samples"]]
    parts += [f"<p><i>Note: {esc(n)}</i></p>" for n in notes]
    parts.append("</body></html>")
    return "\n".join(parts)
