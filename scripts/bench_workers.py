"""Trials per hour with 1, 2, 4 workers on one device, and whether the configurations still rank the same.

    python scripts/bench_workers.py                       # CPU: 1 and 2 workers, 6 configurations x 8 s
    python scripts/bench_workers.py --device cuda --workers 1 2 4

The same grid of small-model configurations (so every run trains exactly the same ones) is swept
with each worker count on the same device. Printed per worker count: wall time, trials per hour
and its ratio to one worker, mean concurrency, characters per device-second (a device-second being
the trial's fair share of the device, see harness.measure._occupancy), and the Spearman rank correlation of
the configurations' held-out bpc against the 1-worker run. Then, per configuration, its characters
per device-second alone (1 worker) and shared (each other worker count), and their ratio: the
"sharing gain". A device-second charges dt/n(t), as if each of n trials had 1/n of the device; a
gain near 1 says that holds, a gain above 1 that time-slicing gave each trial more than 1/n (a GPU
that small models leave mostly idle), so trials of studies run with different worker counts do
not compare.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from harness.data import builtin_text  # noqa: E402
from harness.search import open_storage  # noqa: E402

STUDY = """
[study]
name = "workers"
corpus = "{corpus}"
sampler = "grid"
pruner = "none"
device = "{device}"

[budget]
per_trial = "{budget}"
evals = 2

[fixed]
model = "lstm"
embedding_dim = 32
layers = 1
seq_len = 64
batch_size = {batch}

[space.hidden_dim]
type = "categorical"
choices = [64, 128, 256]

[space.lr]
type = "categorical"
choices = [0.001, 0.004]

[generate]
enabled = false
"""


def run(workers: int, study: Path, work: Path) -> dict:
    results = work / f"w{workers}"
    env = dict(os.environ, HARNESS_OCCUPANCY_DIR=str(work / "occupancy"))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness", "sweep", str(study), "--results", str(results),
                           "--workers", str(workers), "--plain-progress"], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench_workers: {workers} workers failed:\n{proc.stderr[-3000:]}")
    study_ = optuna.load_study(study_name="workers", storage=open_storage(results, say=lambda _: None))
    rows = [{"config": f"h{t.params['hidden_dim']} lr{t.params['lr']:g}", "bpc": t.values[0],
             "chars_per_device_s": t.user_attrs["train_chars_per_s"], "concurrency": t.user_attrs["concurrency"]}
            for t in study_.get_trials() if t.values]
    return {"workers": workers, "wall": wall, "frame": pd.DataFrame(rows).set_index("config")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--budget", default="8s", help="per-trial budget in device-seconds (default 8s)")
    parser.add_argument("--trials", type=int, default=6, help="ignored: the grid has 6 configurations")
    parser.add_argument("--corpus", default=None, help="text file (default: 60k chars of Python's pydoc text)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="harness-bench-workers-"))
    corpus = Path(args.corpus).resolve() if args.corpus else work / "corpus.txt"
    if not args.corpus:
        corpus.write_text(builtin_text("pydoc")[:60_000], encoding="utf-8")
    study = work / "workers.toml"
    study.write_text(STUDY.format(corpus=corpus, device=args.device, budget=args.budget,
                                  batch=64 if args.device == "cpu" else 256))
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"bench_workers: {platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__}; "
          f"command: {' '.join(sys.argv)}")
    runs = [run(w, study, work) for w in args.workers]
    base = runs[0]
    print(f"{'workers':>7} {'wall s':>8} {'trials/h':>9} {'ratio':>6} {'concurrency':>11} {'chars/device-s':>15} "
          f"{'rank corr. vs 1':>15}")
    for r in runs:
        f = r["frame"]
        trials_per_h = len(f) / r["wall"] * 3600
        base_rate = len(base["frame"]) / base["wall"] * 3600
        joined = base["frame"]["bpc"].to_frame("a").join(f["bpc"].to_frame("b"), how="inner")
        rho = joined["a"].rank().corr(joined["b"].rank()) if len(joined) > 2 else float("nan")
        print(f"{r['workers']:>7} {r['wall']:>8.1f} {trials_per_h:>9.1f} {trials_per_h / base_rate:>6.2f} "
              f"{f['concurrency'].mean():>11.2f} {f['chars_per_device_s'].median():>15,.0f} {rho:>15.2f}")
    print("ratio: trials per hour against 1 worker; rank corr.: Spearman correlation of the 6 configurations' best "
          "held-out bpc with the 1-worker run's")
    shared = [r for r in runs if r["workers"] != base["workers"]]
    if shared:
        print(f"\nsharing gain: chars per device-second shared / alone ({base['workers']} worker), per configuration")
        print(f"{'configuration':>18} {'alone':>10}" + "".join(f" {str(r['workers']) + ' workers':>12} {'gain':>6}"
                                                          for r in shared))
        for config, alone in base["frame"]["chars_per_device_s"].items():
            cells = ""
            for r in shared:
                value = r["frame"]["chars_per_device_s"].get(config, float("nan"))
                cells += f" {value:>12,.0f} {value / alone:>6.2f}"
            print(f"{config:>18} {alone:>10,.0f}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
