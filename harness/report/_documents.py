"""report.md and report.html: the question and its answer first, then the verdict tables, figures and details."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd

from harness.common import HarnessError
from harness.measure import SHARED_THRESHOLD
from harness.report._families import NOISE_BPC
from harness.report._frame import sampled_params, sweep_best_at
from harness.report._frontier import frontier_findings
from harness.report._page import Page, Section, html_page, markdown
from harness.report._tables import _cell, param_summary, top_table
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
        return Budget.parse(str(text)).words
    except HarnessError:
        return str(text or "-")


def write_documents(page: Page, out: Path) -> list[Path]:
    """report.md and report.html, from the one page."""
    (out / "report.md").write_text(markdown(page))
    (out / "report.html").write_text(html_page(page))
    return [out / "report.md", out / "report.html"]


def page_for(study: optuna.Study, frame: pd.DataFrame, figures: dict[str, list[Path]], verdict: Verdict,
             sections: list[Section], notes: list[str], *, top_k: int, partial: bool, best_number: int) -> Page:
    """The page: the study's question and its answer, the verdict tables, the sections, the details."""
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
    return Page(study.study_name, status, question, said, figures, tables, sections, facts(study, frame, best, spec),
                by_eff, summary, samples, prompt, best_number, notes, top_k)


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
