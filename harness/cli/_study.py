"""`harness sweep`, `status`, `report` and `confirm`: parse, call harness.search / harness.report, print."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from harness.cli._train import make_dir
from harness.common import HarnessError, dumps, format_param
from harness.measure import resolve_device


def add_study_target(parser: argparse.ArgumentParser) -> None:
    """The study a reading command works on: its file or results directory, and where the sweep kept it."""
    parser.add_argument("target", type=Path, help="study file (TOML) or its results directory")
    parser.add_argument("--storage", default=None, help="the storage URL the sweep used, if not the default")
    parser.add_argument("--results", type=Path, default=None, help="results directory, if the sweep used --results")


def add_sweep_parsers(sub) -> None:
    p = sub.add_parser("sweep", help="run (or resume) an Optuna study from a study file",
                       description="Run an Optuna study over the study file's search space; the same command resumes.")
    p.add_argument("study", type=Path, help="study file (TOML), e.g. studies/demo.toml")
    p.add_argument("--trials", type=int, default=None, help="planned trials in the study (overrides the file)")
    p.add_argument("--timeout", default=None, help="stop starting trials after this long, e.g. 8h (overrides the file)")
    p.add_argument("--storage", default=None,
                   help="postgresql://user@host/db to share one study between machines (default: a journal "
                        "file in the results directory)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default: the study file's, else auto)")
    p.add_argument("--corpus", default=None, help="corpus spec instead of the study file's (e.g. a local copy)")
    p.add_argument("--results", type=Path, default=None, help="results directory (default results/<study name>)")
    p.add_argument("--plain-progress", action="store_true", help=argparse.SUPPRESS)  # log-style lines, no bar
    p.set_defaults(handler=cmd_sweep)

    s = sub.add_parser("status", help="table of a study's trials and its best configuration",
                       description="Print the trials of a running or finished study.")
    add_study_target(s)
    s.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    s.set_defaults(handler=cmd_status)

    r = sub.add_parser("report", help="tables, figures and one HTML/Markdown report of a study",
                       description="Write results/<study>/report/: tables, seaborn figures, report.html and report.md.")
    add_study_target(r)
    r.add_argument("--out", type=Path, default=None, help="report directory (default <results>/report)")
    r.add_argument("--format", default="png,svg", help="figure formats besides PNG: png,svg,pdf (default png,svg)")
    r.add_argument("--top", type=int, default=10, help="rows in the top tables (default 10)")
    r.set_defaults(handler=cmd_report)


def add_confirm_parser(sub) -> None:
    c = sub.add_parser("confirm", help="retrain the top configurations with fresh seeds; judge them on the test split",
                       description="Is the winner's lead real? Retrains the top K configurations of a study with N "
                                   "fresh seeds each and evaluates every best checkpoint on the test split. Resumes "
                                   "like a sweep.")
    add_study_target(c)
    c.add_argument("--top", type=int, default=3, help="configurations to confirm, best first (default 3)")
    c.add_argument("--corpus", default=None,
                   help="corpus spec instead of the study file's (the local copy the sweep was given)")
    c.add_argument("--per-family", action="store_true",
                   help="confirm the top configurations of every model family (a study comparing families)")
    c.add_argument("--seeds", type=int, default=3, help="fresh seeds per configuration (default 3)")
    c.add_argument("--budget", default=None,
                   help="per-run budget (300s, 2M, 3ep) or a multiple of the study's per-trial budget (4x: then the "
                        "forecast's top K join the measured top K, and the report holds the forecast against the "
                        "outcome); default: the study's per-trial budget")
    c.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda (default: the study file's, else auto)")
    c.add_argument("--json", action="store_true", help="print the confirmed ranking as one JSON line")
    c.set_defaults(handler=cmd_confirm)


def cmd_confirm(args: argparse.Namespace) -> int:
    """Parse and print only: `harness.confirm` runs the same `run_confirmation`."""
    from harness.report import ConfirmRequest, run_confirmation
    from harness.search import study_spec_for

    if args.workers < 1:
        raise HarnessError(f"--workers must be at least 1, got {args.workers}")
    spec, results_dir = study_spec_for(args.target, args.results, args.storage)
    request = ConfirmRequest(top=args.top, seeds=args.seeds, budget=args.budget, per_family=args.per_family,
                             device=args.device, workers=args.workers, storage=args.storage, corpus=args.corpus)
    found = run_confirmation(spec, results_dir, request, say=lambda text: print(f"harness: {text}", file=sys.stderr))
    if not found.outcome.finished:
        return found.outcome.exit_code
    if args.json:
        ranking = found.frame.drop(columns=["params"]).to_dict("records") if not found.frame.empty else []
        print(dumps({"study": found.name, "ranking": ranking, "verdict": found.lines}))
        return found.outcome.exit_code
    print_confirmed(found.frame, found.lines)
    return found.outcome.exit_code


def _figure(value: float) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"


def print_confirmed(frame, lines: list[str]) -> None:
    if frame.empty:
        print("confirmed ranking: no run has finished")
        return
    print(f"{'rank':>4} {'trial':>5} {'runs':>4} {'test bpc':>9} {'sd':>7} {'95% interval':>17} {'val bpc':>8} "
          f"{'val rank':>8} {'dynamic':>8}  tied with")
    for r in frame.itertuples():
        interval = "-" if math.isnan(r.ci95_low) else f"{r.ci95_low:.4f}-{r.ci95_high:.4f}"
        sd = "-" if math.isnan(r.test_bpc_sd) else f"{r.test_bpc_sd:.4f}"
        print(f"{r.rank:>4} {'#' + str(r.trial):>5} {r.runs:>4} {r.test_bpc_mean:>9.4f} {sd:>7} {interval:>17} "
              f"{r.val_bpc:>8.4f} {r.val_rank:>8} {_figure(getattr(r, 'test_dynamic_bpc_mean', math.nan)):>8}  "
              f"{r.tied_with or '-'}")
    if "test_dynamic_bpc_mean" in frame and frame["test_dynamic_bpc_mean"].notna().any():
        print("dynamic: test bpc with dynamic evaluation (the model learns from each chunk after predicting it); "
              "an adaptive figure, beside the static one, never ranked on")
    for line in lines:
        print(f"verdict: {line}")


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.search import (
        SweepOptions,
        load_study,
        open_study,
        results_dir_for,
        run_sweep,
        status_summary,
    )
    from harness.training import parse_duration

    spec = load_study(args.study)
    if args.corpus:
        spec.corpus = args.corpus
    if args.trials is not None and args.trials < 1:
        raise HarnessError(f"--trials must be at least 1, got {args.trials}")
    if args.workers < 1:
        raise HarnessError(f"--workers must be at least 1, got {args.workers}")
    options = SweepOptions(
        results_dir=results_dir_for(spec, args.results), storage_url=args.storage, device=args.device,
        trials=args.trials, timeout=parse_duration(args.timeout, "--timeout") if args.timeout else None,
        workers=args.workers, plain_progress=args.plain_progress,
    )
    resolve_device(options.device_for(spec.device))
    outcome = run_sweep(spec, options)
    if outcome.finished:
        print_status(status_summary(open_study(spec, options, create=False)))
    return outcome.exit_code


def cmd_status(args: argparse.Namespace) -> int:
    from harness.search import open_results, status_summary

    _, study = open_results(args.target, args.results, args.storage)
    summary = status_summary(study)
    if args.json:
        print(dumps(summary))
    else:
        print_status(summary)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import build_report
    from harness.search import open_results

    if args.top < 1:
        raise HarnessError(f"--top must be at least 1, got {args.top}")
    results_dir, study = open_results(args.target, args.results, args.storage)
    out = args.out or results_dir / "report"
    make_dir(out, "--out")
    formats = [f.strip() for f in args.format.split(",")]
    bad = [f for f in formats if f and f not in ("png", "svg", "pdf")]
    if bad:  # the flag's name here; the library says the same without it
        raise HarnessError(f"--format {','.join(bad)} is not supported; choose from png, svg, pdf")
    report = build_report(study, out, formats, args.top, results_dir)
    if report.partial:
        print("harness: note: the study is still running; this is a partial report", file=sys.stderr)
    print(f"report of {len(report.frame)} trials written to {out} in {report.seconds:.1f} s")
    print(f"  {out / 'report.html'} (self-contained), {out / 'report.md'}")
    print(f"  tables: trials.csv, trials.parquet, top.md, top.tex, param_summary.md; "
          f"figures: {', '.join(sorted({p.stem for p in report.files if p.suffix == '.png'}))}")
    return 0


def print_status(summary: dict) -> None:
    trials = summary["trials"]
    keys = sorted({k for t in trials for k in t["params"]})
    widths = {k: max(len(k), 8) for k in keys}
    header = f"{'#':>4} {'state':<9}" + "".join(f" {k:>{widths[k]}}" for k in keys) + f" {'bpc':>8} {'device-s':>9}  reason"
    print(f"study {summary['study']}: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary["counts"].items())))
    if len(summary["hosts"]) > 1:
        print("ran on: " + ", ".join(f"{host} ({n} trials)" for host, n in summary["hosts"].items()))
    print(header)
    for t in trials:
        cells = "".join(f" {format_param(t['params'].get(k)):>{widths[k]}}" for k in keys)
        bpc = f"{t['bpc']:.4f}" if isinstance(t["bpc"], float) and math.isfinite(t["bpc"]) else "-"
        secs = f"{t['device_seconds']:.1f}" if t["device_seconds"] is not None else "-"
        link = f"retry of #{t['retry_of']}" if t.get("retry_of") is not None else ""
        why = "; ".join(x for x in (link, t["reason"] or "") if x)
        print(f"{t['number']:>4} {t['state']:<9}{cells} {bpc:>8} {secs:>9}  {why}")
    best = summary["best"]
    if best:
        params = ", ".join(f"{k}={format_param(v)}" for k, v in best["params"].items())
        print(f"best: trial {best['number']}, {best['bpc']:.4f} bpc held-out; {params}")
    else:
        print("best: no trial has completed yet")
    if summary.get("pbt"):
        print(summary["pbt"]["sentence"])
    elif summary.get("pruning"):
        print(summary["pruning"]["sentence"])
    b = summary.get("baseline")
    if b:
        line = (f"figure to beat: {b['model']} counted on the training split, {b['val_bpc']:.4f} bpc held-out "
                f"(unigram {b['unigram_val_bpc']:.3f}; adaptive, PPM-style: {b['val_bpc_adaptive']:.4f})")
        if best:
            gap = b["val_bpc"] - best["bpc"]
            line += f"; the best trial {'beats' if gap > 0 else 'misses'} it by {abs(gap):.4f}"
        print(line)
