"""Population-based training against TPE + Hyperband over the same space, at equal total characters.

The PBT study runs as written (population x generations segments). The TPE study is the same file
with `sampler = "tpe"`, `pruner = "hyperband"`, `--evals` even evaluations and no [pbt], one trial at a
time until it has trained as many characters in all as the PBT study did (characters, not seconds, so
the answer does not depend on how busy the machine is; the device-seconds of each are printed beside).
Each winner is then confirmed on the test split with `--confirm-seeds` fresh seeds: TPE's by
retraining its configuration, PBT's by replaying its schedule from scratch (so the inherited
weights are not what is confirmed). The exploit step's cost is the segments' checkpoint writes and
loads (setup) as a share of their device-seconds.

    python scripts/bench_pbt.py --corpus ../shared/corpora/theprince.txt [--study studies/prince-pbt.toml] \\
        [--seeds 0 1] [--evals 6] [--confirm-seeds 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import statistics
import tempfile
from pathlib import Path

from optuna.trial import TrialState

from harness.search import (
    ConfirmPlan,
    SweepOptions,
    confirmed,
    load_confirmation,
    load_study,
    open_study,
    run_confirm,
    run_worker,
)


def quietly(fn, *args):
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def figures(study) -> dict:
    trials = study.get_trials(deepcopy=False)
    own = [(t.user_attrs.get("segment_train_chars", t.user_attrs.get("train_chars")) or 0,
            t.user_attrs.get("segment_device_seconds", t.user_attrs.get("device_seconds")) or 0.0) for t in trials]
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    best = min(done, key=lambda t: t.values[0])
    timings = [t.user_attrs.get("timings") or {} for t in trials]
    return {"chars": sum(c for c, _ in own), "device_s": sum(s for _, s in own), "trials": len(trials),
            "pruned": sum(t.state == TrialState.PRUNED for t in trials), "best": best.values[0], "number": best.number,
            "copy_s": sum(x.get("checkpoint", 0.0) + x.get("setup", 0.0) for x in timings)}


def run_pbt(spec, root: Path) -> tuple[dict, SweepOptions]:
    options = SweepOptions(results_dir=root / spec.name, device=spec.device, plain_progress=True)
    quietly(run_worker, spec, options)
    return figures(open_study(spec, options, create=False)), options


def run_tpe(spec, root: Path, chars: float, evals: int) -> tuple[dict, SweepOptions]:
    spec = copy.deepcopy(spec)
    spec.name, spec.sampler, spec.pbt, spec.pruner = f"{spec.name}-tpe", "tpe", None, "hyperband"
    spec.evals, spec.eval_spacing, spec.patience, spec.trials = evals, "even", 0, 40
    options = SweepOptions(results_dir=root / spec.name, device=spec.device, plain_progress=True)
    for n in range(1, spec.trials + 1):
        options.trials = n
        quietly(run_worker, spec, options)
        found = figures(open_study(spec, options, create=False))
        if found["chars"] >= chars:
            break
    options.trials = None
    return found, options, spec


def confirm(spec, options: SweepOptions, seeds: int) -> tuple[float, float]:
    quietly(run_confirm, spec, options, ConfirmPlan(top=1, seeds=seeds))
    frame, _ = confirmed(load_confirmation(open_study(spec, options, create=False)))
    row = frame.iloc[0]
    return float(row["test_bpc_mean"]), float(row["test_bpc_sd"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--study", type=Path, default=Path("studies/prince-pbt.toml"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--evals", type=int, default=6, help="TPE's even evaluations, Hyperband's rungs (default 6)")
    parser.add_argument("--confirm-seeds", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            spec = load_study(args.study)
            spec.corpus, spec.device, spec.seed = args.corpus, args.device, seed
            spec.name = f"{spec.name}-{seed}"
            pbt, pbt_options = run_pbt(spec, Path(tmp))
            tpe, tpe_options, tpe_spec = run_tpe(spec, Path(tmp), pbt["chars"], args.evals)
            for name, found, s, o in (("pbt", pbt, spec, pbt_options), ("tpe+hyperband", tpe, tpe_spec, tpe_options)):
                found["test"], found["test_sd"] = confirm(s, o, args.confirm_seeds)
                rows.append({"search": name, "seed": seed, **found})
                print(f"  {name} seed {seed}: {found['trials']} trials ({found['pruned']} pruned), "
                      f"{found['chars'] / 1e6:.2f}M characters, {found['device_s']:.0f} device-s; best held-out "
                      f"{found['best']:.3f} (#{found['number']}); test, {args.confirm_seeds} fresh seeds "
                      f"{found['test']:.3f} (sd {found['test_sd']:.3f}); setup + checkpoints "
                      f"{found['copy_s'] / max(found['device_s'], 1e-9):.1%} of device-s", flush=True)
    print(f"\n{'search':<15} {'best held-out':>14} {'test (replayed)':>16} {'chars':>8} {'device-s':>9}")
    for name in ("pbt", "tpe+hyperband"):
        mine = [r for r in rows if r["search"] == name]
        print(f"{name:<15} {statistics.median(r['best'] for r in mine):>14.3f} "
              f"{statistics.median(r['test'] for r in mine):>16.3f} "
              f"{statistics.median(r['chars'] for r in mine) / 1e6:>7.2f}M "
              f"{statistics.median(r['device_s'] for r in mine):>9.0f}")
    print("\nmedians over the seeds; test: the winner's configuration (PBT: its schedule, replayed from scratch) "
          "retrained with fresh seeds and judged on the test split")


if __name__ == "__main__":
    main()
