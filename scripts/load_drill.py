"""Many workers on one study under load: is the plan kept exactly, and how fast does the storage answer?

    python scripts/load_drill.py --workers 8 --trials 200                      # journal (the default storage)
    python scripts/load_drill.py --workers 16 --trials 200 --postgres          # a temporary PostgreSQL server
    python scripts/load_drill.py --workers 8 --storage postgresql://user@host/db
    python scripts/load_drill.py --quick                                       # what the test suite runs

K separate `harness sweep` processes share one study, as K machines (or K GPUs) would, each kept
alive by this script as systemd's Restart=always would: when one dies it is started again. Tiny
trials (a few seconds each); `--kills` times, `--chaos` seconds apart on average, a random worker
that has run for a while is sent SIGKILL or SIGTERM (half each), while the plan is not yet reached. Workers log every ask, tell and heartbeat
(HARNESS_LATENCY_LOG). When every worker has finished, one more `harness sweep` runs, as a user's
resume would, to retry whatever a killed worker left RUNNING. Then it prints the invariants (exit 1
if any fails) and the storage latency of ask, tell and heartbeat at the start and at the end of the
study (p50/p95 over the first and last fifth of the calls, in time order).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from harness.data import builtin_text  # noqa: E402
from harness.search import open_storage  # noqa: E402
from harness.search._latency import LATENCY_ENV, read_latencies  # noqa: E402
from harness.search._storage import CRASHES_KEY, MAX_CRASH_RETRIES  # noqa: E402
from harness.training import RUN_FIELDS, TELEMETRY_FIELDS  # noqa: E402

STUDY = """
[study]
name = "load"
corpus = "{corpus}"
trials = {trials}
sampler = "tpe"
pruner = "none"
seed = 5
device = "cpu"
max_consecutive_failures = 1000

[budget]
per_trial = "{budget}"
evals = 1

[fixed]
model = "gru"
layers = 1
seq_len = 16
batch_size = 8
embedding_dim = 8

[space.hidden_dim]
type = "int"
low = 8
high = 32
log = true

[space.lr]
type = "float"
low = 1e-3
high = 3e-2
log = true

[generate]
enabled = false
"""


def start_postgres() -> tuple[str, callable]:
    """A throw-away server in a temporary directory on a free port (as the postgres user when run as root)."""
    def binary(name: str) -> str:
        found = shutil.which(name) or (sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [None])[-1]
        if not found:
            raise SystemExit(f"load_drill: {name} not found; install PostgreSQL's server programs or pass --storage")
        return found

    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = tempfile.mkdtemp(prefix="harness-pg-")
    os.chmod(root, 0o777)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(root, "data")
    subprocess.run([*as_pg, binary("initdb"), "-D", data, "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)
    subprocess.run([*as_pg, binary("pg_ctl"), "-D", data, "-l", os.path.join(root, "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200", "start"],
                   check=True, capture_output=True)

    def stop() -> None:
        subprocess.run([*as_pg, binary("pg_ctl"), "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


class Workers:
    """K worker slots; a dead worker is restarted until its sweep says the plan is complete (exit 0)."""

    def __init__(self, command: list[str], count: int, env: dict, log: Path):
        self.command, self.env, self.log = command, env, log
        self.procs: list[subprocess.Popen | None] = [None] * count
        self.started = [0.0] * count
        self.done = [False] * count
        self.restarts = 0
        for i in range(count):
            self.start(i)

    def start(self, i: int) -> None:
        with open(self.log, "a") as out:
            self.procs[i] = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        self.started[i] = time.monotonic()

    def poll(self) -> None:
        for i, proc in enumerate(self.procs):
            if self.done[i] or proc.poll() is None:
                continue
            if proc.returncode == 0:
                self.done[i] = True
            else:
                self.restarts += 1
                self.start(i)

    def live(self, settled: float) -> list[int]:
        """Slots whose worker is running and has been for `settled` seconds (past its imports)."""
        now = time.monotonic()
        return [i for i, p in enumerate(self.procs) if not self.done[i] and p.poll() is None
                and now - self.started[i] > settled]


def invariants(trials: list, planned: int) -> list[tuple[str, bool]]:
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    counted = [t for t in trials if not (t.state == TrialState.FAIL and t.number in retried)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    fields = [f.name for f in RUN_FIELDS if f.trial] + [f.name for f in TELEMETRY_FIELDS]
    partial = [t.number for t in complete if any(k not in t.user_attrs for k in fields)
               or not all(Path(p).exists() for p in (Path(t.user_attrs["trial_dir"]) / "result.json",
                                                      t.user_attrs["checkpoint"], t.user_attrs["samples_csv"]))]
    by_params: dict[str, list] = {}
    for t in trials:
        by_params.setdefault(json.dumps(t.params, sort_keys=True), []).append(t)
    twice = [t.number for group in by_params.values() for t in group[1:]
             if t.user_attrs.get("retry_of") not in {g.number for g in group}]
    failed = [t for t in trials if t.state == TrialState.FAIL and t.number not in retried]
    given_up = [t.number for t in failed if t.system_attrs.get(CRASHES_KEY, 0) >= MAX_CRASH_RETRIES]
    unretried = [t.number for t in failed if t.number not in given_up]
    states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    return [
        (f"counted trials == planned ({len(counted)} of {planned})", len(counted) == planned),
        (f"none RUNNING or WAITING at the end ({states['RUNNING']} running, {states['WAITING']} waiting)",
         states["RUNNING"] == 0 and states["WAITING"] == 0),
        (f"no configuration ran twice except by a retry that says so ({len(twice)} did)", not twice),
        (f"every COMPLETE trial's record whole: attributes and files ({len(complete)} complete, "
         f"{len(partial)} not whole)", not partial),
        (f"every failed trial was retried, but a retry whose worker died again (given up by design: "
         f"{len(given_up)}; {len(unretried)} others)", not unretried),
    ]


def latency_table(rows: list[dict]) -> list[str]:
    lines = [f"{'op':<10} {'calls':>6} {'start p50':>10} {'start p95':>10} {'end p50':>10} {'end p95':>10}  (ms)"]
    for op in ("ask", "tell", "heartbeat"):
        calls = sorted((r for r in rows if r["op"] == op), key=lambda r: r["t"])
        if len(calls) < 5:
            continue
        fifth = max(1, len(calls) // 5)
        cells = []
        for part in (calls[:fifth], calls[-fifth:]):
            ms = sorted(r["seconds"] * 1000 for r in part)
            cells += [statistics.median(ms), ms[min(len(ms) - 1, int(0.95 * len(ms)))]]
        lines.append(f"{op:<10} {len(calls):>6} " + " ".join(f"{c:>10.1f}" for c in cells))
    return lines


def run(args: argparse.Namespace) -> int:
    work = Path(args.out or tempfile.mkdtemp(prefix="harness-load-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    corpus.write_text(builtin_text("pydoc")[:40_000], encoding="utf-8")
    study_file = work / "load.toml"
    study_file.write_text(STUDY.format(corpus=corpus, trials=args.trials, budget=args.budget))
    results = work / "results"
    stop_pg = None
    storage = args.storage
    if args.postgres:
        storage, stop_pg = start_postgres()
    env = dict(os.environ, HARNESS_HEARTBEAT=args.heartbeat, OMP_NUM_THREADS="1",
               **{LATENCY_ENV: str(work / "latency")})
    command = [sys.executable, "-m", "harness", "sweep", str(study_file), "--results", str(results), "--plain-progress",
               *(["--storage", storage] if storage else [])]
    label = "postgresql" if storage else "journal"
    print(f"load_drill: {args.workers} workers, {args.trials} trials of {args.budget}, storage {label}, {args.kills} "
          f"signals ~{args.chaos:g} s apart; work in {work}")
    rng = random.Random(args.seed)
    workers = None
    try:
        t0 = time.monotonic()
        workers = Workers(command, args.workers, env, work / "workers.log")
        kills = {"SIGKILL": 0, "SIGTERM": 0}
        next_chaos = time.monotonic() + rng.expovariate(1 / args.chaos)
        while not all(workers.done):
            time.sleep(0.2)
            workers.poll()
            if (sum(kills.values()) >= args.kills or time.monotonic() < next_chaos
                    or planned_reached(results, storage, args.trials)):
                continue
            next_chaos = time.monotonic() + rng.expovariate(1 / args.chaos)
            live = workers.live(settled=args.settle)
            if live:
                victim, sig = rng.choice(live), rng.choice([signal.SIGKILL, signal.SIGTERM])
                workers.procs[victim].send_signal(sig)
                kills[sig.name] += 1
            if time.monotonic() - t0 > args.limit:
                raise SystemExit(f"load_drill: not done after {args.limit:g} s; see {work / 'workers.log'}")
        night = time.monotonic() - t0
        time.sleep(int(args.heartbeat.split(",")[1]) + 1)  # whatever a killed worker left RUNNING is stale now
        resume = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.limit)
        study = optuna.load_study(study_name="load", storage=open_storage(results, storage, say=lambda _: None))
        trials = study.get_trials()
        checks = invariants(trials, args.trials)
        rerun = len(re.findall(r"^trial \d+ \w+", resume.stdout, flags=re.MULTILINE))
        checks.append((f"the resume after the night exited 0 (ran {rerun} more trials)", resume.returncode == 0))
        print(f"load_drill: {len(trials)} trials in {night:.0f} s with {sum(kills.values())} signals "
              f"({kills['SIGKILL']} SIGKILL, {kills['SIGTERM']} SIGTERM) and {workers.restarts} worker restarts")
        for name, ok in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {name}")
        print(f"storage latency, {label}, {args.workers} workers (per call, in time order; start = first fifth, "
              f"end = last fifth of the study):")
        for line in latency_table(read_latencies(work / "latency")):
            print(f"  {line}")
        return 0 if all(ok for _, ok in checks) else 1
    finally:  # interrupted or not: no worker outlives the drill, and the temporary server goes
        for proc in workers.procs if workers else []:
            if proc is not None and proc.poll() is None:
                proc.kill()
        if stop_pg is not None:
            stop_pg()


def planned_reached(results: Path, storage: str | None, planned: int) -> bool:
    """Stop the chaos once the plan is asked for: from then on the workers only finish."""
    try:
        study = optuna.load_study(study_name="load", storage=open_storage(results, storage, say=lambda _: None))
    except Exception:
        return False
    return len(study.get_trials(deepcopy=False)) >= planned


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--budget", default="2k", help="per-trial budget (default 2k characters: a few seconds)")
    parser.add_argument("--chaos", type=float, default=4.0, help="mean seconds between signals (default 4)")
    parser.add_argument("--kills", type=int, default=None, help="signals in all (default: one per 10 trials)")
    parser.add_argument("--settle", type=float, default=8.0,
                        help="only workers up this long are signalled: past their imports, into a trial (default 8)")
    parser.add_argument("--storage", default=None, help="postgresql://... (default: the journal)")
    parser.add_argument("--postgres", action="store_true", help="start a temporary PostgreSQL server for the drill")
    parser.add_argument("--heartbeat", default="2,10", help="HARNESS_HEARTBEAT for the workers (default 2,10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=float, default=3600, help="give up after this many seconds")
    parser.add_argument("--out", default=None, help="working directory (default: a new temporary one)")
    parser.add_argument("--quick", action="store_true", help="4 workers, 32 trials: what the test suite runs")
    args = parser.parse_args()
    if args.quick:
        args.workers, args.trials, args.budget, args.chaos, args.settle = 4, 32, "6k", 1.0, 2.0
    args.kills = args.kills if args.kills is not None else max(2, args.trials // 10)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` cleans up on a kill too
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
