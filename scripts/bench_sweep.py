"""Sweep efficiency: random search without pruning against TPE with Hyperband, equal time budget, one run.

Both run the demo study's search space on the same corpus, each for the same wall-clock budget
(no new trial starts after it), one after the other in this process; the table gives the best
held-out bpc each reached, how many trials it started and pruned, and the device-seconds spent.

    python scripts/bench_sweep.py [--budget 150s] [--study studies/demo.toml] [--device auto]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path

from optuna.trial import TrialState

from harness.measure import fingerprint, resolve_device
from harness.search import SweepOptions, best_trial, load_study, open_study, run_worker
from harness.training import parse_duration


def run(study_file: Path, sampler: str, pruner: str, budget: float, device: str, root: Path) -> dict:
    spec = load_study(study_file)
    spec.name, spec.sampler, spec.pruner, spec.trials = f"{sampler}-{pruner}", sampler, pruner, None
    options = SweepOptions(results_dir=root / spec.name, device=device, timeout=budget, plain_progress=True)
    with contextlib.redirect_stderr(io.StringIO()):
        run_worker(spec, options)
    study = open_study(spec, options, create=False)
    trials = study.get_trials(deepcopy=False)
    best = best_trial(study)
    return {
        "search": f"{sampler} + {pruner}",
        "trials": len(trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "device_s": sum(t.user_attrs.get("device_seconds") or 0 for t in trials),
        "best_bpc": best.values[0] if best else float("nan"),
        "best": best.params if best else {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="150s", help="wall-clock budget per search (default 150s)")
    parser.add_argument("--study", type=Path, default=Path("studies/demo.toml"))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    budget = parse_duration(args.budget, "--budget")
    fp = fingerprint(resolve_device(args.device))
    print(f"{fp['device_name']} ({fp['machine']}), torch {fp['torch']}; study space {args.study}, "
          f"{budget:g} s wall-clock per search\n")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(args.study, "random", "none", budget, args.device, Path(tmp)),
                run(args.study, "tpe", "hyperband", budget, args.device, Path(tmp))]
    print(f"{'search':<18} {'trials':>6} {'pruned':>6} {'device-s':>9} {'best bpc':>9}")
    for r in rows:
        print(f"{r['search']:<18} {r['trials']:>6} {r['pruned']:>6} {r['device_s']:>9.1f} {r['best_bpc']:>9.4f}")
    print(f"\nTPE + Hyperband minus random: {rows[1]['best_bpc'] - rows[0]['best_bpc']:+.4f} bpc")
    for r in rows:
        print(f"best of {r['search']}: {r['best']}")


if __name__ == "__main__":
    main()
