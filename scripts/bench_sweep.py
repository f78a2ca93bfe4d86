"""The sweep's own efficiency: best held-out bpc against the characters the whole sweep has trained.

Each search (a pruner, with the study's sampler) runs the study's space at several sampler seeds,
one trial at a time in this process, until the sweep has trained `--budget` characters in all
(pruned trials included) or run `--trials`. Characters, not seconds, so the answer does not depend
on how busy the machine is. The table gives, per search, the median and range over the seeds of
the best complete trial's held-out bpc at 25%, 50% and 100% of that budget, and the characters
each seed needed to reach each `--targets` figure. A second row per search reads the best held-out
bpc at any evaluation of any trial, pruned ones included (a stopped trial's last report counts, as
in Ray Tune's results): the figure a peer that keeps stopped trials' results would quote.

    python scripts/bench_sweep.py --corpus ../shared/corpora/theprince.txt \\
        [--study studies/prince-overnight.toml] [--pruners hyperband asha] [--seeds 0 1 2] \\
        [--per-trial 300k] [--evals 6] [--trials 16] [--budget 3M] [--targets 2.2 2.0] [--device auto] \\
        [--trace trials.csv]

The study's evaluation spacing and patience are replaced by even spacing and no patience unless
`--keep-schedule` is given: at a few hundred thousand characters a trial passes The Prince about
once, the regime where the pruner, not patience, decides the cost.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import statistics
import tempfile
from pathlib import Path

from optuna.trial import TrialState

from harness.common import HarnessError
from harness.measure import fingerprint, resolve_device
from harness.search import (
    BOOTSTRAP_AT,
    StudySpec,
    SweepOptions,
    load_study,
    open_study,
    run_worker,
    startup_trials,
)
from harness.training import Budget


def sweep_spec(args: argparse.Namespace, pruner: str, seed: int) -> StudySpec:
    """The study file with this run's overrides, checked again by the study file's own rules (through
    the stored-record round trip), so a combination the file would refuse is refused here too."""
    spec = load_study(args.study)
    spec.name, spec.pruner, spec.seed, spec.trials = f"{pruner}-{seed}", pruner, seed, args.trials
    spec.corpus, spec.device, spec.generate.enabled = args.corpus, args.device, False
    spec.budget, spec.evals = Budget.parse(args.per_trial), args.evals
    if not args.keep_schedule:
        spec.eval_spacing, spec.patience = "even", 0
    for key, value in args.pruner_setting:
        setattr(spec, f"pruner_{key}", value)
    spec.pruner_min_resource = min(spec.pruner_min_resource, spec.evals)
    if args.startup is not None:
        spec.startup_trials = args.startup
    if args.good_fraction is not None:
        spec.good_fraction = args.good_fraction
    StudySpec.from_record(spec.to_record(), spec.path)
    return spec


def run(args: argparse.Namespace, pruner: str, seed: int, root: Path) -> dict:
    spec = sweep_spec(args, pruner, seed)
    spent = []  # device-seconds the sweep had spent after each trial (load-dependent: context only)
    curve = []  # (characters the sweep has trained, best complete bpc so far, best at any evaluation) a trial
    budget = Budget.parse(args.budget).amount
    for n in range(1, args.trials + 1):  # spec.trials stays the plan the sampler is built for
        options = SweepOptions(results_dir=root / spec.name, device=args.device, trials=n, plain_progress=True)
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            run_worker(spec, options)
        trials = open_study(spec, options, create=False).get_trials(deepcopy=False)
        chars = sum(t.user_attrs.get("train_chars") or 0 for t in trials)
        seconds = sum(t.user_attrs.get("device_seconds") or 0.0 for t in trials)
        done = [t.values[0] for t in trials if t.state == TrialState.COMPLETE and t.values]
        seen = [v for t in trials for v in t.intermediate_values.values()]
        curve.append((chars, min(done) if done else float("nan"), min(seen) if seen else float("nan")))
        spent.append(seconds)
        if args.trace:
            _trace(args.trace, pruner, seed, trials[-1], curve[-1], seconds)
        if chars >= budget:
            break
    startup = startup_trials(spec) if spec.sampler == "tpe" else spec.trials  # random: every trial is drawn so
    return {"search": pruner, "seed": seed, "curve": curve, "trials": len(trials), "seconds": spent,
            "startup_share": spent[min(startup, len(spent)) - 1] / spent[-1] if spent and spent[-1] else None,
            "startup": startup,
            "pruned": sum(t.state == TrialState.PRUNED for t in trials)}


TRACE_COLUMNS = ["search", "seed", "trial", "state", "chars", "last_bpc", "sweep_chars", "sweep_best_bpc",
                 "sweep_best_any_bpc", "sweep_device_seconds", "params"]


def _trace(path: Path, pruner: str, seed: int, trial, point: tuple[int, float, float], seconds: float) -> None:
    """One row per trial as it ends, appended and flushed: a run cut short keeps what it saw."""
    values = trial.intermediate_values
    row = [pruner, seed, trial.number, trial.state.name, trial.user_attrs.get("train_chars") or 0,
           values[max(values)] if values else "", point[0], point[1], point[2], round(seconds, 1),
           json.dumps(trial.params, sort_keys=True)]
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(TRACE_COLUMNS)
        writer.writerow(row)


def best_at(curve: list[tuple[int, float, float]], chars: float, column: int = 1) -> float:
    """The best figure a sweep stopped at `chars` would have had (the last trial that ended by then); column 1
    is the best complete trial, 2 the best evaluation of any trial."""
    seen = [point[column] for point in curve if point[0] <= chars]
    return seen[-1] if seen else float("nan")


def chars_to(curve: list[tuple[int, float, float]], target: float, column: int = 1) -> int | None:
    return next((point[0] for point in curve if point[column] <= target), None)


def _spread(values: list[float]) -> str:
    real = [v for v in values if v == v]
    if not real:
        return "-"
    return f"{statistics.median(real):.3f} ({min(real):.3f}-{max(real):.3f})" + \
        (f" [{len(values) - len(real)} none]" if len(real) < len(values) else "")


def _chars(values: list[int | None]) -> str:
    reached = [v for v in values if v is not None]
    text = f"{statistics.median(reached) / 1e6:.2f}M" if reached else "-"
    return f"{text} ({len(reached)}/{len(values)})"


def _fraction(text: str) -> float:
    """A share strictly between 0 and 1, as `[study] good_fraction` is checked in a study file."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a fraction between 0 and 1, such as 0.25")
    return value


def _pruner_setting(text: str) -> tuple[str, int | str | bool]:
    """KEY=VALUE for one of the study file's [pruner] keys, so a variant is measured without a copy of the file."""
    words = {"bootstrap_at": {v: v for v in BOOTSTRAP_AT}, "startup_to_first_rung": {"true": True, "false": False}}
    numbers = [f.name.removeprefix("pruner_") for f in dataclasses.fields(StudySpec)
               if f.name.startswith("pruner_") and f.name.removeprefix("pruner_") not in words]
    key, _, value = text.partition("=")
    value = value.strip()
    if value in words.get(key, {}):
        return key, words[key][value]
    if key in numbers and value.isdigit():
        return key, int(value)
    raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=N with KEY one of {', '.join(numbers)}, or "
                                     + ", or ".join(f"{k}={' or '.join(v)}" for k, v in words.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="the text (a path, builtin:pydoc or gutenberg:ID)")
    parser.add_argument("--study", type=Path, default=Path("studies/prince-overnight.toml"))
    parser.add_argument("--pruners", nargs="+", default=["hyperband", "asha"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--per-trial", default="300k", help="characters per trial (default 300k)")
    parser.add_argument("--evals", type=int, default=6)
    parser.add_argument("--trials", type=int, default=16, help="at most this many trials a sweep (default 16)")
    parser.add_argument("--budget", default="3M", help="characters the whole sweep may train (default 3M)")
    parser.add_argument("--targets", nargs="+", type=float, default=[2.2, 2.0])
    parser.add_argument("--keep-schedule", action="store_true", help="keep the study's eval spacing and patience")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--startup", type=int, default=None,
                        help="TPE's start-up trials (default the study's: a third of --trials, 3 to 10)")
    parser.add_argument("--good-fraction", type=_fraction, default=None,
                        help="TPE's share of finished trials modelled as good (default the study's, else Optuna's 10%%)")
    parser.add_argument("--pruner-setting", type=_pruner_setting, action="append", default=[], metavar="KEY=N",
                        help="replace one of the study's [pruner] keys, e.g. min_resource=2 or "
                             "bootstrap_at=first_rung (repeatable)")
    parser.add_argument("--trace", type=Path, default=None, metavar="CSV",
                        help="append one row per trial as it ends (its state, characters, the sweep's best so far)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default torch's)")
    args = parser.parse_args()
    budget = Budget.parse(args.budget)
    if args.trace and not args.trace.resolve().parent.is_dir():
        parser.error(f"--trace {args.trace}: its folder does not exist; create it or pass another path")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if budget.kind != "tokens":
        parser.error("--budget is characters, such as 3M")
    for pruner in args.pruners:  # before any sweep runs: a refused combination costs nothing
        try:
            sweep_spec(args, pruner, args.seeds[0])
        except HarnessError as e:
            parser.error(f"--pruners {pruner} with these settings: {e}")
    fp = fingerprint(resolve_device(args.device))
    print(f"{fp['device_name']} ({fp['machine']}), torch {fp['torch']}; space {args.study}, corpus {args.corpus}; "
          f"{args.per_trial} characters a trial, {args.evals} evaluations, sweeps of {args.budget} characters "
          f"(at most {args.trials} trials), sampler seeds {' '.join(map(str, args.seeds))}"
          f"{'' if args.startup is None else f', {args.startup} start-up trials'}"
          f"{'' if args.good_fraction is None else f', good fraction {args.good_fraction}'}"
          f"{''.join(f', [pruner] {k} = {v}' for k, v in args.pruner_setting)}\n", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:  # seed by seed, so a run cut short still compares the searches at equal seeds
            for pruner in args.pruners:
                r = run(args, pruner, seed, Path(tmp))
                rows.append(r)
                marks = ", ".join(f"{share:.0%} {best_at(r['curve'], share * budget.amount):.3f} "
                                  f"(any {best_at(r['curve'], share * budget.amount, 2):.3f})"
                                  for share in (0.25, 0.5, 1.0))
                share = "" if r["startup_share"] is None else \
                    f"; the {r['startup']} start-up trials took {r['startup_share']:.0%} of them"
                print(f"  {pruner} seed {seed}: {r['trials']} trials ({r['pruned']} pruned), "
                      f"{r['curve'][-1][0] / 1e6:.2f}M characters, {r['seconds'][-1]:.0f} device-s{share}; "
                      f"best at {marks}", flush=True)
    head = f"\n{'search':<17} {'best at 25%':>22} {'best at 50%':>22} {'best at 100%':>22}" + \
        "".join(f" {'chars to ' + format(t, 'g'):>14}" for t in args.targets)
    print(head)
    for pruner in args.pruners:
        mine = [r for r in rows if r["search"] == pruner]
        for column, name in ((1, pruner), (2, f"{pruner} (any)")):
            cells = [_spread([best_at(r["curve"], share * budget.amount, column) for r in mine])
                     for share in (0.25, 0.5, 1.0)]
            reach = [_chars([chars_to(r["curve"], t, column) for r in mine]) for t in args.targets]
            print(f"{name:<17} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22}" + "".join(f" {c:>14}" for c in reach))
    print("\nmedian (range) over seeds of the best complete trial's held-out bpc once the sweep had trained that share "
          "of its characters; (any): the best held-out bpc at any evaluation of any trial, pruned ones included; "
          "chars to X: median characters to reach X (seeds that did)")


if __name__ == "__main__":
    main()
